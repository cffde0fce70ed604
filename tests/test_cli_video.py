"""``reidkit ingest`` / ``reidkit search`` through the real command: crashes, a full disk, bad videos and bad
queries each end in one clear line and a store that is still consistent."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.models.zoo import DEFAULT_MODEL
from reidkit.store.layout import DB_NAME
from reidkit.store.writer import Store

REIDKIT = Path(sys.executable).with_name("reidkit")
FRAMES = ["--every", "2", "--end-frame", "30"]
LAST_FRAME = 28
pytestmark = pytest.mark.slow


def reidkit(args: Sequence[object], cwd: Path, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed command. ``limit_file_bytes`` makes every write past that file size fail with EFBIG,
    as on a full disk (SIGXFSZ is ignored so the write returns the error instead of killing the process)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run(
        [str(REIDKIT), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=400,
        preexec_fn=limit if limit_file_bytes is not None else None,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit 2 and exactly one ``error:`` line, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def last_committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute("SELECT MAX(last_committed_frame) FROM videos").fetchone()
    except sqlite3.Error:
        return -1
    return -1 if row is None or row[0] is None else int(row[0])


def assert_consistent(root: Path) -> None:
    with Store.open(root) as store:
        assert store.integrity_problems() == []
        duplicates = store.db.execute(
            "SELECT COUNT(*) FROM (SELECT video_id, frame_index, x0, y0 FROM detections "
            "GROUP BY video_id, frame_index, x0, y0 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> Path:
    """Built the hard way: a run that hits a full disk, a run killed with SIGKILL mid-video, then a run that
    resumes and finishes. ``test_a_full_disk_and_a_kill_leave_a_consistent_resumable_store`` checks each step."""
    work = tmp_path_factory.mktemp("cli")
    root = work / "store"
    command = ["ingest", vtest_video, "--camera", "cam1", "--db", root, "--checkpoint", "imagenet", "--quiet",
               "--start-time", "2024-05-01T09:00:00", "--chunk-frames", "3", *FRAMES]
    full = reidkit(command, work, limit_file_bytes=300_000)
    (work / "full.txt").write_text(error_line(full))
    assert_consistent(root)
    after_full = last_committed(root / DB_NAME)
    assert after_full < LAST_FRAME - 8  # the full disk stopped it part-way

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([str(REIDKIT), *map(str, command)], cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while last_committed(root / DB_NAME) < after_full + 6 and process.poll() is None:
        assert time.monotonic() < deadline, "the ingest made no progress"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = last_committed(root / DB_NAME)
    assert killed_at < LAST_FRAME, "the ingest finished before it could be killed; make the test video longer"
    assert_consistent(root)

    resumed = reidkit(command, work)
    assert resumed.returncode == 0, resumed.stderr
    (work / "resumed.txt").write_text(f"{after_full}\n{killed_at}\n{resumed.stdout}")
    return root


def test_a_full_disk_and_a_kill_leave_a_consistent_resumable_store(store: Path) -> None:
    full_error = (store.parent / "full.txt").read_text()
    after_full, killed_at, stdout = (store.parent / "resumed.txt").read_text().split("\n", 2)
    assert re.match(r"error: cannot write (to store|crop|vector index) .*free disk space", full_error), full_error
    assert f"resumed after frame {killed_at}" in stdout
    assert re.search(r"[\d.]+ processed frames/s; seconds per stage: decode [\d.]+, detect [\d.]+, track [\d.]+, "
                     r"embed [\d.]+, write [\d.]+", stdout), stdout
    assert_consistent(store)
    with Store.open(store) as opened:
        video = opened.video(1)
        assert (video.status, video.last_committed_frame) == ("done", LAST_FRAME)
        frames = [row[0] for row in opened.db.execute("SELECT DISTINCT frame_index FROM detections ORDER BY 1")]
        assert set(frames) <= set(range(0, LAST_FRAME + 1, 2))
        # tracks do not continue across the resume point: no track spans it
        spanning = opened.db.execute(
            "SELECT COUNT(*) FROM tracks WHERE first_frame <= ? AND last_frame > ?", (int(killed_at), int(killed_at))
        ).fetchone()[0]
        assert spanning == 0
        assert opened.summary().videos == 1


def test_a_second_ingest_is_refused_and_force_replaces_it(store: Path, vtest_video: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    # frames 0-6 overlap the stored 0-30: the same people, so the same refusal; --force then redoes only these
    again = ["ingest", vtest_video, "--camera", "cam1", "--db", copy, "--checkpoint", "imagenet", "--quiet",
             "--every", "2", "--end-frame", "6"]
    refused = error_line(reidkit(again, tmp_path))
    assert "is already in store" in refused and "as video 1" in refused and "--force" in refused
    replaced = reidkit([*again, "--force"], tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced earlier ingest(s): video 1" in replaced.stdout
    assert_consistent(copy)
    with Store.open(copy) as opened:
        assert [v.id for v in opened.videos()] == [2]


def test_search_command_json_html_and_track(store: Path, tmp_path: Path) -> None:
    with Store.open(store) as opened:
        (track_id,) = opened.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        crop = store / opened.track_detections(track_id)[2].crop_path
    page = tmp_path / "page.html"
    result = reidkit(["search", crop, "--db", store, "--top-k", "5", "--json", "--html", page], tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["query"]["kind"] == "crop" and payload["hits"][0]["track_id"] == track_id
    assert payload["hits"][0]["camera"] == "cam1" and payload["hits"][0]["time"].startswith("2024-05-01T09:00:")
    assert {"camera", "first_seen", "last_seen", "duration_s", "sightings"} <= set(payload["trajectory"][0])
    assert not re.search(r'src="(?!data:)', page.read_text())

    by_track = reidkit(["search", "--db", store, "--track", track_id, "--top-k", "3"], tmp_path)
    assert by_track.returncode == 0, by_track.stderr
    assert "trajectory" in by_track.stdout and "first seen" in by_track.stdout
    ranks = [line.split()[0] for line in by_track.stdout.splitlines()[2:5]]
    assert ranks == ["1", "2", "3"]


def test_bad_queries_fail_in_one_line(store: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((240, 320, 3), 90, dtype=np.uint8)).save(blank)
    assert "no person found in" in error_line(reidkit(["search", blank, "--db", store], tmp_path))
    missing = error_line(reidkit(["search", blank, "--db", tmp_path / "nowhere"], tmp_path))
    assert "does not exist; build one with `reidkit ingest" in missing
    assert "does not exist" in error_line(reidkit(["search", tmp_path / "nope.jpg", "--db", store], tmp_path))
    both = reidkit(["search", blank, "--db", store, "--track", "1"], tmp_path)
    assert "give a QUERY image or --track ID, not both" in error_line(both)
    nothing = reidkit(["search", "--db", store], tmp_path)
    assert "give a QUERY image, --track ID or a description (--attr NAME=VALUE)" in error_line(nothing)
    when = reidkit(["search", "--db", store, "--track", "1", "--after", "yesterday"], tmp_path)
    assert "--after 'yesterday' is not an ISO 8601 time" in error_line(when)
    assert "has no track 999999" in error_line(reidkit(["search", "--db", store, "--track", "999999"], tmp_path))


def test_a_query_with_another_model_is_refused(store: Path, tmp_path: Path) -> None:
    from reidkit.inference import untrained_model
    from reidkit.models.model_file import model_payload, save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(other, model_payload(*untrained_model("mgn", "mobilenetv2", 256, 128, seed=1)))
    with Store.open(store) as opened:
        crop = store / opened.track_detections(1)[0].crop_path
    refused = error_line(reidkit(["search", crop, "--db", store, "--checkpoint", other], tmp_path))
    assert re.search(r"holds features of model \w+ .* use --checkpoint imagenet with this store", refused)


def test_unreadable_and_empty_videos(tmp_path: Path, shared_dir: Path) -> None:
    """(A truncated video is covered in test_search_real_ingest.py, in-process, to save a model load.) The empty
    video's ingest loads the ImageNet MobileNetV2 from ``shared_dir``."""
    junk = tmp_path / "junk.avi"
    junk.write_bytes(os.urandom(50_000))
    unreadable = error_line(reidkit(["ingest", junk, "--camera", "c", "--db", tmp_path / "s1"], tmp_path))
    assert "junk.avi" in unreadable and "FFmpeg" in unreadable
    assert not (tmp_path / "s1").exists()  # nothing was created for a video that cannot be read

    blank = tmp_path / "blank.mp4"
    with av.open(str(blank), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(15):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 200, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    empty = reidkit(["ingest", blank, "--camera", "c", "--db", tmp_path / "s3", "--checkpoint", "imagenet",
                     "--quiet"], tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert "warning: no person was detected in" in empty.stderr and "15 frames" in empty.stderr
    assert_consistent(tmp_path / "s3")
    crop = tmp_path / "person.png"
    Image.fromarray(np.full((128, 64, 3), 90, dtype=np.uint8)).save(crop)
    nothing = error_line(reidkit(["search", crop, "--db", tmp_path / "s3"], tmp_path))
    assert "holds no person crops yet" in nothing


# The walker's first camera-B track among the photo search's hits, with the shipped model at every 4th frame
# (measured: 4th of the hits with the model that has the attribute head, 1st with the first session's model;
# benchmarks/RESULTS.md, "The shipped model (`market1501_mgn_mobilenetv2`)").
RANK_AT_MOST = 5


def test_demo_video_finds_the_walker_across_the_cut(vtest_video: Path, shared_dir: Path, tmp_path: Path) -> None:
    """The whole demo through the real command, at every 4th frame to keep it short, with no --checkpoint: the
    shipped Market-1501 model embeds, the store records it by name, and it finds the walker near the top; the
    second run reuses the store."""
    command = ["demo-video", "--shared", shared_dir, "--data-dir", tmp_path / "data", "--out", tmp_path / "out",
               "--every", "4"]
    first = reidkit(command, tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["walkers_across_cut"] >= 1 and summary["true_tracks"]
    assert summary["model"] == DEFAULT_MODEL and not summary["untrained_model"] and summary["rank"] <= RANK_AT_MOST
    with Store.open(tmp_path / "data" / "demo-video-store") as made:
        assert made.model.source == DEFAULT_MODEL
    assert summary["tracks_scored"] == summary["tracks"] - 1  # the photo's own track is left out
    assert summary["people"] >= 1 and "trajectory of the query's person" in first.stdout
    identity = summary["trajectory_from_identity"]  # the demo scores it against the walker's known tracks
    assert len(identity["confidence"]) == identity["visits"] and None not in identity["confidence"]
    assert summary["trajectory_from_hits"]["visits"] >= 1 and set(summary["trajectory_from_hits"]["confidence"]) == {None}
    ingest_line = r"cam-a: frames 0-\d+: \d+ frames, \d+ crops, \d+ tracks in [\d.]+ s \([\d.]+ processed frames/s"
    assert re.search(ingest_line, first.stdout), first.stdout
    hits = json.loads((tmp_path / "out" / "result.json").read_text())["hits"]
    assert hits and summary["query_track"] not in {hit["track_id"] for hit in hits}
    assert (tmp_path / "out" / "search.html").stat().st_size > 10_000
    again = reidkit(command, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "cam-a: frames" in again.stdout and "already ingested" in again.stdout
    assert json.loads(again.stdout.strip().splitlines()[-1])["rank"] == summary["rank"]


def snapshot(root: Path) -> dict[str, str]:
    """The store as it was: every file's sha256, the database by its content (its SQL dump: a writer that opens
    and closes a store may fold a reader-left WAL into the file without changing a row)."""
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
             if p.is_file() and not p.name.startswith(DB_NAME)}
    with closing(sqlite3.connect(f"file:{root / DB_NAME}?mode=ro", uri=True)) as connection:
        files[DB_NAME] = hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()
    return files


def test_outputs_filters_and_queries_that_harm_or_answer_nothing_fail_in_one_line(store: Path, tmp_path: Path) -> None:
    before = snapshot(store)
    search = ["search", "--db", store, "--track", "1"]
    for inside in (store / DB_NAME, store / "crops" / "v000001", store):
        line = error_line(reidkit([*search, "--html", inside], tmp_path))
        assert f"--html {inside} lies inside the store folder" in line
    assert "its cameras are 'cam1'" in error_line(reidkit([*search, "--camera", "cam 1"], tmp_path))
    reversed_times = ["--after", "2024-05-01T10:00:00", "--before", "2024-05-01T09:00:00"]
    assert "is later than --before" in error_line(reidkit([*search, *reversed_times], tmp_path))
    assert "--min-score nan must be a number from -1 to 1" in error_line(reidkit([*search, "--min-score", "nan"],
                                                                                 tmp_path))
    frame, tiny, crop = tmp_path / "frame.png", tmp_path / "tiny.png", tmp_path / "crop.png"
    Image.fromarray(np.full((240, 320, 3), 90, dtype=np.uint8)).save(frame)
    Image.fromarray(np.full((2, 1, 3), 90, dtype=np.uint8)).save(tiny)
    Image.fromarray(np.full((128, 64, 3), 90, dtype=np.uint8)).save(crop)
    query = ["search", "--db", store]
    assert "must be four finite numbers" in error_line(reidkit([*query, frame, "--box", "0,0,inf,inf"], tmp_path))
    assert f"query image {tmp_path} is a folder" in error_line(reidkit([*query, tmp_path], tmp_path))
    assert "is 1x2 pixels, too small" in error_line(reidkit([*query, tiny], tmp_path))
    devices = [("banana", "is not a torch device")] + ([] if torch.cuda.is_available() else [("cuda", "no CUDA GPU")])
    for device, reason in devices:
        line = error_line(reidkit([*query, crop, "--device", device], tmp_path))
        assert f"--device={device!r}" in line and reason in line
    assert snapshot(store) == before


def test_refused_ingests_leave_no_store_and_no_row_behind(store: Path, vtest_video: Path, tmp_path: Path) -> None:
    """Each refusal happens before anything is created: no new store folder, and an existing store unchanged (so
    no half-made video row tells a later ingest to resume with the refused options)."""
    existing = tmp_path / "existing"
    shutil.copytree(store, existing)
    before = snapshot(existing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [
        (["--camera", "c", "--start-frame", "100", "--end-frame", "50"], "--end-frame 50 must be greater than"),
        (["--camera", "c", "--start-frame", "100", "--end-frame", "100"], "the range holds no frame"),
        (["--camera", "c", "--start-frame", "-5"], "--start-frame -5 must be 0 or more"),
        (["--camera", "c", "--start-frame", "5000"], "--start-frame 5000 is past the end of"),
        (["--camera", "lo\tbby"], "contains control character"),
        (["--camera", "c", "--device", "banana"], "--device='banana' is not a torch device"),
        (["--camera", "c", "--start-frame", "40", "--checkpoint", garbage], "garbage.pt"),
    ]
    for number, (options, message) in enumerate(cases):
        new = tmp_path / f"new{number}"
        assert message in error_line(reidkit(["ingest", vtest_video, "--db", new, "--quiet", *options], tmp_path))
        assert not new.exists(), options
    for options, message in (cases[2], cases[6]):
        assert message in error_line(reidkit(["ingest", vtest_video, "--db", existing, "--quiet", *options], tmp_path))
    assert snapshot(existing) == before


def test_a_failed_first_ingest_keeps_the_tokens_and_files_beside_it(vtest_video: Path, tmp_path: Path) -> None:
    """A folder holding the service's tokens and a file of the user's: a first ingest that fails after making its
    store leaves them, and only them, behind. (The tokens are made through the API: ``reidkit token create`` needs
    a store in the folder, which is how it comes to run beside a first ingest that has just made one.)"""
    from reidkit.service.access import Role, create_token

    db = tmp_path / "shared-folder"
    db.mkdir()
    create_token(db, Role.admin, "ops")
    (db / "notes.txt").write_text("the user's notes")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    failed = reidkit(["ingest", vtest_video, "--db", db, "--quiet", "--camera", "c", "--checkpoint", garbage], tmp_path)
    assert "garbage.pt" in error_line(failed)
    kept = sorted(p.name for p in db.iterdir() if not p.name.endswith(("-wal", "-shm")))  # service.sqlite's own
    assert kept == ["notes.txt", "service.sqlite"]
    listed = reidkit(["token", "list", "--db", db], tmp_path)
    assert listed.returncode == 0 and "ops" in listed.stdout, listed.stderr


def _read_only(command: list[object], root: Path) -> subprocess.CompletedProcess[str]:
    """Run the command with ``root`` read-only: a read-only bind mount in a private namespace (even root cannot
    write there), or without root, the write permissions taken away."""
    args = [str(REIDKIT), *map(str, command)]
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=400)
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no way to make a read-only folder here (unshare -rm is not permitted)")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(root), *args], capture_output=True,
                          text=True, timeout=400)


def test_a_read_only_store_is_searched_and_an_ingest_into_it_refused(store: Path, vtest_video: Path,
                                                                     tmp_path: Path) -> None:
    copy = tmp_path / "readonly"
    shutil.copytree(store, copy)
    for name in (f"{DB_NAME}-wal", f"{DB_NAME}-shm"):  # as after a clean close: SQLite must make do without them
        if (copy / name).exists() and (name.endswith("-shm") or (copy / name).stat().st_size == 0):
            (copy / name).unlink()
    before = snapshot(copy)
    found = _read_only(["search", "--db", copy, "--track", "1", "--top-k", "3", "--json"], copy)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["hits"]) == 3
    refused = _read_only(["ingest", vtest_video, "--camera", "cam1", "--db", copy, "--start-frame", "40",
                          "--end-frame", "44", "--checkpoint", "imagenet", "--quiet"], copy)
    assert "cannot write to store" in error_line(refused) and "writable --db folder" in error_line(refused)
    assert snapshot(copy) == before


def test_stored_crop_paths_stay_in_the_store_and_a_missing_crop_is_named(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(store, copy)
    first = reidkit(["search", "--db", copy, "--track", "1", "--top-k", "2", "--json"], tmp_path)
    hit = json.loads(first.stdout)["hits"][0]
    Path(hit["crop"]).unlink()
    again = reidkit(["search", "--db", copy, "--track", "1", "--top-k", "2", "--json"], tmp_path)
    assert again.returncode == 0, again.stderr
    relative = Path(hit["crop"]).relative_to(copy)
    assert f"crop file {relative} of track {hit['track_id']} is missing" in " ".join(json.loads(again.stdout)["notes"])
    secret = tmp_path / "secret.jpg"
    Image.fromarray(np.full((128, 64, 3), 7, dtype=np.uint8)).save(secret)
    with sqlite3.connect(copy / DB_NAME) as connection:
        connection.execute("UPDATE detections SET crop_path = ?", (str(secret),))
    page = tmp_path / "page.html"
    line = error_line(reidkit(["search", "--db", copy, "--track", "1", "--html", page], tmp_path))
    assert f"crop file '{secret}', which lies outside the store folder" in line
    assert not page.exists()
