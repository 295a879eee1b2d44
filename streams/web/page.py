"""The status page served at ``GET /``: one static HTML document, inline CSS and JS, no external assets.

It holds no data: its script fetches ``/status`` and ``/entities/{kind}/{entity}`` with the bearer token
typed into its token field (kept in sessionStorage). A fragment pre-fills the fields and runs a lookup:
``/#token=…&kind=send&id=mc.ien.send*607105`` (the fragment never reaches the server).
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
  <h3>Business units</h3>
  <table id="units"><thead><tr><th>tenant</th><th>last poll finished</th><th>rows last poll</th>
    <th>rows total</th><th>last error</th></tr></thead><tbody></tbody></table>
  <h3>Topics</h3>
  <table id="topics"><thead><tr><th>topic</th><th>end</th><th>lag</th><th>partitions (end/committed)</th>
    </tr></thead><tbody></tbody></table>
</div>

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
    td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  table.querySelector("tbody").appendChild(tr);
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
      row($("units"), [tenant, when(unit.last_poll_finished), unit.rows_last_poll, unit.rows_total, unit.last_error]);
    }
    for (const [name, topic] of Object.entries(body.topics || {})) {
      const parts = topic.partitions.map((p) => p.partition + ": " + p.end + "/" + (p.committed ?? "-")).join(", ");
      row($("topics"), [name, topic.end, topic.lag, parts]);
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
if (fragment.has("token")) history.replaceState(null, "", location.pathname);
$("refresh").addEventListener("click", refreshStatus);
$("lookup").addEventListener("submit", lookup);
refreshStatus();
if ($("entity").value) lookup();
setInterval(refreshStatus, 15000);
</script>
</body>
</html>
"""
