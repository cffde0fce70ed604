"""What the footage says for free about how alike *different* people look, turned into thresholds and confidences.

Two tracks of one video that overlap in time are two people (one person is not walking twice in the same frames):
these cannot-link pairs are known different people, found without a single label. The distribution of their
similarities is what a similarity means in this store, with this model and these cameras: a hit whose score beats
99% of the known-different pairs is very likely the same person, and "the fraction of known-different pairs that
score lower" is a confidence read straight off the data (an empirical CDF), with no threshold tuned on identities.

``DifferentPeople`` keeps the distribution as its 101 percentiles (compact enough for the clustering's params).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# A hit joins a trajectory without the clustering's say only when it beats this share of known-different pairs.
SAME_PERSON_QUANTILE = 0.99
_LEVELS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class DifferentPeople:
    """Similarities of known-different pairs, as percentiles (``quantiles[i]`` = the i-th percentile)."""

    quantiles: tuple[float, ...]
    pairs: int

    @classmethod
    def from_scores(cls, scores: np.ndarray) -> DifferentPeople | None:
        """None when there is no pair: a store where no two people ever shared a frame says nothing."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.size == 0:
            return None
        return cls(tuple(round(float(v), 6) for v in np.quantile(scores, _LEVELS)), int(scores.size))

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> DifferentPeople | None:
        if not params:
            return None
        return cls(tuple(float(v) for v in params["quantiles"]), int(params["pairs"]))

    def to_params(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "quantiles": list(self.quantiles)}

    @property
    def threshold(self) -> float:
        """The similarity that beats ``SAME_PERSON_QUANTILE`` of the known-different pairs."""
        return float(np.interp(SAME_PERSON_QUANTILE, _LEVELS, self.quantiles))

    def confidence(self, similarity: float) -> float:
        """The share of known-different pairs less similar than ``similarity``: 0 at or below the least similar
        pair, 1 above the most similar."""
        quantiles = np.asarray(self.quantiles)
        if similarity > quantiles[-1]:
            return 1.0
        if similarity <= quantiles[0]:
            return 0.0
        # np.interp needs increasing x: ties (equal percentiles) are spread by the level they sit at
        return float(np.interp(similarity, quantiles + _LEVELS * 1e-12, _LEVELS))
