"""Feature files: one .npz per split holding features, pids, camids and (optionally) image paths.

They decouple extraction (GPU, slow) from evaluation (CPU, fast) so that metrics, re-ranking or multi-query can be
recomputed without touching the model. Writes are atomic, so an interrupted run never leaves a half file behind.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import to_numpy

_REQUIRED = ("features", "pids", "camids")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class FeatureSet:
    """Features of N images with their identity and camera labels; ``paths`` names the images when known."""

    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: list[str] | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])


def save_features(
    path: str | os.PathLike[str],
    features: Any,
    pids: Any,
    camids: Any,
    paths: Sequence[str | os.PathLike[str]] | None = None,
) -> Path:
    """Write an .npz features file atomically (temporary file in the same folder, then rename); returns the path.

    Features are stored as float32, labels as int64; torch tensors are accepted.
    """
    target = Path(path)
    arrays = {"features": to_numpy(features), "pids": to_numpy(pids), "camids": to_numpy(camids)}
    if paths is not None:
        arrays["paths"] = np.asarray([str(p) for p in paths], dtype=np.str_)
    _check(arrays, target)
    arrays["features"] = np.ascontiguousarray(arrays["features"], dtype=np.float32)
    arrays["pids"] = arrays["pids"].astype(np.int64)
    arrays["camids"] = arrays["camids"].astype(np.int64)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; a results file is meant to be shared
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_features(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a features file written by ``save_features``, refusing anything malformed with a one-line error."""
    source = Path(path)
    if not source.is_file():
        raise ReidkitError(f"features file {source} does not exist")
    with source.open("rb") as stream:
        magic = stream.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        raise ReidkitError(f"{source} is not an .npz features file (not a zip archive): write it with save_features")
    try:
        archive = np.load(source, allow_pickle=False)
        with archive:
            missing = [key for key in _REQUIRED if key not in archive.files]
            if missing:
                raise ReidkitError(
                    f"{source} has no {', '.join(repr(k) for k in missing)} array: it needs "
                    "'features' (N, D), 'pids' (N,) and 'camids' (N,)"
                )
            arrays = {key: _read(archive, key, source) for key in (*_REQUIRED, "paths") if key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ReidkitError(f"{source} is not a readable .npz features file ({exc})") from exc
    _check(arrays, source)
    paths = arrays.get("paths")
    return FeatureSet(
        features=arrays["features"].astype(np.float32, copy=False),
        pids=arrays["pids"].astype(np.int64, copy=False),
        camids=arrays["camids"].astype(np.int64, copy=False),
        paths=None if paths is None else [str(p) for p in paths],
    )


def _read(archive: Any, key: str, source: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle, which a features file never uses
        raise ReidkitError(
            f"{source} field {key!r} cannot be read without pickle: re-save it with save_features"
        ) from exc


def _check(arrays: dict[str, np.ndarray], source: Path) -> None:
    """Shapes, dtypes and finiteness, each failure naming the file and the field."""
    features = arrays["features"]
    if features.ndim != 2:
        raise ReidkitError(f"{source} field 'features' must be 2-D (N, D), got shape {features.shape}")
    if not (np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)):
        raise ReidkitError(f"{source} field 'features' must hold numbers, got dtype {features.dtype}")
    if not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise ReidkitError(f"{source} field 'features' has NaN or infinity in row {row}: re-extract the features")
    count = features.shape[0]
    for key in ("pids", "camids", "paths"):
        if key not in arrays:
            continue
        values = arrays[key]
        if values.ndim != 1 or values.shape[0] != count:
            raise ReidkitError(f"{source} field {key!r} must have shape ({count},) like 'features', got {values.shape}")
        if key != "paths" and not np.issubdtype(values.dtype, np.integer):
            raise ReidkitError(f"{source} field {key!r} must hold integers, got dtype {values.dtype}")
        if key == "paths" and not np.issubdtype(values.dtype, np.str_):
            raise ReidkitError(f"{source} field 'paths' must hold strings, got dtype {values.dtype}")
