"""``reidkit demo-video``: person search end to end on the shared pedestrian video, with a known right answer.

The video is ingested as two "cameras", its first and second half. People walking through the cut appear in
both, which gives ground truth without labels: the last processed frame of camera A and the first of camera B are
one or two frames apart, so a walker's box barely moves across the cut, and matching the two frames' boxes by IoU
(Hungarian assignment, IoU >= 0.5) pairs each such walker's camera-A track with their camera-B track. The demo
takes the pair whose shorter side is longest, searches with a crop from early in the camera-A track (far from
the cut, so it is not the trivially similar last frame), and reports where the camera-B track ranks.

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
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from reidkit.errors import DatasetError
from reidkit.index.ingest import IngestOptions, ingest_video
from reidkit.index.model_choice import choose_detector, choose_model
from reidkit.index.report import QueryDescription, hits_table, result_json, trajectory_table
from reidkit.index.query import load_query_image
from reidkit.index.search import SearchResult, search_store
from reidkit.index.store import DetectionRow, Store, normalise_rows

VIDEO = Path("videos") / "vtest.avi"
DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
START_TIME = datetime(2024, 5, 1, 9, 0, 0)
CAMERAS = ("cam-a", "cam-b")
TOP_K = 20
MIN_IOU = 0.5


@dataclass(frozen=True)
class CrossCutPair:
    track_a: int
    track_b: int
    iou: float
    crops_a: int
    crops_b: int


def run_demo_video(
    shared: Path,
    data_dir: Path,
    out: Path,
    every_n: int,
    checkpoint: str | None,
    detector_name: str | None,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Ingest (or reuse), pick the walker, search, write ``search.html`` and ``result.json``; return the summary."""
    from reidkit.video import probe_video

    started = time.monotonic()
    video = shared / VIDEO
    if not video.is_file():
        raise DatasetError(f"{video} not found: pass --shared pointing at the project's shared folder")
    info = probe_video(video)
    cut = info.num_frames // 2
    store_dir = data_dir / "demo-video-store"
    choice = choose_model(checkpoint, None)
    if choice.warning:
        echo(f"warning: {choice.warning}")
    _drop_store_of_another_model(store_dir, choice.extractor.model_id, echo)
    detector = choose_detector(detector_name, openvino_model=shared / DETECTOR_MODEL)
    echo(f"detector {detector.name}, ReID model {choice.source} ({choice.extractor.model_id}), every {every_n} frames")

    with Store.open(store_dir, writable=True, create=True) as store:
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
                f"{report.tracks} tracks in {report.seconds:.1f} s"
            )
            video_ids.append(report.video_id)
        ingest_s = time.monotonic() - started

        video_a, video_b = (store.video(v) for v in video_ids)
        pairs = cross_cut_pairs(store, video_a.id, video_a.last_committed_frame, video_b.id, video_b.start_frame)
        if not pairs:
            raise DatasetError(f"no walker could be followed across frame {cut} of {video}; try a smaller --every")
        walker = max(pairs, key=lambda p: (min(p.crops_a, p.crops_b), p.iou))
        query_row = _query_crop(store, walker.track_a)
        query_image = load_query_image(store.root / query_row.crop_path)
        feature = normalise_rows(choice.extractor([query_image]))[0]
        result = search_store(store, feature, TOP_K)
        reranked = search_store(store, feature, TOP_K, rerank=True)
        rank = _rank_of(result, walker.track_b)
        rank_reranked = _rank_of(reranked, walker.track_b)
        cam_b_ranks = [h.track.id for h in result.hits if h.track.camera == CAMERAS[1]]
        rank_in_b = cam_b_ranks.index(walker.track_b) + 1 if walker.track_b in cam_b_ranks else None

        description = QueryDescription("crop", str(store.root / query_row.crop_path))
        from reidkit.viz.search_page import write_search_page

        out.mkdir(parents=True, exist_ok=True)
        html = write_search_page(
            out / "search.html", result, store.root, query_image,
            f"{CAMERAS[0]} track {walker.track_a}, frame {query_row.frame_index} "
            f"(the same walker is {CAMERAS[1]} track {walker.track_b})",
        )
        payload = result_json(result, description, store.root, choice.extractor.model_id)
        (out / "result.json").write_text(json.dumps(payload, indent=2))
        echo(f"\nquery: {CAMERAS[0]} track {walker.track_a}, crop at frame {query_row.frame_index}; ground truth: "
             f"{CAMERAS[1]} track {walker.track_b} (boxes across the cut at IoU {walker.iou:.2f})")
        echo(hits_table(result.hits, store.root))
        echo("\ntrajectory:")
        echo(trajectory_table(result.trajectory))
        echo(f"\nthe walker's {CAMERAS[1]} track ranks {rank or f'below {TOP_K}'} of {result.candidates} tracks scored "
             f"({rank_reranked or f'below {TOP_K}'} with --rerank); wrote {html}")
        summary = store.summary()
    return {
        "video": str(video),
        "every_n": every_n,
        "detector": detector.name,
        "model": choice.source,
        "model_id": choice.extractor.model_id,
        "untrained_model": choice.source == "imagenet",
        "tracks": summary.tracks,
        "crops": summary.detections,
        "walkers_across_cut": len(pairs),
        "query_track": walker.track_a,
        "true_track": walker.track_b,
        "rank": rank,
        "rank_among_cam_b": rank_in_b,
        "rank_reranked": rank_reranked,
        "top_k": TOP_K,
        "html": str(html),
        "ingest_s": round(ingest_s, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def cross_cut_pairs(store: Store, video_a: int, frame_a: int, video_b: int, frame_b: int) -> list[CrossCutPair]:
    """Tracks of ``video_a`` at its last frame matched to tracks of ``video_b`` at its first, by box IoU."""
    rows_a = _rows_at(store, video_a, frame_a)
    rows_b = _rows_at(store, video_b, frame_b)
    if not rows_a or not rows_b:
        return []
    iou = box_iou(np.array([r.box for r in rows_a]), np.array([r.box for r in rows_b]))
    picked_a, picked_b = linear_sum_assignment(-iou)
    tracks = store.tracks([r.track_id for r in rows_a + rows_b])
    return [
        CrossCutPair(
            rows_a[i].track_id, rows_b[j].track_id, float(iou[i, j]),
            tracks[rows_a[i].track_id].num_crops, tracks[rows_b[j].track_id].num_crops,
        )
        for i, j in zip(picked_a, picked_b)
        if iou[i, j] >= MIN_IOU
    ]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _rows_at(store: Store, video_id: int, frame: int) -> list[DetectionRow]:
    ids = [row[0] for row in store.db.execute(
        "SELECT id FROM detections WHERE video_id = ? AND frame_index = ? ORDER BY id", (video_id, frame)
    )]
    found = store.detections(ids)
    return [found[i] for i in ids]


def _query_crop(store: Store, track_id: int) -> DetectionRow:
    """The best-quality crop in the first half of the track: far from the cut, clear enough to search with."""
    rows = store.track_detections(track_id)
    early = rows[: max(1, len(rows) // 2)]
    return max(early, key=lambda r: r.quality)


def _rank_of(result: SearchResult, track_id: int) -> int | None:
    return next((hit.rank for hit in result.hits if hit.track.id == track_id), None)


def _drop_store_of_another_model(store_dir: Path, model_id: str, echo: Callable[[str], Any]) -> None:
    """The demo's store is its own: when the model changed (``make demo`` trained one since), start afresh."""
    if not (store_dir / "reidkit.sqlite").is_file():
        return
    with Store.open(store_dir) as store:
        held = store.model
    if held is not None and held.model_id != model_id:
        echo(f"the demo store {store_dir} holds features of another model ({held.model_id}); rebuilding it")
        shutil.rmtree(store_dir)
