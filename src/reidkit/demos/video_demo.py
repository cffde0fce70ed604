"""``reidkit demo-video``: person search end to end on the shared pedestrian video, with a known right answer.

The video is ingested as two "cameras", its first and second half. People walking through the cut appear in
both, which gives ground truth without labels: one tracker run *across* the cut (the same detector on the same
frame grid, ``WINDOW_FRAMES`` either side) follows each walker continuously, and its boxes, matched by IoU to the
stored crops on each side, name the walker's camera-A tracks and camera-B tracks (the per-camera trackers may
split a walk into several). The demo takes the walker seen longest on both sides and searches twice: with a
photo (their camera-A track's most typical crop, at least ``QUERY_GAP_S`` before the cut, so not a near copy of
camera B's first frames) and with the camera-A track itself (``--track``, its pooled feature), both times leaving
the query track out of the hits. It reports the rank of the first of the walker's camera-B tracks among the hits,
as the rank-1/CMC convention does.

The store lives in ``<data-dir>/demo-video-store`` and is reused by later runs made with the same model.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from reidkit.errors import DatasetError
from reidkit.search.grouping import group_store
from reidkit.search.ingest import IngestOptions, ingest_video
from reidkit.inference.model_choice import choose_model
from reidkit.video.detector_choice import choose_detector
from reidkit.search.query import load_query_image
from reidkit.search.results import QueryDescription, SearchResult, Visit, result_json
from reidkit.search.search import search_store, track_query
from reidkit.search.trajectory import build_trajectory
from reidkit.store.rows import DetectionRow, normalise_rows
from reidkit.store.writer import Store
from reidkit.video import Detector
from reidkit.video.bytetrack import iou_matrix

if TYPE_CHECKING:
    from reidkit.inference.model_choice import ModelChoice
    from reidkit.video import VideoInfo

VIDEO = Path("videos") / "vtest.avi"
DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
START_TIME = datetime(2024, 5, 1, 9, 0, 0)
CAMERAS = ("cam-a", "cam-b")
TOP_K = 20
MIN_IOU = 0.5
WINDOW_FRAMES = 100  # ten seconds of vtest.avi on each side of the cut
QUERY_GAP_S = 2.0  # the query photo is taken at least this long before the cut


@dataclass(frozen=True)
class VideoDemoResult:
    """``summary`` is the demo's JSON line; ``search`` the photo query's result, for the caller to show."""

    summary: dict[str, Any]
    search: SearchResult
    query_label: str
    store_root: Path
    verdict: str


@dataclass(frozen=True)
class Walker:
    """A person followed across the cut: their stored tracks on each side, with matched crop counts."""

    tracks_a: dict[int, int]  # camera-A track id -> crops matched to the continuous track
    tracks_b: dict[int, int]

    @property
    def evidence(self) -> int:
        return min(sum(self.tracks_a.values()), sum(self.tracks_b.values()))


def run_demo_video(
    shared: Path,
    data_dir: Path,
    out: Path,
    every_n: int,
    checkpoint: str | None,
    detector_name: str | None,
    echo: Callable[[str], Any] = print,
) -> VideoDemoResult:
    """Ingest (or reuse), pick the walker, search, write ``search.html`` and ``result.json``; return what it found."""
    from reidkit.video import probe_video

    started, video = time.monotonic(), shared / VIDEO
    if not video.is_file():
        raise DatasetError(f"{video} not found: pass --shared pointing at the project's shared folder")
    info = probe_video(video)
    cut = info.num_frames // 2
    store_dir = data_dir / "demo-video-store"
    choice = choose_model(checkpoint, None, backend="auto")
    if choice.warning:
        echo(f"warning: {choice.warning}")
    _drop_store_of_another_model(store_dir, choice.extractor.model_id, echo)
    detector = choose_detector(detector_name, openvino_model=shared / DETECTOR_MODEL)
    echo(f"detector {detector.name}, ReID model {choice.source} ({choice.extractor.model_id}), every {every_n} frames")

    with Store.open(store_dir, writable=True, create=True) as store:
        video_ids = _ingest_halves(store, info, every_n, choice, detector, echo)
        ingest_s = time.monotonic() - started

        video_a, video_b = (store.video(v) for v in video_ids)
        grouped = group_store(store)  # who is who, so that trajectories are built from identities
        echo(f"clustered {grouped.tracks} tracks into {grouped.people} people ({grouped.cross_camera} seen by both "
             f"cameras) in {grouped.seconds:.1f} s")
        walkers = walkers_across_cut(store, video_a.id, video_b.id, detector)
        if not walkers:
            raise DatasetError(f"no walker could be followed across frame {cut} of {video}; try a smaller --every")
        walker = max(walkers, key=lambda w: w.evidence)
        query_track = max(walker.tracks_a, key=lambda t: walker.tracks_a[t])
        query_row = _query_crop(store, query_track, before_frame=cut - round(QUERY_GAP_S * video_a.fps))
        query_image = load_query_image(store.crop_file(query_row))
        feature = normalise_rows(choice.extractor([query_image]))[0]
        result, reranked, by_track = _three_searches(store, feature, query_track)
        rank, rank_reranked, rank_by_track = (_first_rank(r, walker.tracks_b) for r in (result, reranked, by_track))
        label, html = _write_outputs(out, store, result, query_image, query_row, walker, choice.extractor.model_id)
        summary = store.summary()
    checks = _trajectory_checks(result, by_track, set(walker.tracks_a) | set(walker.tracks_b))
    before, after = checks["trajectory_from_hits"], checks["trajectory_from_identity"]
    verdict = (
        f"the walker's {CAMERAS[1]} track ranks {rank or f'below {TOP_K}'} of {result.candidates} tracks for "
        f"the photo ({rank_reranked or f'below {TOP_K}'} with --rerank), {rank_by_track or f'below {TOP_K}'} "
        f"for `reidkit search --track {query_track}`; the photo's trajectory: {before['visits']} visits from the "
        f"top {TOP_K} hits ({before['visits_not_hers']} not hers) -> {after['visits']} from identity "
        f"({after['visits_not_hers']} not hers); wrote {html}"
    )
    numbers = {
        "video": str(video),
        "every_n": every_n,
        "detector": detector.name,
        "model": choice.source,
        "model_id": choice.extractor.model_id,
        "untrained_model": choice.source == "imagenet",
        "tracks": summary.tracks,
        "crops": summary.detections,
        "walkers_across_cut": len(walkers),
        "query_track": query_track,
        "query_frame": query_row.frame_index,
        "true_tracks": sorted(walker.tracks_b),
        "rank": rank,
        "rank_reranked": rank_reranked,
        "rank_by_track": rank_by_track,
        "top_k": TOP_K,
        "tracks_scored": result.candidates,
        "people": grouped.people,
        "query_person": result.person_id,
        **checks,
        "html": str(html),
        "ingest_s": round(ingest_s, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    return VideoDemoResult(numbers, result, f"{label} (followed across the cut by a tracker)", store_dir, verdict)


def _trajectory_checks(result: SearchResult, by_track: SearchResult, hers: set[int]) -> dict[str, dict[str, Any]]:
    """Each search's trajectory built from its top hits and from identity, scored against the walker's tracks."""
    return {
        "trajectory_from_hits": trajectory_check(build_trajectory(result.hits), hers),
        "trajectory_from_identity": trajectory_check(result.trajectory, hers),
        "by_track_trajectory_from_hits": trajectory_check(build_trajectory(by_track.hits), hers),
        "by_track_trajectory_from_identity": trajectory_check(by_track.trajectory, hers),
    }


def _write_outputs(
    out: Path, store: Store, result: SearchResult, query_image: Any, query_row: DetectionRow, walker: Walker,
    model_id: str,
) -> tuple[str, Path]:
    """The photo search's page (``search.html``) and answer (``result.json``); the query's label and the page."""
    from reidkit.viz.search_page import write_search_page

    out.mkdir(parents=True, exist_ok=True)
    true_b = ", ".join(str(t) for t in sorted(walker.tracks_b))
    label = (
        f"{CAMERAS[0]} track {query_row.track_id}, frame {query_row.frame_index}; the same walker is "
        f"{CAMERAS[1]} track(s) {true_b}"
    )
    html = write_search_page(out / "search.html", result, store.root, query_image, label)
    description = QueryDescription("crop", str(store.crop_file(query_row)))
    payload = result_json(result, description, store.root, model_id)
    (out / "result.json").write_text(json.dumps(payload, indent=2))
    return label, html


def _ingest_halves(
    store: Store, info: VideoInfo, every_n: int, choice: ModelChoice, detector: Detector, echo: Callable[[str], Any]
) -> list[int]:
    """Ingest the video's two halves as the two cameras, or reuse each half already ingested with these settings;
    the two video ids."""
    cut = info.num_frames // 2
    video_ids = []
    for camera, (first, end) in zip(CAMERAS, ((0, cut), (cut, info.num_frames))):
        same = [
            v for v in store.videos(info.fingerprint)
            if (v.camera, v.start_frame, v.end_frame, v.every_n) == (camera, first, end, every_n)
        ]
        if same and same[0].status == "done":
            echo(f"{camera}: frames {first}-{end} already ingested (video {same[0].id})")
            video_ids.append(same[0].id)
            continue
        # resume an interrupted run of this very job; replace anything else covering these frames
        options = IngestOptions(camera, START_TIME, every_n, first, end, force=not same)
        report = ingest_video(store, info, options, choice.extractor, detector, choice.source)
        echo(
            f"{camera}: frames {first}-{end}: {report.frames} frames, {report.detections} crops, "
            f"{report.tracks} tracks in {report.seconds:.1f} s ({report.stage_summary()})"
        )
        video_ids.append(report.video_id)
    return video_ids


def _three_searches(
    store: Store, feature: np.ndarray, query_track: int
) -> tuple[SearchResult, SearchResult, SearchResult]:
    """The photo's search, re-ranked and not, and the query track's own (``search --track``). The photo was cut
    from the query track, which would trivially come first: it is left out, as a real photo of the person (not in
    the store) would have no such twin."""
    result = search_store(store, feature, TOP_K, exclude_track=query_track)
    reranked = search_store(store, feature, TOP_K, rerank=True, exclude_track=query_track)
    by_track = search_store(
        store, track_query(store, query_track), TOP_K, exclude_track=query_track, query_track=query_track
    )
    return result, reranked, by_track


def walkers_across_cut(store: Store, video_a: int, video_b: int, detector: Detector) -> list[Walker]:
    """Follow people through the cut with one tracker over both halves' frame grids, ``WINDOW_FRAMES`` either
    side, and name each continuous walk's stored tracks on each side (box IoU >= ``MIN_IOU`` in the same frame).

    The stored crops come from the same detector on the same frames, so their boxes match the re-detected ones.
    """
    from reidkit.video import ByteTracker, iter_frames

    a, b = store.video(video_a), store.video(video_b)
    grid = {f for f in range(a.start_frame, a.end_frame, a.every_n) if f >= b.start_frame - WINDOW_FRAMES}
    grid |= {f for f in range(b.start_frame, b.end_frame, b.every_n) if f < b.start_frame + WINDOW_FRAMES}
    first, stop = min(grid), max(grid) + 1
    tracker = ByteTracker(frame_rate=a.fps)
    matched: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
    for frame in iter_frames(a.path, 1, first, stop, progress=False):
        if frame.index not in grid:
            continue
        side = video_a if frame.index < b.start_frame else video_b
        stored = store.frame_detections(side, frame.index)
        followed = tracker.update(detector.detect(frame.image), frame.index)
        if not stored or not followed:
            continue
        iou = iou_matrix(np.array([t.box for t in followed]), np.array([r.box for r in stored]))
        for i, j in zip(*linear_sum_assignment(-iou)):
            if iou[i, j] >= MIN_IOU:
                walk = matched.setdefault(followed[i].track_id, ({}, {}))[0 if side == video_a else 1]
                walk[stored[j].track_id] = walk.get(stored[j].track_id, 0) + 1
    return [Walker(sides[0], sides[1]) for sides in matched.values() if sides[0] and sides[1]]


def trajectory_check(visits: list[Visit], hers: set[int]) -> dict[str, Any]:
    """How many visits and tracks of a trajectory are the walker's (``hers``: her tracks named by the tracker run
    across the cut, which knows only the ten seconds either side of it); a visit is not hers when it holds a track
    that is not (visits merge a camera's sightings less than a minute apart, so one wrong track spoils one)."""
    tracks = [track for visit in visits for track in visit.track_ids]
    return {
        "visits": len(visits),
        "visits_not_hers": sum(not hers.issuperset(visit.track_ids) for visit in visits),
        "tracks": len(tracks),
        "tracks_not_hers": sorted(t for t in tracks if t not in hers),
        "confidence": [None if v.confidence is None else round(v.confidence, 3) for v in visits],
    }


def _query_crop(store: Store, track_id: int, before_frame: int) -> DetectionRow:
    """The walk's most typical view (the crop closest to its pooled feature) among crops before ``before_frame``,
    so the photo is not a near copy of camera B's first frames."""
    rows = [r for r in store.track_detections(track_id) if r.frame_index < before_frame]
    rows = rows or store.track_detections(track_id)
    ids, features = store.detection_features(np.array([r.id for r in rows], dtype=np.int64))
    best = int(ids[int(np.argmax(features @ track_query(store, track_id)))])
    return next(r for r in rows if r.id == best)


def _first_rank(result: SearchResult, true_tracks: dict[int, int]) -> int | None:
    return next((hit.rank for hit in result.hits if hit.track.id in true_tracks), None)


def _drop_store_of_another_model(store_dir: Path, model_id: str, echo: Callable[[str], Any]) -> None:
    """The demo's store is its own: when the model changed (``make demo`` trained one since), start afresh."""
    if not (store_dir / "reidkit.sqlite").is_file():
        return
    with Store.open(store_dir) as store:
        held = store.model
    if held is not None and held.model_id != model_id:
        echo(f"the demo store {store_dir} holds features of another model ({held.model_id}); rebuilding it")
        shutil.rmtree(store_dir)
