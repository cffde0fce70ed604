"""reidkit.losses: batch-hard triplet and label smoothing against references, and ReidLoss's wiring to models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reidkit.errors import ConfigError
from reidkit.losses import BatchHardTripletLoss, CrossEntropyLoss, LossWeights, ReidLoss
from reidkit.models import ReidOutputs, build_model


def _brute_force_triplet(features: torch.Tensor, labels: list[int], margin: float | None) -> float:
    """Hermans et al.'s batch-hard loss, one anchor at a time, straight from the definition."""
    losses = []
    for a, label in enumerate(labels):
        positives = [torch.linalg.vector_norm(features[a] - features[p]).item() for p, lp in enumerate(labels)
                     if lp == label and p != a]
        negatives = [torch.linalg.vector_norm(features[a] - features[n]).item() for n, ln in enumerate(labels)
                     if ln != label]
        if not positives or not negatives:
            continue
        gap = max(positives) - min(negatives)
        losses.append(math.log1p(math.exp(gap)) if margin is None else max(0.0, gap + margin))
    return sum(losses) / len(losses) if losses else 0.0


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=12),
    dim=st.integers(1, 16),
    margin=st.one_of(st.none(), st.floats(0.0, 3.0)),
    seed=st.integers(0, 2**16),
)
def test_batch_hard_triplet_matches_brute_force(labels: list[int], dim: int, margin: float | None, seed: int) -> None:
    features = torch.randn(len(labels), dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    loss = BatchHardTripletLoss(margin)(features, torch.tensor(labels))
    assert loss.item() == pytest.approx(_brute_force_triplet(features, labels, margin), rel=1e-5, abs=1e-6)


def test_triplet_picks_the_hardest_pairs() -> None:
    features = torch.tensor([[0.0], [1.0], [3.0], [-2.0], [5.0]])
    labels = torch.tensor([0, 0, 0, 1, 2])
    # Hardest positive / negative distances: anchor 0 (x=0): 3 / 2; anchor 1 (x=1): 2 / 3; anchor 2 (x=3): 3 / 2.
    # Anchors 3 and 4 have no positive and are skipped.
    hard = BatchHardTripletLoss(margin=0.5)(features, labels)
    expected = (max(0.0, 1 + 0.5) + max(0.0, -1 + 0.5) + max(0.0, 1 + 0.5)) / 3
    assert hard.item() == pytest.approx(expected)
    soft = BatchHardTripletLoss(margin=None)(features, labels)
    assert soft.item() == pytest.approx((F.softplus(torch.tensor([1.0, -1.0, 1.0]))).mean().item())


def test_triplet_degenerate_batches_give_zero_loss_and_finite_gradients() -> None:
    for labels in ([3, 3, 3, 3], [0, 1, 2, 3]):  # no negatives / no positives anywhere
        features = torch.randn(4, 8, requires_grad=True)
        loss = BatchHardTripletLoss(1.2)(features, torch.tensor(labels))
        loss.backward()
        assert loss.item() == 0.0 and features.grad is not None and torch.isfinite(features.grad).all()
    duplicates = torch.ones(4, 8).requires_grad_()  # every distance is exactly 0: sqrt must not give NaN
    loss = BatchHardTripletLoss(None)(duplicates, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-3)
    assert duplicates.grad is not None and torch.isfinite(duplicates.grad).all()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_label_smoothing_matches_torch(eps: float) -> None:
    logits = torch.randn(16, 11, dtype=torch.float64) * 4
    labels = torch.randint(0, 11, (16,))
    ours = CrossEntropyLoss(eps)(logits, labels)
    torch.testing.assert_close(ours, F.cross_entropy(logits.float(), labels, label_smoothing=eps))
    # Half-precision logits are scored in float32.
    assert CrossEntropyLoss(eps)(logits.to(torch.bfloat16), labels).dtype == torch.float32


def test_bad_loss_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="label_smoothing"):
        CrossEntropyLoss(1.0)
    with pytest.raises(ConfigError, match="triplet_margin"):
        BatchHardTripletLoss(-0.1)
    with pytest.raises(ConfigError, match="loss.softmax"):
        LossWeights(softmax=-1.0)
    with pytest.raises(ConfigError, match="head_reduction"):
        ReidLoss(head_reduction="max")  # type: ignore[arg-type]


def test_reid_loss_sums_heads_by_default_and_can_average() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    outputs = ReidOutputs(
        logits=[torch.randn(6, 3) for _ in range(8)], metric_features=[torch.randn(6, 4) for _ in range(3)]
    )
    ce = [F.cross_entropy(t, labels, label_smoothing=0.1) for t in outputs.logits]
    tri = [BatchHardTripletLoss(1.2)(f, labels) for f in outputs.metric_features]
    summed = ReidLoss(LossWeights(softmax=1.0, triplet=2.0), label_smoothing=0.1)(outputs, labels)
    torch.testing.assert_close(summed.softmax, sum(ce))
    torch.testing.assert_close(summed.triplet, sum(tri))
    torch.testing.assert_close(summed.total, sum(ce) + 2.0 * sum(tri))
    mean = ReidLoss(LossWeights(), label_smoothing=0.1, head_reduction="mean")(outputs, labels)
    torch.testing.assert_close(mean.total, sum(ce) / 8 + sum(tri) / 3)
    expected_accuracy = (outputs.logits[0].argmax(1) == labels).float().mean()
    assert summed.accuracy is not None and summed.accuracy.item() == expected_accuracy.item()


def test_reid_loss_with_missing_heads() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    trinet_like = ReidLoss()(ReidOutputs(logits=[], metric_features=[torch.randn(4, 8)]), labels)
    assert trinet_like.accuracy is None and trinet_like.softmax.item() == 0.0
    ide_like = ReidLoss()(ReidOutputs(logits=[torch.randn(4, 2)], metric_features=[]), labels)
    assert ide_like.triplet.item() == 0.0 and ide_like.total.item() == pytest.approx(ide_like.softmax.item())


def _grad_norms(module: torch.nn.Module) -> float:
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


def test_mgn_loss_wiring_by_gradient_flow() -> None:
    torch.manual_seed(0)
    model = build_model("mgn", num_classes=4, backbone="mobilenetv2").train()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    criterion = ReidLoss(label_smoothing=0.1, triplet_margin=None)  # soft margin: every anchor has a gradient

    criterion(model(torch.randn(8, 3, 96, 32)), labels).triplet.backward()
    silent = [*model.stripe_reductions, *model.stripe_classifiers, *model.global_classifiers]
    assert all(p.grad is None for m in silent for p in m.parameters())
    assert all(_grad_norms(m) > 0 for m in model.global_reductions)
    assert all(_grad_norms(b) > 0 for b in [model.global_branch, *model.part_branches])

    model.zero_grad(set_to_none=True)
    criterion(model(torch.randn(8, 3, 96, 32)), labels).softmax.backward()
    classifiers = [*model.global_classifiers, *model.stripe_classifiers]
    assert len(classifiers) == 8 and all(_grad_norms(c) > 0 for c in classifiers)
    assert all(_grad_norms(r) > 0 for r in model.stripe_reductions)
    # The paper's global softmax reads the 2048-d pooled feature, so global reductions only learn from triplets.
    assert all(p.grad is None for m in model.global_reductions for p in m.parameters())


def test_bnneck_loss_wiring_by_gradient_flow() -> None:
    model = build_model("bnneck", num_classes=3, backbone="mobilenetv2").train()
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    ReidLoss(triplet_margin=None)(model(torch.randn(6, 3, 96, 32)), labels).triplet.backward()
    # The triplet reads the feature before the BN neck: neither the neck nor the classifier learns from it.
    assert all(p.grad is None for m in (model.neck, model.classifier) for p in m.parameters())
    assert _grad_norms(model.body) > 0
