"""OpenCV's HOG + linear SVM pedestrian detector: no download, no extra package, CPU only.

It is the fallback that always works, not the one to choose: on the campus clip it finds about two in three of
the people the OpenVINO SSD finds, with one or two false alarms a frame, at several times the cost (docs/video.md).

Two SVMs ship inside OpenCV 4. The INRIA one (``getDefaultPeopleDetector``) scans a 64x128 window and misses
anyone much under ~100 px tall, which is most people in surveillance footage unless the frame is upscaled (slow);
the Daimler one (``getDaimlerPeopleDetector``) scans 48x96 and is the default here for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from reidkit.errors import ConfigError
from reidkit.video.detectors.boxes import finish_detections
from reidkit.video.types import empty_detections

HogWindow = Literal["daimler", "inria"]

# SVM margin that maps to score 0.5 for each window: where each gives roughly as many hits as false alarms on
# people 60-120 px tall. Scores are sigmoid(2 * (margin - this)), so thresholds mean the same for both windows and
# sit on the same 0..1 scale as the CNN detectors' confidences that ByteTrack's thresholds assume.
_MARGIN_AT_HALF: dict[str, float] = {"daimler": 1.0, "inria": 0.0}
# The SVM window frames the person with a background margin; trimming it makes the box hug the person, which
# both the tracker's IoU and the re-id crop want.
_TRIM_X, _TRIM_Y = 0.15, 0.10


@dataclass
class HogDetector:
    """HOG people detector. ``resize`` scales the frame first: < 1 trades small people for speed, > 1 the reverse.

    ``score_threshold`` is low by default because ByteTrack's second stage uses weak detections to keep tracks
    alive; raise it (e.g. 0.5) when using detections on their own.
    """

    window: HogWindow = "daimler"
    resize: float = 1.0
    score_threshold: float = 0.3
    win_stride: int = 8
    pyramid_scale: float = 1.1  # OpenCV's 1.05 costs twice as much and found no more people on the campus clip
    nms_iou: float = 0.45
    name: str = field(init=False)
    _hog: cv2.HOGDescriptor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.window not in _MARGIN_AT_HALF:
            raise ConfigError(f"HOG window must be 'daimler' or 'inria', got {self.window!r}")
        if not 0.05 <= self.resize <= 4.0:
            raise ConfigError(f"HOG resize must be between 0.05 and 4, got {self.resize}")
        if not 0.0 < self.score_threshold < 1.0:
            raise ConfigError(f"HOG score_threshold must be in (0, 1), got {self.score_threshold}")
        self.name = f"hog-{self.window}"
        if self.window == "daimler":
            self._hog = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDaimlerPeopleDetector())
        else:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        center = _MARGIN_AT_HALF[self.window]
        hit_margin = center + float(np.log(self.score_threshold / (1.0 - self.score_threshold))) / 2.0
        scaled = image_rgb
        if self.resize != 1.0:
            interpolation = cv2.INTER_AREA if self.resize < 1.0 else cv2.INTER_LINEAR
            scaled = cv2.resize(image_rgb, None, fx=self.resize, fy=self.resize, interpolation=interpolation)
        rects, margins = self._hog.detectMultiScale(
            scaled,
            hitThreshold=hit_margin,
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.pyramid_scale,
        )
        if len(rects) == 0:
            return empty_detections()
        xywh = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / self.resize
        trim = xywh[:, 2:] * np.array([_TRIM_X, _TRIM_Y], dtype=np.float32)
        boxes = np.c_[xywh[:, :2] + trim, xywh[:, :2] + xywh[:, 2:] - trim]
        scores = 1.0 / (1.0 + np.exp(-2.0 * (np.asarray(margins, dtype=np.float32).reshape(-1) - center)))
        return finish_detections(boxes, scores, image_rgb.shape, self.nms_iou)

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]:
        return [self.detect(image) for image in images_rgb]
