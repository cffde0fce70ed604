"""Softmax cross-entropy with label smoothing (Szegedy et al., 2016).

The smoothed target puts ``1 - eps`` on the true class and spreads ``eps`` uniformly over all K classes (the true
one included), the same definition as ``torch.nn.functional.cross_entropy(label_smoothing=eps)`` and "Bag of
Tricks". It is computed in float32 even under autocast so that half-precision logits cannot overflow the softmax.
"""

from __future__ import annotations

from torch import Tensor, nn

from reidkit.errors import ConfigError


class CrossEntropyLoss(nn.Module):
    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean over the batch of ``-(1 - eps) log p[y] - eps * mean_k log p[k]``."""
        log_probs = logits.float().log_softmax(dim=1)
        true_class = -log_probs.gather(1, labels[:, None]).squeeze(1)
        uniform = -log_probs.mean(dim=1)
        return ((1.0 - self.label_smoothing) * true_class + self.label_smoothing * uniform).mean()
