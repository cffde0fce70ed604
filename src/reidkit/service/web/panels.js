// The operators' and admins' panels of the reidkit web page: uploads and their ingest jobs, the store's videos, the
// audit log. A classic script beside app.js (loaded first, both deferred): they share one global scope, and these
// functions run only once app.js has wired the page. The same rule holds: server strings go in as text only.
"use strict";

// ---- uploads and ingest jobs ----------------------------------------------------------------------------------

function upload(event) {
  event.preventDefault();
  const file = $("video-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("camera", $("video-camera").value);
  if ($("video-start").value) form.append("start_time", $("video-start").value);
  form.append("every", $("video-every").value || "1");
  // XMLHttpRequest rather than fetch: it reports the upload's progress, which a multi-GB video needs.
  const request = new XMLHttpRequest();
  request.open("POST", API + "/videos");
  request.setRequestHeader("Authorization", "Bearer " + state.token);
  request.responseType = "json";
  request.upload.addEventListener("progress", (progress) => {
    if (progress.lengthComputable) {
      const percent = Math.round(100 * progress.loaded / progress.total);
      say($("upload-status"), "Uploading " + file.name + ": " + percent + "%");
    }
  });
  request.addEventListener("load", () => {
    $("upload-button").disabled = false;
    const body = request.response || {};
    if (request.status !== 202 && request.status !== 200) {
      const error = body.error || { message: request.status + " " + request.statusText };
      report($("upload-status"), new ApiFailure(request.status, error.code, error.message));
      return;
    }
    say($("upload-status"), "Uploaded " + file.name + "; ingesting.");
    watchJob(body);
  });
  request.addEventListener("error", () => {
    $("upload-button").disabled = false;
    say($("upload-status"), "The upload of " + file.name + " failed: the server cannot be reached.", true);
  });
  $("upload-button").disabled = true;
  request.send(form);
}

function watchJob(job) {
  stopPolling();
  state.job = job;
  showJob(job);
  if (FINISHED.has(job.status)) return;
  state.poller = setInterval(async () => {
    try {
      const current = await apiJson("/jobs/" + job.id);
      showJob(current);
      if (FINISHED.has(current.status)) {
        stopPolling();
        loadVideos();
        loadCameras();
      }
    } catch (error) {
      stopPolling();
      report($("upload-status"), error);
    }
  }, POLL_MS);
}

function stopPolling() {
  if (state.poller !== null) clearInterval(state.poller);
  state.poller = null;
}

function showJob(job) {
  state.job = job;
  $("job").hidden = false;
  $("job-title").textContent = "Job " + job.id + " (" + (job.file || "video") + ", camera " + job.camera + ")";
  $("job-status").textContent = job.status;
  $("job-status").className = "job-" + job.status;
  $("job-message").textContent = job.message || (job.phase && job.phase !== job.status ? "(" + job.phase + ")" : "");
  const progress = job.progress || {};
  const bar = $("job-progress");
  if (progress.fraction === null || progress.fraction === undefined) bar.removeAttribute("value");
  else bar.value = job.status === "done" ? 1 : progress.fraction;
  $("job-frames").textContent = progress.frames_total
    ? progress.frames_done + " / " + progress.frames_total + " frames" : (progress.frames_done || 0) + " frames";
  $("job-cancel").hidden = FINISHED.has(job.status);
  $("job-resume").hidden = job.status !== "cancelled" && job.status !== "interrupted";
}

// A cancelled or interrupted job picks up after its last committed chunk.
async function resumeJob() {
  try {
    watchJob(await apiJson("/jobs/" + state.job.id + "/resume", { method: "POST" }));
  } catch (error) {
    report($("upload-status"), error);
  }
}

async function cancelJob() {
  if (!state.job) return;
  try {
    showJob(await apiJson("/jobs/" + state.job.id, { method: "DELETE" }));
  } catch (error) {
    report($("upload-status"), error);
  }
}

async function loadVideos() {
  try {
    const { videos } = await apiJson("/videos");
    const rows = videos.map((video) => {
      const row = document.createElement("tr");
      [video.id, video.camera, video.file, video.start_time ? when(video.start_time, 0) : "—", video.status]
        .forEach((value) => row.append(cell(value)));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => deleteVideo(video));
      const actions = cell("");
      actions.append(remove);
      row.append(actions);
      return row;
    });
    $("videos").tBodies[0].replaceChildren(...rows);
  } catch (error) {
    report($("upload-status"), error);
  }
}

async function deleteVideo(video) {
  if (!window.confirm("Delete video " + video.id + " (" + video.file + ", camera " + video.camera +
                      ") and every crop and vector from it?")) return;
  try {
    await api("/videos/" + video.id, { method: "DELETE" });
    say($("upload-status"), "Deleted video " + video.id + ".");
    loadVideos();
    loadCameras();
  } catch (error) {
    report($("upload-status"), error);
  }
}

function cell(value) {
  const element = document.createElement("td");
  element.textContent = value === null || value === undefined ? "" : String(value);
  return element;
}

// ---- the audit log --------------------------------------------------------------------------------------------

async function loadAudit(fromNewest) {
  const query = fromNewest || state.auditBefore === null ? "" : "&before_id=" + state.auditBefore;
  try {
    const page = await apiJson("/audit?limit=100" + query);
    const rows = page.entries.map((entry) => {
      const row = document.createElement("tr");
      [entry.id, when(entry.at, 0), entry.who, entry.role, entry.action, entry.target, entry.hits]
        .forEach((value) => row.append(cell(value)));
      return row;
    });
    const body = $("audit").tBodies[0];
    if (fromNewest) body.replaceChildren(...rows);
    else body.append(...rows);
    state.auditBefore = page.next_before_id;
    $("audit-more").hidden = page.next_before_id === null;
    say($("audit-status"), body.rows.length + " entries shown, newest first.");
  } catch (error) {
    report($("audit-status"), error);
  }
}
