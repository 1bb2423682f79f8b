// The shelter's tablet UI: sign in with a token, then a live view of the site and its actions.
//
// The live stream is read with fetch() and a ReadableStream reader, not EventSource, because
// EventSource cannot send an Authorization header; the token never goes into a URL.
// When the stream drops, the screen says so at once and reconnects with a growing delay.
// What a role may not do is not offered: GET /api/v1/me says what this token can do.

import {
  applyStatic, clock, clockSeconds, kw, kwh, language, loadLanguage, number, percent, t,
} from "./i18n.js";

const TOKEN_KEY = "resilience.token";
const LANG_KEY = "resilience.lang";
const THEME_KEY = "resilience.theme";
const TIERS = ["life_safety", "critical", "essential", "comfort"];
const EVENTS_SHOWN = 30;

const $ = (id) => document.getElementById(id);

const state = {
  token: localStorage.getItem(TOKEN_KEY),
  me: null,
  status: null,
  alarms: null, // the store's alarm list (responder and above); viewers see status.alarms
  events: [],
  stream: null, // AbortController of the running stream
  retry: 0,
};

// ------------------------------------------------------------------ DOM helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// ------------------------------------------------------------------ API
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.token}` };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    signOut(t("login.invalid"));
    throw new Error("unauthorised");
  }
  return response;
}

// A command: the answer says accepted (200), refused (409, with the controller's reason)
// or bad input (4xx, naming the field).
async function command(path, options = {}) {
  let response;
  try {
    response = await api(path, { method: "POST", ...options });
  } catch (error) {
    if (error.message !== "unauthorised") toast(t("result.error", { detail: t("conn.lost") }));
    return false;
  }
  let body = {};
  try { body = await response.json(); } catch { /* keep {} */ }
  const detail = typeof body.detail === "string" ? body.detail : response.statusText;
  if (response.ok) toast(t("result.accepted", { detail: body.detail || "" }));
  else if (response.status === 409) toast(t("result.refused", { detail }));
  else toast(t("result.error", { detail }));
  return response.ok ? true : detail;
}

// ------------------------------------------------------------------ sign in / out
async function signIn(token) {
  state.token = token;
  let response;
  try {
    response = await fetch("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } });
  } catch {
    showLogin(t("login.unreachable"));
    return;
  }
  if (!response.ok) {
    localStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showLogin(response.status === 401 ? t("login.invalid") : t("login.unreachable"));
    return;
  }
  state.me = await response.json();
  localStorage.setItem(TOKEN_KEY, token);
  showDashboard();
}

function signOut(message) {
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.token = null;
  state.me = null;
  state.status = null;
  localStorage.removeItem(TOKEN_KEY);
  showLogin(message);
}

function showLogin(message) {
  document.body.dataset.screen = "login";
  $("login").hidden = false;
  $("dashboard").hidden = true;
  $("signout").hidden = true;
  $("role").hidden = true;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("token-input").focus();
}

function showDashboard() {
  document.body.dataset.screen = "dashboard";
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("signout").hidden = false;
  $("role").hidden = false;
  applyPermissions();
  renderRole();
  if (state.me.can.read_details) loadDetails();
  connect();
}

function applyPermissions() {
  const can = state.me ? state.me.can : {};
  for (const node of document.querySelectorAll("[data-can]")) {
    node.hidden = !can[node.dataset.can];
  }
  for (const node of document.querySelectorAll("[data-can-any]")) {
    node.hidden = !node.dataset.canAny.split(" ").some((name) => can[name]);
  }
}

function renderRole() {
  if (state.me) $("role").textContent = t("top.role", { role: t(`role.${state.me.role}`) });
}

async function loadDetails() {
  try {
    const [events, alarms] = await Promise.all([
      api(`/api/v1/events?limit=${EVENTS_SHOWN}`), api("/api/v1/alarms?limit=50"),
    ]);
    if (events.ok) state.events = (await events.json()).events;
    if (alarms.ok) state.alarms = (await alarms.json()).alarms;
    renderEvents();
    renderAlarms();
  } catch { /* the stream shows the connection state */ }
}

// ------------------------------------------------------------------ the live stream
function setConnection(which) {
  document.body.dataset.connection = which;
  $("conn").textContent = t(`conn.${which}`);
  $("lost-banner").hidden = which !== "lost";
}

async function connect() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  try {
    const response = await api("/api/v1/stream", { signal: controller.signal, headers: { Accept: "text/event-stream" } });
    if (!response.ok || !response.body) throw new Error(`stream ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        handleMessage(block);
      }
    }
    throw new Error("stream ended");
  } catch (error) {
    if (controller.signal.aborted || state.stream !== controller) return;
    if (error.message === "unauthorised") return;
    setConnection("lost");
    const delay = Math.min(10000, 1000 * 2 ** state.retry);
    state.retry = Math.min(state.retry + 1, 4);
    setTimeout(() => { if (state.stream === controller) connect(); }, delay);
  }
}

function handleMessage(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data.push(line.slice(6));
  }
  if (!data.length) return;
  const payload = JSON.parse(data.join("\n"));
  if (name === "status") {
    state.retry = 0;
    if (document.body.dataset.connection !== "live") {
      setConnection("live");
      if (state.me && state.me.can.read_details) loadDetails();
    }
    state.status = payload;
    renderStatus();
  } else if (name === "alarms") {
    state.alarms = payload.alarms;
    renderAlarms();
  } else if (name === "event") {
    state.events.unshift(payload);
    state.events.length = Math.min(state.events.length, EVENTS_SHOWN);
    renderEvents();
  }
}

// ------------------------------------------------------------------ rendering
function renderAll() {
  applyStatic();
  renderRole();
  const dark = document.documentElement.dataset.theme === "dark";
  $("theme-toggle").textContent = t(dark ? "top.theme_light" : "top.theme_dark");
  setConnection(document.body.dataset.connection);
  if (state.status) renderStatus();
  renderAlarms();
  renderEvents();
}

function renderStatus() {
  const s = state.status;
  $("site-name").textContent = s.site;
  const banner = $("banner");
  banner.dataset.mode = s.mode;
  $("mode-name").textContent = t(`mode.${s.mode}`);
  // In emergency, say what is missing, with the emergency guard's own figures.
  $("mode-info").textContent = s.shortfall
    ? t("banner.shortfall", {
      tier: t(`tier.${s.shortfall.tier}`), need: kw(s.shortfall.need_w), give: kw(s.shortfall.can_give_w),
    })
    : t(`mode_info.${s.mode}`);
  $("mode-since").textContent = t("banner.since", { time: clock(s.mode_since_ts) });
  $("runbook-link").href = s.runbook;

  if (s.endurance_h === null) {
    $("endurance").textContent = t("endurance.unbounded");
  } else {
    const minutes = Math.floor(s.endurance_h * 60);
    $("endurance").textContent = t("endurance.value", {
      h: number(Math.floor(minutes / 60), 0), m: number(minutes % 60, 0),
    });
  }
  const basis = s.endurance_basis.tiers.length === 1 ? "endurance.basis_life_safety" : "endurance.basis";
  $("endurance-basis").textContent = t(basis, {
    draw: kw(s.endurance_basis.draw_w), energy: kwh(s.endurance_basis.energy_above_reserve_wh),
  });
  // The endurance policy's projection for the bus: each tier with the tiers above it.
  const bus = (s.circuits || []).find((c) => c.id === "bus");
  const policy = bus && bus.policy;
  $("endurance-tiers").textContent = policy
    ? TIERS.filter((tier) => policy.demand_w[tier] > 0).map((tier) => t("endurance.tier", {
      tier: t(`tier.${tier}`),
      h: policy.projection_h[tier] === null ? t("endurance.unbounded") : `${number(policy.projection_h[tier], 1)} h`,
      target: number(policy.targets_h[tier], 0),
    })).join(" · ")
    : "";

  $("load-w").textContent = kw(s.load_w);
  // On the grid the connection; off it, what the cars (and firm PV) can give, beside
  // what they deliver now: two different figures, labelled as such.
  $("supply-label").textContent = s.mode === "grid_connected" ? t("supply.supply") : t("supply.can_give");
  $("supply-w").textContent = kw(s.supply_w);
  $("delivered-w").textContent = kw(s.delivered_w);
  $("pv-w").textContent = kw(s.pv_w);
  const share = s.supply_w > 0 ? Math.min(100, (100 * s.load_w) / s.supply_w) : 100;
  $("load-bar").style.width = `${share}%`;

  const g = s.grid;
  $("grid-state").textContent = !g.present ? t("grid.absent") : g.healthy ? t("grid.present")
    : g.riding_through ? t("grid.riding_through") : t("grid.unhealthy");
  // islanded with the grid back outside the enter-service window: say why the site waits
  const wait = $("grid-wait");
  wait.hidden = !g.waiting_reason;
  wait.textContent = g.waiting_reason ? t("grid.waiting", { why: g.waiting_reason }) : "";
  $("grid-v").textContent = g.voltage_v === null ? "–" : `${number(g.voltage_v, 0)} V`;
  $("grid-f").textContent = g.frequency_hz === null ? "–" : `${number(g.frequency_hz, 2)} Hz`;
  $("pcc").textContent = t(`pcc.${s.pcc}`);

  renderTiers(s);
  renderVehicles(s);
  renderHeadcount(s);
  if (!state.me || !state.me.can.read_details) renderAlarms();
}

// The shelter's headcount as an operator last recorded it (the EOC reads it as occupancy):
// never counted is said so, never shown as 0.
function renderHeadcount(s) {
  const counted = s.headcount;
  $("headcount").textContent = counted ? t("shelter.people", { n: number(counted.people, 0) }) : t("shelter.not_counted");
  $("headcount-by").textContent = counted ? t("shelter.recorded", { time: clock(counted.recorded_ts), who: counted.by }) : "";
}

async function recordHeadcount(event) {
  event.preventDefault();
  const people = Number($("headcount-input").value);
  if (await command("/api/v1/shelter/headcount", { method: "PUT", json: { people } }) === true) {
    $("headcount-form").reset();
  }
}

function loadState(load) {
  if (load.state === "unknown") return "unknown";
  if (load.state === "off" && load.locked_off) return "locked_off";
  return load.state;
}

// Why a load is off, in the tablet's language (the status's off_why).
function whyOff(load) {
  const why = load.off_why;
  if (!why) return load.kept_on ? t("why.kept_on") : "";
  if (why.code === "energy") {
    return t("why.energy", {
      tier: t(`tier.${why.tier}`),
      h: why.hours === null ? t("endurance.unbounded") : `${number(why.hours, 1)} h`,
      target: number(why.target_h, 0),
    });
  }
  return t(`why.${why.code}`);
}

// Beside shed / restore, the endurance policy's action: keep on a load it shed, or let it
// decide again for a load kept on; null when neither applies.
function policyAction(load) {
  if (load.locked_off) return null;
  if (load.kept_on) return "follow-policy";
  if (load.off_why && load.off_why.code === "energy") return "keep-on";
  return null;
}

function renderTiers(s) {
  const can = state.me && state.me.can.shed_restore;
  const root = $("tiers");
  const sections = TIERS.map((tier) => {
    const counts = s.tiers[tier];
    const loads = s.loads.filter((load) => load.tier === tier);
    return el("div", { class: "tier", dataset: { tier } },
      el("h3", {},
        el("span", { text: t(`tier.${tier}`) }),
        el("span", { text: t("tier.summary", { served: number(counts.served, 0), shed: number(counts.shed + counts.unknown, 0) }) })),
      el("ul", { class: "loads" }, ...loads.map((load) => {
        const which = loadState(load);
        const action = load.locked_off ? "restore" : "shed";
        const policy = policyAction(load);
        const why = whyOff(load);
        return el("li", { class: "load", dataset: { load: load.id } },
          el("span", { class: "name", text: load.name },
            el("span", { class: "power", text: which === "on" ? kw(load.power_w) : kw(load.rated_power_w) }),
            why ? el("span", { class: "why", text: why }) : null),
          el("span", { class: "state", dataset: { state: which }, text: t(`load.${which}`) }),
          can ? el("span", { class: "actions" },
            el("button", {
              type: "button", dataset: { action, load: load.id }, text: t(`load.${action}`),
              onclick: () => confirmLoad(action, load),
            }),
            policy ? el("button", {
              type: "button", dataset: { action: policy, load: load.id }, text: t(`load.${policy}`),
              onclick: () => confirmLoad(policy, load),
            }) : null) : null);
      })));
  });
  root.replaceChildren(...sections);
}

// How each vehicle state looks: supplying (green), neutral, or needing attention (red).
const VSTATE_LOOK = {
  grid_former: "on", following: "on", supplying: "on", charging: "on",
  idle: "neutral", unplugged: "neutral", off: "neutral", leaving: "neutral",
  at_reserve: "off", fault: "off", tripped: "off", not_answering: "unknown",
};

function vehicleState(v) {
  if (!v.available) return "not_answering";
  if (v.leaving) return "leaving";
  if (v.kind === "outlet") {
    if (v.state === "unplugged") return "unplugged";
    if (v.at_reserve) return "at_reserve";
    return { supplying: "supplying", tripped: "tripped" }[v.state] || "off";
  }
  if (v.state === "unplugged") return "unplugged";
  if (v.state === "fault") return "fault";
  if (v.forming) return "grid_former";
  if (v.at_reserve && v.state !== "charging") return "at_reserve";
  if (v.state === "discharging") return "following";
  if (v.state === "charging") return "charging";
  return "idle";
}

function renderVehicles(s) {
  $("vehicles-summary").textContent = t("vehicles.summary", {
    count: number(s.vehicles.connected, 0), energy: kwh(s.vehicles.energy_above_reserve_wh),
  });
  const canRelease = state.me && state.me.can.release_vehicle;
  const items = s.vehicles.list.map((v) => {
    const which = vehicleState(v);
    const shown = v.connected || v.state !== "unplugged";
    const soc = Math.max(0, Math.min(100, v.soc_pct));
    return el("li", { class: "vehicle", dataset: { connector: v.connector, vstate: which } },
      el("div", { class: "head" },
        el("span", {},
          el("span", { class: "who", text: v.name || v.vehicle_id || t("vehicles.empty") }),
          el("span", { class: "where", text: ` · ${t(v.kind === "outlet" ? "vehicles.kind_outlet" : "vehicles.kind_charger")} ${v.connector}` })),
        el("span", { class: "state", dataset: { state: VSTATE_LOOK[which] }, text: t(`vstate.${which}`) })),
      shown ? el("div", { class: "soc", role: "img", "aria-label": `${percent(soc)} / ${t("vehicles.reserve", { pct: percent(v.reserve_soc_pct) })}` },
        el("div", { class: "soc-fill", style: { width: `${soc}%` } }),
        el("div", { class: "soc-reserve", style: { left: `calc(${Math.min(100, v.reserve_soc_pct)}% - 2px)` } }),
        el("span", { class: "soc-text", text: percent(soc) })) : null,
      el("div", { class: "meta" },
        el("span", { text: t("vehicles.reserve", { pct: percent(v.reserve_soc_pct) }) }),
        el("span", { text: v.power_w ? kw(v.power_w) : "" }),
        canRelease && v.donor ? el("button", {
          type: "button", dataset: { action: "release", vehicle: v.vehicle_id }, text: t("vehicles.release"),
          onclick: () => confirmRelease(v),
        }) : null));
  });
  $("vehicles").replaceChildren(...items);
}

function renderAlarms() {
  const root = $("alarms");
  if (!state.me) return;
  const canAck = state.me.can.ack_alarm;
  let rows;
  if (state.alarms && state.me.can.read_details) {
    rows = state.alarms.filter((a) => a.active || !a.acked_ts).slice(0, 12).map((a) =>
      el("li", { class: "alarm", dataset: { severity: a.severity, code: a.code } },
        el("div", {},
          el("span", { class: "sev", text: `${t(`severity.${a.severity}`)} ` }),
          el("span", { text: a.message || a.code }),
          el("div", { class: "small", text: [clock(a.raised_ts), a.active ? "" : t("alarms.cleared"), a.acked_by ? t("alarms.acked", { who: a.acked_by }) : ""].filter(Boolean).join(" · ") })),
        canAck && !a.acked_ts ? el("button", {
          type: "button", dataset: { action: "ack", alarm: String(a.id) }, text: t("alarms.ack"),
          onclick: () => confirmAck(a),
        }) : null));
  } else if (state.status) {
    rows = state.status.alarms.map((a) =>
      el("li", { class: "alarm", dataset: { code: a.code } }, el("span", { text: a.message || a.code })));
  } else {
    rows = [];
  }
  if (!rows.length) rows = [el("li", { class: "small", text: t("alarms.none") })];
  root.replaceChildren(...rows);
}

function eventKind(kind) {
  return ["transition", "dispatch", "device", "fault", "controller", "operator"].includes(kind) ? kind : "other";
}

function renderEvents() {
  const rows = state.events.map((e) =>
    el("li", { class: "event", dataset: { kind: e.kind } },
      el("time", { text: clockSeconds(e.ts) }),
      el("span", { class: "kind", text: t(`kind.${eventKind(e.kind)}`) }),
      el("span", { text: e.kind === "transition" && e.mode_to ? `${t(`mode.${e.mode_to}`)}: ${e.reason}` : e.reason })));
  $("events").replaceChildren(...(rows.length ? rows : [el("li", { class: "small", text: t("events.none") })]));
}

// ------------------------------------------------------------------ actions
function confirmDialog(title, body) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-body").textContent = body;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function confirmLoad(action, load) {
  const ok = await confirmDialog(t(`confirm.${action}_title`, { name: load.name }), t(`confirm.${action}_body`));
  if (ok) await command(`/api/v1/loads/${encodeURIComponent(load.id)}/${action}`);
}

async function confirmRelease(v) {
  const name = v.name || v.vehicle_id;
  if (await confirmDialog(t("confirm.release_title", { name }), t("confirm.release_body"))) {
    await command(`/api/v1/vehicles/${encodeURIComponent(v.vehicle_id)}/release`);
  }
}

async function confirmAck(alarm) {
  if (await confirmDialog(t("confirm.ack_title"), `${alarm.message || alarm.code}. ${t("confirm.ack_body")}`)) {
    await command(`/api/v1/alarms/${alarm.id}/ack`);
  }
}

async function planIsland() {
  if (await confirmDialog(t("confirm.island_title"), t("confirm.island_body"))) {
    await command("/api/v1/commands/planned-island");
  }
}

async function reconnect() {
  const seconds = state.status ? state.status.return_to_service_s : 300;
  const delay = t("unit.seconds", { n: number(seconds, 0) });
  if (await confirmDialog(t("confirm.reconnect_title"), t("confirm.reconnect_body", { delay }))) {
    await command("/api/v1/commands/reconnect");
  }
}

function openRegister() {
  const select = $("reg-connector");
  const list = state.status ? state.status.vehicles.list : [];
  select.replaceChildren(...list.map((v) => el("option", {
    value: v.connector,
    text: `${t(v.kind === "outlet" ? "vehicles.kind_outlet" : "vehicles.kind_charger")} ${v.connector}${v.vehicle_id ? ` (${v.vehicle_id})` : ""}`,
  })));
  const free = list.find((v) => v.kind === "outlet" && !v.donor);
  if (free) select.value = free.connector;
  $("register-error").hidden = true;
  $("register").showModal();
}

function leavingAt(value) {
  if (!value) return undefined;
  const [h, m] = value.split(":").map(Number);
  const when = new Date();
  when.setHours(h, m, 0, 0);
  if (when.getTime() <= Date.now()) when.setDate(when.getDate() + 1);
  return Math.round(when.getTime() / 1000);
}

async function submitRegister(event) {
  event.preventDefault();
  const form = $("register-form");
  if (!form.reportValidity()) return;
  const data = new FormData(form);
  const body = {
    vehicle_id: String(data.get("vehicle_id")).trim(),
    connector: data.get("connector"),
    reserve_soc_pct: Number(data.get("reserve_soc_pct")),
  };
  if (data.get("soc_pct")) body.soc_pct = Number(data.get("soc_pct"));
  if (data.get("capacity_kwh")) body.capacity_wh = Math.round(Number(data.get("capacity_kwh")) * 1000);
  const leaving = leavingAt(data.get("leaving"));
  if (leaving) body.leaving_at = leaving;
  const result = await command("/api/v1/vehicles", { json: body });
  if (result === true) {
    $("register").close();
    form.reset();
  } else if (typeof result === "string") {
    $("register-error").textContent = result;
    $("register-error").hidden = false;
  }
}

// ------------------------------------------------------------------ start
function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_KEY, theme);
  $("theme-toggle").textContent = t(theme === "dark" ? "top.theme_light" : "top.theme_dark");
}

// The gateway says whether it serves plain HTTP beyond loopback (allow_plain_http): then
// tokens cross the Wi-Fi in clear text, and the tablet says so above everything.
async function checkConnection() {
  try {
    const response = await fetch("/api/v1/connection");
    if (!response.ok) return;
    const link = await response.json();
    $("plain-http-banner").hidden = !link.plain_http_on_lan;
  } catch {
    // no answer: the connection state shows that already
  }
}

async function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromLink = params.get("token"); // make demo prints a URL with #token=...: never sent to the server
  if (fromLink) history.replaceState(null, "", location.pathname);
  if (params.get("lang")) localStorage.setItem(LANG_KEY, params.get("lang"));
  if (params.get("theme")) localStorage.setItem(THEME_KEY, params.get("theme"));
  const preferred = localStorage.getItem(LANG_KEY) || (navigator.language || "en").slice(0, 2);
  await loadLanguage(preferred);
  document.documentElement.dataset.theme = localStorage.getItem(THEME_KEY) || "light";
  renderAll();
  await checkConnection();

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token-input").value.trim());
  });
  // Only now: before this handler, the browser would send the form itself (index.html).
  $("login-form").querySelector('button[type="submit"]').disabled = false;
  $("signout").addEventListener("click", () => signOut());
  $("lang-toggle").addEventListener("click", async () => {
    const next = language() === "en" ? "tr" : "en";
    localStorage.setItem(LANG_KEY, next);
    await loadLanguage(next);
    renderAll();
  });
  $("theme-toggle").addEventListener("click", () => {
    setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  });
  $("btn-island").addEventListener("click", planIsland);
  $("headcount-form").addEventListener("submit", recordHeadcount);
  $("btn-reconnect").addEventListener("click", reconnect);
  $("btn-register").addEventListener("click", openRegister);
  $("register-form").addEventListener("submit", submitRegister);
  $("register-cancel").addEventListener("click", () => $("register").close());

  const token = fromLink || state.token;
  if (token) await signIn(token);
  else showLogin();
  document.body.dataset.ready = "true";
}

start();
