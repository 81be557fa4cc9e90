// crowdpark's district view: everything from this engine's own API on the
// same origin (no CDN, no tiles), refreshed every two seconds and at once
// when the live stream announces an alert.
"use strict";

const REFRESH_MS = 2000;
// A view whose data has not moved for this long says so, loudly.
const STALE_MS = 10000;
const state = { zones: [], lots: [], district: null, alerts: [], sales: null, fetchedAt: 0, newestMs: 0, newestSeenAt: 0 };
// The district shown: `?district=<id>` in the page's address, else the
// first configured (the API's default).
let districtId = new URLSearchParams(location.search).get("district");
const inDistrict = (path) => districtId ? `${path}?district=${encodeURIComponent(districtId)}` : path;

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const levelOf = (z) => (z.level ? z.level : "none");
const levelText = (l) => (l === "none" ? "no data" : l);
// Times as the district's clock shows them (its UTC offset comes with /api/v1/district).
const fmtTime = (iso) => {
  if (!iso) return "—";
  const offset = (state.district && state.district.utc_offset_s) || 0;
  return new Date(Date.parse(iso) + offset * 1000).toISOString().slice(11, 19);
};
const num = (v, digits) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function refresh() {
  try {
    // Lists are filtered only when a district is chosen; the district's
    // own record says which one is shown.
    const [district, sales] = await Promise.all([getJson(inDistrict("/api/v1/district")), getJson(inDistrict("/api/v1/sales"))]);
    const only = (path) => `${path}?district=${encodeURIComponent(district.id)}`;
    const [zones, lots, alerts] = await Promise.all([
      getJson(only("/api/v1/zones")), getJson(only("/api/v1/lots")), getJson(only("/api/v1/alerts")),
    ]);
    Object.assign(state, { zones, lots, district, alerts, sales, fetchedAt: Date.now() });
    render();
    setConnection(true);
  } catch (e) {
    setConnection(false, e.message);
  }
  renderAge();
}

function setConnection(up, why) {
  const el = $("#connection");
  el.textContent = up ? "live" : "connection lost: " + why + " (retrying)";
  el.classList.toggle("down", !up);
}

function render() {
  $("#district-name").textContent = (state.district && state.district.name) || "crowdpark";
  renderMap();
  renderZones();
  renderAlerts();
  renderLots();
  renderSales();
  renderDestinations();
}

// The newest observation time across zones and car parks, in event time.
function newestObservation() {
  const times = [...state.zones.map((z) => z.observation_date_time), ...state.lots.map((l) => l.observationDateTime)]
    .filter(Boolean).map((t) => Date.parse(t));
  return times.length ? Math.max(...times) : 0;
}

function renderAge() {
  const el = $("#data-age");
  const newest = newestObservation();
  if (newest !== state.newestMs) { state.newestMs = newest; state.newestSeenAt = Date.now(); }
  const sinceFetch = Date.now() - state.fetchedAt;
  const stillFor = Date.now() - state.newestSeenAt;
  const stale = !newest || sinceFetch > STALE_MS || stillFor > STALE_MS;
  el.textContent = newest
    ? `data observed ${fmtTime(new Date(newest).toISOString())} district time` + (stale ? ` — STALE: no new data for ${Math.round(Math.max(sinceFetch, stillFor) / 1000)} s` : "")
    : "no data yet";
  el.classList.toggle("stale", stale);
  renderViewAge();
}

// With several instances, each serves the whole district from the shared
// view; how far behind the instances' own figures that view may be.
function renderViewAge() {
  const el = $("#view-age");
  const v = state.district && state.district.view;
  if (!v || !v.shared) { el.textContent = ""; return; }
  el.textContent = v.as_of
    ? `shared view of all instances as of ${new Date(v.as_of).toLocaleTimeString()} (${v.behind_s} s behind; up to about 1 s plus the commit interval behind the instances)`
    : "shared view of all instances: still reading";
}

function positions() {
  const pts = [];
  for (const z of state.zones) if (z.lat != null && z.lon != null) pts.push([z.lat, z.lon]);
  for (const l of state.lots) if (l.location) pts.push([l.location.coordinates[1], l.location.coordinates[0]]);
  return pts;
}

// A schematic projection, north up: each axis half linear, half by rank, so
// places far out (the culture square, 2 km north) do not squeeze the rest of
// the district into a corner.
function projector() {
  const pts = positions();
  const pad = 80, w = 1000, h = 600;
  const axis = (values, size, flip) => {
    const sorted = [...new Set(values)].sort((a, b) => a - b);
    const [lo, hi] = [sorted[0], sorted[sorted.length - 1]];
    return (v) => {
      const linear = (v - lo) / Math.max(hi - lo, 1e-9);
      const rank = sorted.length > 1 ? sorted.indexOf(v) / (sorted.length - 1) : 0.5;
      const t = 0.5 * linear + 0.5 * rank;
      return pad + (flip ? 1 - t : t) * (size - 2 * pad);
    };
  };
  const x = axis(pts.map((p) => p[1]), w, false), y = axis(pts.map((p) => p[0]), h, true);
  return (lat, lon) => [x(lon), y(lat)];
}

// What the map says beside a car park's count when it is full, closed or
// not known (the table says the rest).
function lotFlag(status) {
  const flags = { full: " FULL", closed: " closed", unknown: " ?" };
  return flags[status] || (status ? "" : " ?");
}

// A zone's name short enough for the map: before any bracket, at most 22 characters.
function shortName(name) {
  const n = name.split(" (")[0];
  return n.length > 22 ? n.slice(0, 21) + "…" : n;
}

function renderMap() {
  const svg = $("#map");
  if (!positions().length) { svg.innerHTML = '<text x="500" y="300" text-anchor="middle">no coordinates configured</text>'; return; }
  const at = projector();
  let out = "";
  for (const l of state.lots) {
    if (!l.location) continue;
    const [x, y] = at(l.location.coordinates[1], l.location.coordinates[0]);
    const free = l.availableSpotNumber ?? "?";
    out += `<g class="lot" data-lot="${esc(l.id)}"><title>${esc(l.name)}: ${esc(free)} of ${esc(l.totalSpotNumber)} free, ${esc(l.status || "no data")}</title>` +
      `<rect x="${x - 8}" y="${y - 8}" width="16" height="16"></rect>` +
      `<text x="${x + 12}" y="${y + 5}">P ${esc(free)}/${esc(l.totalSpotNumber)}${lotFlag(l.status)}</text></g>`;
  }
  for (const z of state.zones) {
    if (z.lat == null) continue;
    const [x, y] = at(z.lat, z.lon);
    const lv = levelOf(z);
    const r = 10 + Math.sqrt(z.area_m2 || 100) / 3;
    const fc = z.forecast_red_in_s != null && lv !== "red" ? `<text class="forecast" x="${x}" y="${y - r - 6}" text-anchor="middle">red in ${Math.ceil(z.forecast_red_in_s / 60)} min</text>` : "";
    out += `<g class="zone" data-zone="${esc(z.id)}" data-level="${lv}"><title>${esc(z.name)}: ${levelText(lv)}</title>` +
      `<circle class="level-${lv}" cx="${x}" cy="${y}" r="${r}"></circle>` +
      `<text class="zone-label" x="${x}" y="${y + r + 18}" text-anchor="middle"><tspan class="level level-${lv}">${levelText(lv)}</tspan>${z.density != null ? ` ${num(z.density, 2)}/m² · ${z.people}` : ""}` +
      `<tspan class="zone-name" x="${x}" dy="18">${esc(shortName(z.name))}</tspan></text>${fc}</g>`;
  }
  svg.innerHTML = out;
}

function renderZones() {
  $("#zones tbody").innerHTML = state.zones.map((z) => {
    const lv = levelOf(z);
    const fc = z.forecast_red_in_s != null ? `red in ${Math.ceil(z.forecast_red_in_s / 60)} min` : "—";
    return `<tr data-zone="${esc(z.id)}" data-level="${lv}"><th scope="row">${esc(z.name)}</th>` +
      `<td class="level level-${lv}">${levelText(lv)}</td><td class="num">${num(z.density, 2)}</td>` +
      `<td class="num">${z.people ?? "—"}</td><td>${fc}</td><td>${fmtTime(z.observation_date_time)}</td></tr>`;
  }).join("");
}

function renderAlerts() {
  const names = Object.fromEntries(state.zones.map((z) => [z.id, z.name]));
  $("#alerts").innerHTML = state.alerts.length
    ? state.alerts.map((a) => {
      const what = a.kind === "forecast"
        ? `forecast: red expected in ${Math.ceil((a.red_in_s || 0) / 60)} min`
        : `${levelText(a.previous)} → <span class="level level-${esc(a.level)}">${esc(a.level)}</span>`;
      return `<li class="alert" data-zone="${esc(a.zone)}" data-kind="${esc(a.kind)}" data-level="${esc(a.level)}"><time datetime="${esc(a.ts)}">${fmtTime(a.ts)}</time>` +
        `<strong>${esc(names[a.zone] || a.zone)}</strong>: ${what} (${num(a.density, 2)}/m², ${esc(a.people)} people)</li>`;
    }).join("")
    : "<li>no alerts yet</li>";
}

function forecastAt(l, minutes) {
  const p = (l.forecast || []).find((f) => f.minutes === minutes);
  return p ? (p.availableSpotNumber ?? p.available_spot_number) : "—";
}

function renderLots() {
  const d = state.district;
  const p = d && d.parking;
  $("#district-free").textContent = p && p.availableSpotNumber != null ? `(${p.availableSpotNumber} of ${p.totalSpotNumber ?? "?"} free in the district)` : "";
  $("#lots tbody").innerHTML = state.lots.map((l) => `<tr data-lot="${esc(l.id)}"><th scope="row">${esc(l.name)}</th>` +
    `<td class="num free">${l.availableSpotNumber ?? "—"}</td><td class="num">${esc(l.totalSpotNumber)}</td>` +
    `<td class="status-${esc(l.status || "none")}">${esc(l.status || "no data")}</td><td>${esc(l.occupancyTrend || "—")}</td>` +
    `<td class="num">${forecastAt(l, 15)}</td><td class="num">${forecastAt(l, 30)}</td><td class="num">${forecastAt(l, 60)}</td>` +
    `<td>${fmtTime(l.observationDateTime)}</td></tr>`).join("");
}

function renderSales() {
  const s = state.sales;
  if (!s) return;
  const d = s.district;
  $("#district-sales").textContent = d ? `District ${fmtTime(d.window_start)}–${fmtTime(d.window_end)}: ${d.transactions} transactions, ${d.amount}, ${d.sales_per_m2 ?? "—"} per m²` : "District: no window closed yet";
  $("#sales tbody").innerHTML = s.zones.map((z) => {
    const w = z.window;
    if (!w) return `<tr data-zone="${esc(z.zone)}"><th scope="row">${esc(z.name)}</th><td colspan="5">no window closed yet</td></tr>`;
    const tickets = Object.entries(w.by_category || {}).map(([k, f]) => `${esc(k)} ${esc(f.avg_ticket ?? "—")}`).join(", ");
    return `<tr data-zone="${esc(z.zone)}"><th scope="row">${esc(z.name)}</th><td>${fmtTime(w.window_start)}–${fmtTime(w.window_end)}</td>` +
      `<td class="num">${esc(w.transactions)}</td><td class="num">${esc(w.amount)} ${esc(w.currency)}</td><td class="num">${esc(w.sales_per_m2 ?? "—")}</td><td>${tickets || "—"}</td></tr>`;
  }).join("");
}

function renderDestinations() {
  const sel = $("#destination");
  if (sel.options.length) return;
  sel.innerHTML = state.zones.filter((z) => z.lat != null).map((z) => `<option value="${z.lat},${z.lon}">${esc(z.name)}</option>`).join("");
}

async function recommend(ev) {
  ev.preventDefault();
  const near = $("#destination").value, arrive = $("#arrive-in").value || "0";
  const list = $("#recommendations");
  try {
    const r = await getJson(`/api/v1/lots/recommend?near=${encodeURIComponent(near)}&arrive_in=${encodeURIComponent(arrive)}`);
    list.innerHTML = r.recommendations.slice(0, 3).map((x) => `<li data-lot="${esc(x.id)}"><strong>${esc(x.name)}</strong>` +
      (x.distance_m != null ? `, ${esc(x.distance_m)} m` : "") + `: ${esc(x.expected_free_at_arrival ?? "?")} free expected at arrival — ${esc(x.reason)}</li>`).join("");
  } catch (e) {
    list.innerHTML = `<li>no recommendation: ${esc(e.message)}</li>`;
  }
}

// Several districts: a selector, which keeps the choice in the address so a
// reload or a shared link shows the same district.
async function districts() {
  try {
    const list = await getJson("/api/v1/districts");
    const select = $("#district");
    select.innerHTML = list.map((d) => `<option value="${esc(d.id)}">${esc(d.name)}</option>`).join("");
    select.value = districtId || (list[0] && list[0].id) || "";
    select.hidden = list.length < 2;
    select.addEventListener("change", () => {
      districtId = select.value;
      history.replaceState(null, "", `?district=${encodeURIComponent(districtId)}`);
      refresh();
    });
  } catch (e) {
    setConnection(false, e.message);
  }
}

// The live stream: an alert refreshes at once. EventSource reconnects by itself.
function listen() {
  const es = new EventSource("/api/v1/stream");
  es.addEventListener("alert", () => refresh());
  es.onerror = () => setConnection(false, "live stream interrupted");
  es.onopen = () => setConnection(true);
}

$("#recommend").addEventListener("submit", recommend);
districts();
refresh();
setInterval(refresh, REFRESH_MS);
setInterval(renderAge, 1000);
listen();
