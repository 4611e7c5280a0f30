// Shared helpers of the colfill dashboard pages (no framework; the charting libraries come from /vendor/).
"use strict";
const colfill = {
  async json(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return body;
  },
  num(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"); },
  bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  },
  secs(s) {
    if (s === null || s === undefined) return "–";
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  },
  when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : ""; },
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  },
  message(text) { const m = document.getElementById("message"); if (m) m.textContent = text || ""; },
  nav() {
    const form = document.getElementById("goto");
    if (form) form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = form.querySelector("input").value.trim();
      if (t) location.href = "/ticker/" + encodeURIComponent(t);
    });
  },
};
document.addEventListener("DOMContentLoaded", () => colfill.nav());
