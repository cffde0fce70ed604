"""P x K identity sampling for batch-hard triplet training, reproducible per (seed, epoch) and split across DDP ranks.

With ``world_size`` ranks, every optimisation step still sees one global batch of P identities x K crops: each rank
yields its contiguous slice (``p * k / world_size`` crops) of the same global batch, so a multi-process run steps
through exactly the batches of a one-process run (the losses then see the gathered global batch).

Every batch holds P distinct identities with K crops each, which is what a batch-hard triplet loss needs (each
anchor has K-1 positives and (P-1)K negatives). An epoch walks through every identity's crops once in groups of K
(an identity with fewer than K crops is topped up by drawing its crops again), so large identities are seen in full
rather than one group per epoch.

The batch count must not depend on the random draw, or ``__len__`` (and with it learning-rate schedules and DDP
step counts) would drift between epochs and ranks. It is therefore fixed up front as the largest B such that B
batches of P distinct identities can be filled from the per-identity group counts; each epoch then lays out the
groups identity by identity in a shuffled order and deals them column-wise into B batches, which puts any one
identity's (at most B) groups into different batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from reidkit.errors import ConfigError


class PKSampler(Sampler[int]):
    """Indices for a ``DataLoader(batch_size=p * k)``; call ``set_epoch`` before each epoch, as with DDP samplers."""

    def __init__(
        self, labels: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        if p < 1 or k < 1:
            raise ConfigError(f"PKSampler needs p >= 1 and k >= 1, got p={p}, k={k}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"PKSampler rank={rank} must lie in 0..world_size-1 (world_size={world_size})")
        if (p * k) % world_size:
            raise ConfigError(
                f"PKSampler: the global batch of p x k = {p * k} crops does not split evenly over {world_size} "
                "processes; choose data.ids_per_batch x data.images_per_id divisible by the process count"
            )
        label_array = np.asarray(labels, dtype=np.int64)
        order = np.argsort(label_array, kind="stable")
        unique, starts = np.unique(label_array[order], return_index=True)
        self._members = np.split(order, starts[1:]) if len(order) else []
        if len(unique) < p:
            raise ConfigError(
                f"PKSampler p={p} identities per batch, but the training set has only {len(unique)}; lower p"
            )
        self.p, self.k, self.seed, self.rank, self.world_size = p, k, seed, rank, world_size
        self.epoch = 0
        self._groups = np.array([max(1, len(m) // k) for m in self._members], dtype=np.int64)
        self.num_batches = _max_batches(self._groups, p)
        if self.num_batches == 0:
            raise ConfigError(f"PKSampler p={p}, k={k} yields no full batch from {len(unique)} identities; lower p or k")

    @property
    def batch_size(self) -> int:
        """This rank's share of each global batch: what a ``DataLoader`` on this rank takes per step."""
        return self.p * self.k // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; the same (seed, epoch) always gives the same indices on every rank."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        share = self.batch_size
        mine = self.epoch_batches()[:, self.rank * share : (self.rank + 1) * share]
        return iter(mine.reshape(-1).tolist())

    def epoch_batches(self) -> np.ndarray:
        """The global batches of this epoch, shape (B, P * K), identities in K-runs within each batch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        B, p, k = self.num_batches, self.p, self.k
        slots: list[np.ndarray] = []  # groups of K indices, laid out identity by identity
        for identity in rng.permutation(len(self._members)):
            members = rng.permutation(self._members[identity])
            if len(members) < k:
                members = np.concatenate([members, rng.choice(members, size=k - len(members))])
            groups = members[: (len(members) // k) * k].reshape(-1, k)
            slots.extend(groups[rng.permutation(len(groups))[:B]])
            if len(slots) >= B * p:
                break
        # Column-major dealing: slot t goes to batch t % B, so one identity's <= B consecutive slots never share one.
        grid = np.stack(slots[: B * p]).reshape(p, B, k).transpose(1, 0, 2)[rng.permutation(B)]
        identity_order = np.argsort(rng.random((B, p)), axis=1)
        return np.take_along_axis(grid, identity_order[:, :, None], axis=1).reshape(B, p * k)


def _max_batches(groups: np.ndarray, p: int) -> int:
    """Largest B with sum(min(groups, B)) >= p * B: exactly when B batches of p distinct identities exist."""
    for b in range(int(groups.sum()) // p, 0, -1):
        if int(np.minimum(groups, b).sum()) >= p * b:
            return b
    return 0
