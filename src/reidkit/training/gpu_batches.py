"""The cached training path: decode the train set once, keep it on the device, augment whole batches there.

Per-image JPEG decoding and PIL/torchvision transforms in DataLoader workers cap a GPU at a few hundred images per
second for small crops and, on a 2-core CPU, steal the cores the model needs. Here the resized crops live in one
uint8 tensor (N, 3, H, W) on the training device (7,357 CUHK03 crops at 256x128 are 0.7 GB), and flip, pad-and-crop
and random erasing run as a handful of batched tensor ops per step. The augmentations match
``reidkit.data.build_transforms(train=True)`` in kind and parameters (flip p=0.5, zero pad then random crop,
erasing p with scale (0.02, 0.33), ratio (0.3, 3.3), filled with 0 after normalisation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torchvision.transforms import v2
from tqdm import tqdm

from reidkit.data import ImageRecord, read_image

ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)


class CachedTrainSet:
    """The whole train set as uint8 pixels plus class labels, both on ``device``."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    @classmethod
    def decode(
        cls,
        records: Sequence[ImageRecord],
        labels: Sequence[int],
        height: int,
        width: int,
        device: torch.device,
        progress: bool = True,
    ) -> CachedTrainSet:
        """Read and resize every crop exactly as the test transform does (uint8 tensor resize, antialiased)."""
        # The same first two steps as build_transforms(train=False), so cached training sees what testing sees.
        resize = v2.Compose([v2.ToImage(), v2.Resize((height, width), antialias=True)])
        images = torch.empty((len(records), 3, height, width), dtype=torch.uint8)

        def load(i: int) -> None:
            images[i] = resize(read_image(records[i].path))

        # Decoding releases the GIL, so threads overlap the JPEG work without worker processes.
        with ThreadPoolExecutor(max_workers=4) as pool:
            jobs = pool.map(load, range(len(records)))
            for _ in tqdm(jobs, total=len(records), desc="caching train set", unit="img", disable=not progress):
                pass
        label_tensor = torch.as_tensor(list(labels), dtype=torch.int64)
        pin = device.type == "cuda"
        return cls(
            images.pin_memory().to(device, non_blocking=True) if pin else images.to(device),
            label_tensor.to(device),
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def batches(
        self,
        index_batches: Sequence[Sequence[int]],
        augment: BatchAugment,
        generator: torch.Generator,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(normalised float images, labels)`` for each batch of dataset indices."""
        device = self.images.device
        for indices in index_batches:
            index = torch.as_tensor(indices, dtype=torch.int64).to(device, non_blocking=True)
            yield augment(self.images.index_select(0, index), generator), self.labels.index_select(0, index)


class BatchAugment:
    """Flip, pad-and-crop, normalise and erase a uint8 batch on its own device with one explicit generator.

    Taking the generator as an argument (rather than using the global RNG) is what lets the trainer make every
    epoch's augmentation a pure function of (seed, epoch), so a resumed run draws the same crops as an unbroken one.

    ``share=(rank, world_size)``: the batch is this rank's slice of a global batch ``world_size`` times larger; the
    random numbers of the whole global batch are drawn and this slice's used, so every crop is augmented exactly
    as in a one-process run.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        flip: bool = True,
        pad: int = 10,
        erasing: float = 0.5,
        share: tuple[int, int] = (0, 1),
    ) -> None:
        self.share = share
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.flip, self.pad, self.erasing = flip, pad, erasing

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        batch = images.shape[0]
        device = images.device

        rank, world_size = self.share

        def uniform(count: int) -> Tensor:
            drawn = torch.rand(count * world_size, generator=generator, device=device)
            return drawn[rank * count : (rank + 1) * count]

        if self.flip:
            flipped = uniform(batch) < 0.5
            images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.pad > 0:
            images = _pad_crop(images, self.pad, uniform(batch), uniform(batch))
        if self.mean.device != device:
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        out = (images.float() - self.mean) / self.std
        if self.erasing > 0:
            out = _erase(out, self.erasing, *(uniform(batch) for _ in range(5)))
        return out


def _pad_crop(images: Tensor, pad: int, u_y: Tensor, u_x: Tensor) -> Tensor:
    """Zero-pad by ``pad`` and take a random (H, W) window per image, by one gather instead of a Python loop."""
    batch, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    off_y = (u_y * (2 * pad + 1)).long().clamp_(max=2 * pad)
    off_x = (u_x * (2 * pad + 1)).long().clamp_(max=2 * pad)
    rows = off_y[:, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = off_x[:, None] + torch.arange(width, device=images.device)  # (B, W)
    b = torch.arange(batch, device=images.device)[:, None, None, None]
    c = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def _erase(
    images: Tensor, p: float, u_apply: Tensor, u_area: Tensor, u_ratio: Tensor, u_y: Tensor, u_x: Tensor
) -> Tensor:
    """Random erasing with value 0: one rectangle per chosen image, area and log-aspect drawn uniformly.

    torchvision retries up to 10 draws until the rectangle fits; clamping the sides to the image instead keeps the
    batch free of data-dependent loops and changes the distribution only for the rare extreme aspect ratios.
    """
    batch, _, height, width = images.shape
    area = height * width * (ERASE_SCALE[0] + u_area * (ERASE_SCALE[1] - ERASE_SCALE[0]))
    log_lo, log_hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = torch.exp(log_lo + u_ratio * (log_hi - log_lo))
    erase_h = torch.sqrt(area * ratio).round().clamp(1, height)
    erase_w = torch.sqrt(area / ratio).round().clamp(1, width)
    top = (u_y * (height - erase_h + 1)).floor()
    left = (u_x * (width - erase_w + 1)).floor()
    ys = torch.arange(height, device=images.device, dtype=images.dtype)
    xs = torch.arange(width, device=images.device, dtype=images.dtype)
    inside_y = (ys[None, :] >= top[:, None]) & (ys[None, :] < (top + erase_h)[:, None])  # (B, H)
    inside_x = (xs[None, :] >= left[:, None]) & (xs[None, :] < (left + erase_w)[:, None])  # (B, W)
    mask = inside_y[:, :, None] & inside_x[:, None, :] & (u_apply < p)[:, None, None]
    return images.masked_fill(mask[:, None], 0.0)
