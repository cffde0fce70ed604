"""One optimisation step (autocast forward, loss, scaled backward, optimiser update), shared by the trainer and
the training benchmark so that the benchmark times exactly what training runs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from reidkit.losses import LossBreakdown
from reidkit.models.types import ReidOutputs

# ReidLoss, or the same on the batch gathered from every process (reidkit.training.distributed.GlobalBatchLoss)
LossFn = Callable[[ReidOutputs, Tensor], LossBreakdown]


class TrainStep:
    """``step(images, targets)`` trains on one batch and returns the (still on-device) loss breakdown.

    Nothing here reads a value back to the host, so on a GPU consecutive steps queue up without synchronising;
    callers decide when to pay for ``.item()``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        amp_dtype: torch.dtype | None,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.model, self.loss_fn, self.optimizer, self.scaler = model, loss_fn, optimizer, scaler
        self.amp_dtype, self.device = amp_dtype, device
        self.channels_last = channels_last

    def __call__(self, images: Tensor, targets: Tensor) -> LossBreakdown:
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = self.amp_dtype is not None
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=autocast):
            losses = self.loss_fn(self.model(images), targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return losses
