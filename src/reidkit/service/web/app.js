// The reidkit web page: plain JavaScript against /api/v1, no framework, no build step (panels.js holds the
// operators' and admins' panels).
//
// Two rules keep it safe with surveillance data and user-typed names:
// - every string from the server (camera names, file names, messages, audit entries) goes into the page with
//   textContent or as an attribute value, never as HTML; the Content-Security-Policy forbids inline script anyway;
// - images are fetched with the Bearer header and shown from blob: URLs (an <img src> cannot send the header, and
//   a token in a URL would end up in logs), released again when the view that showed them is replaced.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "reidkit.token";
const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };
const FINISHED = new Set(["done", "failed", "cancelled", "interrupted"]);
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const state = { token: null, role: null, query: null, queryName: null, queryTrack: null, box: null, image: null,
                hit: null, visits: [], job: null, poller: null, auditBefore: null };
const blobUrls = { hits: [], frame: [], query: [] };

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- requests -------------------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options, headers: { ...(options.headers || {}), Authorization: "Bearer " + state.token },
  });
  if (!response.ok) throw await failure(response);
  return response;
}

async function apiJson(path, options) {
  return (await api(path, options)).json();
}

async function failure(response) {
  let code = "http_" + response.status;
  let message = response.status + " " + response.statusText;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch (ignored) { /* not JSON: keep the status line */ }
  if (response.status === 429 && response.headers.get("Retry-After")) {
    message += " (retry in " + response.headers.get("Retry-After") + " s)";
  }
  return new ApiFailure(response.status, code, message);
}

// An image the API serves, as a blob: URL that `group` owns until release(group).
async function blobUrl(path, group) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  blobUrls[group].push(url);
  return url;
}

function release(group) {
  blobUrls[group].forEach((url) => URL.revokeObjectURL(url));
  blobUrls[group] = [];
}

// Show `error` in the status line `element`; a refused token (revoked meanwhile) goes back to the log-in form.
function report(element, error) {
  if (error instanceof ApiFailure && error.status === 401 && state.token) {
    logout(error.message);
    return;
  }
  say(element, error.message || String(error), true);
}

function say(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ---- log in ---------------------------------------------------------------------------------------------------

async function login(token) {
  state.token = token;
  try {
    const me = await apiJson("/me");
    sessionStorage.setItem(TOKEN_KEY, token);
    state.role = me.role;
    $("who-name").textContent = me.name;
    $("who-role").textContent = me.role;
    $("who").hidden = false;
    $("login").hidden = true;
    $("app").hidden = false;
    $("login-error").textContent = "";
    document.querySelectorAll("[data-role]").forEach((element) => {
      element.hidden = ROLE_RANK[state.role] < ROLE_RANK[element.dataset.role];
    });
    showPanel("search-panel");
    loadCameras();
    loadAttributes();
    startAlerts(); // alerts.js: the alerts stream, followed whichever panel is open
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = error instanceof ApiFailure
      ? "Refused (" + error.status + "): " + error.message : "The server cannot be reached: " + error.message;
  }
}

function logout(message = "") {
  stopPolling();
  sessionStorage.removeItem(TOKEN_KEY);
  Object.keys(blobUrls).forEach(release);
  if (message) sessionStorage.setItem("reidkit.logout", message);
  // Nothing of the last user's searches may stay on screen, or in memory, for the next one.
  window.location.reload();
}

// ---- panels ---------------------------------------------------------------------------------------------------

function showPanel(id) {
  document.querySelectorAll(".panel").forEach((panel) => { panel.hidden = panel.id !== id; });
  document.querySelectorAll(".tab").forEach((tab) => {
    tab.setAttribute("aria-selected", String(tab.dataset.panel === id));
  });
  if (id === "upload-panel") loadVideos();
  if (id === "audit-panel") loadAudit(true);
}

async function loadCameras() {
  try {
    const { cameras } = await apiJson("/cameras");
    const select = $("camera");
    select.replaceChildren(new Option("all cameras", ""));
    cameras.forEach((camera) => select.add(new Option(camera.name, camera.name)));
  } catch (error) {
    report($("search-status"), error);
  }
}

// ---- the query photo and its box ------------------------------------------------------------------------------

// `track`: the id when the query is a stored track (its crop shown, Search repeats the track search).
async function setQuery(blob, name, track = null) {
  release("query");
  const image = new Image();
  image.src = URL.createObjectURL(blob);
  blobUrls.query.push(image.src);
  try {
    await image.decode();
  } catch (error) {
    say($("search-status"), "That file is not an image this browser can show: " + name, true);
    return;
  }
  Object.assign(state, { query: blob, queryName: name, queryTrack: track, image, box: null });
  $("query-name").textContent = track === null ? name : name + ": all its crops (one shown)";
  const canvas = $("query-canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  canvas.hidden = false;
  fitCanvas();
  $("drop-hint").classList.add("small");
  drawQuery();
  say($("search-status"), "");
}

// Shown as large as the drop zone allows, small crops scaled up too, so that a box is easy to draw; box
// coordinates stay in the image's own pixels (imagePoint).
function fitCanvas() {
  const canvas = $("query-canvas");
  const room = $("drop").clientWidth - 24;
  const scale = Math.min(room / canvas.width, 360 / canvas.height);
  canvas.style.width = Math.round(canvas.width * scale) + "px";
  canvas.style.height = Math.round(canvas.height * scale) + "px";
}

function drawQuery() {
  const canvas = $("query-canvas");
  const context = canvas.getContext("2d");
  context.drawImage(state.image, 0, 0);
  $("box-text").textContent = state.box ? state.box.map(Math.round).join(",") : "none (the whole photo)";
  if (!state.box) return;
  const [x0, y0, x1, y1] = state.box;
  context.lineWidth = Math.max(2, canvas.width / 200);
  context.strokeStyle = "#00e676";
  context.strokeRect(x0, y0, x1 - x0, y1 - y0);
}

// Pointer position in the image's own pixels (the canvas is scaled down by CSS).
function imagePoint(event) {
  const canvas = $("query-canvas");
  const rect = canvas.getBoundingClientRect();
  const clamp = (value, limit) => Math.min(limit, Math.max(0, value));
  return [clamp((event.clientX - rect.left) * canvas.width / rect.width, canvas.width),
          clamp((event.clientY - rect.top) * canvas.height / rect.height, canvas.height)];
}

function setUpBoxDrawing() {
  const canvas = $("query-canvas");
  let start = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.image || state.queryTrack !== null) return;
    canvas.setPointerCapture(event.pointerId);
    start = imagePoint(event);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!start) return;
    const [x, y] = imagePoint(event);
    state.box = [Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y)];
    drawQuery();
  });
  canvas.addEventListener("pointerup", () => {
    // A click, or a sliver too small to hold a person, means "no box".
    if (state.box && (state.box[2] - state.box[0] < 8 || state.box[3] - state.box[1] < 8)) state.box = null;
    start = null;
    drawQuery();
  });
}

// ---- search ---------------------------------------------------------------------------------------------------

function filterFields(form) {
  form.append("top_k", $("top-k").value || "10");
  if ($("camera").value) form.append("camera", $("camera").value);
  if ($("after").value) form.append("after", $("after").value);
  if ($("before").value) form.append("before", $("before").value);
  if ($("rerank").checked) form.append("rerank", "true");
  return form;
}

async function searchPhoto() {
  if (state.queryTrack !== null) {
    await searchTrack(state.queryTrack);
    return;
  }
  if (!state.query && described.size) {
    const form = appendDescription(filterFields(new FormData()));
    form.delete("rerank"); // re-ranking orders by appearance: a description alone has none
    await runSearch("/search/attributes", form, "description " + describedText());
    return;
  }
  if (!state.query) {
    say($("search-status"), "Choose or drop a photo, or describe the person, first.", true);
    return;
  }
  const form = new FormData();
  form.append("image", state.query, state.queryName);
  if (state.box) form.append("box", state.box.map(Math.round).join(","));
  await runSearch("/search", appendDescription(filterFields(form)), "photo " + state.queryName + describedSuffix());
}

async function searchTrack(trackId) {
  await runSearch("/search/track/" + trackId, appendDescription(filterFields(new FormData())),
                  "track " + trackId + describedSuffix());
}

function describedSuffix() {
  return described.size ? " described as " + describedText() : "";
}

async function runSearch(path, form, what) {
  const status = $("search-status");
  say(status, "Searching with the " + what + "…");
  $("search-button").disabled = true;
  try {
    const result = await apiJson(path, { method: "POST", body: form });
    const notes = result.notes.length ? " " + result.notes.join(" ") : "";
    say(status, result.hits.length + " hits for the " + what + " among " + result.candidates +
        " candidates." + notes);
    showTimeline(result.trajectory);
    await showHits(result.hits);
  } catch (error) {
    // The last search's hits must not stay on screen under this query's error, as if they were its answer.
    showTimeline([]);
    await showHits([]);
    report(status, error);
  } finally {
    $("search-button").disabled = false;
  }
}

function when(iso, seconds) {
  if (iso) return iso.replace("T", " ").replace(/\.\d+/, "");
  return seconds.toFixed(1) + " s into the video";
}

async function showHits(hits) {
  release("hits");
  const grid = $("hits");
  grid.replaceChildren();
  $("hits-title").hidden = hits.length === 0;
  const loads = hits.map(async (hit) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "hit";
    card.dataset.trackId = String(hit.track_id);
    card.title = "Open the frame of this hit";
    const image = document.createElement("img");
    image.alt = "crop of hit " + hit.rank;
    card.append(image, line("rank", "#" + hit.rank + "  score " + hit.score.toFixed(3)),
                line("camera", hit.camera), line("time", when(hit.time, hit.time_s)));
    if (hit.person_id !== null && hit.person_id !== undefined) card.append(line("person", "person " + hit.person_id));
    const seen = attributeSummary(hit.attributes);
    if (seen) card.append(line("attributes", seen));
    card.addEventListener("click", () => openFrame(hit));
    grid.append(card);
    try {
      image.src = await blobUrl(hit.crop_url.slice(API.length), "hits");
    } catch (error) {
      image.alt = "crop unavailable: " + error.message;
    }
  });
  await Promise.all(loads);
}

function line(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

// ---- the trajectory as a timeline: one row per camera, a bar per visit ------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, name);
  Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, String(value)));
  if (text !== null) element.textContent = text;
  return element;
}

// Drawn at the box's own width in CSS pixels (no viewBox scaling), so that labels keep their size on a phone.
function showTimeline(visits) {
  state.visits = visits;
  const box = $("timeline");
  box.replaceChildren();
  $("timeline-title").hidden = visits.length === 0;
  if (visits.length === 0) return;
  // Wall-clock times when every visit has one (videos ingested with a start time), else seconds into the video.
  const wall = visits.every((visit) => visit.first_seen && visit.last_seen);
  const start = (visit) => wall ? Date.parse(visit.first_seen + zone(visit.first_seen)) / 1000 : visit.first_time_s;
  const end = (visit) => wall ? Date.parse(visit.last_seen + zone(visit.last_seen)) / 1000 : visit.last_time_s;
  const cameras = [...new Set(visits.map((visit) => visit.camera))];
  const t0 = Math.min(...visits.map(start));
  const t1 = Math.max(...visits.map(end));
  const span = Math.max(t1 - t0, 1);
  const width = Math.max(240, Math.min(box.clientWidth, 960));
  const labelWidth = Math.round(Math.min(190, width * 0.3)), rowHeight = 28, top = 8;
  const plot = width - labelWidth - 20;
  const narrow = plot < 320;  // no room for both axis times on one line: the last goes on a second
  const height = top + cameras.length * rowHeight + (narrow ? 48 : 30);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                             "aria-label": "timeline of the person's sightings per camera" });
  cameras.forEach((camera, row) => {
    const y = top + row * rowHeight;
    chart.append(svg("rect", { x: labelWidth, y, width: plot, height: rowHeight - 6, class: "lane" }));
    const label = svg("g", { class: "camera-row" });
    label.append(svg("title", {}, camera), svg("text", { x: labelWidth - 8, y: y + rowHeight / 2,
      class: "camera-label", "text-anchor": "end", "dominant-baseline": "middle" },
      shorten(camera, Math.floor((labelWidth - 8) / 8))));
    chart.append(label);
  });
  visits.forEach((visit) => {
    const row = cameras.indexOf(visit.camera);
    const x = labelWidth + ((start(visit) - t0) / span) * plot;
    const bar = svg("rect", { x, y: top + row * rowHeight + 3, height: rowHeight - 12, rx: 3, class: "visit",
                              width: Math.max(4, ((end(visit) - start(visit)) / span) * plot) });
    bar.append(svg("title", {}, visit.camera + ": " + when(visit.first_seen, visit.first_time_s) + " to " +
                   when(visit.last_seen, visit.last_time_s) + ", " + visit.sightings + " sightings, best score " +
                   visit.best_score.toFixed(3) +
                   (visit.confidence === null || visit.confidence === undefined ? "" :
                    ", sure " + visit.confidence.toFixed(2))));
    chart.append(bar);
  });
  const axisY = top + cameras.length * rowHeight + 16;
  const first = visits.reduce((a, b) => (start(a) <= start(b) ? a : b));
  const last = visits.reduce((a, b) => (end(a) >= end(b) ? a : b));
  chart.append(svg("text", { x: labelWidth, y: axisY, class: "axis" }, when(first.first_seen, first.first_time_s)));
  chart.append(svg("text", { x: labelWidth + plot, y: narrow ? axisY + 18 : axisY, class: "axis",
                             "text-anchor": "end" }, when(last.last_seen, last.last_time_s)));
  box.append(chart);
}

// Naive ISO times are UTC on the server (store.rows.epoch_seconds); say so, or Date.parse reads local time.
function zone(iso) {
  return /(Z|[+-]\d\d:\d\d)$/.test(iso) ? "" : "Z";
}

function shorten(text, limit) {
  return text.length <= limit ? text : text.slice(0, limit - 1) + "…";
}

// ---- a hit's frame --------------------------------------------------------------------------------------------

async function openFrame(hit) {
  state.hit = hit;
  release("frame");
  const image = $("frame-image");
  image.removeAttribute("src");
  $("frame-title").textContent = "Track " + hit.track_id + ", camera " + hit.camera + ", " +
    when(hit.time, hit.time_s) + ", frame " + hit.frame_index;
  say($("frame-status"), "loading the frame…");
  $("frame-query").disabled = true;
  $("frame-view").hidden = false;
  try {
    image.src = await blobUrl(hit.frame_url.slice(API.length), "frame");
    await image.decode();
    say($("frame-status"), "");
    $("frame-query").disabled = false;
  } catch (error) {
    report($("frame-status"), error);
  }
}

// The same frame without the red box (it would end up in the crop) becomes the query photo: draw a box on it.
async function queryFromFrame() {
  const hit = state.hit;
  try {
    const blob = await (await api(hit.frame_url.slice(API.length) + "?draw_box=false")).blob();
    closeFrame();
    showPanel("search-panel");
    await setQuery(blob, "frame-" + hit.detection_id + ".jpg");
    say($("search-status"), "Drag a box around the person on the frame, then search.");
  } catch (error) {
    report($("frame-status"), error);
  }
}

// "More of this track": the track becomes the query, and the query panel shows it (the hit's crop), not the
// photo of the search before.
async function queryFromTrack() {
  const hit = state.hit;
  closeFrame();
  showPanel("search-panel");
  try {
    await setQuery(await (await api(hit.crop_url.slice(API.length))).blob(), "track " + hit.track_id, hit.track_id);
  } catch (error) {
    report($("search-status"), error);
    return;
  }
  await searchTrack(hit.track_id);
}

function closeFrame() {
  $("frame-view").hidden = true;
  release("frame");
}

// ---- wiring ---------------------------------------------------------------------------------------------------

function start() {
  const farewell = sessionStorage.getItem("reidkit.logout");
  if (farewell) {
    sessionStorage.removeItem("reidkit.logout");
    $("login-error").textContent = "Logged out: " + farewell;
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    login($("token").value.trim());
  });
  $("logout").addEventListener("click", () => logout());
  document.querySelectorAll(".tab").forEach((tab) => {
    tab.addEventListener("click", () => showPanel(tab.dataset.panel));
  });
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    if (file) setQuery(file, file.name);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) setQuery(file, file.name);
  });
  setUpBoxDrawing();
  window.addEventListener("resize", () => {
    if (state.image) fitCanvas();
    if (state.visits.length) showTimeline(state.visits);
  });
  $("clear-box").addEventListener("click", () => { state.box = null; if (state.image) drawQuery(); });
  $("clear-description").addEventListener("click", () => { described.clear(); showDescription(); });
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); searchPhoto(); });
  $("frame-close").addEventListener("click", closeFrame);
  $("frame-query").addEventListener("click", queryFromFrame);
  $("frame-track").addEventListener("click", queryFromTrack);
  $("upload-form").addEventListener("submit", upload);
  $("job-cancel").addEventListener("click", cancelJob);
  $("job-resume").addEventListener("click", resumeJob);
  $("audit-more").addEventListener("click", () => loadAudit(false));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved);
}

start();
