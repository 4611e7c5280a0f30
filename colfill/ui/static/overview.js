// Overview: the store's tables, the run in progress (progress file, or Redis), live status, last runs, rejects.
"use strict";
(() => {
  const { el, num, bytes, secs, when } = colfill;

  function renderTables(data) {
    document.getElementById("store").textContent = `${data.store}` + (data.redis ? ` · Redis ${data.redis}` : "");
    const body = document.querySelector("#tables tbody");
    body.replaceChildren(...data.tables.map((t) => {
      let comp = "";
      if (t.chunks !== undefined && t.chunks !== null) {
        comp = `${t.compressed_chunks || 0}/${t.chunks} chunks` + (t.compression_ratio ? ` · ${t.compression_ratio.toFixed(1)}x` : "");
      }
      const rows = (t.rows_exact === false ? "~" : "") + num(t.rows);
      return el("tr", { "data-table": t.table }, el("td", { text: t.table }), el("td", { text: rows }),
        el("td", { text: num(t.tickers) }), el("td", { text: t.first_day || "" }), el("td", { text: t.last_day || "" }),
        el("td", { text: num(t.days) }), el("td", { text: bytes(t.size_bytes) }), el("td", { text: comp }));
    }));
  }

  function renderRuns(runs) {
    const body = document.querySelector("#runs tbody");
    const rows = [];
    for (const r of runs) {
      const result = r.interrupted ? "interrupted" : r.ok ? "ok" : "problems";
      for (const [table, t] of Object.entries(r.tables)) {
        rows.push(el("tr", {}, el("td", { text: when(r.started_ms) }), el("td", { class: "l", text: table }),
          el("td", { text: num(t.files) }), el("td", { text: num(t.staged) }), el("td", { text: num(t.skipped) }),
          el("td", { class: t.failed ? "bad" : "", text: num(t.failed) }), el("td", { text: num(t.rows) }),
          el("td", { class: t.rejected ? "warn" : "", text: num(t.rejected) }), el("td", { text: secs(t.seconds) }),
          el("td", { class: "l " + (r.ok ? "ok" : "bad"), text: result })));
      }
    }
    body.replaceChildren(...rows);
    document.getElementById("runs-empty").textContent = runs.length ? "" : "no run recorded in this data dir yet";
  }

  function renderRejects(rejects) {
    const body = document.querySelector("#rejects tbody");
    body.replaceChildren(...rejects.map((r) => {
      const a = el("a", { class: "reason", title: "show file and line" }, r.reason);
      a.addEventListener("click", () => showReason(r.reason));
      return el("tr", {}, el("td", { text: r.table }), el("td", { class: "l" }, a), el("td", { text: num(r.rows) }),
        el("td", { text: num(r.files) }));
    }));
    document.getElementById("rejects-empty").textContent = rejects.length ? "" : "no rejected rows";
  }

  async function showReason(reason) {
    const box = document.getElementById("reject-detail");
    box.textContent = "loading…";
    try {
      const data = await colfill.json("/api/rejects?reason=" + encodeURIComponent(reason));
      const t = el("table", { id: "reject-rows" }, el("thead", {}, el("tr", {}, el("th", { class: "l", text: "file" }),
        el("th", { text: "line" }), el("th", { class: "l", text: "ticker" }))));
      const tb = el("tbody", {});
      for (const r of data.rows) tb.append(el("tr", {}, el("td", { text: r.file }), el("td", { text: r.line }),
        el("td", { class: "l", text: r.ticker || "" })));
      t.append(tb);
      box.replaceChildren(el("h2", { text: reason }), t);
    } catch (e) { box.textContent = e.message; }
  }

  function progressRows(tables, source) {
    return Object.entries(tables).map(([table, t]) => {
      const pct = t.total ? Math.min(100, (100 * t.done) / t.total) : 0;
      const bar = el("div", { class: "bar" }, el("div", { style: `width:${pct.toFixed(1)}%` }));
      const text = `${num(t.done)} of ${num(t.total)} days · ${num(t.rows)} rows · ${num(Math.round(t.rows_per_s))} rows/s · ETA ${secs(t.eta_s)}`;
      return el("div", { class: "prog", "data-table": table, "data-done": t.done, "data-total": t.total,
        "data-source": source }, el("strong", { text: table }), bar, el("span", { class: "prog-text", text }));
    });
  }

  function renderStatus(st) {
    const box = document.getElementById("progress");
    const p = st.progress;
    const redisRun = st.redis && st.redis.run;
    const parts = [];
    if (p && !p.stale) {
      const state = p.failed ? "failed" : p.finished ? "finished" : "running";
      box.dataset.state = state;
      parts.push(el("div", { class: "muted", id: "progress-state" },
        `${state} · started ${when(p.started_ms)} · updated ${when(p.updated_ms)}`), ...progressRows(p.tables, "file"));
    } else if (redisRun && redisRun.tables) {
      box.dataset.state = "running";
      parts.push(el("div", { class: "muted", id: "progress-state" }, `from Redis · updated ${when(redisRun.updated_ms)}`),
        ...progressRows(redisRun.tables, "redis"));
    } else {
      box.dataset.state = p && p.stale ? "stale" : "none";
      parts.push(p && p.stale ? "the last run stopped without finishing (its process is gone)" : "no run in progress");
    }
    box.replaceChildren(...parts);
    const live = document.getElementById("live");
    if (!st.redis) return;
    if (!st.redis.reachable) { live.textContent = "Redis is not reachable"; live.className = "bad"; return; }
    const l = st.redis.live;
    if (!l) { live.textContent = "no colfill live is publishing"; live.className = "muted"; return; }
    live.className = "";
    live.dataset.tickers = (l.tickers || []).length;
    live.replaceChildren(el("div", { id: "live-figures" },
      `${num((l.tickers || []).length)} tickers · ${num(l.bars)} bars · ${(l.bars_per_s || 0).toFixed(1)} bars/s · lag ${num(Math.round(l.lag_ms || 0))} ms · reconnects ${num(l.reconnects || 0)} · updated ${Math.round((l.age_ms || 0) / 1000)} s ago`),
      el("div", { id: "live-fills", class: l.unfilled ? "bad" : "" }, fillText(l)),
      el("div", {}, ...(l.tickers || []).slice(0, 200).map((t) => {
        const a = el("a", { class: "pill", href: "/ticker/" + encodeURIComponent(t) }, t);
        return a;
      })));
  }

  function fillText(l) {
    const counts = `gap fills from REST ${num(l.fills || 0)} · bars filled ${num(l.filled || 0)} · revised ` +
      `${num(l.filled_revised || 0)} · tickers not filled ${num(l.unfilled || 0)}`;
    const f = l.last_fill;
    if (!f) return counts;
    const hm = (ms) => new Date(ms).toISOString().slice(11, 16);
    return `${counts} · last (${f.why}): ${num(f.tickers)} tickers, ${hm(f.start_ms)}–${hm(f.end_ms)} UTC, ` +
      `+${num(f.inserted)} bars, ${num(f.revised)} revised in ${f.seconds.toFixed(2)} s` +
      (f.failed ? `, ${num(f.failed)} tickers NOT filled` : "");
  }

  async function loadOverview() {
    try {
      const data = await colfill.json("/api/overview");
      renderTables(data); renderRuns(data.runs); renderRejects(data.rejects);
      colfill.message("");
    } catch (e) { colfill.message(e.message); }
  }
  async function loadStatus() {
    try { renderStatus(await colfill.json("/api/status")); } catch (e) { colfill.message(e.message); }
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("nav-overview").classList.add("active");
    loadOverview(); loadStatus();
    setInterval(loadStatus, 500);
    setInterval(loadOverview, 5000);
  });
})();
