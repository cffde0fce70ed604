"""Four live cameras at once on two cores: does `reidkit watch` keep up, and at what cost (issue 29 part 5)?

    python benchmarks/bench_live_throughput.py --shared ../shared [--seconds 600] [--cameras 4] [--every 2]

Each camera is a real RTSP stream on loopback (tests/rtsp_server.py, Debian's gst-rtsp-server) of the shared video
(768x576, 10 fps) looped to the run's length: the video is encoded to H.264 once and its packets are repeated, and
the servers send them without re-encoding, so the servers cost next to nothing beside the watcher measured. The real
`reidkit watch` (shipped model, default detector) ingests every camera into a fresh store for ``--seconds``; every
5 s the benchmark reads each camera's health row (frames read and dropped, lag behind live) from live.sqlite and the
watcher's CPU time and resident memory from /proc. Reported: frames dropped per camera (goal < 1 %), lag per camera
(p50 / p95 / max), CPU (cores busy) and memory (RSS, start and peak), and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--every", type=int, default=2, help="the watcher's --every (1 = every frame)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        clip = long_clip(args.shared / "videos" / "vtest.avi", Path(scratch), args.seconds + 60)
        record = run(clip, Path(scratch) / "store", args.cameras, args.every, args.seconds)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"live_throughput_{args.cameras}x_every{args.every}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps({k: v for k, v in record.items() if k != "samples"}, indent=2))


def long_clip(video: Path, folder: Path, seconds: float) -> Path:
    """The video encoded to H.264 once (gst-launch, as a camera's encoder would), its packets repeated to ``seconds``."""
    import av

    once = folder / "once.mp4"
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!", "videoconvert",
                    "!", "x264enc", "tune=zerolatency", "speed-preset=veryfast", "key-int-max=10", "!", "h264parse",
                    "!", "mp4mux", "!", "filesink", f"location={once}"], check=True)
    target = folder / "long.mp4"
    with av.open(str(once)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.dts is not None]
        span = packets[-1].pts + packets[-1].duration - packets[0].pts
        loops = int(np.ceil(seconds / float(span * stream.time_base)))
    with av.open(str(target), "w") as sink:
        for loop in range(loops):  # the file read again each time: a muxed packet is not muxed twice
            with av.open(str(once)) as source:
                stream = source.streams.video[0]
                out = sink.streams.video[0] if loop else sink.add_stream_from_template(stream)
                for packet in source.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.pts += loop * span
                    packet.dts += loop * span
                    packet.stream = out
                    sink.mux(packet)
    return target


def run(clip: Path, store: Path, cameras: int, every: int, seconds: float) -> dict[str, Any]:
    servers = [_serve(clip) for _ in range(cameras)]
    try:
        command = [str(Path(sys.executable).with_name("reidkit")), "watch", "--db", str(store), "--every", str(every),
                   "--quiet"] + [a for i, (_, url) in enumerate(servers) for a in ("--camera", f"cam{i + 1}={url}")]
        watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = _sample(watcher, store, seconds)
        watcher.terminate()
        out, err = watcher.communicate(timeout=120)
    finally:
        for process, _ in servers:
            process.kill()
    if watcher.returncode != 0:
        sys.exit(f"reidkit watch failed ({watcher.returncode}): {err[-2000:]}")
    return summarise(samples, cameras, every, seconds, out)


def _serve(clip: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests" / "rtsp_server.py"), str(clip), "--port",
                                str(port), "--passthrough"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("ready "):
        sys.exit(f"the RTSP server did not start: {line!r}")
    return process, line.split()[1]


def _sample(watcher: subprocess.Popen, store: Path, seconds: float) -> list[dict[str, Any]]:
    """Every SAMPLE_S: the watcher's CPU seconds and RSS, each camera's health row, the load average."""
    samples: list[dict[str, Any]] = []
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    while time.monotonic() - started < seconds and watcher.poll() is None:
        time.sleep(SAMPLE_S)
        stat = Path(f"/proc/{watcher.pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{watcher.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        samples.append({"t": round(time.monotonic() - started, 1), "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,
                         "rss_mb": round(rss / 1024, 1), "load1": os.getloadavg()[0], "cameras": _health(store)})
    return samples


def _health(store: Path) -> dict[str, dict[str, Any]]:
    database = store / "live.sqlite"
    if not database.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT camera, state, fps, lag_s, frames_read, frames_dropped, reconnects "
                              "FROM live_camera_health").fetchall()
    except sqlite3.OperationalError:  # the tables are not made yet
        return {}
    keys = ("state", "fps", "lag_s", "frames_read", "frames_dropped", "reconnects")
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}


def summarise(samples: list[dict[str, Any]], cameras: int, every: int, seconds: float, out: str) -> dict[str, Any]:
    last = samples[-1]["cameras"] if samples else {}
    per_camera = {}
    for name, health in sorted(last.items()):
        lags = [s["cameras"][name]["lag_s"] for s in samples if name in s["cameras"]
                and s["cameras"][name]["lag_s"] is not None]
        read, dropped = health["frames_read"], health["frames_dropped"]
        per_camera[name] = {
            "frames_read": read, "frames_dropped": dropped, "dropped_share": round(dropped / max(read, 1), 4),
            "reconnects": health["reconnects"], "lag_p50_s": _pct(lags, 50), "lag_p95_s": _pct(lags, 95),
            "lag_max_s": round(max(lags), 2) if lags else None, "state": health["state"],
        }
    busy = (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / max(samples[-1]["t"] - samples[0]["t"], 1e-9) if len(
        samples) > 1 else None
    return {
        "date": time.strftime("%Y-%m-%d"), "cameras": cameras, "every_n": every, "seconds": seconds,
        "machine": f"{os.cpu_count()} cores", "per_camera": per_camera,
        "cores_busy": None if busy is None else round(busy, 2),
        "rss_mb_start": samples[0]["rss_mb"] if samples else None,
        "rss_mb_peak": max(s["rss_mb"] for s in samples) if samples else None,
        "load1_median": _pct([s["load1"] for s in samples], 50), "watch_output": out.strip().splitlines()[-cameras:],
        "samples": samples,
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


if __name__ == "__main__":
    if shutil.which("gst-launch-1.0") is None:
        sys.exit("error: the benchmark needs Debian's GStreamer and gst-rtsp-server: run .ci/install-rtsp")
    main()
