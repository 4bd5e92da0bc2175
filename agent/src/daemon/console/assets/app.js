// The Streembit agent's console: plain JavaScript over the agent's API
// (/api/v1/…, the same answers as the CLI), the last hour of each point
// (/api/history) plotted with uPlot, and live readings (/api/events).
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const plots = new Map(); // "<key>/<point>" -> { plot, xs, ys }
const values = new Map(); // "<key>/<point>" -> element showing the latest value
let ownKey = "";

async function api(path, options = {}) {
  const r = await fetch("/api" + path, { credentials: "same-origin", ...options });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

function showError(e) {
  const p = $("#error");
  p.textContent = e ? String(e.message || e) : "";
  p.hidden = !e;
}

async function login() {
  const m = location.hash.match(/token=([0-9a-f]{64})/);
  if (!m) return;
  await fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: m[1] }) });
  history.replaceState(null, "", location.pathname + "#overview");
}

async function passwordLogin(ev) {
  ev.preventDefault();
  const r = await fetch("/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ password: $("#password").value }) });
  if (!r.ok) { showError(new Error("wrong password")); return; }
  $("#login").hidden = true;
  show("overview");
  live();
}

function show(page) {
  document.querySelectorAll("main > section").forEach((s) => { s.hidden = s.id !== page; });
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  showError(null);
  const load = { overview, devices, following, members, lan }[page];
  if (load) load().catch((e) => {
    if (/log in/.test(e.message)) { $("#login").hidden = false; return; }
    showError(e);
  });
}

/** The membership line of the overview: how this agent is admitted. */
async function membership(s) {
  if (s.network_kind !== "private") return "public network: anyone may join";
  const m = await api("/v1/members").catch(() => null);
  if (!m) return "private";
  const c = m.credential;
  const own = c ? `credential as ${esc(c.role)}${c.expires_unix_ms ? ", expires " + esc(new Date(c.expires_unix_ms).toISOString().slice(0, 10)) : ", no expiry"}` : "on the allowlist";
  return `${own}; revocation list sequence ${esc(m.revocation_seq)} (${esc((m.revoked || []).length)} revoked)`;
}

function row(k, v) { return `<tr><th>${esc(k)}</th><td>${v}</td></tr>`; }

async function overview() {
  const s = await api("/v1/status");
  ownKey = s.key;
  $("#who").textContent = `${s.network} · ${s.key.slice(0, 16)}…`;
  const warnings = (s.warnings || []).map((w) => `<div class="warn">${esc(w)}</div>`).join("") || "none";
  $("#overview").innerHTML = `<h2>This agent</h2><table>
    ${row("key", `<span class="key" id="status-key">${esc(s.key)}</span>`)}
    ${row("network", `${esc(s.network)} (${esc(s.network_kind)})`)}
    ${row("membership", await membership(s))}
    ${row("reachability", esc(s.reachability))}
    ${row("announced", esc((s.addrs || []).join(", ")))}
    ${row("clock offset", `${esc(s.clock_offset_ms)} ms (median of ${esc(s.clock_peers)} peers)`)}
    ${row("connections", esc(s.connections))}
    ${row("routing table", `${esc(s.table_size)} contacts: ${esc(JSON.stringify(s.table_by_source || {}))}`)}
    ${row("devices hosted", esc(s.devices))}
    ${row("uptime", `${esc(s.uptime_s)} s`)}
    ${row("warnings", warnings)}
  </table><h2>Peers</h2><table><tr><th>key</th><th>path</th><th>address</th><th>learned</th></tr>
  ${(s.links || []).map((l) => `<tr><td class="key">${esc(l.key)}</td><td>${esc(l.path)}</td><td>${esc(l.addr)}</td><td>${esc(l.learned)}</td></tr>`).join("")}</table>`;
}

function plotInto(el, id, series) {
  const xs = series.samples.map((s) => s[0] / 1000);
  const ys = series.samples.map((s) => s[1]);
  const opts = {
    width: Math.min(720, window.innerWidth - 60), height: 160,
    scales: { x: { time: true } },
    series: [{}, { label: `${series.device} ${id.split("/")[1]}${series.unit ? " (" + series.unit + ")" : ""}`, stroke: "#1d3557", width: 2 }],
  };
  const plot = new uPlot(opts, [xs, ys], el);
  plots.set(id, { plot, xs, ys });
}

async function plotsFor(container, key) {
  const history = await api(`/history?prefix=${key}/`);
  for (const [id, series] of Object.entries(history)) {
    const div = document.createElement("div");
    div.className = "plot";
    div.dataset.series = id;
    container.appendChild(div);
    plotInto(div, id, series);
  }
}

function verifiedMark(key) {
  return `<span class="verified" title="signed by the device's own key ${esc(key)}, verified by this agent">✓ signed by the device, verified</span>`;
}

async function devices() {
  const list = await api("/v1/devices");
  const root = $("#devices");
  root.innerHTML = `<h2>Devices hosted here (${list.length})</h2>`;
  for (const d of list) {
    const card = document.createElement("div");
    card.className = "card device";
    card.dataset.key = d.key;
    const points = Object.entries(d.points || {}).map(([p, r]) =>
      `<tr><td>${esc(p)}</td><td class="point-value" data-id="${esc(d.key + "/" + p)}">${esc(r.value ?? r.quality)}${r.unit ? " " + esc(r.unit) : ""}</td><td>${esc(r.quality)}</td></tr>`).join("");
    card.innerHTML = `<strong>${esc(d.name)}</strong> (${esc(d.bridge)}, ${esc(d.state)})<br>
      <span class="key">${esc(d.key)}</span> ${verifiedMark(d.key)}
      <table><tr><th>point</th><th>latest</th><th>quality</th></tr>${points}</table>`;
    root.appendChild(card);
    card.querySelectorAll(".point-value").forEach((el) => values.set(el.dataset.id, el));
    await plotsFor(card, d.key);
  }
}

async function following() {
  const subs = await api("/v1/subscriptions");
  const root = $("#following");
  root.innerHTML = `<h2>Devices this agent follows (${subs.length})</h2>`;
  for (const s of subs) {
    const card = document.createElement("div");
    card.className = "card";
    card.innerHTML = `<span class="key">${esc(s.device)}</span> — ${s.connected ? "connected" : "not connected"},
      ${esc(s.received)} received, last sequence ${esc(s.last_seq)}${s.last_error ? `, <span class="bad">${esc(s.last_error)}</span>` : ""}`;
    root.appendChild(card);
    await plotsFor(card, s.device);
  }
}

function download(name, hex) {
  const bytes = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes], { type: "application/cose" }));
  a.download = name;
  a.textContent = "signed envelope (.cose)";
  return a;
}

async function anyDevice(ev) {
  ev.preventDefault();
  const key = $("#any-key").value.trim();
  const out = $("#any-result");
  out.textContent = "looking up…";
  try {
    const found = await api(`/v1/lookup/${key}`);
    const read = await api(`/v1/read/${key}`);
    out.innerHTML = `<p>${esc(found.kind)} record, gateway <span class="key">${esc(found.gateway || "-")}</span>, found in ${esc(found.rounds)} rounds</p>
      <table id="any-readings"><tr><th>point</th><th>value</th><th>quality</th><th>signature</th><th>envelope</th></tr></table>`;
    for (const r of read.readings || []) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${esc(r.point)}</td><td>${esc(r.value)}${r.unit ? " " + esc(r.unit) : ""}</td><td>${esc(r.quality)}</td><td>${verifiedMark(key)}</td><td></td>`;
      if (r.cose) tr.lastChild.appendChild(download(`${r.point}.cose`, r.cose));
      $("#any-readings").appendChild(tr);
    }
  } catch (e) {
    out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

async function write(ev) {
  ev.preventDefault();
  const out = $("#write-result");
  let value;
  try { value = JSON.parse($("#write-value").value); } catch (_) { value = $("#write-value").value; }
  const key = $("#write-key").value.trim();
  const point = $("#write-point").value.trim();
  out.textContent = "sending…";
  try {
    const r = await api(`/v1/write/${key}/${encodeURIComponent(point)}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value }),
    });
    out.innerHTML = `<p class="verified" id="write-ok">applied: ${esc(JSON.stringify(r.value))}</p>`;
  } catch (e) {
    if (!ownKey) ownKey = (await api("/v1/status").catch(() => ({}))).key || "";
    out.innerHTML = `<p class="error" id="write-error">${esc(e.message)}</p>
      <div class="explain" id="write-why">A write is a command signed by this agent's key. The device's gateway applies it
      only if this agent's key is listed in the point's <code>writers</code> in the gateway's bridge file
      (and the point is writable, <code>access = "rw"</code>); any other command is refused and counted there.
      To be allowed, ask the gateway's operator to add this agent's key to <code>writers</code>:
      <span class="key">${esc(ownKey)}</span></div>`;
  }
}

async function members() {
  const m = await api("/v1/members");
  const root = $("#members");
  if (!m.private) { root.innerHTML = "<h2>Members</h2><p>A public network: anyone may join.</p>"; return; }
  root.innerHTML = `<h2>Members of ${esc(m.network)}</h2><table>
    ${row("admins", (m.admins || []).map((a) => `<div class="key">${esc(a)}</div>`).join("") + ` (threshold ${esc(m.admin_threshold)})`)}
    ${row("revocation sequence", esc(m.revocation_seq))}
    ${row("revoked", (m.revoked || []).map((k) => `<div class="key">${esc(k)}</div>`).join("") || "none")}
    ${row("admitted by credential", esc(m.admitted_by_credential))}
    ${row("this agent's credential", m.credential ? esc(JSON.stringify(m.credential)) : "none")}
  </table>`;
}

async function lan() {
  const root = $("#lan");
  try {
    const d = await api("/v1/discovered");
    root.innerHTML = `<h2>Agents heard on the LAN</h2><table><tr><th>key</th><th>network</th><th>addresses</th><th>connected</th><th>heard</th></tr>
      ${d.agents.map((a) => `<tr><td class="key">${esc(a.key)}</td><td>${esc(a.network)}${a.same_network ? " (ours)" : ""}</td><td>${esc(a.addrs.join(", "))}</td><td>${a.connected ? "yes" : "no"}</td><td>${esc(a.last_seen_s)} s ago</td></tr>`).join("")}</table>`;
  } catch (e) {
    root.innerHTML = `<h2>Agents heard on the LAN</h2><p>${esc(e.message)}</p>`;
  }
}

function live() {
  const events = new EventSource("/api/events");
  events.onmessage = (m) => {
    const e = JSON.parse(m.data);
    const r = e.reading;
    const id = `${e.key}/${r.point}`;
    const el = values.get(id);
    if (el) el.textContent = `${r.value ?? r.quality}${r.unit ? " " + r.unit : ""}`;
    const p = plots.get(id);
    const v = typeof r.value === "boolean" ? (r.value ? 1 : 0) : r.value;
    if (p && typeof v === "number") {
      p.xs.push(r.timestamp_ms / 1000);
      p.ys.push(v);
      p.plot.setData([p.xs, p.ys]);
    }
  };
}

async function main() {
  await login();
  document.querySelectorAll("nav a").forEach((a) => a.addEventListener("click", (ev) => { ev.preventDefault(); history.replaceState(null, "", "#" + a.dataset.page); show(a.dataset.page); }));
  $("#any-form").addEventListener("submit", anyDevice);
  $("#write-form").addEventListener("submit", write);
  $("#login").addEventListener("submit", passwordLogin);
  const page = (location.hash || "#overview").slice(1).split("=")[0];
  show(["overview", "devices", "following", "any", "write", "members", "lan"].includes(page) ? page : "overview");
  live();
}

main().catch(showError);
