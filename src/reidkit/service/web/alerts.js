// The alerts panel of the reidkit web page: alerts as they are raised (server-sent events from
// /api/v1/alerts/stream), the watch list, and enrolment from a photo or a hit's track. A classic script loaded after
// app.js (it uses its helpers); the same rule holds: server strings go in as text only.
//
// The stream is read with fetch() and a body reader, not EventSource: EventSource cannot send the Authorization
// header, and the token must never go into a URL (server and proxy logs keep URLs).
"use strict";

const MAX_ALERTS_SHOWN = 50;
const RECONNECT_MS = 2000;
blobUrls.alerts = [];
const alertsState = { last: null, unseen: 0, following: false };

// ---- the stream -----------------------------------------------------------------------------------------------

async function startAlerts() {
  if (alertsState.following) return;
  alertsState.following = true;
  try {
    const { alerts } = await apiJson("/alerts?limit=20");
    alertsState.last = alerts.length ? alerts[0].id : 0;
    for (const alert of alerts.reverse()) await showAlert(alert, false);
    say($("alerts-status"), alerts.length ? "" : "No alerts yet; new ones appear here as they are raised.");
  } catch (error) {
    report($("alerts-status"), error);
  }
  while (state.token) {
    try {
      await followStream();
    } catch (error) {
      if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) {
        report($("alerts-status"), error);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

// One connection: events until the server ends the stream (it does every hour) or the connection drops.
async function followStream() {
  const after = alertsState.last === null ? "" : "?after=" + alertsState.last;
  const response = await api("/alerts/stream" + after);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event.type === "alert") {
        const alert = JSON.parse(event.data);
        alertsState.last = alert.id;
        await showAlert(alert, true);
      }
    }
  }
}

// An SSE block's fields (comment lines, starting with ":", are keep-alives).
function parseEvent(block) {
  const event = { type: "message", data: "" };
  block.split("\n").forEach((line) => {
    const colon = line.indexOf(":");
    if (colon <= 0) return;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") event.data += value;
  });
  return event;
}

async function showAlert(alert, fresh) {
  const list = $("alerts");
  const card = document.createElement("div");
  card.className = "hit alert" + (fresh ? " fresh" : "");
  card.dataset.alertId = String(alert.id);
  card.dataset.trackId = String(alert.track_id);
  const image = document.createElement("img");
  image.alt = "crop of alert " + alert.id;
  const search = document.createElement("button");
  search.type = "button";
  search.textContent = "Search this track";
  search.addEventListener("click", () => {
    state.hit = { track_id: alert.track_id, crop_url: alert.crop_url };
    queryFromTrack();
  });
  card.append(image, line("person", alert.person.name), line("camera", "camera " + alert.camera),
              line("time", utc(alert.raised_at)),
              line("score", "score " + alert.score.toFixed(3) + ", track " + alert.track_id), search);
  list.prepend(card);
  while (list.children.length > MAX_ALERTS_SHOWN) {
    const gone = list.lastElementChild;
    const url = gone.querySelector("img").src;
    if (url.startsWith("blob:")) URL.revokeObjectURL(url);
    gone.remove();
  }
  if (fresh) {
    alertsState.unseen += $("alerts-panel").hidden ? 1 : 0;
    $("alerts-new").textContent = String(alertsState.unseen);
    $("alerts-new").hidden = alertsState.unseen === 0;
    say($("alerts-status"), "Alert: " + alert.person.name + " on camera " + alert.camera + ".");
  }
  try {
    image.src = await blobUrl(alert.crop_url.slice(API.length), "alerts");
  } catch (error) {
    image.alt = "crop unavailable: " + error.message;
  }
}

// The server's UTC times (ISO 8601 with +00:00) as the page's other times show them, marked UTC.
function utc(iso) {
  return when(iso.replace(/(\+00:00|Z)$/, ""), 0) + " UTC";
}

// ---- the watch list -------------------------------------------------------------------------------------------

async function loadWatchlist() {
  alertsState.unseen = 0;
  $("alerts-new").hidden = true;
  try {
    const { people } = await apiJson("/watchlist");
    const operator = ROLE_RANK[state.role] >= ROLE_RANK.operator;
    const rows = people.map((person) => {
      const row = document.createElement("tr");
      [person.id, person.name, person.note, person.source + (person.stale ? " (another model: not matched)" : ""),
       utc(person.created_at) + " by " + person.created_by].forEach((value) => row.append(cell(value)));
      const actions = cell("");
      if (operator) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "Remove";
        remove.addEventListener("click", () => removePerson(person));
        actions.append(remove);
      }
      row.append(actions);
      return row;
    });
    $("watchlist").tBodies[0].replaceChildren(...rows);
    if (!people.length) say($("watchlist-status"), "Nobody is on the watch list.");
  } catch (error) {
    report($("watchlist-status"), error);
  }
}

async function enrol(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("name", $("enrol-name").value);
  form.append("note", $("enrol-note").value);
  const photo = $("enrol-photo").files[0];
  const track = $("enrol-track").value;
  if (!photo && !track) {
    say($("watchlist-status"), "Choose a photo of the person, or give a track id (from a hit).", true);
    return;
  }
  if (photo) form.append("image", photo, photo.name);
  $("enrol-button").disabled = true;
  try {
    const person = await apiJson(photo ? "/watchlist" : "/watchlist/track/" + track, { method: "POST", body: form });
    say($("watchlist-status"), "Enrolled " + person.name + " (from " + person.source + ").");
    $("enrol-form").reset();
    loadWatchlist();
  } catch (error) {
    report($("watchlist-status"), error);
  } finally {
    $("enrol-button").disabled = false;
  }
}

async function removePerson(person) {
  if (!window.confirm("Take " + person.name + " off the watch list? Their alerts stay.")) return;
  try {
    await api("/watchlist/" + person.id, { method: "DELETE" });
    say($("watchlist-status"), "Removed " + person.name + ".");
    loadWatchlist();
  } catch (error) {
    report($("watchlist-status"), error);
  }
}

// "Watch this person" on a hit's frame: the enrolment form, filled with the hit's track.
function watchHit() {
  const hit = state.hit;
  closeFrame();
  showPanel("alerts-panel");
  loadWatchlist();
  $("enrol-form").reset();
  $("enrol-track").value = String(hit.track_id);
  $("enrol-name").focus();
  say($("watchlist-status"), "Name the person of track " + hit.track_id + " and enrol them.");
}

document.querySelector('[data-panel="alerts-panel"]').addEventListener("click", loadWatchlist);
$("enrol-form").addEventListener("submit", enrol);
$("frame-watch").addEventListener("click", watchHit);
