"""The torch side: dataset items, transforms, and the P x K sampler's batch, DDP and determinism guarantees."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader

from reidkit.data import IMAGENET_MEAN, ImageDataset, ImageRecord, PKSampler, build_transforms, relabel
from reidkit.errors import ConfigError, DatasetError, ImageError

# ---------------------------------------------------------------- dataset and transforms


@pytest.fixture
def records(tmp_path, jpeg) -> list[ImageRecord]:
    pids = [7, 7, 3, 3, 11, 11, 11, 3]
    return [ImageRecord(jpeg(tmp_path / f"{i}.jpg", size=(24, 50), seed=i), pid, i % 2) for i, pid in enumerate(pids)]


def test_relabel_is_contiguous_in_pid_order(records):
    assert relabel(records) == {3: 0, 7: 1, 11: 2}


def test_dataset_items_through_a_loader(records):
    dataset = ImageDataset(records, build_transforms(32, 16, train=True), relabel(records))
    assert dataset.labels == [1, 1, 0, 0, 2, 2, 2, 0]
    images, labels, camids, indices = next(iter(DataLoader(dataset, batch_size=8)))
    assert images.shape == (8, 3, 32, 16) and images.dtype == torch.float32
    assert labels.tolist() == dataset.labels and camids.tolist() == [i % 2 for i in range(8)]
    assert indices.tolist() == list(range(8))
    raw = ImageDataset(records, build_transforms(32, 16, train=False))
    assert raw[4][1] == 11


def test_dataset_rejects_unmapped_pids(records):
    with pytest.raises(DatasetError, match=r"no class for pid\(s\) \[11\]"):
        ImageDataset(records, build_transforms(32, 16, train=False), {3: 0, 7: 1})


def test_corrupt_image_raises_image_error_naming_it(records):
    records[2].path.write_bytes(records[2].path.read_bytes()[:200])
    dataset = ImageDataset(records, build_transforms(32, 16, train=False))
    with pytest.raises(ImageError, match=records[2].path.name):
        dataset[2]


def test_test_transform_normalises_deterministically():
    mean_colour = tuple(round(255 * m) for m in IMAGENET_MEAN)
    image = Image.new("RGB", (30, 70), mean_colour)
    out = build_transforms(64, 32, train=False)(image)
    assert out.shape == (3, 64, 32) and out.abs().max() < 0.02


def test_train_transform_steps():
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    plain = build_transforms(64, 32, train=False)(image)
    flipped = build_transforms(64, 32, train=True, flip=1.0, pad=0, random_erasing=0)(image)
    assert torch.equal(flipped, plain.flip(-1))
    erased = build_transforms(64, 32, train=True, flip=0, pad=0, random_erasing=1.0)(image)
    assert (erased == 0).any() and not (plain == 0).any()
    torch.manual_seed(0)
    jittered = [build_transforms(64, 32, train=True, flip=0, pad=10, random_erasing=0)(image) for _ in range(5)]
    assert all(j.shape == (3, 64, 32) for j in jittered)
    assert any(not torch.equal(j, plain) for j in jittered)


# ---------------------------------------------------------------- P x K sampler


def _batches(sampler: PKSampler) -> list[list[int]]:
    indices = list(sampler)
    assert len(indices) == len(sampler)
    return [indices[i : i + sampler.batch_size] for i in range(0, len(indices), sampler.batch_size)]


label_lists = st.lists(st.integers(1, 12), min_size=1, max_size=25).map(
    lambda sizes: [pid for pid, n in enumerate(sizes) for _ in range(n)]
)


@settings(max_examples=120, deadline=None)
@given(
    labels=label_lists,
    p=st.integers(1, 6),
    k=st.integers(1, 5),
    world_size=st.integers(1, 3),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 50),
)
def test_pk_batches_ddp_and_determinism(labels, p, k, world_size, seed, epoch):
    try:
        samplers = [PKSampler(labels, p, k, seed=seed, rank=r, world_size=world_size) for r in range(world_size)]
    except ConfigError:
        assert len(set(labels)) < p or (p * k) % world_size
        return
    for sampler in samplers:
        sampler.set_epoch(epoch)
    per_rank = [_batches(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == samplers[0].num_batches >= 1
    # each step's rank slices, in rank order, are exactly the one-process batch of that step
    single = PKSampler(labels, p, k, seed=seed)
    single.set_epoch(epoch)
    global_batches = [sum(slices, []) for slices in zip(*per_rank, strict=True)]
    assert global_batches == _batches(single)
    sizes = Counter(labels)
    for batch in global_batches:
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == p and set(counts.values()) == {k}
        for label, n in counts.items():  # an identity repeats crops only when it has fewer than K
            assert len({i for i in batch if labels[i] == label}) == min(n, sizes[label])
    # the same (seed, epoch) replays exactly, as bit-for-bit resume needs
    replay = PKSampler(labels, p, k, seed=seed, rank=world_size - 1, world_size=world_size)
    replay.set_epoch(epoch)
    assert _batches(replay) == per_rank[-1]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 20), min_size=1, max_size=30), p=st.integers(1, 8), k=st.integers(1, 6))
def test_pk_batch_count_is_the_most_that_fit(sizes, p, k):
    groups = [max(1, n // k) for n in sizes]
    labels = [pid for pid, n in enumerate(sizes) for _ in range(n)]
    if len(sizes) < p:
        with pytest.raises(ConfigError, match=f"p={p} identities per batch"):
            PKSampler(labels, p, k)
        return
    b = PKSampler(labels, p, k).num_batches
    # b batches fit (each identity offers at most b groups, one per batch) and b + 1 do not
    assert sum(min(g, b) for g in groups) >= p * b
    assert sum(min(g, b + 1) for g in groups) < p * (b + 1)


def test_pk_epochs_reshuffle_and_cover_everything():
    labels = [pid for pid in range(8) for _ in range(8)]
    sampler = PKSampler(labels, p=4, k=4, seed=3)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
        assert sorted(epochs[-1]) == list(range(64))  # 8 ids x 8 crops = 4 batches of 4 x 4, every crop once
    assert epochs[0] != epochs[1] != epochs[2]
    other_seed = PKSampler(labels, p=4, k=4, seed=4)
    assert list(other_seed) != epochs[0]


def test_pk_with_dataloader(records):
    dataset = ImageDataset(records, build_transforms(32, 16, train=True), relabel(records))
    sampler = PKSampler(dataset.labels, p=2, k=2)
    loader = DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)
    batches = [labels.tolist() for _, labels, _, _ in loader]
    assert len(batches) == len(sampler) // 4 and all(sorted(Counter(b).values()) == [2, 2] for b in batches)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"p": 0, "k": 4}, "p >= 1 and k >= 1"),
        ({"p": 4, "k": 4}, "only 3"),
        ({"p": 2, "k": 2, "rank": 2, "world_size": 2}, "rank=2"),
        ({"p": 3, "k": 1, "world_size": 2}, "does not split evenly over 2"),
    ],
)
def test_pk_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PKSampler([0, 0, 1, 1, 2, 2], **kwargs)
