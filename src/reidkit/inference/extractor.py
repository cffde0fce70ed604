"""``FeatureExtractor``: a checkpoint (or a live model) in, one float32 feature row per image out.

Every input kind is turned into a PIL RGB image and then goes through ``build_transforms(train=False)``, the same
pipeline training evaluates with, so a crop gives the same feature whether it arrives as a file, a PIL image or a
numpy array, and ``reidkit test`` reproduces the numbers printed during training.

``backend="openvino"`` runs the same network through the OpenVINO runtime (converted from the PyTorch module,
a few seconds, then cached by model id so that the next command with the same checkpoint only compiles): on a
CPU it embeds crops clearly faster than PyTorch with channels_last (figures: benchmarks/RESULTS.md, Inference
on CPU), which is what lets video ingest keep up with the camera.
Its features match PyTorch's to 1e-4, so they share the model id and mix freely with PyTorch-made queries.

A ``.onnx`` or ``.xml`` path is a model from another toolkit (or a ``reidkit export``): it runs in ONNX Runtime or
OpenVINO (``foreign_model``), with the preprocessing its sidecar declares expressed as this same pipeline, so every
command that takes ``--checkpoint`` takes it too. Only what needs the PyTorch module is refused for it (the torch
backend, a GPU, activation maps).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from reidkit.attribute_schema import AttributeSchema
from reidkit.data import IMAGENET_MEAN, IMAGENET_STD, build_transforms, read_image
from reidkit.errors import ImageError, ModelError
from reidkit.image_open import upright_rgb
from reidkit.inference.attributes import CACHE_SUFFIX, FeatureAndAttributes
from reidkit.inference.backends import EMBEDDING_BACKENDS
from reidkit.inference.foreign_model import is_foreign_model, load_foreign_model
from reidkit.models import ReidModel, build_model
from reidkit.models.model_file import ModelCard, backbone_init_label, load_model, model_id

ImageInput = str | Path | Image.Image | np.ndarray
PROGRESS_MIN_IMAGES = 512


class FeatureExtractor:
    """Compute test features with a ReID model; ``flip`` averages each feature with that of the mirrored crop.

    ``checkpoint_or_model`` is a checkpoint path, or a reidkit model together with ``card`` (input size and
    normalisation), which is how the trainer evaluates the model it is training without a round trip to disk.
    ``workers`` > 0 decodes image files in DataLoader worker processes. A checkpoint's model runs in channels_last
    layout (faster convolutions on CPU and GPU); a live model is left as its owner keeps it. ``frozen=True`` says a
    model passed in will not change (``choose_model``'s untrained baseline, which nothing trains): it is then treated
    like a checkpoint's, its id hashed once rather than before every call (a tenth of a second for MGN), which a
    server embedding one query crop at a time would otherwise pay per request. ``backend``: a name of
    ``EMBEDDING_BACKENDS``; None is PyTorch for a reidkit model and the file's own runtime for an ONNX / IR one.
    """

    def __init__(
        self,
        checkpoint_or_model: str | Path | nn.Module,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        flip: bool = False,
        *,
        card: ModelCard | None = None,
        workers: int = 0,
        progress: bool = True,
        backend: str | None = None,
        frozen: bool = False,
        attributes: bool | None = False,
    ) -> None:
        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self._live = isinstance(checkpoint_or_model, nn.Module) and not frozen
        self._model_id: str | None = None
        self._feature_dim: int | None = None
        self.model: nn.Module | None
        self.attributes = bool(attributes)  # None: resolved once the model is loaded (``_open_reidkit``)
        self.schema: AttributeSchema | None = None  # the attributes' meaning, for an extractor that gives them
        if not isinstance(checkpoint_or_model, nn.Module) and is_foreign_model(checkpoint_or_model):
            self._open_foreign(Path(checkpoint_or_model), backend)
        else:
            self._open_reidkit(checkpoint_or_model, card, backend or "torch", attributes)
        self.batch_size, self.flip, self.workers, self.progress = batch_size, flip, workers, progress
        height, width = self.card.input_size
        self.transform = build_transforms(height, width, train=False, mean=self.card.mean, std=self.card.std)

    def _open_reidkit(
        self, checkpoint_or_model: str | Path | nn.Module, card: ModelCard | None, backend: str,
        attributes: bool | None,
    ) -> None:
        """``attributes=None``: the attribute probabilities too, where the model has an attribute head (decided from
        the loaded model, so a model file is read once)."""
        self._backend = EMBEDDING_BACKENDS.get(backend)
        if isinstance(checkpoint_or_model, nn.Module):
            if card is None:
                raise ModelError("FeatureExtractor(model) needs card= (input size, mean, std) to preprocess images")
            self.model, self.card = checkpoint_or_model, card
        else:
            self.model, self.card = load_model(Path(checkpoint_or_model))
            self.model.to(memory_format=torch.channels_last)
        if attributes is None:
            self.attributes = isinstance(self.model, ReidModel) and self.model.attribute_schema is not None
        self._network: nn.Module = FeatureAndAttributes(self.model) if self.attributes else self.model
        if isinstance(self._network, FeatureAndAttributes):
            self.schema = self._network.schema
        suffix = CACHE_SUFFIX if self.attributes else ""
        key = None if self._live else (lambda: self.model_id + suffix)
        self._run = self._backend.make_runner(self._network, self.card, self.device, key)  # checks the device
        self._run_id = self.model_id if self._live and self._backend.snapshots_weights else None
        self.model.to(self.device)

    def _open_foreign(self, path: Path, backend: str | None) -> None:
        """A model from another toolkit (``foreign_model``): its runtime replaces the backend, and there is no
        nn.Module to move, hash or switch to eval mode; flip averaging works as for any model (it flips the batch)."""
        if backend not in (None, "auto"):
            EMBEDDING_BACKENDS.get(backend)  # an unknown name is refused as for any model
        if self.attributes:
            raise ModelError(f"{path}: a model from another toolkit has no reidkit attribute head")
        foreign = load_foreign_model(path, backend, self.device)
        self.model, self.card, self._run = None, foreign.card, foreign.run
        self._model_id, self._feature_dim = foreign.model_id, foreign.feature_dim

    @property
    def feature_dim(self) -> int:
        if self._feature_dim is not None:
            return self._feature_dim
        return int(self.model.feature_dim)  # type: ignore[union-attr, arg-type]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_size

    @property
    def model_id(self) -> str:
        """Stable hash of weights + spec + preprocessing: equal ids mean features are comparable.

        Cached for a checkpoint's model, whose weights nothing here changes; recomputed (a fraction of a second)
        for a live model, which may be training between calls.
        """
        if self._model_id is None:
            current = model_id(self.model, self.card)  # type: ignore[arg-type]  # a foreign model's id is set
            if not self._live:
                self._model_id = current
            return current
        return self._model_id

    def __call__(self, images: Sequence[ImageInput], desc: str = "extracting features") -> np.ndarray:
        """Features (N, feature_dim) float32, in input order."""
        return self.extract(images, desc)[0]

    def extract(
        self, images: Sequence[ImageInput], desc: str = "extracting features"
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Features (N, feature_dim) and, for an extractor made with ``attributes=True``, every image's attribute
        probabilities (N, sum of the schema's group sizes; each group sums to one), from the same forward pass."""
        rows = self._rows(list(images), desc)
        if not self.attributes:
            return rows, None
        return np.ascontiguousarray(rows[:, : self.feature_dim]), np.ascontiguousarray(rows[:, self.feature_dim :])

    def _rows(self, images: list[ImageInput], desc: str) -> np.ndarray:
        width = self.feature_dim + (sum(self.schema.sizes) if self.schema else 0)
        features = np.empty((len(images), width), dtype=np.float32)
        if not images:
            return features
        all_files = all(isinstance(image, str | Path) for image in images)
        loader = DataLoader(
            _Inputs(images, self.transform, self.card.input_size),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.workers if all_files else 0,
            pin_memory=self.device.type == "cuda",
            # A fixed generator: worker seeds must not draw from (and so disturb) the global RNG during training.
            generator=torch.Generator().manual_seed(0),
        )
        if self._live and self._backend.snapshots_weights:
            self._follow_live_weights()
        done = 0
        show = self.progress and len(images) >= PROGRESS_MIN_IMAGES
        with _eval_mode(self.model), torch.inference_mode():
            # no tqdm at all when nothing is shown: a server embeds a handful of crops per call, many times
            for batch, errors in tqdm(loader, desc=desc, unit="batch") if show else loader:
                for error in errors:
                    if error:
                        raise ImageError(error)
                out = self._forward(batch.to(self.device, non_blocking=True))
                features[done : done + len(out)] = out.float().cpu().numpy()
                done += len(out)
        return features

    def _follow_live_weights(self) -> None:
        """Rebuild a weight-copying runner (OpenVINO's compiled model) whenever the live model's weights changed
        since it was made (a trainer's model between evaluations), never through the disk cache, whose entries
        must stay valid for their model id."""
        current = self.model_id
        if current != self._run_id:
            self._run = self._backend.make_runner(self._network, self.card, self.device, None)
            self._run_id = current

    def _forward(self, batch: Tensor) -> Tensor:
        out = self._run(batch)
        if self.flip:
            out = (out + self._run(batch.flip(-1))) / 2
        return out


@contextmanager
def _eval_mode(model: nn.Module | None) -> Iterator[None]:
    """``model`` in eval mode for the block, then back in the mode its owner left it (a trainer's model is
    training); a model from another toolkit has no modes."""
    if model is None:
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class _Inputs(Dataset[tuple[Tensor, str]]):
    """Preprocessed inputs plus an error string per item.

    A bad input is reported as a string rather than raised, so that an unreadable file met inside a DataLoader
    worker surfaces in the main process as one ``ImageError`` line instead of a worker traceback.
    """

    def __init__(self, images: list[ImageInput], transform: Any, size: tuple[int, int]) -> None:
        self.images = images
        self.transform = transform
        self.blank = torch.zeros(3, *size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, str]:
        try:
            return self.transform(to_pil(self.images[index], index)), ""
        except ImageError as exc:
            return self.blank, str(exc)


def to_pil(image: ImageInput, index: int = 0) -> Image.Image:
    """A path, PIL image or HxWx3 uint8 RGB array as an upright RGB PIL image (``index`` names the input in
    errors)."""
    if isinstance(image, str | Path):
        return read_image(Path(image))
    if isinstance(image, Image.Image):
        return upright_rgb(image)  # one opened with Image.open may still carry its EXIF turn
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ImageError(
                f"input #{index}: array of shape {image.shape} dtype {image.dtype} is not an HxWx3 uint8 RGB image; "
                "convert it (e.g. cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) first"
            )
        return Image.fromarray(np.ascontiguousarray(image))
    raise ImageError(f"input #{index}: {type(image).__name__} is not an image; pass paths, PIL images or numpy arrays")


def untrained_model(
    name: str, backbone: str, height: int, width: int, pretrained: str | None = "imagenet", seed: int = 0
) -> tuple[nn.Module, ModelCard]:
    """The baseline every trained number should be read against: ImageNet backbone, no ReID training.

    The heads (MGN's reductions, for instance) stay at their random initialisation, drawn from ``seed`` so that the
    baseline is the same number on every run.
    """
    if height < 1 or width < 1:
        raise ModelError(f"input size must be positive, got {height}x{width}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(name, num_classes=1, backbone=backbone, pretrained=pretrained)
    card = ModelCard(
        spec=asdict(model.spec),
        input_size=(height, width),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        backbone_init=backbone_init_label(pretrained),
    )
    return model.eval(), card
