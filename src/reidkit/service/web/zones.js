// The zones panel: pick a camera, see its frame (or its heat map), click points on it to draw a zone, name and save
// it (operators and admins), and read who was in each zone for how long. A classic script loaded after app.js (it
// wires its controls at once, with app.js's globals: $, api, apiJson, say, report, cell, state); server strings go in
// as text only, images from blob: URLs.
"use strict";

const zonesView = { camera: "", frame: null, heat: null, zones: [], points: [], urls: [] };

async function openZonesPanel() {
  try {
    const { cameras } = await apiJson("/cameras");
    const select = $("zones-camera");
    const chosen = select.value;
    select.replaceChildren(...cameras.map((camera) => new Option(camera.name, camera.name)));
    if (cameras.some((camera) => camera.name === chosen)) select.value = chosen;
    if (select.value) await showCamera(select.value);
    else say($("zones-status"), "The store has no cameras yet.");
  } catch (error) {
    report($("zones-status"), error);
  }
}

async function zonesImage(path) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  zonesView.urls.push(url);
  const image = new Image();
  image.src = url;
  await image.decode();
  return image;
}

async function showCamera(camera, done = "") {
  zonesView.urls.forEach((url) => URL.revokeObjectURL(url));
  Object.assign(zonesView, { camera, frame: null, heat: null, zones: [], points: [], urls: [] });
  const query = "?camera=" + encodeURIComponent(camera);
  say($("zones-status"), "Loading camera " + camera + "...");
  try {
    zonesView.frame = await zonesImage("/zones/frame" + query);
    zonesView.zones = (await apiJson("/zones" + query)).zones;
    if ($("zones-heat").checked) zonesView.heat = await zonesImage("/zones/heatmap" + query);
    drawZones();
    listZones();
    say($("zones-status"), done);
    await loadZoneReport();
  } catch (error) {
    report($("zones-status"), error);
  }
}

// The frame (or heat map) in its own pixels; the canvas is scaled by CSS to the panel's width.
function drawZones() {
  const canvas = $("zones-canvas");
  const background = zonesView.heat || zonesView.frame;
  if (!background) return;
  canvas.width = background.naturalWidth;
  canvas.height = background.naturalHeight;
  canvas.style.width = Math.min(canvas.width, $("zones-panel").clientWidth - 24) + "px";
  canvas.hidden = false;
  const context = canvas.getContext("2d");
  context.drawImage(background, 0, 0);
  const line = Math.max(2, canvas.width / 300);
  context.lineWidth = line;
  context.font = Math.max(12, Math.round(canvas.width / 45)) + "px sans-serif";
  if (!zonesView.heat) { // the heat map comes with its zones drawn
    zonesView.zones.forEach((zone) => outline(context, zone.polygon, "#50dcff", true, zone.name));
  }
  outline(context, zonesView.points, "#00e676", false, null);
  zonesView.points.forEach(([x, y]) => context.fillRect(x - 2 * line, y - 2 * line, 4 * line, 4 * line));
  $("zone-points").textContent = zonesView.points.length + " points";
}

function outline(context, points, colour, closed, name) {
  if (!points.length) return;
  context.strokeStyle = colour;
  context.fillStyle = colour;
  context.beginPath();
  points.forEach(([x, y], index) => (index ? context.lineTo(x, y) : context.moveTo(x, y)));
  if (closed) context.closePath();
  context.stroke();
  if (name) {
    const top = points.reduce((best, point) => (point[1] < best[1] ? point : best));
    context.fillText(name, top[0] + 4, top[1] - 4);
  }
}

function addZonePoint(event) {
  if (!zonesView.frame || ROLE_RANK[state.role] < ROLE_RANK.operator) return;
  const canvas = $("zones-canvas");
  const rect = canvas.getBoundingClientRect();
  const clamp = (value, limit) => Math.round(Math.min(limit, Math.max(0, value)) * 10) / 10;
  zonesView.points.push([clamp((event.clientX - rect.left) * canvas.width / rect.width, canvas.width),
                         clamp((event.clientY - rect.top) * canvas.height / rect.height, canvas.height)]);
  drawZones();
}

async function saveZone(event) {
  event.preventDefault();
  const body = { camera: zonesView.camera, name: $("zone-name").value, polygon: zonesView.points };
  try {
    const saved = await apiJson("/zones", {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    zonesView.points = [];
    $("zone-name").value = "";
    await showCamera(zonesView.camera, "Saved zone " + saved.zone.name + " (" + saved.zone.polygon.length +
                     " points).");
  } catch (error) {
    report($("zones-status"), error);
  }
}

async function deleteZone(zone) {
  if (!window.confirm("Remove zone " + zone.name + " of camera " + zone.camera + "?")) return;
  try {
    const query = "?camera=" + encodeURIComponent(zone.camera) + "&name=" + encodeURIComponent(zone.name);
    await api("/zones" + query, { method: "DELETE" });
    await showCamera(zonesView.camera);
  } catch (error) {
    report($("zones-status"), error);
  }
}

function listZones() {
  const operator = ROLE_RANK[state.role] >= ROLE_RANK.operator;
  $("zones-list").tBodies[0].replaceChildren(...zonesView.zones.map((zone) => {
    const row = document.createElement("tr");
    row.append(cell(zone.name), cell(zone.polygon.length));
    const actions = cell("");
    if (operator) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.addEventListener("click", () => deleteZone(zone));
      actions.append(remove);
    }
    row.append(actions);
    return row;
  }));
}

function reportQuery(extra = "") {
  return "/zones/report?camera=" + encodeURIComponent(zonesView.camera) + "&bucket=" +
    encodeURIComponent($("zones-bucket").value) + extra;
}

async function loadZoneReport() {
  if (!zonesView.zones.length) {
    ["zones-summary", "zones-presence", "zones-counts"].forEach((id) => $(id).tBodies[0].replaceChildren());
    $("zones-chart").replaceChildren();
    return;
  }
  const found = await apiJson(reportQuery());
  fillTable("zones-summary", found.zones, (z) => [z.name, z.subjects, z.entries, z.exits, z.dwell_s.toFixed(1)]);
  fillTable("zones-presence", found.presence, (p) => [p.zone, p.subject + " " + p.subject_id, p.entries, p.exits,
                                                       p.dwell_s.toFixed(1), p.first_inside, p.last_inside]);
  const busy = found.counts.filter((c) => c.present || c.entries || c.exits);
  fillTable("zones-counts", busy, (c) => [c.zone, c.bucket_start, c.present, c.entries, c.exits,
                                          c.dwell_s.toFixed(1)]);
  $("zones-by").textContent = found.by === "person" ? "people (the store's clustering)" : "tracks";
  drawCounts(found.counts);
}

// One lane per zone: a bar per time bucket, as tall as the number of tracks or people inside during it.
function drawCounts(counts) {
  const box = $("zones-chart");
  box.replaceChildren();
  const names = [...new Set(counts.map((count) => count.zone))];
  if (!names.length) return;
  const width = Math.max(300, Math.min(box.clientWidth || 800, 1000));
  const lane = 46;
  const label = 140;
  const picture = svg("svg", { width, height: names.length * lane + 18, role: "img",
                               "aria-label": "people present per zone and time bucket" });
  names.forEach((name, row) => {
    const mine = counts.filter((count) => count.zone === name);
    const most = Math.max(1, ...mine.map((count) => count.present));
    const step = (width - label) / mine.length;
    const top = row * lane;
    picture.append(svg("text", { x: 0, y: top + lane / 2, class: "camera-label" }, shorten(name, 18)));
    picture.append(svg("text", { x: 0, y: top + lane / 2 + 14, class: "axis" }, "max " + most));
    picture.append(svg("rect", { x: label, y: top + 4, width: width - label, height: lane - 8, class: "lane" }));
    mine.forEach((count, index) => {
      if (!count.present) return;
      const tall = (lane - 10) * count.present / most;
      const bar = svg("rect", { x: label + index * step, y: top + lane - 5 - tall, width: Math.max(1, step - 1),
                                height: tall, class: "visit" });
      bar.append(svg("title", {}, count.bucket_start + ": " + count.present + " inside, " + count.entries +
                     " entries"));
      picture.append(bar);
    });
  });
  const first = counts[0].bucket_start;
  const last = counts[counts.length - 1].bucket_start;
  picture.append(svg("text", { x: label, y: names.length * lane + 14, class: "axis" }, first + " ... " + last));
  box.append(picture);
}

function fillTable(id, rows, values) {
  $(id).tBodies[0].replaceChildren(...rows.map((item) => {
    const row = document.createElement("tr");
    values(item).forEach((value) => row.append(cell(value)));
    return row;
  }));
}

async function downloadZoneCsv(table) {
  try {
    const blob = await (await api(reportQuery("&format=csv&table=" + table))).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "zones-" + table + ".csv";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    report($("zones-status"), error);
  }
}

function setUpZones() {
  document.querySelector('.tab[data-panel="zones-panel"]').addEventListener("click", openZonesPanel);
  $("zones-camera").addEventListener("change", () => showCamera($("zones-camera").value));
  $("zones-heat").addEventListener("change", () => showCamera(zonesView.camera));
  $("zones-bucket").addEventListener("change", () => loadZoneReport().catch((e) => report($("zones-status"), e)));
  $("zones-canvas").addEventListener("click", addZonePoint);
  $("zone-form").addEventListener("submit", saveZone);
  $("zone-undo").addEventListener("click", () => { zonesView.points.pop(); drawZones(); });
  $("zone-clear").addEventListener("click", () => { zonesView.points = []; drawZones(); });
  $("zones-csv").addEventListener("click", () => downloadZoneCsv("presence"));
  $("zones-counts-csv").addEventListener("click", () => downloadZoneCsv("counts"));
}

setUpZones();
