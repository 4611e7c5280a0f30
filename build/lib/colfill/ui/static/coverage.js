// Coverage: a heatmap of trading days (columns) against tickers (rows), coloured by bars per day, under a strip
// of each day's total over every ticker. Missing sessions (no bar at all) are red in the strip and listed.
"use strict";
(() => {
  let timer = null;

  async function load() {
    const table = document.getElementById("table").value;
    const n = document.getElementById("n").value || "40";
    const search = document.getElementById("search").value.trim();
    const q = new URLSearchParams({ n });
    if (table) q.set("table", table);
    if (search) q.set("search", search);
    let d;
    try { d = await colfill.json("/api/coverage?" + q.toString()); colfill.message(""); }
    catch (e) { colfill.message(e.message); return; }
    draw(d);
  }

  function draw(d) {
    const info = document.getElementById("cov-info");
    info.textContent = `${d.tickers.length} tickers × ${d.days.length} trading days · ${d.table}`;
    const missing = document.getElementById("missing");
    missing.dataset.days = d.missing.join(",");
    missing.textContent = d.missing.length ? `Missing from the source (trading days without any bar): ${d.missing.join(", ")}`
      : "No trading day is missing.";
    missing.className = d.missing.length ? "bad" : "ok";
    const maxZ = Math.max(1, ...d.z.map((r) => Math.max(0, ...r)));
    const stripColors = d.totals.map((v, i) => (d.session[i] && v === 0 ? "#c62828" : d.session[i] ? "#64748b" : "#f59e0b"));
    const traces = [
      { type: "bar", x: d.days, y: d.totals.map((v) => v || 0), marker: { color: stripColors }, xaxis: "x", yaxis: "y2",
        hovertemplate: "%{x}<br>%{y:,} bars<extra>all tickers</extra>", name: "day total" },
      { type: "heatmap", x: d.days, y: d.tickers, z: d.z, xaxis: "x", yaxis: "y", zmin: 0, zmax: maxZ,
        colorscale: [[0, "#c62828"], [0.0001, "#fef3c7"], [0.25, "#fcd34d"], [0.6, "#3b82f6"], [1, "#1e3a8a"]],
        hovertemplate: "%{y} %{x}<br>%{z:,} bars<extra></extra>", xgap: 1, ygap: 1,
        colorbar: { title: { text: "bars" }, len: 0.75, y: 0.38 } },
    ];
    const top = Math.max(1, ...d.totals);
    const gaps = d.days.map((day, i) => (d.session[i] && d.totals[i] === 0 ? top : null));
    if (gaps.some((v) => v !== null)) {
      traces.push({ type: "bar", x: d.days, y: gaps, marker: { color: "rgba(198,40,40,0.35)" }, xaxis: "x",
        yaxis: "y2", name: "missing", hovertemplate: "%{x}<br>no bar: missing from the source<extra></extra>" });
    }
    if (d.rejected.length) {
      traces.push({ type: "scatter", mode: "markers", x: d.rejected.map((r) => d.days[r[1]]),
        y: d.rejected.map((r) => d.tickers[r[0]]), text: d.rejected.map((r) => `${r[2]} rejected`),
        marker: { symbol: "x", size: 9, color: "#111" }, xaxis: "x", yaxis: "y", name: "rejected rows",
        hovertemplate: "%{y} %{x}<br>%{text}<extra></extra>" });
    }
    const height = Math.max(420, 140 + 16 * d.tickers.length);
    const layout = {
      height, margin: { l: 70, r: 20, t: 10, b: 20 }, showlegend: false, barmode: "overlay",
      xaxis: { type: "category", tickangle: -60, nticks: 40, anchor: "y", automargin: true },
      yaxis: { domain: [0, 0.8], autorange: "reversed", type: "category", automargin: true },
      yaxis2: { domain: [0.84, 1], title: { text: "bars/day" }, rangemode: "tozero" },
    };
    Plotly.react("heatmap", traces, layout, { displaylogo: false, responsive: true }).then((div) => {
      if (div.__colfillClick) return;
      div.__colfillClick = true;
      div.on("plotly_click", (ev) => {  // a cell opens that ticker's chart of that day
        const p = ev.points && ev.points[0];
        if (!p || !p.data || p.data.type !== "heatmap") return;
        const tf = d.table === "bars_1d" ? "1d" : "1m";
        location.href = `/ticker/${encodeURIComponent(p.y)}?tf=${tf}&start=${p.x}&end=${p.x}`;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("nav-coverage").classList.add("active");
    for (const id of ["table", "n"]) document.getElementById(id).addEventListener("change", load);
    document.getElementById("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
    load();
  });
})();
