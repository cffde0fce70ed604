"""Refit a trained model's attribute head on its frozen test features, with the regularisation chosen by
cross-validation over the training identities.

Market-1501's attribute labels are per identity, and there are only 751 training identities, so a head trained
jointly with identity partly learns "this identity wears red" rather than "red clothes look like this": it is right
on training identities and less so on new ones. Refitting the head alone on the finished model's features, with a
weight decay picked on identities the fit did not see (folds split by identity), trades that memory for
generalisation. The test feature, and so Re-ID, does not change: only the head's weights are replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reidkit.attribute_schema import AttributeSchema, group_slices
from reidkit.errors import ConfigError
from reidkit.evaluation.attributes import predicted_values

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 3e-2)
FOLDS = 3
STEPS = 300


@dataclass(frozen=True)
class RefitResult:
    """The refitted head's ``weight`` (W, D) and ``bias`` (W,), the chosen weight decay and every candidate's
    cross-validated mean group accuracy (the Market authors' rule: colour groups choose a named colour)."""

    weight: torch.Tensor
    bias: torch.Tensor
    weight_decay: float
    validation_accuracy: dict[float, float]


def refit_attribute_head(
    schema: AttributeSchema,
    features: np.ndarray,
    targets: np.ndarray,
    identities: Sequence[int],
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> RefitResult:
    """Fit a linear head from ``features`` (N, D) to ``targets`` (N, groups) value indices; ``identities`` (N,)
    says which rows share a person, so that no person is in both halves of a fold."""
    if len(features) != len(targets) or len(features) != len(identities):
        raise ConfigError("attribute refit: features, targets and identities must have one row per image")
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
    people = np.unique(identities)
    fold_of_person = dict(zip(people, np.random.default_rng(seed).permutation(len(people)) % FOLDS, strict=True))
    fold = np.array([fold_of_person[p] for p in identities])
    scores = {}
    for decay in weight_decays:
        correct = []
        for k in range(FOLDS):
            train, held = torch.from_numpy(fold != k), torch.from_numpy(fold == k)
            weight, bias = _fit(schema, x[train], y[train], decay, seed)
            correct.append(_group_accuracy(schema, x[held] @ weight.T + bias, y[held]))
        scores[decay] = float(np.mean(correct))
        echo(f"attribute refit: weight decay {decay:g}: held-out identities' mean accuracy {scores[decay]:.2%}")
    best = max(scores, key=scores.__getitem__)
    weight, bias = _fit(schema, x, y, best, seed)
    return RefitResult(weight, bias, best, scores)


def _fit(
    schema: AttributeSchema, x: torch.Tensor, y: torch.Tensor, decay: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch L-BFGS on the mean over groups of each group's cross-entropy, plus ``decay`` x |W|^2 / 2."""
    torch.manual_seed(seed)
    width = sum(schema.sizes)
    weight = torch.zeros(width, x.shape[1], requires_grad=True)
    bias = torch.zeros(width, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=STEPS, line_search_fn="strong_wolfe")
    slices = group_slices(schema.sizes)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias
        loss = torch.stack([F.cross_entropy(logits[:, b], y[:, g]) for g, b in enumerate(slices)]).mean()
        loss = loss + decay * weight.pow(2).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _group_accuracy(schema: AttributeSchema, logits: torch.Tensor, y: torch.Tensor) -> float:
    """The mean of the groups' accuracies (every group scores the same images, so the mean over all entries)."""
    return float((predicted_values(schema, logits.numpy()) == y.numpy()).mean())
