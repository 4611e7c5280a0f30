// Chart of one ticker: candlesticks and volume, overlays (SMA, EMA, Bollinger bands, VWAP) and panes (RSI, MACD)
// from the stored indicator columns, drawn with Lightweight Charts (/vendor/lightweight-charts.js: a chart per
// pane, their time scales kept in step). The server resamples to the zoom level: zooming in past what the loaded
// buckets show, or panning or zooming out to near their ends, asks it again for the visible range plus half of it
// on each side (so a small pan needs no request). With --redis, bars published by `colfill live` are merged in as they arrive.
"use strict";
(() => {
  const ticker = decodeURIComponent(location.pathname.replace(/^\/ticker\//, ""));
  const S = { meta: null, tf: "1m", start: null, end: null, data: null, offset: 0, es: null, busy: 0,
              liveBars: new Map(), view: null, layout: "", charts: [], series: [], lastAuto: "" };
  window.__chart = { ticker, renders: 0, live: 0, latencies: [] };
  const DAY = 86400000;
  const UP = "#16a34a", DOWN = "#dc2626";
  const RIGHT = 3;  // empty bars right of the last one

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
  const wallText = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");

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

  // Started as soon as this script runs, while the browser still loads the charting bundle: the ticker's
  // metadata, then its first bars with the page's default choices (used by the first load() if it asks the same).
  const early = (() => {
    const params = new URLSearchParams(location.search);
    return colfill.json(`/api/meta/${encodeURIComponent(ticker)}`).then((meta) => {
      const tf = firstTf(meta, params);
      const q = barsQuery(tf, params.get("start") || null, params.get("end") || null, false, defaultCols(meta, tf));
      const bars = colfill.json(`/api/bars/${encodeURIComponent(ticker)}?` + q).then((d) => d, (e) => e);
      return { meta, q, bars };
    }, (e) => ({ error: e }));
  })();

  // -- positions: bars are drawn one per logical index; x is New York wall time in ms -------------------------

  function tfMs(label) {  // "5m", "1h:rth", "1d" -> ms
    const m = /^(\d+)([mhdw])/.exec(label);
    return m ? Number(m[1]) * { m: 60000, h: 3600000, d: DAY, w: 7 * DAY }[m[2]] : DAY;
  }
  const widthMs = () => tfMs(S.data.width);

  function timeAt(l) {  // the wall time at fractional logical index l (past the ends: one bucket per index)
    const x = S.data.columns.x, n = x.length, w = widthMs();
    if (!n) return 0;
    if (l <= 0 || n === 1) return x[0] + Math.min(l, 0) * w;
    if (l >= n - 1) return x[n - 1] + (l - n + 1) * w;
    const i = Math.floor(l);
    return x[i] + (l - i) * (x[i + 1] - x[i]);
  }

  function indexAt(t) {  // the inverse of timeAt
    const x = S.data.columns.x, n = x.length, w = widthMs();
    if (!n) return 0;
    if (t <= x[0]) return (t - x[0]) / w;
    if (t >= x[n - 1]) return n - 1 + (t - x[n - 1]) / w;
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (x[mid] <= t) lo = mid; else hi = mid; }
    return lo + (t - x[lo]) / (x[hi] - x[lo]);
  }

  function currentView() {
    const r = S.charts.length && S.data && S.charts[0].timeScale().getVisibleLogicalRange();
    return r ? { from: timeAt(r.from), to: timeAt(r.to) } : null;
  }

  // -- loading -------------------------------------------------------------------------------------------------

  async function load(keepView = true) {
    if (keepView) S.view = currentView() || S.view;  // an indicator or price toggle keeps the user's zoom
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
    draw(true);
  }

  const wallToUtc = (ms) => ms - S.offset;

  function maybeReload() {
    const r = S.charts.length && S.data && S.charts[0].timeScale().getVisibleLogicalRange();
    const c = S.data && S.data.columns, n = c ? c.x.length : 0;
    if (!r || !n) return;
    const info = S.meta.timeframes[S.tf], w = widthMs();
    const from = timeAt(r.from), to = timeAt(r.to), span = to - from;
    const moreLeft = c.t[0] > info.first, moreRight = c.t[n - 1] + w <= info.last;
    const edge = Math.max(2, (r.to - r.from) / 10);  // near an end of the loaded candles, with more stored past it
    const nearEnd = (r.from < edge && moreLeft) || (r.to > n - 1 - edge && moreRight);
    const finer = S.data.width !== S.tf.split(":")[0] && span < (c.x[n - 1] - c.x[0]) / 2.5;
    if (!nearEnd && !finer) return;
    let start = wallToUtc(from - span / 2), end = wallToUtc(to + span / 2);
    if (start <= info.first && end > info.last) start = end = null;
    const key = `${start}|${end}`;
    if (key === S.lastAuto) return;  // asked already: the store has no more there
    S.lastAuto = key;
    S.start = start; S.end = end; S.view = { from, to };
    syncInputs();
    load(false);
  }

  // -- drawing -------------------------------------------------------------------------------------------------

  const BASE = {
    layout: { background: { color: "#ffffff" }, textColor: "#1d2430", fontSize: 11 },
    grid: { vertLines: { color: "#f1f3f6" }, horzLines: { color: "#f1f3f6" } },
    rightPriceScale: { minimumWidth: 76, borderColor: "#e3e6ec" },
    crosshair: { mode: 0 },
  };
  // Line colours, one per series in the order drawn; none is the candles' green or red.
  const PALETTE = ["#2563eb", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#ca8a04", "#4f46e5", "#0f766e",
    "#64748b", "#a21caf", "#0369a1", "#b45309"];
  const VOLUME_KEY = "#9ca3af";
  const QUIET = { priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false };

  function build(panes, overlays, intraday) {
    for (const ch of S.charts) ch.remove();
    S.charts = []; S.series = [];
    const box = document.getElementById("chart");
    const divs = [colfill.el("div", { class: "pane", id: "pane-price" }),
      ...panes.map((g) => colfill.el("div", { class: "pane", id: `pane-${g}` }))];
    box.replaceChildren(...divs);
    const width = box.clientWidth || 1200;
    const make = (div, height, last) => {
      const ch = LightweightCharts.createChart(div, { ...BASE, width, height: height + (last ? 26 : 0),
        timeScale: { visible: last, fixLeftEdge: true, timeVisible: intraday, secondsVisible: false, borderColor: "#e3e6ec", rightOffset: RIGHT } });
      S.charts.push(ch);
      return ch;
    };
    const add = (name, kind, api, col) => S.series.push({ name, kind, api, col });
    const price = make(divs[0], 470, !panes.length);
    const candles = price.addCandlestickSeries({ upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN,
      borderVisible: false });
    // prices keep a small bottom margin (a large one would show axis values below the lowest price, below zero
    // for a cheap stock); volume has an overlay scale of its own in the bottom fifth, under the candles
    candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.08 } });
    add(ticker, "candles", candles);
    const volume = price.addHistogramSeries({ priceScaleId: "volume", priceFormat: { type: "volume" }, ...QUIET });
    price.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 }, visible: false });
    add("volume", "volume", volume, "volume");
    let k = 0;
    const colour = () => PALETTE[k++ % PALETTE.length];
    for (const col of overlays) {
      const bb = /^bb_/.test(col);
      const line = price.addLineSeries({ color: colour(), lineWidth: bb ? 1 : 2,
        lineStyle: col.startsWith("bb_middle") ? 1 : 0, ...QUIET });
      add(col, "line", line, col);
    }
    panes.forEach((g, i) => {
      const ch = make(divs[i + 1], 130, i === panes.length - 1);
      for (const col of Object.keys(S.data.columns).filter((c) => groupOf(c) === g)) {
        if (/_hist/.test(col)) {
          add(col, "hist", ch.addHistogramSeries({ ...QUIET }), col);
          continue;
        }
        const rsi = /^rsi/.test(g);
        const line = ch.addLineSeries({ color: colour(), lineWidth: 2, ...QUIET,
          lastValueVisible: true, autoscaleInfoProvider: rsi ? () => ({ priceRange: { minValue: 0, maxValue: 100 } }) : undefined });
        if (rsi) for (const level of [30, 70]) line.createPriceLine({ price: level, color: "#94a3b8", lineWidth: 1,
          lineStyle: 1, axisLabelVisible: false });
        add(col, "line", line, col);
      }
    });
    for (const ch of S.charts) ch.timeScale().subscribeVisibleLogicalRangeChange((r) => {
      if (S.syncing || !r) return;
      S.syncing = true;
      for (const other of S.charts) if (other !== ch) other.timeScale().setVisibleLogicalRange(r);
      S.syncing = false;
      if (!S.touched) return;  // the range draw() set, or a resize: not a zoom or pan
      clearTimeout(S.timer);
      S.timer = setTimeout(maybeReload, 150);
    });
    for (const ch of S.charts) ch.subscribeCrosshairMove((p) => legend(p && p.time !== undefined ? p.time * 1000 : null));
  }

  const keyColour = (s) => (s.kind === "line" ? s.api.options().color : s.kind === "volume" ? VOLUME_KEY : "#6b7385");

  function legend(wall) {  // the values at the bar under the crosshair (wall time ms), else at the last bar
    const box = document.getElementById("legend"), c = S.data && S.data.columns, n = c ? c.x.length : 0;
    if (!n) return;
    let i = n - 1;
    if (wall !== null) {
      let lo = 0, hi = n - 1;
      while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (c.x[mid] <= wall) lo = mid; else hi = mid - 1; }
      i = lo;
    }
    const f = (v) => (typeof v !== "number" ? "–" : Math.abs(v) >= 1e5 ? colfill.num(Math.round(v))
      : v.toFixed(Math.abs(v) < 10 ? 4 : 2));
    const items = S.series.filter((s) => s.kind !== "candles").map((s) =>
      colfill.el("span", { class: "key", "data-series": s.name },
        colfill.el("i", { style: `background:${keyColour(s)}` }), `${s.name} `, colfill.el("b", { text: f(c[s.col][i]) })));
    const ohlc = `${wallText(c.x[i])}  O ${f(c.open[i])}  H ${f(c.high[i])}  L ${f(c.low[i])}  C ${f(c.close[i])}`;
    box.replaceChildren(colfill.el("b", { text: ticker }), colfill.el("span", { id: "legend-bar", text: ohlc }), ...items);
    box.dataset.t = c.x[i];
  }

  function setData() {
    const c = S.data.columns, times = c.x.map((v) => v / 1000);
    const num = (v) => typeof v === "number" && Number.isFinite(v);
    for (const s of S.series) {
      let rows;
      if (s.kind === "candles") {
        rows = times.map((time, i) => (num(c.open[i]) ? { time, open: c.open[i], high: c.high[i], low: c.low[i], close: c.close[i] } : { time }));
      } else if (s.kind === "volume") {
        rows = times.map((time, i) => ({ time, value: c.volume[i] ?? 0,
          color: c.close[i] >= c.open[i] ? "rgba(22,163,74,.45)" : "rgba(220,38,38,.45)" }));
      } else {
        const v = c[s.col] || [];
        rows = times.map((time, i) => (!num(v[i]) ? { time } : s.kind === "hist"
          ? { time, value: v[i], color: v[i] >= 0 ? "rgba(22,163,74,.6)" : "rgba(220,38,38,.6)" } : { time, value: v[i] }));
      }
      s.api.setData(rows);
    }
    legend(null);
  }

  function draw(resetView) {
    const d = S.data, c = d.columns;
    const panes = [...document.querySelectorAll("#indicators input:checked")].filter((i) => i.dataset.kind === "pane")
      .map((i) => i.value).filter((g) => Object.keys(c).some((col) => groupOf(col) === g));
    const overlays = Object.keys(c).filter(OVERLAY);
    const intraday = /[mh]$/.test(d.width);
    const layout = [panes.join(","), overlays.join(","), intraday].join("|");
    if (layout !== S.layout) { build(panes, overlays, intraday); S.layout = layout; resetView = true; }
    S.syncing = true;  // the ranges set below are ours, not a zoom
    setData();
    if (resetView) {
      if (S.view && c.x.length) S.charts[0].timeScale().setVisibleLogicalRange({ from: indexAt(S.view.from), to: indexAt(S.view.to) });
      else S.charts[0].timeScale().fitContent();
      const r = S.charts[0].timeScale().getVisibleLogicalRange();
      if (r) for (const ch of S.charts.slice(1)) ch.timeScale().setVisibleLogicalRange(r);
      S.touched = false;
    }
    S.syncing = false;
    requestAnimationFrame(() => {  // after the library's own frame, which setData scheduled first
      window.__chart.renders++;
      if (!window.__chart.firstPaintMs) window.__chart.firstPaintMs = performance.now();
      window.__chart.candles = c.x.length;
      window.__chart.traces = S.series.map((s) => s.name);
      window.__chart.scales = ["price", "volume", ...panes];
      const info = document.getElementById("info");
      info.textContent = `${colfill.num(c.x.length)} candles of ${d.width} · ${colfill.num(d.bars_in)} ${d.tf} bars ` +
        `in range · ${colfill.num(d.total_bars)} stored · ${d.table}`;
      info.dataset.candles = c.x.length;
    });
  }

  // What the tests and the benchmark read: the library's own state of the drawn chart.
  Object.assign(window.__chart, {
    zoom(a, b) {  // as a wheel zoom does: set the visible range (wall times "YYYY-MM-DD HH:MM") and let it reload
      const ms = (v) => Date.parse(String(v).replace(" ", "T") + "Z");
      S.touched = true;
      S.charts[0].timeScale().setVisibleLogicalRange({ from: indexAt(ms(a)), to: indexAt(ms(b)) });
    },
    inView() {
      const r = S.charts[0].timeScale().getVisibleLogicalRange();
      const n = S.data.columns.x.length;
      return r ? Math.max(0, Math.min(n - 1, Math.floor(r.to)) - Math.max(0, Math.ceil(r.from)) + 1) : 0;
    },
    visible() {  // the visible range as wall times (ms)
      return currentView();
    },
    colours() {  // each series' colour as the library holds it, and the legend's swatch of it
      const swatch = (name) => { const e = document.querySelector(`#legend [data-series="${name}"] i`);
        return e ? e.style.background : null; };
      return S.series.map((s) => ({ name: s.name, kind: s.kind, colour: s.kind === "candles"
        ? [s.api.options().upColor, s.api.options().downColor] : keyColour(s), legend: swatch(s.name) }));
    },
    scale() {  // the price and volume series' scale ids, and the price axis's range as drawn
      const candles = S.series.find((s) => s.kind === "candles").api, volume = S.series.find((s) => s.kind === "volume").api;
      const h = S.charts[0].paneSize().height;
      return { price: candles.options().priceScaleId, volume: volume.options().priceScaleId,
               min: candles.coordinateToPrice(h), max: candles.coordinateToPrice(0) };
    },
    at(wall) {  // the drawn columns' values at wall time `wall` (ms)
      const c = S.data.columns, i = c.x.indexOf(wall);
      return i < 0 ? null : Object.fromEntries(Object.keys(c).map((k) => [k, c[k][i]]));
    },
    last(name) {
      const s = S.series.find((x) => x.name === name);
      const rows = s ? s.api.data() : [];
      return rows.length ? rows[rows.length - 1] : null;
    },
  });

  function syncInputs() {
    const info = S.meta.timeframes[S.tf];
    const day = (v, dflt) => (typeof v === "string" ? v : isoDay((v ?? dflt) + S.offset));
    document.getElementById("start").value = day(S.start, info.first);
    document.getElementById("end").value = day(S.end, info.last);
  }

  // -- live ----------------------------------------------------------------------------------------------------

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
    draw(false);
    requestAnimationFrame(() => {  // after draw's own: the counters tell a drawn bar
      window.__chart.live++;
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
    sel.replaceChildren(...(S.meta.stored || tfs).map((tf) => {
      const o = colfill.el("option", { value: tf, text: tf.replace(":rth", " regular hours") });
      o.disabled = !tfs.includes(tf);
      return o;
    }));
    sel.value = S.tf;
    // dates in the address (or the date inputs) go to the server as they are: it reads them as New York days
    S.start = params.get("start") || null; S.end = params.get("end") || null;
    const fresh = () => { S.view = null; S.lastAuto = ""; load(false); };
    sel.addEventListener("change", () => {  // another timeframe over the same visible range
      const view = currentView();
      S.tf = sel.value; buildToggles(); connectLive();
      if (!view) { S.start = S.end = null; fresh(); return; }
      const info = S.meta.timeframes[S.tf], span = view.to - view.from;
      const pad = Math.max(span / 2, 10 * tfMs(S.tf));  // and at least a few of the new bars either side
      S.start = wallToUtc(view.from - pad); S.end = wallToUtc(view.to + pad);
      if (S.start <= info.first && S.end > info.last) S.start = S.end = null;
      S.view = view; S.lastAuto = "";
      syncInputs(); load(false);
    });
    document.getElementById("adjusted").addEventListener("change", () => load());
    document.getElementById("apply").addEventListener("click", () => {
      S.start = document.getElementById("start").value || null; S.end = document.getElementById("end").value || null;
      fresh();
    });
    for (const b of document.querySelectorAll("button[data-range]")) b.addEventListener("click", () => {
      const days = Number(b.dataset.range), info = S.meta.timeframes[S.tf];
      S.start = days ? info.last - days * 1.45 * DAY : null;
      S.end = days ? info.last + 60000 : null;
      syncInputs(); fresh();
    });
    const box = document.getElementById("chart");  // the user's own zooms and pans (the library's come later)
    for (const kind of ["wheel", "pointerdown", "touchstart", "keydown"]) box.addEventListener(kind, () => { S.touched = true; }, true);
    box.addEventListener("pointermove", (ev) => { if (ev.buttons) S.touched = true; }, true);
    window.addEventListener("resize", () => {
      const width = document.getElementById("chart").clientWidth;
      for (const ch of S.charts) ch.applyOptions({ width });
    });
    buildToggles();
    await load(false);
    syncInputs();
    connectLive();
  }
  document.addEventListener("DOMContentLoaded", init);
})();
