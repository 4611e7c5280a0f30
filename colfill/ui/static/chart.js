// Chart of one ticker: candlesticks and volume, overlays (SMA, EMA, Bollinger bands, VWAP) and panes (RSI, MACD)
// from the stored indicator columns. The server resamples to the zoom level; zooming or panning asks it again
// for the visible range. With --redis, bars published by `colfill live` are merged in as they arrive.
"use strict";
(() => {
  const ticker = decodeURIComponent(location.pathname.replace(/^\/ticker\//, ""));
  const S = { meta: null, tf: "1m", start: null, end: null, data: null, offset: 0, es: null, busy: 0,
              liveBars: new Map(), zoomed: false };
  window.__chart = { ticker, renders: 0, live: 0, latencies: [] };
  const DAY = 86400000;

  const OVERLAY = (c) => /^(sma|ema)_/.test(c) || /^vwap/.test(c) || /^bb_/.test(c);
  const groupOf = (c) => (/^bb_/.test(c) ? "bb" + c.replace(/^bb_(upper|middle|lower)/, "") :
    /^macd/.test(c) ? "macd" + c.replace(/^macd(_signal|_hist)?/, "") : c);

  function indicatorGroups(cols) {
    const groups = new Map();
    for (const c of cols) {
      const g = groupOf(c);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(c);
    }
    return groups;
  }

  function selected() {
    return [...document.querySelectorAll("#indicators input:checked")].flatMap((i) => i.dataset.cols.split(","));
  }

  function buildToggles() {
    const box = document.getElementById("indicators");
    const info = S.meta.timeframes[S.tf];
    const before = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    const first = !box.children.length;
    const groups = indicatorGroups(info ? info.indicators : []);
    const items = [colfill.el("span", { class: "muted", text: "indicators:" })];
    for (const [g, cols] of groups) {
      const kind = /^rsi/.test(g) ? "pane" : /^macd/.test(g) ? "pane" : "overlay";
      const input = colfill.el("input", { type: "checkbox", value: g, "data-cols": cols.join(","), "data-kind": kind });
      if (before.has(g) || (first && (g === "sma_20" || /^rsi/.test(g)))) input.checked = true;
      input.addEventListener("change", () => load());
      const name = g.startsWith("bb") ? "Bollinger" + g.slice(2) : g.toUpperCase().replace(/_/g, " ");
      items.push(colfill.el("label", { title: kind }, input, name + (kind === "pane" ? " (pane)" : "")));
    }
    box.replaceChildren(...items);
  }

  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

  function barsQuery(tf, start, end, adjusted, cols) {
    const q = new URLSearchParams({ tf, points: "1500" });
    const bound = (v, up) => (typeof v === "number" ? String(up ? Math.ceil(v) : Math.floor(v)) : v);
    if (start !== null) q.set("start", bound(start, false));
    if (end !== null) q.set("end", bound(end, true));
    if (adjusted) q.set("adjusted", "1");
    if (cols.length) q.set("indicators", cols.join(","));
    return q.toString();
  }
  const firstTf = (meta, params) => {
    const tfs = Object.keys(meta.timeframes);
    return tfs.includes(params.get("tf")) ? params.get("tf") : tfs.includes("1m") ? "1m" : tfs[0];
  };
  const defaultCols = (meta, tf) => (meta.timeframes[tf] ? meta.timeframes[tf].indicators : [])
    .filter((c) => groupOf(c) === "sma_20" || /^rsi/.test(groupOf(c)));

  // Started as soon as this script runs, while the browser still loads and parses the charting bundle: the
  // ticker's metadata, then its first bars with the page's default choices (used by the first load() if it asks
  // the same).
  const early = (() => {
    const params = new URLSearchParams(location.search);
    return colfill.json(`/api/meta/${encodeURIComponent(ticker)}`).then((meta) => {
      const tf = firstTf(meta, params);
      const q = barsQuery(tf, params.get("start") || null, params.get("end") || null, false, defaultCols(meta, tf));
      const bars = colfill.json(`/api/bars/${encodeURIComponent(ticker)}?` + q).then((d) => d, (e) => e);
      return { meta, q, bars };
    }, (e) => ({ error: e }));
  })();

  async function load() {
    const q = barsQuery(S.tf, S.start, S.end, document.getElementById("adjusted").checked, selected());
    const token = ++S.busy;
    let d;
    try {
      if (S.early && S.early.q === q) {
        d = await S.early.bars;
        if (d instanceof Error) throw d;
      } else {
        d = await colfill.json(`/api/bars/${encodeURIComponent(ticker)}?` + q);
      }
      S.early = null;
      colfill.message("");
    } catch (e) { S.early = null; colfill.message(e.message); return; }
    if (token !== S.busy) return;  // a newer request superseded this one
    S.data = d;
    const c = d.columns;
    if (c.t && c.t.length) S.offset = c.x[c.t.length - 1] - c.t[c.t.length - 1];
    S.liveBars.clear();
    draw();
  }

  function wallToUtc(v) {
    const ms = typeof v === "number" ? v : Date.parse(String(v).replace(" ", "T") + "Z");
    return ms - S.offset;
  }

  function draw() {
    const d = S.data, c = d.columns;
    const panes = [...document.querySelectorAll("#indicators input:checked")].filter((i) => i.dataset.kind === "pane")
      .map((i) => i.value);
    const traces = [{ type: "candlestick", name: ticker, x: c.x, open: c.open, high: c.high, low: c.low, close: c.close,
      increasing: { line: { color: "#16a34a" } }, decreasing: { line: { color: "#dc2626" } }, xaxis: "x", yaxis: "y",
      hoverinfo: "x+y+text" }];
    const palette = ["#2563eb", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
    let k = 0;
    for (const col of Object.keys(c)) {
      if (!OVERLAY(col)) continue;
      const style = /^bb_/.test(col) ? { color: "#94a3b8", width: 1, dash: col.startsWith("bb_middle") ? "dot" : "solid" }
        : { color: palette[k++ % palette.length], width: 1.4 };
      traces.push({ type: "scatter", mode: "lines", name: col, x: c.x, y: c[col], line: style, xaxis: "x", yaxis: "y",
        fill: col.startsWith("bb_lower") ? "tonexty" : "none", fillcolor: "rgba(148,163,184,0.12)", connectgaps: false });
    }
    traces.push({ type: "bar", name: "volume", x: c.x, y: c.volume, xaxis: "x", yaxis: "y2",
      marker: { color: c.close.map((v, i) => (v >= c.open[i] ? "rgba(22,163,74,.5)" : "rgba(220,38,38,.5)")) } });
    // layout: price on top, volume under it, then one pane per RSI/MACD group
    const n = panes.length, paneH = 0.17, volH = 0.12, gap = 0.03;
    const priceLo = n * (paneH + gap) + volH + gap;
    const layout = {
      margin: { l: 60, r: 20, t: 10, b: 30 }, showlegend: true, legend: { orientation: "h", y: 1.02, x: 0 },
      dragmode: "zoom", hovermode: "x unified", uirevision: ticker + S.tf,
      xaxis: { type: "date", rangeslider: { visible: false }, anchor: n ? `y${n + 2}` : "y2" },
      yaxis: { domain: [priceLo, 1], title: { text: d.adjusted ? "price (split-adjusted)" : "price" } },
      yaxis2: { domain: [priceLo - volH - gap / 2, priceLo - gap / 2], title: { text: "volume" } },
      shapes: [],
    };
    if (S.zoomed && typeof S.start === "number" && typeof S.end === "number") layout.xaxis.range = [S.start + S.offset, S.end + S.offset];
    if (/[mh]$/.test(d.width)) layout.xaxis.rangebreaks = [{ bounds: ["sat", "mon"] }, { bounds: [20, 4], pattern: "hour" }];
    else layout.xaxis.rangebreaks = [{ bounds: ["sat", "mon"] }];
    panes.forEach((g, i) => {
      const axis = `y${i + 3}`, top = priceLo - volH - gap - i * (paneH + gap);
      layout[`yaxis${i + 3}`] = { domain: [Math.max(0, top - paneH), top], title: { text: g.toUpperCase().replace(/_.*/, "") } };
      const cols = Object.keys(c).filter((col) => groupOf(col) === g);
      for (const col of cols) {
        if (/_hist/.test(col)) {
          traces.push({ type: "bar", name: col, x: c.x, y: c[col], xaxis: "x", yaxis: axis,
            marker: { color: c[col].map((v) => (v >= 0 ? "rgba(22,163,74,.6)" : "rgba(220,38,38,.6)")) } });
        } else {
          traces.push({ type: "scatter", mode: "lines", name: col, x: c.x, y: c[col], xaxis: "x", yaxis: axis,
            line: { width: 1.3, color: /signal/.test(col) ? "#ea580c" : "#2563eb" } });
        }
      }
      if (/^rsi/.test(g)) {
        layout[`yaxis${i + 3}`].range = [0, 100];
        for (const level of [30, 70]) layout.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: axis,
          y0: level, y1: level, line: { color: "#94a3b8", width: 1, dash: "dot" } });
      }
    });
    const div = document.getElementById("chart");
    div.style.height = `${560 + n * 130}px`;
    Plotly.react(div, traces, layout, { displaylogo: false, scrollZoom: true, responsive: true }).then(() => {
      window.__chart.renders++;
      if (!window.__chart.firstPaintMs) window.__chart.firstPaintMs = performance.now();
      window.__chart.candles = c.x.length;
      window.__chart.traces = div.data.map((t) => t.name);
      document.getElementById("info").textContent =
        `${colfill.num(c.x.length)} candles of ${d.width} · ${colfill.num(d.bars_in)} ${d.tf} bars in view · ` +
        `${colfill.num(d.total_bars)} stored · ${d.table}`;
      document.getElementById("info").dataset.candles = c.x.length;
    });
  }

  function onRelayout(ev) {
    if (ev["xaxis.autorange"]) { S.start = S.end = null; S.zoomed = false; syncInputs(); load(); return; }
    const r0 = ev["xaxis.range[0]"] ?? (ev["xaxis.range"] || [])[0];
    const r1 = ev["xaxis.range[1]"] ?? (ev["xaxis.range"] || [])[1];
    if (r0 === undefined || r1 === undefined) return;
    S.start = wallToUtc(r0); S.end = wallToUtc(r1); S.zoomed = true;
    syncInputs();
    clearTimeout(S.timer);
    S.timer = setTimeout(load, 120);
  }

  function syncInputs() {
    const info = S.meta.timeframes[S.tf];
    const day = (v, dflt) => (typeof v === "string" ? v : isoDay((v ?? dflt) + S.offset));
    document.getElementById("start").value = day(S.start, info.first);
    document.getElementById("end").value = day(S.end, info.last);
  }

  function bucketOf(t) {
    const w = S.data.width, c = S.data.columns;
    const m = /^(\d+)([mh])$/.exec(w);
    if (m) { const ms = Number(m[1]) * (m[2] === "h" ? 3600000 : 60000); return t - (t % ms); }
    const last = c.t.length ? c.t[c.t.length - 1] : null;
    const span = w === "1w" ? 7 * DAY : DAY;
    if (last !== null && t >= last && t - last < span && (w === "1w" || isoDay(t + S.offset) === isoDay(last + S.offset))) return last;
    return t;
  }

  function applyLive(msg) {
    if (!S.data || msg.timeframe !== S.tf || msg.ticker !== ticker) return;
    const c = S.data.columns;
    const key = bucketOf(msg.t);
    let i = c.t.length - 1;
    while (i >= 0 && c.t[i] > key) i--;
    const prev = S.liveBars.get(msg.t);
    S.liveBars.set(msg.t, msg);
    if (i >= 0 && c.t[i] === key) {
      const exact = key === msg.t && (S.data.width === S.tf);
      c.high[i] = exact ? msg.high : Math.max(c.high[i], msg.high);
      c.low[i] = exact ? msg.low : Math.min(c.low[i], msg.low);
      if (exact) c.open[i] = msg.open;
      c.close[i] = msg.close;
      c.volume[i] = exact ? msg.volume : c.volume[i] + msg.volume - (prev ? prev.volume : 0);
    } else {
      i += 1;
      c.t.splice(i, 0, key); c.x.splice(i, 0, key + S.offset);
      for (const col of ["open", "high", "low", "close", "volume"]) c[col].splice(i, 0, msg[col]);
      for (const col of Object.keys(c)) if (!["t", "x", "open", "high", "low", "close", "volume"].includes(col)) c[col].splice(i, 0, null);
    }
    for (const col of Object.keys(c)) if (col in msg && !["t", "open", "high", "low", "close", "volume"].includes(col)) c[col][i] = msg[col];
    window.__chart.live++;
    draw();
    requestAnimationFrame(() => {
      if (typeof msg.published_ms === "number") window.__chart.latencies.push(Date.now() - msg.published_ms);
    });
  }

  function connectLive() {
    if (S.es) S.es.close();
    S.es = null;
    const state = document.getElementById("live-state");
    if (!S.meta.live) { state.textContent = ""; return; }
    S.es = new EventSource(`/api/live/${encodeURIComponent(ticker)}?tf=${S.tf}`);
    S.es.onopen = () => { state.textContent = "● live"; state.className = "ok"; };
    S.es.onerror = () => { state.textContent = "live: reconnecting…"; state.className = "warn"; };
    S.es.onmessage = (ev) => { try { applyLive(JSON.parse(ev.data)); } catch (e) { /* a malformed message is skipped */ } };
  }

  async function init() {
    document.getElementById("title").textContent = ticker;
    document.title = `colfill · ${ticker}`;
    if (document.getElementById("message").textContent.trim()) return;  // the server said why there is no chart
    const first = await early;
    if (first.error) { colfill.message(first.error.message); return; }
    S.meta = first.meta;
    S.early = first;
    const tfs = Object.keys(S.meta.timeframes);
    const params = new URLSearchParams(location.search);
    S.tf = firstTf(S.meta, params);
    const sel = document.getElementById("tf");
    for (const o of sel.options) o.disabled = !tfs.includes(o.value);
    sel.value = S.tf;
    // dates in the address (or the date inputs) go to the server as they are: it reads them as New York days
    S.start = params.get("start") || null; S.end = params.get("end") || null;
    S.zoomed = S.start !== null || S.end !== null;
    buildToggles();
    sel.addEventListener("change", () => { S.tf = sel.value; S.start = S.end = null; S.zoomed = false; buildToggles(); connectLive(); load(); });
    document.getElementById("adjusted").addEventListener("change", () => load());
    document.getElementById("apply").addEventListener("click", () => {
      const a = document.getElementById("start").value, b = document.getElementById("end").value;
      S.start = a || null; S.end = b || null;
      S.zoomed = true; load();
    });
    for (const b of document.querySelectorAll("button[data-range]")) b.addEventListener("click", () => {
      const days = Number(b.dataset.range), info = S.meta.timeframes[S.tf];
      S.end = null;
      S.start = days ? info.last - days * 1.45 * DAY : null;
      S.zoomed = days > 0; if (S.zoomed) S.end = info.last + 60000;
      syncInputs(); load();
    });
    await load();
    document.getElementById("chart").on("plotly_relayout", onRelayout);
    syncInputs();
    connectLive();
  }
  document.addEventListener("DOMContentLoaded", init);
})();
