"""CUHK03 from the official release files, on tiny files written here in the same structure.

``cuhk-03.mat`` is MATLAB v7.3, i.e. HDF5 behind a 512-byte user block: the ``detected`` and ``labeled`` datasets
are 1 x 5 arrays of object references (one per camera pair), each pointing at a (10, identities) array of
references (MATLAB's column-major cell, so HDF5 sees it transposed) whose targets live in ``#refs#``; an image of
H x W x 3 appears as (3, W, H) and an empty cell as a 2-element uint64 array marked ``MATLAB_empty``. The
new-protocol split files are ordinary .mat files with column vectors ``train_idx``, ``query_idx``, ``gallery_idx``
(1-based), ``labels``, ``camId`` and a cell column ``filelist``.
"""

from __future__ import annotations

from itertools import count
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from reidkit.data import load_dataset
from reidkit.errors import ConfigError, DatasetError

HEIGHT, WIDTH = 12, 5  # not square, so a transposed image would show
IDS_PER_PAIR = (3, 2)  # two camera pairs
EMPTY = {(0, 1, 7), (1, 0, 2)}  # (pair, person, column) cells left empty, as for identities seen less often


def _pixel_value(variant: str, pair: int, person: int, column: int) -> int:
    return (variant == "labeled") * 100 + pair * 40 + person * 10 + column


def write_official_mat(path: Path) -> list[str]:
    """Write a miniature cuhk-03.mat; return the crop names the split files refer to, in release order."""
    names = []
    serial = count()
    with h5py.File(path, "w", userblock_size=512) as mat:
        refs = mat.create_group("#refs#")
        for variant in ("detected", "labeled"):
            pair_refs = []
            for pair, num_ids in enumerate(IDS_PER_PAIR):
                cells = np.empty((10, num_ids), dtype=h5py.ref_dtype)
                for person in range(num_ids):
                    for column in range(10):
                        if (pair, person, column) in EMPTY:
                            target = refs.create_dataset(f"e{next(serial)}", data=np.zeros(2, dtype=np.uint64))
                            target.attrs["MATLAB_empty"] = np.uint8(1)
                        else:
                            value = _pixel_value(variant, pair, person, column)
                            image = np.full((HEIGHT, WIDTH, 3), value, dtype=np.uint8)
                            image[0, :, 0] = 255  # mark the top row, so a vertical flip would show
                            target = refs.create_dataset(f"i{next(serial)}", data=image.T)
                            if variant == "detected":
                                view = 1 if column < 5 else 2
                                names.append(f"{pair + 1}_{person + 1:03d}_{view}_{column + 1:02d}.png")
                        cells[column, person] = target.ref
                pair_refs.append(refs.create_dataset(f"p{next(serial)}", data=cells).ref)
            mat.create_dataset(variant, data=np.array([pair_refs], dtype=h5py.ref_dtype))
    with path.open("r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: reidkit test HDF5 schema 1.00 .")
    return names


def write_split(path: Path, names: list[str], train: set[int]) -> dict[str, np.ndarray]:
    """Global labels number identities across pairs; train identities' crops go to train, the first crop of each
    test identity per camera to query and the rest to gallery (the new protocol's structure)."""
    offsets = np.cumsum((0, *IDS_PER_PAIR))
    labels = np.array([offsets[int(n[0]) - 1] + int(n[2:5]) for n in names])
    cams = np.array([int(n[6]) for n in names])
    train_idx, query_idx, gallery_idx, seen = [], [], [], set()
    for i, (label, cam) in enumerate(zip(labels, cams, strict=True)):
        if label in train:
            train_idx.append(i + 1)
        elif (label, cam) in seen:
            gallery_idx.append(i + 1)
        else:
            seen.add((label, cam))
            query_idx.append(i + 1)
    fields = {
        "train_idx": np.array(train_idx, dtype=np.float64)[:, None],
        "query_idx": np.array(query_idx, dtype=np.float64)[:, None],
        "gallery_idx": np.array(gallery_idx, dtype=np.float64)[:, None],
        "labels": labels.astype(np.float64)[:, None],
        "camId": cams.astype(np.float64)[:, None],
        "filelist": np.array([[n] for n in names], dtype=object),
    }
    scipy.io.savemat(path, fields)
    return fields


@pytest.fixture
def cuhk03_release(tmp_path) -> Path:
    root = tmp_path / "cuhk03"
    (root / "cuhk03_release").mkdir(parents=True)
    names = write_official_mat(root / "cuhk03_release" / "cuhk-03.mat")
    for variant in ("detected", "labeled"):
        write_split(root / f"cuhk03_new_protocol_config_{variant}.mat", names, train={1, 4})
    return root


def test_detected_split_and_extraction(cuhk03_release):
    ds = load_dataset("cuhk03", cuhk03_release)
    assert ds.name == "cuhk03-detected"
    assert {r.pid for r in ds.train} == {1, 4}
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery} == {2, 3, 5}
    # 50 cells, 2 empty: identity 2 lost one camera-B crop, identity 4 one camera-A crop
    assert len(ds.train) + len(ds.query) + len(ds.gallery) == 48
    assert len(ds.train) == 19 and len(ds.query) == 6
    assert {(r.pid, r.camid) for r in ds.query} == {(p, c) for p in (2, 3, 5) for c in (0, 1)}
    for record in ds.train + ds.query + ds.gallery:
        pair, person, view, column = (int(x) for x in record.path.stem.split("_"))
        assert record.camid == view - 1 == (column > 5)
        with Image.open(record.path) as image:
            assert image.size == (WIDTH, HEIGHT)
            pixels = np.asarray(image)
        assert pixels[1, 0, 0] == _pixel_value("detected", pair - 1, person - 1, column - 1)
        assert (pixels[0, :, 0] == 255).all()
    assert not (cuhk03_release / "images_detected" / "1_002_2_08.png").exists()


def test_images_are_extracted_once(cuhk03_release):
    first = load_dataset("cuhk03", cuhk03_release)
    (cuhk03_release / "cuhk03_release" / "cuhk-03.mat").unlink()  # later loads must not need it
    again = load_dataset("cuhk03", cuhk03_release)
    assert again.query == first.query and again.gallery == first.gallery
    assert not list(cuhk03_release.glob(".images_detected*"))  # scratch folder gone


def test_labeled_variant(cuhk03_release):
    ds = load_dataset("cuhk03", cuhk03_release, variant="labeled")
    record = ds.query[0]
    assert record.path.parent.name == "images_labeled"
    pair, person, _, column = (int(x) for x in record.path.stem.split("_"))
    with Image.open(record.path) as image:
        assert np.asarray(image)[1, 0, 0] == _pixel_value("labeled", pair - 1, person - 1, column - 1)


def test_bad_variant(cuhk03_release):
    with pytest.raises(ConfigError, match="variant='hand'"):
        load_dataset("cuhk03", cuhk03_release, variant="hand")


def test_missing_split_file(cuhk03_release):
    (cuhk03_release / "cuhk03_new_protocol_config_detected.mat").unlink()
    with pytest.raises(DatasetError, match=r"config_detected\.mat: new-protocol split file missing"):
        load_dataset("cuhk03", cuhk03_release)


def test_missing_mat(cuhk03_release):
    (cuhk03_release / "cuhk03_release" / "cuhk-03.mat").unlink()
    with pytest.raises(DatasetError, match=r"cuhk-03\.mat: not found"):
        load_dataset("cuhk03", cuhk03_release)
    assert not (cuhk03_release / "images_detected").exists()


def test_not_hdf5(cuhk03_release):
    (cuhk03_release / "cuhk03_release" / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(DatasetError, match=r"cuhk-03.mat: not a MATLAB v7.3 \(HDF5\) file"):
        load_dataset("cuhk03", cuhk03_release)
    assert not (cuhk03_release / "images_detected").exists()


def test_split_index_out_of_range(cuhk03_release):
    path = cuhk03_release / "cuhk03_new_protocol_config_detected.mat"
    fields = scipy.io.loadmat(path)
    fields["query_idx"][0, 0] = 999
    scipy.io.savemat(path, {k: v for k, v in fields.items() if not k.startswith("__")})
    with pytest.raises(DatasetError, match=r"query_idx holds indices outside 1\.\.48"):
        load_dataset("cuhk03", cuhk03_release)


def test_split_from_another_release(cuhk03_release):
    path = cuhk03_release / "cuhk03_new_protocol_config_detected.mat"
    fields = scipy.io.loadmat(path)
    fields["filelist"][0, 0] = np.array(["9_001_1_01.png"])
    scipy.io.savemat(path, {k: v for k, v in fields.items() if not k.startswith("__")})
    with pytest.raises(DatasetError, match=r"missing from .*images_detected, e\.g\. 9_001_1_01\.png"):
        load_dataset("cuhk03", cuhk03_release)
