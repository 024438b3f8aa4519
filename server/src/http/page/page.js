"use strict";
// The status page: it draws what /status and /metrics say, nothing else.
const REFRESH_MS = 1000, POINTS = 60;
const READS = new Set(["kv_get", "kv_history", "kv_scan", "watch", "compat_get", "compat_get_path",
  "compat_store_key", "compat_store_hash", "compat_fetch", "compat_fetch_all", "compat_query"]);
const $ = id => document.getElementById(id);
const hist = { w: [], r: [] };
let last = null, ticks = 0;

// Prometheus text: one {name, labels, value} per sample line.
function samples(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const p of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function bytes(n) {
  if (n === undefined || !isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function rate(n) { return n >= 100 ? String(Math.round(n)) : n.toFixed(1); }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function bar(tr, ratio, text) {
  const td = cell(tr, "");
  if (ratio === undefined) { td.textContent = "–"; return; }
  const outer = document.createElement("span"), inner = document.createElement("i");
  outer.className = "bar";
  inner.style.width = Math.max(0, Math.min(1, ratio)) * 100 + "%";
  outer.appendChild(inner);
  td.append(outer, text);
}

// One row per node, from /status alone: a failover group's members, or the
// master and its workers.
function nodes(status) {
  if (Array.isArray(status.members)) {
    return status.members.map(m => ({ addr: m.addr, role: m.role, term: m.term,
      healthy: m.healthy, seq: m.applied_seq, lag: m.lag }));
  }
  const rows = [{ addr: status.master.addr, role: "master", healthy: status.master.healthy,
    seq: status.master.seq, lag: 0 }];
  for (const w of status.workers || []) {
    rows.push({ addr: w.addr, role: "worker", healthy: w.healthy, seq: w.applied_seq, lag: w.lag });
  }
  return rows;
}

function perNode(all) {
  const by = {};
  for (const s of all) {
    if (s.labels.node === undefined) continue;
    (by[s.labels.node] = by[s.labels.node] || {})[s.name] = s.value;
  }
  return by;
}

function drawRows(status, metrics) {
  const by = perNode(metrics), body = document.querySelector("#nodes tbody");
  const rows = nodes(status).map(n => {
    const m = by[n.addr] || {}, tr = document.createElement("tr");
    tr.dataset.addr = n.addr;
    tr.dataset.health = n.healthy ? "up" : "down";
    tr.dataset.seq = n.seq;
    if (!n.healthy) tr.className = "is-down";
    cell(tr, n.addr);
    cell(tr, n.role);
    cell(tr, n.term === undefined || n.term === null ? "–" : n.term, "n");
    cell(tr, n.healthy ? "up" : "down", n.healthy ? "up" : "down");
    cell(tr, n.seq, "n");
    cell(tr, n.lag, "n");
    cell(tr, bytes(m.hypha_disk_bytes), "n");
    cell(tr, bytes(m.hypha_live_bytes), "n");
    const data = m.hypha_data_bytes, live = m.hypha_live_bytes;
    const garbage = data > 0 ? Math.max(0, 1 - live / data) : undefined;
    bar(tr, garbage, garbage === undefined ? "" : Math.round(garbage * 100) + " %");
    if (m.hypha_compaction_running > 0) {
      const p = m.hypha_compaction_progress_ratio || 0;
      bar(tr, p, Math.round(p * 100) + " %");
    } else {
      cell(tr, m.hypha_compactions_total === undefined ? "–" : "idle (" + m.hypha_compactions_total + " done)");
    }
    return tr;
  });
  body.replaceChildren(...rows);
}

function spark(id, points) {
  const max = Math.max(1, ...points), start = POINTS - points.length;
  $(id).setAttribute("points", points.map((v, i) => (start + i) + "," + (19 - 18 * v / max)).join(" "));
}

function drawRates(status, metrics) {
  const now = performance.now();
  let reads = 0;
  for (const s of metrics) {
    if (s.name === "hypha_http_requests_total" && READS.has(s.labels.route)) reads += s.value;
  }
  const seq = status.master.seq;
  if (last) {
    const secs = Math.max(0.001, (now - last.at) / 1000);
    hist.w.push(Math.max(0, seq - last.seq) / secs);
    hist.r.push(Math.max(0, reads - last.reads) / secs);
    for (const k of ["w", "r"]) if (hist[k].length > POINTS) hist[k].shift();
    $("wrate").textContent = rate(hist.w[hist.w.length - 1]);
    $("rrate").textContent = rate(hist.r[hist.r.length - 1]);
    spark("wline", hist.w);
    spark("rline", hist.r);
  }
  last = { at: now, seq, reads };
}

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").className = text ? "on" : "";
}

function draw(status, metrics) {
  const failover = Array.isArray(status.members);
  $("kind").textContent = failover ? "a failover group" : "a master and its workers";
  $("leadlabel").textContent = failover ? "leader" : "master";
  $("leader").textContent = (failover ? status.leader : status.master.addr) || "none reachable";
  $("seq").textContent = status.master.seq;
  $("changes").hidden = !failover;
  $("changecount").textContent = status.leader_changes;
  $("updated").textContent = new Date().toLocaleTimeString();
  drawRows(status, metrics);
  drawRates(status, metrics);
  const refusal = status.master.storage_error;
  banner(refusal ? "The master refuses writes: " + refusal : "");
  document.body.dataset.ticks = ++ticks;
}

async function tick() {
  const [s, m] = await Promise.all(["/status", "/metrics"].map(p => fetch(p, { cache: "no-store" })));
  if (s.status === 401 || m.status === 401) return false;
  if (!s.ok || !m.ok) throw new Error("/status answered " + s.status + ", /metrics " + m.status);
  draw(await s.json(), samples(await m.text()));
  return true;
}

async function loop() {
  let again = true;
  try {
    again = await tick();
  } catch (e) {
    banner("No answer from this edge: " + e.message + " (retrying every second)");
  }
  if (again) setTimeout(loop, REFRESH_MS);
  else $("login").hidden = false;
}

$("login").addEventListener("submit", async e => {
  e.preventDefault();
  const answer = await fetch("/ui/token", { method: "POST", body: $("token").value });
  $("token").value = "";
  if (answer.ok) {
    $("login").hidden = true;
    $("loginerr").textContent = "";
    loop();
  } else {
    $("loginerr").textContent = (await answer.json()).error || ("refused: " + answer.status);
  }
});

loop();
