// Coverage: a heatmap of trading days (columns) against tickers (rows), coloured by bars per day, under a strip
// of each day's total over every ticker; drawn on a canvas of our own (cells, bars and labels: no charting
// library needed). Missing sessions (no bar at all) are red in the strip and listed; a cell opens its chart.
"use strict";
(() => {
  let timer = null, D = null, G = null;
  const RED = "#c62828", ROW = 16, STRIP = 70, GAP = 10, RIGHT = 16, BOTTOM = 64;
  const STOPS = [[0, [254, 243, 199]], [0.25, [252, 211, 77]], [0.6, [59, 130, 246]], [1, [30, 58, 138]]];
  window.__coverage = { renders: 0 };

  function color(v, max) {  // red for none; light to dark blue with the share of the busiest cell
    if (!v) return RED;
    const f = Math.min(1, v / max);
    let i = 1;
    while (i < STOPS.length - 1 && STOPS[i][0] < f) i++;
    const [f0, c0] = STOPS[i - 1], [f1, c1] = STOPS[i];
    const t = (f - f0) / (f1 - f0 || 1);
    return `rgb(${c0.map((c, k) => Math.round(c + t * (c1[k] - c))).join(",")})`;
  }

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
    d.max = Math.max(1, ...d.z.map((r) => Math.max(0, ...r)));  // the busiest cell: the colour scale's top
    D = d;
    describe(d);
    draw();
  }

  function describe(d) {
    document.getElementById("cov-info").textContent = `${d.tickers.length} tickers × ${d.days.length} trading days · ${d.table}`;
    const missing = document.getElementById("missing");
    missing.dataset.days = d.missing.join(",");
    missing.textContent = d.missing.length ? `Missing from the source (trading days without any bar): ${d.missing.join(", ")}`
      : "No trading day is missing.";
    missing.className = d.missing.length ? "bad" : "ok";
    const legend = document.getElementById("legend");
    const stops = STOPS.map(([f, c]) => `rgb(${c.join(",")}) ${f * 100}%`).join(", ");
    legend.replaceChildren(colfill.el("span", { class: "swatch", style: `background:${RED}` }), "none",
      colfill.el("span", { class: "scale", style: `background:linear-gradient(to right, ${stops})` }),
      `1 … ${colfill.num(d.max)} bars a day`);
  }

  function draw() {
    const d = D, box = document.getElementById("heatmap");
    const canvas = box.querySelector("canvas") || box.appendChild(document.createElement("canvas"));
    const ctx = canvas.getContext("2d");
    ctx.font = "11px system-ui, sans-serif";
    const left = 12 + Math.max(40, ...d.tickers.map((t) => ctx.measureText(t).width));
    const width = Math.max(400, box.clientWidth);
    const cell = Math.max(2, (width - left - RIGHT) / Math.max(1, d.days.length));
    const top = STRIP + GAP, height = top + ROW * d.tickers.length + BOTTOM;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "11px system-ui, sans-serif";
    ctx.clearRect(0, 0, width, height);
    G = { left, top, cell, width, height };
    const most = Math.max(1, ...d.totals);
    const gap = cell > 4 ? 1 : 0;
    d.days.forEach((day, j) => {  // the strip: each day's total; a session without any bar is a red band
      const x = left + j * cell, v = d.totals[j] || 0;
      if (d.session[j] && v === 0) { ctx.fillStyle = "rgba(198,40,40,0.35)"; ctx.fillRect(x, 0, cell - gap, STRIP); }
      const h = (v / most) * (STRIP - 4);
      ctx.fillStyle = !d.session[j] ? "#f59e0b" : "#64748b";
      ctx.fillRect(x, STRIP - h, cell - gap, h);
    });
    d.tickers.forEach((t, i) => {
      const y = top + i * ROW;
      ctx.fillStyle = "#1d2430"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(t, left - 6, y + ROW / 2);
      d.z[i].forEach((v, j) => { ctx.fillStyle = color(v, d.max); ctx.fillRect(left + j * cell, y, cell - gap, ROW - 1); });
    });
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
    for (const [i, j] of d.rejected) {  // ✕ on the cells with rejected rows
      const x = left + j * cell + cell / 2, y = top + i * ROW + ROW / 2, r = Math.min(cell, ROW) / 2 - 2;
      ctx.beginPath(); ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r); ctx.stroke();
    }
    const every = Math.max(1, Math.ceil(16 / cell));  // day labels at least 16 px apart, turned
    ctx.fillStyle = "#6b7385"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let j = 0; j < d.days.length; j += every) {
      ctx.save();
      ctx.translate(left + j * cell + cell / 2, top + ROW * d.tickers.length + 6);
      ctx.rotate(-Math.PI / 3);
      ctx.fillText(d.days[j].slice(2), 0, 0);
      ctx.restore();
    }
    window.__coverage = { renders: window.__coverage.renders + 1, days: d.days, tickers: d.tickers, z: d.z,
      cell: (ticker, day) => ({ x: left + d.days.indexOf(day) * cell + (cell - gap) / 2, y: top + d.tickers.indexOf(ticker) * ROW + ROW / 2 }) };
  }

  function at(ev) {  // the day (and ticker, below the strip) under the pointer
    if (!G || !D) return null;
    const r = ev.target.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    const j = Math.floor((x - G.left) / G.cell);
    if (j < 0 || j >= D.days.length) return null;
    if (y < STRIP) return { j };
    const i = Math.floor((y - G.top) / ROW);
    return i >= 0 && i < D.tickers.length ? { i, j } : null;
  }

  function hover(ev) {
    const tip = document.getElementById("tip"), p = at(ev);
    if (!p) { tip.hidden = true; return; }
    const day = D.days[p.j];
    let text;
    if (p.i === undefined) {
      text = `${day}: ${colfill.num(D.totals[p.j] || 0)} bars, all tickers` +
        (D.session[p.j] && !D.totals[p.j] ? " — missing from the source" : "");
    } else {
      const rej = D.rejected.find((r) => r[0] === p.i && r[1] === p.j);
      text = `${D.tickers[p.i]} ${day}: ${colfill.num(D.z[p.i][p.j])} bars` + (rej ? `, ${colfill.num(rej[2])} rejected` : "");
    }
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = `${ev.pageX + 12}px`; tip.style.top = `${ev.pageY + 12}px`;
  }

  function open(ev) {  // a cell opens that ticker's chart of that day
    const p = at(ev);
    if (!p || p.i === undefined) return;
    const tf = D.table === "bars_1d" ? "1d" : "1m", day = D.days[p.j];
    location.href = `/ticker/${encodeURIComponent(D.tickers[p.i])}?tf=${tf}&start=${day}&end=${day}`;
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("nav-coverage").classList.add("active");
    for (const id of ["table", "n"]) document.getElementById(id).addEventListener("change", load);
    document.getElementById("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 250); });
    const box = document.getElementById("heatmap");
    box.addEventListener("mousemove", hover);
    box.addEventListener("mouseleave", () => { document.getElementById("tip").hidden = true; });
    box.addEventListener("click", open);
    window.addEventListener("resize", () => { if (D) draw(); });
    load();
  });
})();
