"""Attribute recognition scores: the Market-1501 authors' per-group accuracy, and the attribute literature's
label-based mA and instance-based F1.

The authors' protocol (Lin et al. 2019, their ``evaluate_market_attribute.m``) scores each of the 12 groups as the
accuracy of one choice per image: a yes/no or two-valued group by its value, age as a 4-way choice, and a colour
group as the one colour predicted among the named ones, right only if the labels mark that colour. An image whose
labels mark no colour can therefore never be right on that group; it still counts, as in their script. Here a
group with an ``other`` value (the schema's "no named colour") is scored that way: the prediction is the most
probable named value.

For mA and F1 every group is turned into binary labels: a two-valued group is one label (its second value is the
positive one: female, long hair, short sleeves, yes), a group of more values is one label per named value (4 ages,
8 upper and 9 lower colours): 30 labels for Market-1501, predicted from the same choices as the accuracy.
mA is the mean over labels of (true-positive rate + true-negative rate) / 2, over the labels the images have both
positives and negatives of (a label never positive in the test split, such as purple lower-body clothing, has no
true-positive rate); F1 is 2PR / (P + R) of the mean per-image precision P and recall R (Li et al., RAP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidkit.attribute_schema import AttributeGroup, AttributeSchema, group_slices

OTHER = "other"


@dataclass(frozen=True)
class AttributeScores:
    """``group_accuracy`` by group name, in schema order; ``mean_accuracy`` their mean (the authors' headline)."""

    group_accuracy: dict[str, float]
    mean_accuracy: float
    label_mA: float
    labels_scored: int
    labels_total: int
    instance_precision: float
    instance_recall: float
    instance_f1: float
    num_images: int


def predicted_values(schema: AttributeSchema, probabilities: np.ndarray) -> np.ndarray:
    """(N, groups) the value index chosen in each group: the most probable, among the named values where the group
    has an ``other`` (so a colour group always names a colour, as the authors' evaluation asks)."""
    columns = []
    for group, block in zip(schema.groups, group_slices(schema.sizes), strict=True):
        scores = np.asarray(probabilities[:, block], dtype=np.float64)
        named = _named_count(group)
        columns.append(scores[:, :named].argmax(axis=1))
    return np.stack(columns, axis=1) if columns else np.zeros((len(probabilities), 0), dtype=np.int64)


def score_attributes(schema: AttributeSchema, probabilities: np.ndarray, truth: np.ndarray) -> AttributeScores:
    """Scores of ``probabilities`` (N, sum of group sizes) against ``truth`` (N, groups) value indices."""
    truth = np.asarray(truth, dtype=np.int64)
    if probabilities.shape != (len(truth), sum(schema.sizes)) or truth.shape[1:] != (len(schema.groups),):
        raise ValueError(
            f"attribute scores need probabilities (N, {sum(schema.sizes)}) and labels (N, {len(schema.groups)}); "
            f"got {probabilities.shape} and {truth.shape}"
        )
    chosen = predicted_values(schema, probabilities)
    accuracy = {g.name: float((chosen[:, i] == truth[:, i]).mean()) for i, g in enumerate(schema.groups)}
    predicted_labels, true_labels = binary_labels(schema, chosen), binary_labels(schema, truth)
    label_mA, scored = _label_mA(predicted_labels, true_labels)
    precision, recall = _instance_precision_recall(predicted_labels, true_labels)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return AttributeScores(
        group_accuracy=accuracy,
        mean_accuracy=float(np.mean(list(accuracy.values()))),
        label_mA=label_mA,
        labels_scored=scored,
        labels_total=true_labels.shape[1],
        instance_precision=precision,
        instance_recall=recall,
        instance_f1=f1,
        num_images=len(truth),
    )


def binary_label_names(schema: AttributeSchema) -> list[str]:
    """The binary labels of mA and F1, as ``group=value``."""
    names = []
    for group in schema.groups:
        if len(group.values) == 2:
            names.append(f"{group.name}={group.values[1]}")
        else:
            names.extend(f"{group.name}={v}" for v in group.values[: _named_count(group)])
    return names


def binary_labels(schema: AttributeSchema, values: np.ndarray) -> np.ndarray:
    """(N, labels) booleans from (N, groups) value indices, in ``binary_label_names`` order."""
    columns = []
    for i, group in enumerate(schema.groups):
        if len(group.values) == 2:
            columns.append(values[:, i] == 1)
        else:
            columns.extend(values[:, i] == v for v in range(_named_count(group)))
    return np.stack(columns, axis=1)


def _named_count(group: AttributeGroup) -> int:
    """How many of the group's values are named (all but a trailing ``other``)."""
    return len(group.values) - 1 if group.values[-1] == OTHER else len(group.values)


def _label_mA(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    positives, negatives = truth.sum(axis=0), (~truth).sum(axis=0)
    scored = (positives > 0) & (negatives > 0)
    true_positive_rate = (predicted & truth).sum(axis=0)[scored] / positives[scored]
    true_negative_rate = (~predicted & ~truth).sum(axis=0)[scored] / negatives[scored]
    return float(((true_positive_rate + true_negative_rate) / 2).mean()), int(scored.sum())


def _instance_precision_recall(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = (predicted & truth).sum(axis=1)
    claimed, present = predicted.sum(axis=1), truth.sum(axis=1)
    precision = np.divide(hits, claimed, out=np.zeros(len(hits)), where=claimed > 0)
    recall = np.divide(hits, present, out=np.zeros(len(hits)), where=present > 0)
    return float(precision.mean()), float(recall.mean())
