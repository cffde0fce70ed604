// The live cameras panel of the reidkit web page: each camera's health (GET /cameras/health), refreshed every few
// seconds while the panel is open. A classic script beside app.js, whose helpers ($, apiJson, report, say) it uses
// once the page is wired; server strings go in as text only.
"use strict";

const CAMERAS_POLL_MS = 3000;
let camerasPoller = null;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function utcTime(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString().slice(11, 19) : "-";
}

async function loadCameraHealth() {
  try {
    const { cameras } = await apiJson("/cameras/health");
    const rows = cameras.map((camera) => {
      const row = document.createElement("tr");
      row.className = "camera-" + camera.state;
      row.append(
        cell(camera.camera),
        cell(camera.state + (camera.error ? " (" + camera.error + ")" : "")),
        cell(camera.fps.toFixed(1)),
        cell(camera.lag_s === null ? "-" : camera.lag_s.toFixed(1) + " s"),
        cell(utcTime(camera.last_frame_epoch)),
        cell(String(camera.reconnects)),
        cell(String(camera.frames_dropped)),
      );
      return row;
    });
    $("live-cameras").tBodies[0].replaceChildren(...rows);
    say($("cameras-status"), cameras.length ? cameras.length + " live camera(s)" : "No live camera is registered.");
  } catch (error) {
    stopCameraHealth();
    report($("cameras-status"), error);
  }
}

function stopCameraHealth() {
  if (camerasPoller !== null) clearInterval(camerasPoller);
  camerasPoller = null;
}

document.querySelectorAll(".tab").forEach((tab) => {
  tab.addEventListener("click", () => {
    stopCameraHealth();
    if (tab.dataset.panel !== "cameras-panel") return;
    loadCameraHealth();
    camerasPoller = setInterval(loadCameraHealth, CAMERAS_POLL_MS);
  });
});
