// The console page: one HTML file with plain JS, embedded so an offline gateway needs nothing from outside.
// The token (when the console has one) is asked once and kept in the tab's sessionStorage; the live tail is
// read with fetch() and a stream reader rather than EventSource, which cannot send an Authorization header.
// The charts start from ferryd's history (GET /api/history: the last 10 minutes, sampled every 5 s, with rates
// and drain rates computed by ferryd), then continue from the overview the page reloads every 5 s: the
// difference of each stream's last seq, and of each uplink's sent position (last seq - backlog).
// Charts are drawn by uPlot (vendor/uplot), served by ferryd itself.
#include "ferry/console.h"

namespace ferry {

const char* const kConsolePage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ferry console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/uPlot.min.css"><script src="/assets/uPlot.iife.min.js"></script>
<style>
body{font:14px system-ui,sans-serif;margin:1em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:13px}
th{background:#f0f0f0}.up{color:#080}.down{color:#b00}
#tail{height:18em;overflow:auto;background:#111;color:#ddd;font:12px monospace;padding:4px;white-space:pre-wrap}
#tail .skip{color:#fc6}
textarea{width:100%;height:4em;font:13px monospace}#err{color:#b00}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{min-height:60px}td.num{text-align:right}
</style></head><body>
<h1>ferry console <span id="gw"></span></h1><div id="err"></div>
<h2>Streams</h2><table id="streams"><thead><tr><th>stream</th><th>events</th><th>bytes</th><th>first seq</th>
<th>last seq</th><th>oldest</th><th>newest</th><th>evicted</th><th>rate (events/s)</th></tr></thead><tbody></tbody></table>
<div id="storage"></div>
<h2>Uplinks</h2><table id="uplinks"><thead><tr><th>uplink</th><th>link</th><th>stream</th><th>backlog</th>
<th>oldest unsent age (s)</th><th>drain (events/s)</th></tr></thead><tbody></tbody></table>
<div id="pipes" hidden><h2>Pipelines</h2><table id="pipelines"><thead><tr><th>pipeline</th><th>input</th>
<th>lag (events)</th><th>output</th><th>failed</th><th>window keys</th><th>window state (bytes)</th><th>late</th></tr>
</thead><tbody></tbody></table></div>
<h2>Last 10 minutes</h2><div class="charts"><div id="crate" class="chart"></div><div id="cbacklog" class="chart"></div>
<div id="cdrain" class="chart"></div></div>
<h2>Live tail</h2>
<select id="tstream"></select> filter <input id="tfilter"> <button id="tgo">tail</button> <span id="tstate"></span>
<div id="tail"></div>
<h2>Dead letters</h2><select id="dstream"></select> <button id="dgo">show</button>
<table id="dead"><thead><tr><th>seq</th><th>ingest time</th><th>reason</th><th>detail</th><th>topic</th>
<th>original bytes (base64)</th></tr></thead><tbody></tbody></table>
<h2>SQL</h2><textarea id="sql">SELECT seq, subject, payload FROM telemetry ORDER BY seq DESC LIMIT 10</textarea>
<button id="sgo">run</button> <span id="snote"></span><table id="sres"><thead></thead><tbody></tbody></table>
<script>
"use strict";
const $ = id => document.getElementById(id);
function token() { return sessionStorage.getItem("ferry-token") || ""; }
function hdrs() { const t = token(); return t ? {"Authorization": "Bearer " + t} : {}; }
async function api(path, opts) {
  opts = opts || {};
  opts.headers = Object.assign({}, opts.headers || {}, hdrs());
  let r = await fetch(path, opts);
  if (r.status === 401) {
    const t = prompt("Console token");
    if (t === null) throw new Error("no token");
    sessionStorage.setItem("ferry-token", t.trim());
    opts.headers = Object.assign({}, opts.headers, hdrs());
    r = await fetch(path, opts);
  }
  return r;
}
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); }
function fill(sel, names) {
  const cur = sel.value; sel.innerHTML = "";
  for (const n of names) { const o = document.createElement("option"); o.textContent = n; sel.appendChild(o); }
  if (names.includes(cur)) sel.value = cur;
}
// Overview samples for the rates and the charts: {t, rate: {stream: ev/s}, backlog: {key: n}, drain: {key: ev/s}}.
const kSamples = 120;
const samples = [];
let prev = null;
const charts = {};
const kColours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
function fmtRate(v) { return v == null ? "-" : v < 10 ? v.toFixed(2) : v.toFixed(0); }
const kMinInterval = 2.5;  // s: a rate over less (the first overview just after the history) is mostly noise
function sample(o) {
  const t = Date.now() / 1000;
  if (prev && t - prev.t < kMinInterval && samples.length) {
    const last = samples[samples.length - 1];
    return {rate: last.rate, drain: last.drain};
  }
  const seqs = {}, sent = {}, backlog = {};
  for (const s of o.status.streams) seqs[s.name] = s.last_seq;
  for (const u of (o.status.uplinks || [])) {
    const k = u.uplink + " " + u.stream;
    backlog[k] = u.backlog; sent[k] = (seqs[u.stream] || 0) - u.backlog;
  }
  const rate = {}, drain = {};
  if (prev && t > prev.t) {
    const dt = t - prev.t;
    for (const n in seqs) if (n in prev.seqs) rate[n] = Math.max(0, (seqs[n] - prev.seqs[n]) / dt);
    for (const k in sent) if (k in prev.sent) drain[k] = Math.max(0, (sent[k] - prev.sent[k]) / dt);
  }
  prev = {t, seqs, sent};
  samples.push({t, rate, backlog, drain});
  while (samples.length > kSamples) samples.shift();
  return {rate, drain};
}
// ferryd's samples, moved onto this browser's clock (the page's own samples use it); the last one is where the
// page's first rates are measured from.
async function seed() {
  try {
    const r = await api("/api/history"); const h = await r.json();
    if (!r.ok) throw new Error(h.error || r.status);
    const shift = Date.now() / 1000 - h.now_ms / 1000, last = h.t_ms.length - 1;
    for (let i = 0; i <= last; i++) {
      const x = {t: h.t_ms[i] / 1000 + shift, rate: {}, backlog: {}, drain: {}};
      for (const s of h.streams) if (s.rate[i] != null) x.rate[s.name] = s.rate[i];
      for (const u of h.uplinks) {
        const k = u.uplink + " " + u.stream;
        if (u.backlog[i] != null) x.backlog[k] = u.backlog[i];
        if (u.drain[i] != null) x.drain[k] = u.drain[i];
      }
      samples.push(x);
    }
    while (samples.length > kSamples) samples.shift();
    if (last < 0) return;
    const seqs = {}, sent = {};
    for (const s of h.streams) if (s.last_seq[last] != null) seqs[s.name] = s.last_seq[last];
    for (const u of h.uplinks)
      if (u.backlog[last] != null && u.stream in seqs) sent[u.uplink + " " + u.stream] = seqs[u.stream] - u.backlog[last];
    prev = {t: h.t_ms[last] / 1000 + shift, seqs, sent};
  } catch (e) { $("err").textContent = "history: " + e.message; }
}
function chart(id, title, field) {
  if (typeof uPlot === "undefined" || samples.length < 2) return;
  const keys = [...new Set(samples.flatMap(x => Object.keys(x[field])))].sort();
  const data = [samples.map(x => x.t)];
  for (const k of keys) data.push(samples.map(x => (k in x[field] ? x[field][k] : null)));
  const sig = keys.join("\n");
  let c = charts[id];
  if (c && c.sig === sig) { c.u.setData(data); return; }
  if (c) c.u.destroy();
  const el = $(id); el.innerHTML = "";
  const series = [{}].concat(keys.map((k, i) => ({label: k, stroke: kColours[i % kColours.length], width: 1.5, spanGaps: true})));
  charts[id] = {sig, u: new uPlot({title, width: 380, height: 180, series, axes: [{}, {size: 50}],
                                   scales: {y: {range: (u, lo, hi) => [0, Math.max(1, hi)]}}}, data, el)};
}
async function overview() {
  try {
    const r = await api("/api/overview"); const o = await r.json();
    if (!r.ok) throw new Error(o.error || r.status);
    $("err").textContent = ""; $("gw").textContent = o.gateway;
    const tb = $("streams").tBodies[0]; tb.innerHTML = "";
    const names = [];
    const {rate, drain} = sample(o);
    for (const s of o.status.streams) {
      names.push(s.name);
      const tr = document.createElement("tr"); tr.dataset.stream = s.name;
      const x = o.streams[s.name] || {};
      const ev = Object.values(s.evicted).reduce((a, b) => a + b, 0);
      [s.name, s.count, s.bytes, s.first_seq, s.last_seq, s.oldest_ingest_time || "-", x.newest_ingest_time || "-", ev]
        .forEach(v => cell(tr, String(v)));
      cell(tr, fmtRate(rate[s.name]), "num rate");
      tb.appendChild(tr);
    }
    const e = o.status.env;
    $("storage").textContent = "storage: " + e.used_bytes + " of " + e.map_size + " bytes (" + e.used_pct.toFixed(1) + " %)";
    const links = {}; for (const l of o.links) links[l.uplink] = l.up;
    const ub = $("uplinks").tBodies[0]; ub.innerHTML = "";
    for (const u of (o.status.uplinks || [])) {
      const tr = document.createElement("tr");
      cell(tr, u.uplink); cell(tr, links[u.uplink] ? "up" : "down", links[u.uplink] ? "up" : "down");
      cell(tr, u.stream); cell(tr, String(u.backlog)); cell(tr, u.oldest_unsent_age_s == null ? "-" : String(u.oldest_unsent_age_s));
      cell(tr, fmtRate(drain[u.uplink + " " + u.stream]), "num drain");
      ub.appendChild(tr);
    }
    const pb = $("pipelines").tBodies[0]; pb.innerHTML = "";
    for (const p of (o.pipelines || [])) {
      const tr = document.createElement("tr");
      const by = Object.entries(p.failed), failed = by.reduce((a, [, n]) => a + n, 0);
      cell(tr, p.pipeline); cell(tr, p.input); cell(tr, String(p.lag), "num"); cell(tr, p.output);
      cell(tr, failed === 0 ? "0" : failed + " (" + by.map(([k, n]) => k + ": " + n).join(", ") + ")");
      const w = p.window;
      cell(tr, w ? String(w.keys) : "-", "num"); cell(tr, w ? String(w.state_bytes) : "-", "num"); cell(tr, w ? String(w.late) : "-", "num");
      pb.appendChild(tr);
    }
    $("pipes").hidden = !(o.pipelines || []).length;
    fill($("tstream"), names); fill($("dstream"), names);
    chart("crate", "ingest (events/s)", "rate");
    chart("cbacklog", "uplink backlog (events)", "backlog");
    chart("cdrain", "uplink drain (events/s)", "drain");
  } catch (e) { $("err").textContent = "overview: " + e.message; }
}
let tailAbort = null;
async function tail() {
  if (tailAbort) tailAbort.abort();
  tailAbort = new AbortController();
  const box = $("tail"); box.textContent = "";
  const q = "/api/tail?stream=" + encodeURIComponent($("tstream").value) + "&filter=" + encodeURIComponent($("tfilter").value);
  try {
    const r = await api(q, {signal: tailAbort.signal});
    if (!r.ok) throw new Error((await r.json()).error);
    $("tstate").textContent = "live";
    const rd = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
    for (;;) {
      const {value, done} = await rd.read(); if (done) break;
      buf += dec.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const msg = buf.slice(0, i); buf = buf.slice(i + 2);
        const lines = msg.split("\n");
        const data = lines.filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n");
        if (!data) continue;
        const line = document.createElement("div");
        if (lines.includes("event: skipped")) {
          // More was committed than the tail shows (at most 1,000 records a second): say which seqs were passed.
          const k = JSON.parse(data); line.className = "skip";
          line.textContent = "... seq " + k.from + " to " + k.to + " not shown (more than the tail shows; ferryctl tail shows all) ...";
        } else { line.className = "rec"; line.textContent = data; }
        box.appendChild(line); while (box.childNodes.length > 500) box.removeChild(box.firstChild);
        box.scrollTop = box.scrollHeight;
      }
    }
    $("tstate").textContent = "ended";
  } catch (e) { if (e.name !== "AbortError") $("tstate").textContent = "error: " + e.message; }
}
async function dead() {
  const r = await api("/api/deadletters?stream=" + encodeURIComponent($("dstream").value));
  const o = await r.json(); const tb = $("dead").tBodies[0]; tb.innerHTML = "";
  if (!r.ok) { $("err").textContent = o.error; return; }
  for (const d of o.records) {
    const tr = document.createElement("tr"); const h = d.headers;
    [d.seq, d.ingest_time, h.ferry_dlq_reason || "-", h.ferry_dlq_detail || "", h.ferry_dlq_topic || "", d.payload_base64]
      .forEach(v => cell(tr, String(v)));
    tb.appendChild(tr);
  }
}
async function sql() {
  const r = await api("/api/sql", {method: "POST", body: $("sql").value});
  const o = await r.json(); const t = $("sres"); t.tHead.innerHTML = ""; t.tBodies[0].innerHTML = "";
  if (!r.ok) { $("snote").textContent = o.error; return; }
  $("snote").textContent = o.rows.length + " rows, " + o.records_read + " records read " + (o.note || "");
  if (!o.rows.length) return;
  const cols = Object.keys(o.rows[0]); const hr = document.createElement("tr");
  cols.forEach(c => { const th = document.createElement("th"); th.textContent = c; hr.appendChild(th); });
  t.tHead.appendChild(hr);
  for (const row of o.rows) { const tr = document.createElement("tr"); cols.forEach(c => cell(tr, row[c] === null ? "NULL" : String(row[c]))); t.tBodies[0].appendChild(tr); }
}
$("tgo").onclick = tail; $("dgo").onclick = dead; $("sgo").onclick = sql;
seed().then(overview).then(() => { if ($("tstream").value) tail(); });
setInterval(overview, 5000);
</script></body></html>
)HTML";

}  // namespace ferry
