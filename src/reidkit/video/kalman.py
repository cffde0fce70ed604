"""The constant-velocity Kalman filter SORT, DeepSORT and ByteTrack share, on (cx, cy, aspect, height).

State is (cx, cy, a, h, vcx, vcy, va, vh) with a = w / h. Noise scales with the box height, so a person near the
camera may move more pixels per frame than one far away; the aspect ratio gets a small fixed noise because a
walking person's shape barely changes. Prediction is vectorised over all tracks, which is most of the filter's use.
"""

from __future__ import annotations

import numpy as np

_STD_POSITION = 1.0 / 20.0
_STD_VELOCITY = 1.0 / 160.0


class KalmanBoxFilter:
    """Stateless filter: callers keep each track's (mean, covariance) and pass them in."""

    def __init__(self) -> None:
        self._motion = np.eye(8)
        self._motion[:4, 4:] = np.eye(4)
        self._observe = np.eye(4, 8)

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track at the measured (cx, cy, a, h), standing still but with generous velocity uncertainty."""
        mean = np.r_[measurement, np.zeros(4)]
        h = measurement[3]
        std = np.array(
            [2 * _STD_POSITION * h, 2 * _STD_POSITION * h, 1e-2, 2 * _STD_POSITION * h]
            + [10 * _STD_VELOCITY * h, 10 * _STD_VELOCITY * h, 1e-5, 10 * _STD_VELOCITY * h]
        )
        return mean, np.diag(std**2)

    def predict(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead for K tracks at once: ``means`` (K, 8), ``covariances`` (K, 8, 8)."""
        h = means[:, 3]
        std = np.stack(
            [_STD_POSITION * h, _STD_POSITION * h, np.full_like(h, 1e-2), _STD_POSITION * h]
            + [_STD_VELOCITY * h, _STD_VELOCITY * h, np.full_like(h, 1e-5), _STD_VELOCITY * h],
            axis=1,
        )
        noise = np.einsum("ki,ij->kij", std**2, np.eye(8))
        means = means @ self._motion.T
        covariances = self._motion @ covariances @ self._motion.T + noise
        return means, covariances

    def update(
        self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct one track with its matched measurement (cx, cy, a, h)."""
        h = mean[3]
        noise = np.diag(np.array([_STD_POSITION * h, _STD_POSITION * h, 1e-1, _STD_POSITION * h]) ** 2)
        projected_mean = self._observe @ mean
        projected_cov = self._observe @ covariance @ self._observe.T + noise
        gain = np.linalg.solve(projected_cov, (covariance @ self._observe.T).T).T
        mean = mean + gain @ (measurement - projected_mean)
        covariance = covariance - gain @ projected_cov @ gain.T
        return mean, covariance


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) corners -> (N, 4) centre, aspect w/h, height."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-6), h], axis=1)


def xyah_to_xyxy(states: np.ndarray) -> np.ndarray:
    """(N, >=4) states -> (N, 4) corners."""
    h = states[:, 3]
    w = states[:, 2] * h
    return np.stack([states[:, 0] - w / 2, states[:, 1] - h / 2, states[:, 0] + w / 2, states[:, 1] + h / 2], axis=1)
