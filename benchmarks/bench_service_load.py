"""A bounded load test of ``reidkit serve`` on loopback: concurrent photo searches while one ingest job runs.

Builds (once, reused from ``--work-dir``) a small store from the shared pedestrian video with ``reidkit ingest``,
copies it for this run, cuts a clip of the video's later frames with PyAV, starts ``reidkit serve`` on 127.0.0.1 (a
free port) as a subprocess, and makes a viewer and an operator token with ``reidkit token create``. Then ``--clients``
threads search with photos (crops taken from the store itself, each client its own HTTP connection) for
``--seconds``, while the operator uploads the clip and polls its ingest job. Reports search latency (p50 / p90 / p99,
overall and while the ingest ran), requests per second, errors, and whether the job finished with nothing lost: the
store's counts must have grown by exactly what the job reports. The uploaded video is deleted at the end through
the API, and the server stopped. The store's model is the training demo's (``runs/demo/mgn_demo.pt``, what
``reidkit ingest`` itself defaults to) when ``make demo`` has made it, else the ImageNet baseline; ``--checkpoint``
chooses.

    python benchmarks/bench_service_load.py                          # 20 clients, 30 s, 100-frame clip
    python benchmarks/bench_service_load.py --clients 2 --seconds 3 --store-frames 20 --clip-frames 10   # toy

Prints a table and writes benchmarks/out/service_load.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"
REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"
DEMO_MODEL = REPO / "runs" / "demo" / "mgn_demo.pt"
CLIP_START = 200  # the clip's first frame in the video: after the store's frames, so its ingest is new footage
_JOB_REPORT = re.compile(r"video (\d+): (\d+) frames, (\d+) crops, (\d+) tracks")


def reidkit(*args: object) -> str:
    done = subprocess.run([str(REIDKIT), *map(str, args)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"reidkit {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def base_store(work: Path, video: Path, frames: int, checkpoint: str) -> Path:
    """The store of the video's first ``frames`` frames (every 2nd), built once per work folder, size and model."""
    # keyed by the model file's content: `make demo` rewrites the same path with another model
    tag = "imagenet" if checkpoint == "imagenet" else hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:8]
    store = work / f"base-{frames}-{tag}"
    if not (store / "reidkit.sqlite").is_file():
        shutil.rmtree(store, ignore_errors=True)
        reidkit("ingest", video, "--db", store, "--camera", "cam1", "--start-time", "2024-05-01T09:00:00",
                "--every", 2, "--end-frame", frames, "--checkpoint", checkpoint)
    return store


def cut_clip(source: Path, target: Path, start: int, count: int) -> Path:
    """Frames ``start`` .. ``start + count - 1`` re-encoded as MP4 at 10 fps (what a camera export might send)."""
    import av

    if target.is_file():
        return target
    partial = target.with_suffix(".part.mp4")
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        video_in = src.streams.video[0]
        out = dst.add_stream("mpeg4", rate=10)
        out.width, out.height, out.pix_fmt, out.bit_rate = video_in.width, video_in.height, "yuv420p", 4_000_000
        for index, frame in enumerate(src.decode(video_in)):
            if index >= start + count:
                break
            if index >= start:
                for packet in out.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                    dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    partial.replace(target)
    return target


def query_photos(store: Path, count: int) -> list[bytes]:
    """``count`` crops spread over the store (its own crops: real people, as an investigator's photos would be)."""
    with closing(sqlite3.connect(f"file:{store / 'reidkit.sqlite'}?mode=ro", uri=True)) as connection:
        paths = [row[0] for row in connection.execute("SELECT crop_path FROM detections ORDER BY id")]
    picked = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    return [(store / path).read_bytes() for path in picked]


class Server:
    """``reidkit serve`` on 127.0.0.1 and a free port; its log goes to a file (a pipe nobody reads would fill)."""

    def __init__(self, db: Path, log: Path) -> None:
        self.log = log
        with open(log, "w") as sink:
            self.process = subprocess.Popen(
                [str(REIDKIT), "serve", "--db", str(db), "--port", "0", "--rate-limit", "1000000"],
                stdout=sink, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 300
        while True:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)/api/v1", log.read_text())
            if found:
                self.url = f"http://127.0.0.1:{found[1]}"
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"reidkit serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        while True:  # the address is printed before the model is loaded; health answers once it is
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"reidkit serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=60)


def search_client(url: str, token: str, photos: list[bytes], offset: int, stop_at: float, think_s: float,
                  results: list[tuple[float, float, int, str]]) -> None:
    """Search until ``stop_at`` (perf_counter), one request at a time; appends ``(start, seconds, status, note)``."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=120) as client:
        i = offset
        while time.perf_counter() < stop_at:
            photo = photos[i % len(photos)]
            i += 1
            started = time.perf_counter()
            try:
                response = client.post(f"{API}/search", headers=headers, data={"top_k": "10"},
                                       files={"image": ("query.jpg", photo, "image/jpeg")})
                status, note = response.status_code, "" if response.status_code == 200 else response.text[:200]
                if status == 200 and not response.json()["hits"]:
                    status, note = -1, "no hits"
            except httpx.HTTPError as exc:
                status, note = 0, f"{type(exc).__name__}: {exc}"
            results.append((started, time.perf_counter() - started, status, note))
            if think_s:
                time.sleep(think_s)


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p90": round(float(np.percentile(ms, 90)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1),
            "mean": round(float(ms.mean()), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    base = base_store(work, args.video, args.store_frames, args.checkpoint)
    clip = cut_clip(args.video, work / f"clip-{CLIP_START}-{args.clip_frames}.mp4", CLIP_START, args.clip_frames)
    db = work / "run"
    shutil.rmtree(db, ignore_errors=True)
    shutil.copytree(base, db)
    viewer = reidkit("token", "create", "--db", db, "--role", "viewer", "--name", "load-viewer").splitlines()[-1]
    operator = reidkit("token", "create", "--db", db, "--role", "operator", "--name", "load-ops").splitlines()[-1]
    photos = query_photos(db, 40)
    load_start = [round(x, 2) for x in os.getloadavg()]
    server = Server(db, work / "serve.log")
    ops = {"Authorization": f"Bearer {operator}"}
    job: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            warm = client.post(f"{API}/search", headers={"Authorization": f"Bearer {viewer}"},
                               files={"image": ("q.jpg", photos[0], "image/jpeg")})
            if warm.status_code != 200:
                raise SystemExit(f"the warm-up search failed: {warm.text}")
            before = client.get(f"{API}/health", headers=ops).json()["counts"]
            results: list[tuple[float, float, int, str]] = []
            started = time.perf_counter()
            stop_at = started + args.seconds
            threads = [
                threading.Thread(target=search_client,
                                 args=(server.url, viewer, photos, i * 7, stop_at, args.think_s, results))
                for i in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            submitted = time.perf_counter()
            accepted = client.post(f"{API}/videos", headers=ops, data={"camera": "cam2", "start_time":
                                   "2024-05-01T10:00:00"}, files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
            if accepted.status_code != 202:
                raise SystemExit(f"the upload was refused: {accepted.text}")
            job = accepted.json()
            upload_s = time.perf_counter() - submitted
            while job["status"] in ("queued", "running") and time.perf_counter() - submitted < args.job_timeout:
                time.sleep(0.5)
                job = client.get(f"{API}/jobs/{job['id']}", headers=ops).json()
            job_end = time.perf_counter()
            for thread in threads:
                thread.join()
            ended = time.perf_counter()
            after = client.get(f"{API}/health", headers=ops).json()["counts"]
            if job["status"] in ("queued", "running"):
                client.delete(f"{API}/jobs/{job['id']}", headers=ops)
            elif job.get("video_id") is not None:
                client.delete(f"{API}/videos/{job['video_id']}", headers=ops)  # leave the run store as it was
    finally:
        server.stop()
    load_end = [round(x, 2) for x in os.getloadavg()]

    ok = [seconds for _, seconds, status, _ in results if status == 200]
    during = [seconds for start, seconds, status, _ in results if status == 200 and submitted <= start < job_end]
    errors = [note for _, _, status, note in results if status != 200]
    reported = _JOB_REPORT.match(job.get("message", ""))
    grown = {key: after[key] - before[key] for key in before}
    expected = None if reported is None else {"videos": 1, "detections": int(reported[3]), "tracks": int(reported[4])}
    nothing_lost = (job.get("status") == "done" and expected is not None
                    and all(grown[key] == value for key, value in expected.items()))
    window = min(ended, stop_at) - started
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": len(os.sched_getaffinity(0)),
                    "load_average_start": load_start, "load_average_end": load_end},
        "model": args.checkpoint, "clients": args.clients, "seconds": args.seconds, "think_s": args.think_s, "store_frames": args.store_frames,
        "clip_frames": args.clip_frames, "store_crops": before["detections"],
        "requests": len(results), "ok": len(ok), "errors": len(errors), "error_samples": errors[:5],
        "requests_per_s": round(len(ok) / window, 2) if window > 0 else None,
        "latency_ms": percentiles(ok), "latency_during_ingest_ms": percentiles(during),
        "searches_during_ingest": len(during),
        "job": {"status": job.get("status"), "message": job.get("message"), "upload_s": round(upload_s, 2),
                "seconds": round(job_end - submitted, 1), "progress": job.get("progress")},
        "counts_before": before, "counts_after": after, "counts_grown": grown, "job_reported": expected,
        "nothing_lost": nothing_lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--clients", type=int, default=20, help="concurrent search clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients search")
    parser.add_argument("--think-s", type=float, default=0.0, help="pause of each client between searches")
    parser.add_argument("--store-frames", type=int, default=60, help="frames of the video in the store (every 2nd)")
    parser.add_argument("--clip-frames", type=int, default=100, help="frames of the uploaded clip (all ingested)")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="give up on the job after this long")
    parser.add_argument("--checkpoint", default=str(DEMO_MODEL) if DEMO_MODEL.is_file() else "imagenet",
                        help="the store's ReID model (default: the training demo's model when `make demo` has made "
                        "it, else the untrained ImageNet baseline)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "benchmarks" / "out" / "service_load")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "service_load.json")
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or not 0 < args.seconds <= 600 or args.clip_frames < 1 or args.store_frames < 2:
        parser.error("--clients 1..200, --seconds up to 600, --clip-frames and --store-frames positive")
    result = run(args)

    lat, during, job = result["latency_ms"], result["latency_during_ingest_ms"], result["job"]
    print(f"\nreidkit serve, {args.clients} clients x {args.seconds:g} s of photo searches (top 10) on a store of "
          f"{result['store_crops']} crops, one ingest job ({args.clip_frames}-frame clip) running; model {args.checkpoint}")
    print(f"{'':<22}{'requests':>9}{'req/s':>8}{'errors':>7}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    print(f"{'all searches':<22}{result['requests']:>9}{result['requests_per_s']:>8}{result['errors']:>7}"
          f"{lat['p50']:>8}{lat['p90']:>8}{lat['p99']:>8}{lat['max']:>8}")
    print(f"{'while ingesting':<22}{result['searches_during_ingest']:>9}{'':>8}{'':>7}"
          f"{during['p50'] or '-':>8}{during['p90'] or '-':>8}{during['p99'] or '-':>8}{during['max'] or '-':>8}")
    print(f"job: {job['status']} in {job['seconds']} s (upload {job['upload_s']} s): {job['message']}")
    print(f"store grew by {result['counts_grown']}; the job reported {result['job_reported']}; nothing lost: "
          f"{result['nothing_lost']}")
    machine = result["machine"]
    print(f"load average start/end: {machine['load_average_start']} / {machine['load_average_end']}")
    if result["error_samples"]:
        print("errors, first few:", *result["error_samples"], sep="\n  ")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
