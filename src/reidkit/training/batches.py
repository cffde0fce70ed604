"""Where training batches come from: the on-device cache (``gpu_batches``) or the classic DataLoader pipeline.

Either way an epoch's batches are a pure function of (seed, epoch): the P x K sampler is reseeded per epoch, and
the augmentation randomness comes from a generator (cache) or worker seeds (DataLoader) derived from the same pair.
In a multi-process run each rank gets its slice of every global batch; the cache then augments each crop exactly
as one process would, while the DataLoader path seeds its workers per rank as well (same distribution, other draws).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from reidkit.config import DataConfig
from reidkit.data import ImageDataset, ImageRecord, PKSampler, build_transforms, verify_images
from reidkit.training.gpu_batches import BatchAugment, CachedTrainSet
from reidkit.training.runtime import epoch_seed

BatchSource = Callable[[int], Iterator[tuple[Tensor, Tensor]]]


def build_batch_source(
    data: DataConfig,
    seed: int,
    records: Sequence[ImageRecord],
    pid_to_label: dict[int, int],
    sampler: PKSampler,
    device: torch.device,
    progress: bool = True,
) -> BatchSource:
    """``epoch -> iterator of (images, labels)``; images are normalised float tensors, labels class indices."""
    batch_size = sampler.batch_size
    if data.cache_in_memory:
        labels = [pid_to_label[r.pid] for r in records]
        cache = CachedTrainSet.decode(records, labels, data.height, data.width, device, progress=progress)
        augment = BatchAugment(
            data.mean, data.std, flip=data.flip, pad=data.pad, erasing=data.random_erasing,
            share=(sampler.rank, sampler.world_size),
        )

        def cached(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
            sampler.set_epoch(epoch)
            index_batches = np.fromiter(sampler, dtype=np.int64).reshape(-1, batch_size)
            generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))
            return cache.batches(index_batches, augment, generator)

        return cached

    # The cache decodes every crop while filling itself; this path must check them all up front instead, so a
    # corrupt file fails here in one line rather than inside a DataLoader worker mid-epoch.
    verify_images(records, mode="full")
    transform = build_transforms(
        data.height, data.width, train=True, mean=data.mean, std=data.std,
        random_erasing=data.random_erasing, pad=data.pad, flip=0.5 if data.flip else 0.0,
    )
    train_set = ImageDataset(records, transform, pid_to_label)

    # One process keeps its historical seeds; each rank of several draws its own, or all would augment alike.
    rank_key = (sampler.rank,) if sampler.world_size > 1 else ()

    def loaded(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        sampler.set_epoch(epoch)
        # A fresh loader per epoch whose worker seeds come from (seed, epoch): resumable, unlike persistent
        # workers whose random state would depend on every earlier epoch.
        loader = DataLoader(
            train_set,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=data.workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, *rank_key)),
            prefetch_factor=4 if data.workers > 0 else None,
        )
        return ((images, targets) for images, targets, _camids, _indices in loader)

    return loaded
