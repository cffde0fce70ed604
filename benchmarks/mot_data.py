"""MOTChallenge-format sequences and the scores the detection and tracking benchmark reports.

A sequence folder holds ``seqinfo.ini`` (frame rate), ``img1/000001.jpg ...`` and ``gt/gt.txt`` with rows
``frame, id, left, top, width, height, consider, class, visibility`` (MOT16/17/20). Only rows with ``consider`` 1 and
class 1 (pedestrian) count as people to find; boxes of the classes MOTChallenge calls distractors (2 person on
vehicle, 7 static person, 8 distractor, 12 reflection) are neither to be found nor false alarms: a detection or
track box that overlaps one at IoU >= 0.5 (and no pedestrian) is dropped before scoring, as TrackEval's MOTChallenge
preprocessing does. Files with only six or seven columns (MOT15-style) count every row as a pedestrian.

Detection scores are computed here (greedy matching in score order at IoU 0.5 per frame, VOC all-point AP: the
textbook definitions, about forty lines); tracking scores come from the maintained evaluators, never from here:
motmetrics (MOTA, IDF1, identity switches) and TrackEval (HOTA, plus its own MOTA and IDF1 as a cross-check).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from reidkit.video.bytetrack import iou_matrix

MATCH_IOU = 0.5
DISTRACTOR_CLASSES = (2, 7, 8, 12)


class MotDataError(ValueError):
    """A folder that is not MOTChallenge data; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Sequence:
    """One sequence: ``frames[i]`` is frame number ``i + 1``; ``people`` / ``distractors`` are (N, 6) rows
    ``frame, id, x0, y0, x1, y1``."""

    name: str
    fps: float
    frames: list[Path]
    people: np.ndarray
    distractors: np.ndarray

    def boxes(self, which: np.ndarray, frame: int) -> np.ndarray:
        return which[which[:, 0] == frame]


def load_sequences(root: Path) -> list[Sequence]:
    """Every sequence folder directly under ``root`` (or ``root`` itself), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise MotDataError(f"--mot {root}: no such folder")
    folders = [root] if (root / "seqinfo.ini").is_file() else sorted(p for p in root.iterdir() if p.is_dir())
    sequences = [load_sequence(folder) for folder in folders if (folder / "seqinfo.ini").is_file()]
    if not sequences:
        raise MotDataError(f"--mot {root}: no MOTChallenge sequence (a folder with seqinfo.ini, img1/, gt/gt.txt)")
    return sequences


def load_sequence(folder: Path) -> Sequence:
    info = configparser.ConfigParser()
    info.read(folder / "seqinfo.ini")
    if "Sequence" not in info:
        raise MotDataError(f"{folder / 'seqinfo.ini'}: no [Sequence] section")
    section = info["Sequence"]
    image_dir = folder / section.get("imDir", "img1")
    frames = sorted(image_dir.glob(f"*{section.get('imExt', '.jpg')}"))
    if not frames:
        raise MotDataError(f"{image_dir}: no frames")
    gt_file = folder / "gt" / "gt.txt"
    if not gt_file.is_file():
        raise MotDataError(f"{gt_file}: missing (the benchmark needs ground truth)")
    people, distractors = parse_gt(gt_file, last_frame=len(frames))
    return Sequence(section.get("name", folder.name), float(section.get("frameRate", "30")), frames, people,
                    distractors)


def parse_gt(path: Path, last_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(people, distractors) rows of a gt.txt, frames beyond ``last_frame`` dropped (samples keep a prefix)."""
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise MotDataError(f"{path}: not MOTChallenge comma-separated numbers ({exc})") from exc
    if rows.shape[1] < 6:
        raise MotDataError(f"{path}: rows need at least frame, id, left, top, width, height")
    rows = rows[rows[:, 0] <= last_frame]
    boxes = np.c_[rows[:, :4], rows[:, 2:4] + rows[:, 4:6]]
    consider = rows[:, 6] == 1 if rows.shape[1] > 6 else np.ones(len(rows), bool)
    classes = rows[:, 7] if rows.shape[1] > 7 else np.ones(len(rows))
    return boxes[consider & (classes == 1)], boxes[np.isin(classes, DISTRACTOR_CLASSES)]


def match_boxes(people: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """For each detection row (sorted by descending score), the pedestrian index it matches or -1: greedy in score
    order, each pedestrian taken once, the best free one at IoU >= 0.5 (PASCAL VOC / COCO matching)."""
    matched = np.full(len(dets), -1)
    if len(people) == 0 or len(dets) == 0:
        return matched
    iou = iou_matrix(dets[:, :4].astype(np.float64), people)
    taken = np.zeros(len(people), bool)
    for i in range(len(dets)):
        candidates = np.where(taken, -1.0, iou[i])
        best = int(np.argmax(candidates))
        if candidates[best] >= MATCH_IOU:
            matched[i], taken[best] = best, True
    return matched


def not_distractors(boxes: np.ndarray, matched: np.ndarray, distractors: np.ndarray) -> np.ndarray:
    """Mask of the rows to score: matched ones, and unmatched ones that do not cover a distractor at IoU >= 0.5."""
    keep = np.ones(len(boxes), bool)
    free = np.flatnonzero(matched < 0)
    if len(free) and len(distractors):
        keep[free] = iou_matrix(boxes[free, :4].astype(np.float64), distractors).max(axis=1) < MATCH_IOU
    return keep


@dataclass
class DetectionTally:
    """Scored detections over many frames: each one's score and whether it found a pedestrian."""

    scores: list[float]
    hits: list[bool]
    num_people: int = 0

    def add(self, people: np.ndarray, distractors: np.ndarray, dets: np.ndarray) -> None:
        order = np.argsort(-dets[:, 4], kind="stable")
        dets = dets[order]
        matched = match_boxes(people, dets)
        keep = not_distractors(dets, matched, distractors)
        self.scores.extend(dets[keep, 4].tolist())
        self.hits.extend((matched[keep] >= 0).tolist())
        self.num_people += len(people)

    def at(self, threshold: float) -> tuple[float, float]:
        """(recall, precision) of the detections scoring >= ``threshold``."""
        scores, hits = np.asarray(self.scores), np.asarray(self.hits, bool)
        chosen = scores >= threshold
        found = int(hits[chosen].sum())
        return found / max(self.num_people, 1), found / max(int(chosen.sum()), 1)

    def average_precision(self) -> float:
        """Area under the precision envelope over recall (VOC 2010+ all-point interpolation)."""
        if not self.scores or self.num_people == 0:
            return 0.0
        order = np.argsort(-np.asarray(self.scores), kind="stable")
        hits = np.asarray(self.hits, bool)[order]
        true_pos = np.cumsum(hits)
        recall = np.r_[0.0, true_pos / self.num_people, 1.0]
        precision = np.r_[1.0, true_pos / np.arange(1, len(hits) + 1), 0.0]
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.flatnonzero(recall[1:] != recall[:-1])
        return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


@dataclass(frozen=True)
class FrameTracks:
    """One scored frame: pedestrian ids and boxes, track ids and boxes (distractor-covering tracks removed)."""

    gt_ids: np.ndarray
    gt_boxes: np.ndarray
    track_ids: np.ndarray
    track_boxes: np.ndarray


def frame_tracks(people: np.ndarray, distractors: np.ndarray, ids: np.ndarray, boxes: np.ndarray) -> FrameTracks:
    matched = np.full(len(boxes), -1)
    if len(people) and len(boxes):
        iou = iou_matrix(boxes.astype(np.float64), people[:, 2:6])
        rows, cols = linear_sum_assignment(-iou)
        good = iou[rows, cols] >= MATCH_IOU
        matched[rows[good]] = cols[good]
    keep = not_distractors(boxes, matched, distractors[:, 2:6])
    return FrameTracks(people[:, 1].astype(int), people[:, 2:6], ids[keep].astype(int), boxes[keep])


def tracking_scores(frames: list[FrameTracks]) -> dict[str, float]:
    """MOTA / IDF1 / IDSW by motmetrics and HOTA / MOTA / IDF1 by TrackEval, on the same frames."""
    return {**_motmetrics_scores(frames), **_trackeval_scores(frames)}


def _motmetrics_scores(frames: list[FrameTracks]) -> dict[str, float]:
    import motmetrics

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for f in frames:
        # our own IoU: motmetrics 1.4's distances.iou_matrix calls np.asfarray, removed in NumPy 2
        iou = iou_matrix(f.gt_boxes.astype(np.float64), f.track_boxes.astype(np.float64))
        accumulator.update(f.gt_ids.tolist(), f.track_ids.tolist(), np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan))
    summary = motmetrics.metrics.create().compute(
        accumulator, metrics=["mota", "idf1", "num_switches", "recall", "precision"], name="all"
    )
    row = summary.loc["all"]
    return {"MOTA": float(row["mota"]), "IDF1": float(row["idf1"]), "IDSW": int(row["num_switches"]),
            "track_recall": float(row["recall"]), "track_precision": float(row["precision"])}


def _trackeval_scores(frames: list[FrameTracks]) -> dict[str, float]:
    from trackeval.metrics import CLEAR, HOTA, Identity

    gt_index = {g: i for i, g in enumerate(sorted({int(g) for f in frames for g in f.gt_ids}))}
    track_index = {t: i for i, t in enumerate(sorted({int(t) for f in frames for t in f.track_ids}))}
    data = {
        "num_timesteps": len(frames),
        "num_gt_ids": len(gt_index),
        "num_tracker_ids": len(track_index),
        "num_gt_dets": sum(len(f.gt_ids) for f in frames),
        "num_tracker_dets": sum(len(f.track_ids) for f in frames),
        "gt_ids": [np.array([gt_index[int(g)] for g in f.gt_ids], dtype=int) for f in frames],
        "tracker_ids": [np.array([track_index[int(t)] for t in f.track_ids], dtype=int) for f in frames],
        "similarity_scores": [
            iou_matrix(f.gt_boxes.astype(np.float64), f.track_boxes.astype(np.float64)) for f in frames
        ],
    }
    config = {"PRINT_CONFIG": False}
    hota = HOTA(config).eval_sequence(data)
    clear = CLEAR(config).eval_sequence(data)
    identity = Identity(config).eval_sequence(data)
    return {"HOTA": float(np.mean(hota["HOTA"])), "trackeval_MOTA": float(clear["MOTA"]),
            "trackeval_IDF1": float(identity["IDF1"])}
