"""Training on several processes (``torchrun``): the process group, global BatchNorm, the global-batch loss and
sharded evaluation.

The goal is that N processes train exactly the run one process would, only faster: each step's global batch is
still P identities x K crops (``PKSampler`` hands each rank its slice), and everything that looks across the batch
sees the whole of it. BatchNorm does so with ``train.sync_bn`` (``convert_sync_batchnorm``); the losses always do
(``GlobalBatchLoss`` gathers the model outputs, so batch-hard mining picks its hardest positive and negative among
all P x K crops). Gathering is differentiable and every rank computes the same global loss; the gather's backward
sums each rank's gradient into the owner of the crop, and DDP's average over ranks then divides that N-fold sum by
N, so the weights get exactly the one-process gradient.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd import Function
from torch.nn.modules.batchnorm import _BatchNorm

from reidkit.errors import ConfigError
from reidkit.inference import FeatureExtractor
from reidkit.losses import LossBreakdown, ReidLoss
from reidkit.models.model_file import ModelCard
from reidkit.models.types import ReidOutputs


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether start_world created the process group (and close must destroy it)

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: ``cuda:LOCAL_RANK`` when the run asks for CUDA, else ``device``."""
        if self.is_distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def start_world(device: torch.device) -> World:
    """The ``World`` of this process, from the variables ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT); joins the process group (NCCL on CUDA, else gloo) when there is more than one.

    Without those variables (a plain ``reidkit train``) it is the one-process world and nothing is initialised.
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World()
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} unset: start multi-process training with torchrun "
            "or reidkit train --nproc N"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    backend = "gloo"
    if device.type == "cuda":
        backend = "nccl"
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return World(rank, world_size, local_rank, owns_group=True)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm layer normalising over the global batch, weights and statistics kept:
    PyTorch's ``nn.SyncBatchNorm`` on a GPU, ``GlobalBatchNorm`` on the CPU (where PyTorch's refuses to run).

    Call it before freezing layers or building the optimiser: the new layers hold the same ``Parameter`` objects,
    but the modules themselves are new.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, _BatchNorm):
            setattr(model, name, GlobalBatchNorm.like(child))
        else:
            convert_sync_batchnorm(child, device)
    return model


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of a multi-process CPU run (gloo), which ``nn.SyncBatchNorm`` does not serve.

    In training, each rank's per-channel mean, variance and count are gathered (differentiably) and pooled into
    the global batch's statistics, which then normalise the local slice and update the running statistics exactly
    as one process would on the whole batch. In eval mode, or alone, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    @classmethod
    def like(cls, bn: _BatchNorm) -> GlobalBatchNorm:
        layer = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            layer.weight, layer.bias = bn.weight, bn.bias
        layer.running_mean, layer.running_var = bn.running_mean, bn.running_var
        layer.num_batches_tracked = bn.num_batches_tracked
        layer.train(bn.training)
        return layer

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        var, mean = torch.var_mean(input, dim=dims, correction=0)
        count = torch.full((1,), input.numel() / channels, dtype=input.dtype)
        stats = gather_with_grad(torch.cat([mean, var, count])[None])  # (world, 2C + 1)
        means, variances, counts = stats[:, :channels], stats[:, channels:-1], stats[:, -1:]
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        global_var = (counts * (variances + (means - global_mean) ** 2)).sum(0) / total
        if self.track_running_stats:
            self._update_running_stats(global_mean.detach(), global_var.detach(), float(total.detach()))
        shape = [1, channels] + [1] * (input.dim() - 2)
        out = (input - global_mean.view(shape)) * torch.rsqrt(global_var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: float) -> None:
        assert self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(var * (count / max(count - 1, 1)), alpha=momentum)


class GlobalBatchLoss(nn.Module):
    """``ReidLoss`` on the global batch: every rank gathers all ranks' outputs and labels and computes the same loss.

    All heads travel in one all-gather (concatenated along the feature axis, in float32 as the losses compute).
    """

    def __init__(self, loss: ReidLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: ReidOutputs, labels: Tensor) -> LossBreakdown:
        heads = [*outputs.logits, *outputs.metric_features]
        if outputs.attribute_logits is not None:
            heads.append(outputs.attribute_logits)
        widths = [t.shape[1] for t in heads]
        flat = torch.cat([t.float() for t in heads], dim=1)
        gathered = list(gather_with_grad(flat).split(widths, dim=1))
        all_labels = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
        dist.all_gather(all_labels, labels.contiguous())
        attribute_logits = gathered.pop() if outputs.attribute_logits is not None else None
        split = len(outputs.logits)
        global_outputs = ReidOutputs(
            logits=gathered[:split], metric_features=gathered[split:], attribute_logits=attribute_logits
        )
        return self.loss(global_outputs, torch.cat(all_labels))


class ShardedExtractor:
    """A ``FeatureExtractor`` whose work is shared out: each rank extracts a contiguous shard of the images and
    every rank gets all features back, in input order; so each rank can score the evaluation itself."""

    def __init__(self, extractor: FeatureExtractor, world: World) -> None:
        self.extractor, self.world = extractor, world

    @property
    def card(self) -> ModelCard:
        return self.extractor.card

    @property
    def flip(self) -> bool:
        return self.extractor.flip

    @property
    def model_id(self) -> str:
        return self.extractor.model_id

    def __call__(self, images: Sequence[Any], desc: str = "extracting features") -> np.ndarray:
        images = list(images)
        bounds = np.linspace(0, len(images), self.world.world_size + 1).round().astype(int)
        lo, hi = bounds[self.world.rank], bounds[self.world.rank + 1]
        local = torch.from_numpy(self.extractor(images[lo:hi], desc=desc))
        return gather_rows(local, np.diff(bounds).tolist(), self.extractor.device).numpy()

    def extract(self, images: Sequence[Any], desc: str = "extracting features") -> tuple[np.ndarray, None]:
        """Features only: training's evaluation scores identity, so no rank computes attributes."""
        return self(images, desc), None


def gather_with_grad(local: Tensor) -> Tensor:
    """Every rank's ``local`` (equal shapes) concatenated along dim 0 in rank order, differentiably: the gradient
    of each rank's rows is the sum of the gradients every rank computed for them."""
    return _GatherWithGrad.apply(local)


class _GatherWithGrad(Function):
    @staticmethod
    def forward(ctx: Any, local: Tensor) -> Tensor:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        ctx.rows = local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce writes in place
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def gather_rows(local: Tensor, counts: Sequence[int], device: torch.device) -> Tensor:
    """Every rank's rows (rank r holds ``counts[r]`` of them) concatenated in rank order, on the CPU of every rank.

    Shards are padded to one length for the collective (NCCL needs equal sizes and tensors on the GPU).
    """
    longest = max(counts)
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)]).cpu()


def gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (pickled; for small things such as RNG states)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank: how ranks agree on a decision that must be taken by all (stopping)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
