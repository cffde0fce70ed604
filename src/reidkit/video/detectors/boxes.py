"""Post-processing every detector shares: clipping to the frame, non-maximum suppression, the sorted (N, 5) form."""

from __future__ import annotations

import numpy as np

from reidkit.video.types import empty_detections


def finish_detections(
    boxes: np.ndarray, scores: np.ndarray, frame_shape: tuple[int, ...], nms_iou: float | None = None
) -> np.ndarray:
    """Clip xyxy ``boxes`` to the frame, drop empty ones, optionally suppress overlaps, sort by descending score.

    Returns the (N, 5) float32 ``[x0, y0, x1, y1, score]`` array the ``Detector`` contract promises.
    """
    if len(boxes) == 0:
        return empty_detections()
    height, width = frame_shape[:2]
    rows = np.empty((len(boxes), 5), dtype=np.float32)
    rows[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    rows[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    rows[:, 4] = scores
    rows = rows[(rows[:, 2] - rows[:, 0] >= 1) & (rows[:, 3] - rows[:, 1] >= 1)]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    if nms_iou is not None and len(rows) > 1:
        rows = rows[greedy_nms(rows[:, :4], nms_iou)]
    return rows


def greedy_nms(sorted_boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS; ``sorted_boxes`` must already be in descending score order.

    A dozen lines of numpy rather than ``cv2.dnn.NMSBoxes`` (which rejects the unbounded HOG margins) or
    ``torchvision.ops.nms`` (which would make the torch-free detectors import torch).
    """
    areas = (sorted_boxes[:, 2] - sorted_boxes[:, 0]) * (sorted_boxes[:, 3] - sorted_boxes[:, 1])
    suppressed = np.zeros(len(sorted_boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(sorted_boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        rest, (x0, y0, x1, y1) = sorted_boxes[i + 1 :], sorted_boxes[i]
        inter_w = np.clip(np.minimum(rest[:, 2], x1) - np.maximum(rest[:, 0], x0), 0, None)
        inter_h = np.clip(np.minimum(rest[:, 3], y1) - np.maximum(rest[:, 1], y0), 0, None)
        inter = inter_w * inter_h
        iou = inter / (areas[i] + areas[i + 1 :] - inter)
        suppressed[i + 1 :] |= iou > iou_threshold
    return np.asarray(keep, dtype=np.int64)
