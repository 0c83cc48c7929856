// The registrar dashboard: reads the admin API, then follows the change
// stream (GET /v1/watch, Server-Sent Events) and updates the page
// without a reload. Everything from the API is put into the page as
// text (textContent), never as HTML: pool handles are user input.
"use strict";

const LOAD_SAMPLES = 120;     // one a second: two minutes
const MAX_EVENTS_SHOWN = 200;
const FULL_LOAD = 0xffffffff; // RFC 5356: load is a fraction of 2^32-1

const st = {
  status: null,
  members: [],
  peers: [],
  pools: new Map(),   // handle -> {handle, policy, transport, pes}
  selected: null,     // the pool shown below, or null
  pes: new Map(),     // the selected pool's PEs: id -> PEInfo
  poolIndex: 0,       // the raft index the selected pool was read at
  loads: [],          // average load samples of the selected pool
  es: null,           // the AbortController of the stream
  refetch: null,      // timer of a pending reload of the pool list
  statusTimer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : c === null || c === undefined ? "" : String(c));
  return e;
}

// With a tokens file on the registrar every read needs a token of the
// read role: the page asks for one when the API answers 401 or 403 and
// keeps it for this tab only (sessionStorage).
function authHeaders(extra) {
  const h = Object.assign({}, extra);
  const tok = sessionStorage.getItem("registrar-token");
  if (tok) h.Authorization = "Bearer " + tok;
  return h;
}

function askToken(why) {
  $("token-form").hidden = false;
  $("token-why").textContent = why;
  setConn("token needed", "down");
}

async function api(path) {
  const resp = await fetch(path, { headers: authHeaders({ Accept: "application/json" }) });
  if (resp.status === 401 || resp.status === 403) {
    let msg = resp.status + "";
    try { msg = (await resp.json()).error; } catch (e) { /* not JSON */ }
    askToken(msg);
    throw new Error("token");
  }
  if (!resp.ok && resp.status !== 404) throw new Error(path + ": " + resp.status);
  const index = Number(resp.headers.get("X-Registrar-Index") || 0);
  return { status: resp.status, index, body: await resp.json() };
}

function setConn(text, cls) {
  const c = $("conn");
  c.textContent = text;
  c.className = "badge " + (cls || "");
}

// --- loading ---

async function loadStatus() {
  const [s, m, p] = await Promise.all([api("/v1/status"), api("/v1/members"), api("/v1/enrp/peers")]);
  st.status = s.body;
  st.members = m.body || [];
  st.peers = p.body || [];
  renderCluster();
}

async function loadPools() {
  const r = await api("/v1/pools");
  st.pools = new Map((r.body || []).map((p) => [p.handle, p]));
  renderPools();
  return r.index;
}

async function loadSelected() {
  if (!st.selected) return;
  const r = await api("/v1/pools/" + encodeURIComponent(st.selected));
  st.pes = new Map();
  if (r.status === 200) for (const pe of r.body.pes || []) st.pes.set(pe.id, pe);
  st.poolIndex = r.index;
  renderPEs();
}

// loadAll reads everything and (re)opens the stream from the index the
// pool list was read at: events after it update the page.
async function loadAll() {
  try {
    const index = await loadPools();
    await Promise.all([loadStatus(), loadSelected()]);
    openStream(index);
  } catch (err) {
    if (err.message === "token") return; // the form calls loadAll again
    setConn("admin API unreachable: retrying", "down");
    setTimeout(loadAll, 2000);
  }
}

// The change stream, read with fetch (an EventSource cannot send a
// token): Server-Sent Events frames, resumed after the last "id:" (the
// last raft index completed) when the connection breaks.
function openStream(index) {
  if (st.es) st.es.abort();
  const ctl = new AbortController();
  st.es = ctl;
  let last = index;
  const run = async () => {
    try {
      const resp = await fetch("/v1/watch?index=" + last, { headers: authHeaders({ Accept: "text/event-stream" }), signal: ctl.signal });
      if (resp.status === 401 || resp.status === 403) { askToken("the change stream: " + resp.status); return; }
      if (!resp.ok) throw new Error("watch: " + resp.status);
      setConn("live", "live");
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let data = "", id = "";
          for (const line of frame.split("\n")) {
            if (line.startsWith("data:")) data += line.slice(5).trimStart();
            else if (line.startsWith("id:")) id = line.slice(3).trim();
          }
          if (!data) continue;
          const e = JSON.parse(data);
          if (id) last = Number(id);
          onEvent(e);
          if (e.type === "stream.resync") return; // onEvent reloads and reopens
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    if (ctl.signal.aborted) return;
    setConn("reconnecting", "down");
    setTimeout(() => { if (!ctl.signal.aborted) run(); }, 1000);
  };
  run();
}

// --- events ---

function onEvent(e) {
  switch (e.type) {
    case "stream.ready":
      setConn("live", "live");
      return;
    case "stream.resync":
      logEvent(e);
      st.es.abort();
      loadAll();
      return;
    case "handlespace.reset":
      logEvent(e);
      loadPools().then(loadSelected);
      return;
    case "leader.changed":
    case "member.joined":
    case "member.failed":
    case "member.left":
      logEvent(e);
      scheduleStatus();
      return;
  }
  logEvent(e);
  const p = st.pools.get(e.pool);
  switch (e.type) {
    case "pool.created":
      if (!p) st.pools.set(e.pool, { handle: e.pool, policy: e.pe ? e.pe.policy.type : "", transport: "", pes: 0 });
      break;
    case "pool.removed":
      st.pools.delete(e.pool);
      break;
    case "pe.registered":
      if (p) { p.pes++; if (!p.policy) p.policy = e.pe.policy.type; p.transport = p.transport || e.pe.transport; }
      else st.pools.set(e.pool, { handle: e.pool, policy: e.pe.policy.type, transport: e.pe.transport, pes: 1 });
      break;
    case "pe.removed":
      if (p) p.pes = Math.max(0, p.pes - 1);
      break;
  }
  renderPools();
  if (e.pool === st.selected && e.index > st.poolIndex) {
    if (e.type === "pe.removed") st.pes.delete(e.pe.id);
    else if (e.pe) st.pes.set(e.pe.id, e.pe);
    renderPEs(e.type === "pe.removed" ? null : e.pe.id);
  }
  scheduleCounts();
}

// The counts of the pool list follow the events at once; a reload shortly
// after makes them exact whatever raced with the first read.
function scheduleCounts() {
  if (st.refetch) return;
  st.refetch = setTimeout(() => { st.refetch = null; loadPools().catch(() => {}); loadStatus().catch(() => {}); }, 1000);
}

function scheduleStatus() {
  if (st.statusTimer) return;
  st.statusTimer = setTimeout(() => { st.statusTimer = null; loadStatus().catch(() => {}); }, 300);
}

function logEvent(e) {
  const ol = $("events");
  let text = e.index + " " + e.type;
  if (e.pool) text += " " + e.pool;
  if (e.pe) text += " " + e.pe.id + " home " + e.pe.home;
  if (e.leader) text += " " + (e.leader.id || "none") + " term " + e.leader.term;
  if (e.member) text += " " + e.member.id + " " + e.member.name;
  if (e.reason) text += " (" + e.reason + ")";
  const cls = e.reason === "takeover" ? "t-takeover" : e.type.endsWith("removed") || e.type.endsWith("failed") ? "t-removed" : e.type.endsWith("registered") ? "t-registered" : "";
  ol.prepend(el("li", { class: cls }, text));
  while (ol.children.length > MAX_EVENTS_SHOWN) ol.lastChild.remove();
}

// --- rendering ---

function renderCluster() {
  const s = st.status;
  if (!s) return;
  $("self").textContent = s.id + " · " + s.version;
  $("raft-state").textContent = s.raft.state;
  $("raft-leader").textContent = s.raft.leader ? "0x" + s.raft.leader_id + " at " + s.raft.leader : "none";
  $("raft-term").textContent = s.raft.term;
  $("raft-index").textContent = s.raft.applied_index;
  const stale = $("stale");
  stale.textContent = s.stale ? "yes: no raft leader, resolutions from the local copy" : "no";
  stale.className = s.stale ? "stale-yes" : "";
  $("counts").textContent = s.pools + " pools, " + s.pes + " PEs, " + s.owned_pes + " homed here";
  const tb = $("members").tBodies[0];
  tb.replaceChildren(...st.members.map((m) => {
    const role = (m.leader ? "leader" : m.voter ? "voter" : "non-voter");
    return el("tr", { "data-member": m.id },
      el("td", {}, m.id), el("td", {}, m.name), el("td", { class: "status-" + m.status }, m.status),
      el("td", {}, role), el("td", {}, m.asap), el("td", {}, m.http || ""));
  }));
  const pb = $("enrp-peers").tBodies[0];
  pb.replaceChildren(...st.peers.map((p) => el("tr", {},
    el("td", {}, p.id || "?"), el("td", {}, p.address || ""), el("td", {}, p.state),
    el("td", {}, p.last_heard ? age(p.last_heard) + " ago" : "never"))));
  $("no-peers").hidden = st.peers.length > 0;
}

function renderPools() {
  const tb = $("pools").tBodies[0];
  const rows = [...st.pools.values()].sort((a, b) => a.handle < b.handle ? -1 : a.handle > b.handle ? 1 : 0);
  tb.replaceChildren(...rows.map((p) => {
    const tr = el("tr", { "data-pool": p.handle, class: p.handle === st.selected ? "selected" : "" },
      el("td", {}, p.handle), el("td", {}, p.policy), el("td", {}, p.transport), el("td", { class: "pe-count" }, p.pes));
    tr.addEventListener("click", () => select(p.handle));
    return tr;
  }));
  $("no-pools").hidden = rows.length > 0;
}

function policyText(pol) {
  const parts = [pol.type];
  for (const k of ["weight", "priority", "load_degradation", "load_dpf", "weight_dpf", "distance"]) {
    if (pol[k]) parts.push(k + "=" + pol[k]);
  }
  return parts.join(" ");
}

function loadPercent(pol) { return ((pol.load || 0) / FULL_LOAD) * 100; }

function age(t) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(t)) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

function renderPEs(flashID) {
  const sec = $("pool-section");
  sec.hidden = !st.selected;
  if (!st.selected) return;
  $("pool-name").textContent = st.selected;
  const tb = $("pes").tBodies[0];
  const rows = [...st.pes.values()].sort((a, b) => a.id < b.id ? -1 : 1);
  tb.replaceChildren(...rows.map((pe) => el("tr", { "data-pe": pe.id, class: pe.id === flashID ? "flash" : "" },
    el("td", {}, pe.id),
    el("td", {}, (pe.addresses || []).join(", ") + " port " + pe.port),
    el("td", {}, pe.transport + (pe.use === "data+control" ? " (data+control)" : "")),
    el("td", {}, policyText(pe.policy)),
    el("td", {}, loadPercent(pe.policy).toFixed(1) + " %"),
    el("td", { class: "home" }, pe.home),
    el("td", { class: "age", "data-registered": pe.registered }, age(pe.registered) + " ago"))));
  drawHomes();
}

function select(handle) {
  st.selected = handle;
  st.loads = [];
  location.hash = "pool=" + encodeURIComponent(handle);
  renderPools();
  loadSelected().catch(() => {});
}

// --- charts (plain SVG) ---

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function sampleLoad() {
  if (!st.selected) return;
  const pes = [...st.pes.values()];
  const avg = pes.length ? pes.reduce((s, pe) => s + loadPercent(pe.policy), 0) / pes.length : 0;
  st.loads.push(avg);
  if (st.loads.length > LOAD_SAMPLES) st.loads.shift();
  drawLoad();
  for (const td of document.querySelectorAll("#pes td.age")) td.textContent = age(td.dataset.registered) + " ago";
}

function drawLoad() {
  const c = $("load-chart");
  const W = 320, H = 120, L = 30, B = 14;
  const max = Math.max(10, ...st.loads);
  const x = (i) => L + (i * (W - L - 4)) / (LOAD_SAMPLES - 1);
  const y = (v) => H - B - (v / max) * (H - B - 8);
  const kids = [svg("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }), svg("line", { class: "axis", x1: L, y1: 4, x2: L, y2: H - B }),
    svg("text", { x: 2, y: 12 }, max.toFixed(0) + "%"), svg("text", { x: 2, y: H - B }, "0%"), svg("text", { x: W - 40, y: H - 2 }, "now")];
  if (st.loads.length > 0) {
    const off = LOAD_SAMPLES - st.loads.length;
    const pts = st.loads.map((v, i) => x(off + i).toFixed(1) + "," + y(v).toFixed(1));
    kids.push(svg("polygon", { class: "area", points: x(off).toFixed(1) + "," + (H - B) + " " + pts.join(" ") + " " + x(LOAD_SAMPLES - 1).toFixed(1) + "," + (H - B) }));
    kids.push(svg("polyline", { class: "line", points: pts.join(" ") }));
  }
  c.replaceChildren(...kids);
}

function drawHomes() {
  const c = $("home-chart");
  const counts = new Map();
  for (const pe of st.pes.values()) counts.set(pe.home, (counts.get(pe.home) || 0) + 1);
  const homes = [...counts.keys()].sort();
  const W = 320, H = 120, B = 16;
  const max = Math.max(1, ...counts.values());
  const bw = homes.length ? Math.min(60, (W - 20) / homes.length - 8) : 0;
  const kids = [svg("line", { class: "axis", x1: 0, y1: H - B, x2: W, y2: H - B })];
  homes.forEach((h, i) => {
    const n = counts.get(h);
    const bh = (n / max) * (H - B - 16);
    const x0 = 10 + i * (bw + 8);
    kids.push(svg("rect", { class: "bar", x: x0, y: H - B - bh, width: bw, height: bh, "data-home": h }));
    kids.push(svg("text", { x: x0, y: H - B - bh - 3 }, n));
    kids.push(svg("text", { x: x0, y: H - 3 }, h.slice(-4)));
  });
  c.replaceChildren(...kids);
}

// --- start ---

function tokenForm() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("registrar-token", $("token").value.trim());
    $("token").value = "";
    $("token-form").hidden = true;
    loadAll();
  });
}

function start() {
  tokenForm();
  const m = /^#pool=(.+)$/.exec(location.hash);
  if (m) st.selected = decodeURIComponent(m[1]);
  loadAll();
  setInterval(sampleLoad, 1000);
  setInterval(() => loadStatus().catch(() => {}), 10000);
}

start();
