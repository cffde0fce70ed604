// People now: the people linked online across live cameras (GET /live/people), where each is now, and a person's
// live trajectory with a crop per sighting. Refreshed every few seconds while the panel is shown.
"use strict";

const LIVE_REFRESH_MS = 5000;
let liveTimer = null;

async function loadLivePeople() {
  clearTimeout(liveTimer);
  if ($("live-people-panel").hidden) return;
  try {
    const { people } = await apiJson("/live/people?limit=50");
    const body = $("live-people").querySelector("tbody");
    body.replaceChildren();
    people.forEach((person) => {
      const row = document.createElement("tr");
      [person.id, person.camera_now, person.last_seen.replace("T", " ").slice(0, 19), person.tracks]
        .forEach((value) => row.append(cell(String(value))));
      const show = document.createElement("button");
      show.type = "button";
      show.textContent = "Trajectory";
      show.addEventListener("click", () => showLivePerson(person.id));
      const action = document.createElement("td");
      action.append(show);
      row.append(action);
      body.append(row);
    });
    say($("live-people-status"), people.length ? people.length + " people seen lately"
      : "No live people yet: they appear while `reidkit watch` runs on this store.");
  } catch (error) {
    report($("live-people-status"), error);
  }
  liveTimer = setTimeout(loadLivePeople, LIVE_REFRESH_MS);
}

async function showLivePerson(personId) {
  release("live");
  const list = $("live-trajectory");
  list.replaceChildren();
  try {
    const { person, trajectory } = await apiJson("/live/people/" + personId);
    $("live-person-title").textContent = "Person " + person.id + ": now on " + person.camera_now + ", last seen "
      + person.last_seen.replace("T", " ").slice(0, 19) + " UTC";
    for (const sighting of trajectory) {
      const item = document.createElement("li");
      const img = document.createElement("img");
      img.alt = "track " + sighting.track_id;
      img.src = await blobUrl(sighting.crop_url.slice(API.length), "live");
      item.append(img, document.createTextNode(sighting.camera + " " + sighting.first_seen.slice(11, 19) + "–"
        + sighting.last_seen.slice(11, 19) + " (track " + sighting.track_id + ")"));
      list.append(item);
    }
  } catch (error) {
    report($("live-people-status"), error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  blobUrls.live = [];
  // after app.js's own handler has shown the panel
  document.querySelector('[data-panel="live-people-panel"]')
    .addEventListener("click", () => setTimeout(loadLivePeople, 0));
});
