"""``reidkit search PHOTO --db STORE`` end to end, as a user runs it, against the HTTP search of the same photo.

Copies the store (``--db``, default the demo-video store that ``reidkit demo-video --data-dir data`` builds) to a
temporary folder, takes a crop of the store itself as the photo (a real person, as an investigator's photo would be),
and times, in one run and alternating so that both see the same load:

* ``cli``: ``reidkit search PHOTO --db STORE`` as a new process (``python -m reidkit``), the default path: the store
  model's cached OpenVINO IR, no torch (one search first, untimed, leaves the IR where there was none);
* ``cli_torch``: the same with ``--embed-backend torch``, what the command did before the IR path;
* ``http``: ``POST /api/v1/search`` with the same photo to a warm ``reidkit serve`` (the reference: its process has
  everything loaded already).

Each is the median of ``--runs`` runs (wall clock, seconds). The machine's load average is read before the run
starts and after it ends; the run is called ``idle`` or ``loaded`` by the first (1-minute load under 0.5 per core or
not), since the benchmark's own searches raise the average while it runs. Also checks that the
three answers rank the same tracks with the same printed scores.

    python benchmarks/bench_cli_search.py --runs 5
    python benchmarks/bench_cli_search.py --db data/demo-video-store --runs 9

Prints a JSON line and writes it to ``--out`` (default benchmarks/out/cli_search.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service_load import API, Server, reidkit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STORE = REPO / "data" / "demo-video-store"


def query_photo(store: Path, out: Path) -> Path:
    """The store's largest crop (a clear view of one person), copied out of the store."""
    with closing(sqlite3.connect(f"file:{store / 'reidkit.sqlite'}?mode=ro", uri=True)) as connection:
        (crop,) = connection.execute(
            "SELECT crop_path FROM detections ORDER BY (x1 - x0) * (y1 - y0) DESC, id LIMIT 1"
        ).fetchone()
    return Path(shutil.copy(store / crop, out / "query.jpg"))


def cli_search(db: Path, photo: Path, *extra: str) -> tuple[float, list[tuple[int, float]]]:
    """Seconds of one ``reidkit search`` process, and its hits as (track, score rounded as printed)."""
    command = [sys.executable, "-m", "reidkit", "search", str(photo), "--db", str(db), "--top-k", "10", "--json",
               *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"reidkit search failed: {done.stderr.strip()[-2000:]}")
    return seconds, _hits(json.loads(done.stdout))


def http_search(client: httpx.Client, token: str, photo: bytes) -> tuple[float, list[tuple[int, float]]]:
    started = time.perf_counter()
    response = client.post(f"{API}/search", headers={"Authorization": f"Bearer {token}"}, data={"top_k": "10"},
                           files={"image": ("query.jpg", photo, "image/jpeg")})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"the HTTP search failed: {response.text[:500]}")
    return seconds, _hits(response.json())


def _hits(answer: dict[str, Any]) -> list[tuple[int, float]]:
    return [(int(hit["track_id"]), round(float(hit["score"]), 3)) for hit in answer["hits"]]


def load_state() -> dict[str, Any]:
    load = [round(x, 2) for x in os.getloadavg()]
    cpus = len(os.sched_getaffinity(0))
    return {"load_average": load, "cpus": cpus, "state": "idle" if load[0] < 0.5 * cpus else "loaded"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    before = load_state()  # before anything of this run: its own processes raise the load average as it goes
    work = Path(tempfile.mkdtemp(prefix="bench-cli-search-"))
    try:
        db = Path(shutil.copytree(args.db, work / "store"))
        photo = query_photo(db, work)
        token = reidkit("token", "create", "--db", db, "--role", "viewer", "--name", "bench").splitlines()[-1]
        first_s, first_hits = cli_search(db, photo)  # leaves the IR in the cache where there was none
        server = Server(db, work / "serve.log")
        times: dict[str, list[float]] = {"cli": [], "cli_torch": [], "http": []}
        answers: dict[str, list[tuple[int, float]]] = {}
        try:
            with httpx.Client(base_url=server.url, timeout=300) as client:
                http_search(client, token, photo.read_bytes())  # warm: the server loads its model on first use
                for _ in range(args.runs):
                    for name, search in (
                        ("cli", lambda: cli_search(db, photo)),
                        ("cli_torch", lambda: cli_search(db, photo, "--embed-backend", "torch")),
                        ("http", lambda: http_search(client, token, photo.read_bytes())),
                    ):
                        seconds, answers[name] = search()
                        times[name].append(seconds)
        finally:
            server.stop()
        after = load_state()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "store": str(args.db), "runs": args.runs, "first_cli_s": round(first_s, 3),
        "median_s": {name: round(statistics.median(values), 3) for name, values in times.items()},
        "all_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "same_hits": {name: hits == answers["http"] for name, hits in answers.items()} | {
            "first_cli": first_hits == answers["http"]},
        "hits": answers["cli"], "machine_before": before, "machine_after": after,
        "state": before["state"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_STORE, help="the store to search (copied, not written)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each kind (the median is reported)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "cli_search.json")
    args = parser.parse_args()
    if not (args.db / "reidkit.sqlite").is_file():
        raise SystemExit(f"--db {args.db}: no store there; build one with reidkit demo-video --data-dir data")
    result = run(args)
    print(json.dumps(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
