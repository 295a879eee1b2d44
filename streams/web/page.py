"""The status page served at ``GET /``: one static HTML document, inline CSS and JS, no external assets.

It holds no data: its script fetches ``/status``, ``/dead-letters``, ``/rates`` and ``/entities/{kind}/{entity}``
with the bearer token typed into its token field (kept in sessionStorage), and draws the rates as inline SVG
charts itself. A fragment pre-fills the fields and runs a lookup: ``/#token=…&kind=send&id=mc.ien.send*607105``
(the fragment never reaches the server); ``stage``, ``tenant`` and ``minutes`` in it filter the dead letters.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leads Data Sync</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 70rem; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.5rem; }
  table { border-collapse: collapse; margin: .5rem 0; }
  th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  .error { color: #b00; } .muted { color: #777; }
  pre { background: #f5f5f5; padding: .6rem; overflow: auto; max-height: 30rem; }
  form { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
  input[type=text], input[type=password] { width: 22rem; }
  #charts { display: flex; flex-wrap: wrap; gap: 1rem; }
  figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
  svg.chart { width: 15rem; height: 4rem; background: #fafafa; border: 1px solid #ddd; }
  svg.chart polyline { fill: none; stroke: #1f6fb2; stroke-width: 1.5; }
  code { background: #f0f0f0; padding: 0 .3rem; } td.reason { text-align: left; max-width: 30rem; }
  td.examples { text-align: left; font-size: 12px; color: #444; }
</style>
</head>
<body>
<h1>Leads Data Sync</h1>
<form id="token-form" onsubmit="return false">
  <label>Token <input id="token" type="password" autocomplete="off" placeholder="only if the worker wants one"></label>
  <button id="refresh" type="button">Refresh status</button>
</form>

<h2>Status</h2>
<div id="status-state" class="muted">loading…</div>
<div id="status">
  <p id="summary"></p>
  <h3>Rates, per second (this worker, last 15 minutes)</h3>
  <div id="charts"></div>
  <h3>Business units</h3>
  <table id="units"><thead><tr><th>tenant</th><th>rows read</th><th>events</th><th>skipped</th><th>bad</th>
    <th>refused (10006)</th><th>marked</th><th>last poll finished</th><th>took (s)</th><th>last error</th>
    <th>SFMC token</th></tr></thead><tbody></tbody></table>
  <h3>Topics</h3>
  <table id="topics"><thead><tr><th>topic</th><th>records</th><th>lag</th><th>newest letter</th>
    <th>partitions (end/committed)</th></tr></thead><tbody></tbody></table>
</div>

<h2>Dead letters</h2>
<form id="letter-filter" onsubmit="return false">
  <label>stage <input id="letter-stage" type="text" style="width:9rem" placeholder="any"></label>
  <label>tenant <input id="letter-tenant" type="text" style="width:7rem" placeholder="any"></label>
  <label>last <input id="letter-minutes" type="text" style="width:4rem" placeholder="all"> minutes</label>
  <button id="letter-apply" type="button">Filter</button>
</form>
<div id="letters-state" class="muted"></div>
<p id="letters-summary"></p>
<table id="letters"><thead><tr><th>stage</th><th>reason</th><th>letters</th><th>tenants</th><th>newest</th>
  <th>newest examples</th><th>requeue with</th></tr></thead><tbody></tbody></table>

<h2>Look up an entity</h2>
<form id="lookup">
  <select id="kind">
    <option>send</option><option>subscriber</option><option>email</option><option>category</option>
  </select>
  <input id="entity" type="text" placeholder="mc.ien.send*607105, or an id with the tenant below">
  <input id="tenant" type="text" placeholder="tenant (for a bare id)" style="width:10rem">
  <button type="submit">Look up</button>
</form>
<div id="entity-state" class="muted"></div>
<pre id="entity-result"></pre>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
const when = (t) => t ? new Date(t * 1000).toISOString().replace(".000", "") : "never";

function headers() {
  const token = $("token").value.trim();
  sessionStorage.setItem("leads-token", token);
  return token ? { "Authorization": "Bearer " + token } : {};
}

async function getJson(path) {
  const reply = await fetch(path, { headers: headers() });
  let body = null;
  try { body = await reply.json(); } catch (e) { body = null; }
  return { status: reply.status, body: body };
}

function row(table, cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  table.querySelector("tbody").appendChild(tr);
  return tr;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function chart(name, points, window) {
  const figure = element("figure");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 300 80");
  svg.setAttribute("preserveAspectRatio", "none");
  const values = points.map((p) => p[1]);
  const peak = Math.max(0, ...values);
  const end = points.length ? points[points.length - 1][0] : 0;
  svg.setAttribute("data-series", name);
  svg.setAttribute("data-max", String(peak));
  svg.setAttribute("data-points", String(points.length));
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.map(([t, v]) =>
    (300 - (end - t) / window * 300).toFixed(1) + "," + (78 - (peak ? v / peak * 74 : 0)).toFixed(1)).join(" "));
  svg.appendChild(line);
  const now = values.length ? values[values.length - 1] : 0;
  const fmt = (v) => v >= 100 ? v.toFixed(0) : v.toFixed(2);
  figure.appendChild(svg);
  figure.appendChild(element("figcaption", name + ": now " + fmt(now) + "/s, peak " + fmt(peak) + "/s"));
  return figure;
}

async function refreshRates() {
  const { status, body } = await getJson("/rates");
  if (status !== 200) return;
  const charts = $("charts");
  charts.textContent = "";
  for (const [name, points] of Object.entries(body.series || {})) charts.appendChild(chart(name, points, body.window));
}

function letterQuery() {
  const query = new URLSearchParams();
  const stage = $("letter-stage").value.trim(), tenant = $("letter-tenant").value.trim();
  const minutes = parseFloat($("letter-minutes").value);
  if (stage) query.set("stage", stage);
  if (tenant) query.set("tenant", tenant);
  if (minutes > 0) query.set("since", String(Date.now() / 1000 - minutes * 60));
  return query.toString();
}

async function refreshLetters() {
  const state = $("letters-state");
  const { status, body } = await getJson("/dead-letters?" + letterQuery());
  if (status !== 200) {
    state.className = "error";
    state.textContent = "dead letters: HTTP " + status + (body && body.error ? " (" + body.error + ")" : "");
    return;
  }
  state.className = "muted";
  state.textContent = body.behind ? "read " + body.letters_read + " letters so far, " + body.behind + " to go" : "";
  $("letters-summary").textContent = "dead letters: " + body.total + " · newest " + when(body.newest_at);
  $("letters").querySelector("tbody").textContent = "";
  for (const stage of body.stages || []) {
    for (const reason of stage.reasons) {
      const examples = reason.examples.map((e) => [e.key, e.tenant, when(e.at),
        e.keys ? "JobID " + e.keys.JobID + " SubscriberID " + e.keys.SubscriberID : (e.entity || e.send || e.queue
          || e.stream || "")].filter(Boolean).join(" · ")).join("\\n");
      const tenants = Object.entries(reason.tenants).map(([t, n]) => (t || "-") + ": " + n).join(", ");
      const tr = row($("letters"), [stage.stage, reason.reason, reason.count, tenants, when(reason.last_at),
        element("span", examples), element("code", stage.requeue, "requeue")]);
      tr.children[1].className = "reason";
      tr.children[5].className = "examples";
      tr.children[5].style.whiteSpace = "pre-line";
    }
  }
}

async function refreshStatus() {
  const state = $("status-state");
  try {
    const { status, body } = await getJson("/status");
    if (status !== 200) {
      state.className = "error";
      state.textContent = "status: HTTP " + status + (body && body.error ? " (" + body.error + ")" : "");
      return;
    }
    for (const id of ["units", "topics"]) $(id).querySelector("tbody").textContent = "";
    const worker = body.worker || {};
    $("summary").textContent = "dead letters: " + body.dead_letters + " · acks pending: " + body.acks_pending
      + " · answered by " + worker.url + (worker.leader ? " (leader)" : " (not the leader: polls are the leader's)");
    for (const [tenant, unit] of Object.entries(body.business_units || {})) {
      row($("units"), [tenant, unit.rows_read, unit.events, unit.skipped, unit.bad, unit.refused, unit.marked,
        when(unit.last_poll_finished), unit.last_poll_seconds, unit.last_error, (unit.token || {}).state]);
    }
    for (const [name, topic] of Object.entries(body.topics || {})) {
      const parts = topic.partitions.map((p) => p.partition + ": " + p.end + "/" + (p.committed ?? "-")).join(", ");
      const consumed = topic.lag !== undefined;
      row($("topics"), [name, topic.records, consumed ? topic.lag : "not consumed",
        consumed ? "" : when(topic.newest_at), parts]);
    }
    state.className = body.kafka_error ? "error" : "muted";
    state.textContent = body.kafka_error ? "Kafka: " + body.kafka_error : "updated " + when(body.generated_at);
  } catch (e) {
    state.className = "error";
    state.textContent = "status: " + e;
  }
}

async function lookup(event) {
  if (event) event.preventDefault();
  const kind = $("kind").value;
  let id = $("entity").value.trim();
  const tenant = $("tenant").value.trim();
  if (id && !id.startsWith("mc.") && tenant) id = "mc." + tenant + "." + kind + "*" + id;
  const state = $("entity-state");
  if (!id) { state.textContent = "enter an entity"; return false; }
  state.className = "muted";
  state.textContent = "looking up " + id + "…";
  try {
    const { status, body } = await getJson("/entities/" + encodeURIComponent(kind) + "/" + encodeURIComponent(id));
    state.className = status === 200 ? "muted" : "error";
    state.textContent = status === 200 ? "found " + id : "HTTP " + status + " " + ((body && body.error) || "");
    $("entity-result").textContent = JSON.stringify(status === 200 ? body.snapshot : body, null, 2);
  } catch (e) {
    state.className = "error";
    state.textContent = "lookup: " + e;
  }
  return false;
}

const fragment = new URLSearchParams(location.hash.slice(1));
$("token").value = fragment.get("token") || sessionStorage.getItem("leads-token") || "";
if (fragment.get("kind")) $("kind").value = fragment.get("kind");
if (fragment.get("id")) $("entity").value = fragment.get("id");
if (fragment.get("tenant")) $("tenant").value = fragment.get("tenant");
if (fragment.get("stage")) $("letter-stage").value = fragment.get("stage");
if (fragment.get("letter-tenant")) $("letter-tenant").value = fragment.get("letter-tenant");
if (fragment.get("minutes")) $("letter-minutes").value = fragment.get("minutes");
if (fragment.has("token")) history.replaceState(null, "", location.pathname);
async function refreshAll() {
  await refreshStatus();
  try {
    await Promise.all([refreshRates(), refreshLetters()]);
  } catch (e) {
    $("letters-state").textContent = String(e);
  }
}
$("refresh").addEventListener("click", refreshAll);
$("letter-apply").addEventListener("click", refreshLetters);
$("lookup").addEventListener("submit", lookup);
refreshAll();
if ($("entity").value) lookup();
setInterval(refreshAll, 15000);
</script>
</body>
</html>
"""
