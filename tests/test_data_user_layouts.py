"""MSMT17 list files and the user layouts (person folders, CSV): numbering, derived splits, camera-less data."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidkit.data import load_dataset
from reidkit.errors import DatasetError

# ---------------------------------------------------------------- MSMT17


def _msmt17(root: Path, jpeg, train_dir: str, test_dir: str) -> Path:
    lists = {
        "list_train.txt": (
            train_dir,
            ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_004_13_0303noon_0841_1.jpg 1"],
        ),
        "list_val.txt": (train_dir, ["0002/0002_010_05_0303afternoon_1020_0.jpg 2"]),
        "list_query.txt": (test_dir, ["0000/0000_000_15_0303morning_0016_0.jpg 0"]),
        "list_gallery.txt": (
            test_dir,
            ["0000/0000_001_07_0303morning_0101_0.jpg 0", "0003/0003_012_02_0113noon_0505_2.jpg 3", ""],
        ),
    }
    root.mkdir(parents=True)
    for list_name, (folder, lines) in lists.items():
        (root / list_name).write_text("\n".join(lines) + "\n")
        for i, line in enumerate(filter(None, lines)):
            jpeg(root / folder / line.split()[0], seed=i)
    return root


@pytest.mark.parametrize(
    "version,dirs", [("MSMT17_V1", ("train", "test")), ("MSMT17_V2", ("mask_train_v2", "mask_test_v2"))]
)
def test_msmt17(tmp_path, jpeg, version, dirs):
    root = _msmt17(tmp_path / version, jpeg, *dirs)
    ds = load_dataset("msmt17", tmp_path)  # the parent of the release folder works too
    assert ds.root == root
    # train ids 0..2 -> 1..3, test ids shifted past them: 0 -> 4, 3 -> 7
    assert [(r.pid, r.camid) for r in ds.train] == [(1, 0), (2, 12), (3, 4)]
    assert [(r.pid, r.camid) for r in ds.query] == [(4, 14)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(4, 6), (7, 1)]
    assert ds.train[0].path == root / dirs[0] / "0000/0000_000_01_0303morning_0015_0.jpg"
    assert all(r.path.is_file() for r in ds.train + ds.query + ds.gallery)
    held_out = load_dataset("msmt17", root, merge_val=False)
    assert [r.pid for r in held_out.train] == [1, 2] and held_out.query == ds.query


def test_msmt17_bad_line(tmp_path, jpeg):
    root = _msmt17(tmp_path / "MSMT17_V1", jpeg, "train", "test")
    with (root / "list_query.txt").open("a") as handle:
        handle.write("0004/0004.jpg\n")
    with pytest.raises(DatasetError, match=r"list_query.txt:2: expected"):
        load_dataset("msmt17", root)


def test_msmt17_missing_parts(tmp_path, jpeg):
    root = _msmt17(tmp_path / "MSMT17_V2", jpeg, "mask_train_v2", "mask_test_v2")
    (root / "list_val.txt").unlink()
    with pytest.raises(DatasetError, match=r"list_val\.txt: list file missing"):
        load_dataset("msmt17", root)
    with pytest.raises(DatasetError, match="no MSMT17 image folders found"):
        load_dataset("msmt17", root / "mask_train_v2")


# ---------------------------------------------------------------- person folders


def test_folder_with_cameras_derives_split(tmp_path, jpeg):
    for person, camera, name in [
        ("bob", "door", "b.jpg"),
        ("bob", "door", "a.jpg"),
        ("bob", "yard", "c.jpg"),
        ("alice", "yard", "x.png"),
        ("alice", "yard", "y.jpg"),
        ("alice", "door", "z.jpg"),
    ]:
        jpeg(tmp_path / person / camera / name)
    (tmp_path / "bob" / "door" / "notes.txt").write_text("ignored")
    ds = load_dataset("folder", tmp_path)
    assert ds.has_cameras and ds.train == []
    # alice -> 1, bob -> 2; door -> 0, yard -> 1; first sorted crop per (person, camera) is the query
    assert {(r.path.relative_to(tmp_path).as_posix(), r.pid, r.camid) for r in ds.query} == {
        ("alice/door/z.jpg", 1, 0),
        ("alice/yard/x.png", 1, 1),
        ("bob/door/a.jpg", 2, 0),
        ("bob/yard/c.jpg", 2, 1),
    }
    assert [(r.path.name, r.pid, r.camid) for r in ds.gallery] == [("y.jpg", 1, 1), ("b.jpg", 2, 0)]


def test_folder_without_cameras(tmp_path, jpeg):
    for person, names in {"p10": ["1.jpg", "2.jpg", "3.jpg"], "p2": ["9.jpg", "8.jpg"]}.items():
        for name in names:
            jpeg(tmp_path / person / name)
    ds = load_dataset("folder", tmp_path)
    assert not ds.has_cameras
    assert [(r.path.name, r.pid, r.camid) for r in ds.query] == [("1.jpg", 1, 0), ("8.jpg", 2, 0)]
    assert [(r.path.name, r.pid, r.camid) for r in ds.gallery] == [("2.jpg", 1, 1), ("3.jpg", 1, 1), ("9.jpg", 2, 1)]


def test_folder_with_split_folders(tmp_path, jpeg):
    jpeg(tmp_path / "train" / "carol" / "1.jpg")
    jpeg(tmp_path / "query" / "dave" / "1.jpg")
    jpeg(tmp_path / "gallery" / "dave" / "2.jpg")
    jpeg(tmp_path / "gallery" / "erin" / "3.jpg")
    ds = load_dataset("folder", tmp_path)
    assert [(r.pid, r.camid) for r in ds.train] == [(1, 0)]
    assert [(r.pid, r.camid) for r in ds.query] == [(2, 0)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(2, 1), (3, 1)]


def test_folder_errors(tmp_path, jpeg):
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset("folder", tmp_path)
    jpeg(tmp_path / "query" / "dave" / "1.jpg")
    with pytest.raises(DatasetError, match="has query/ but not both query/ and gallery/"):
        load_dataset("folder", tmp_path)
    (tmp_path / "query" / "dave").rename(tmp_path / "dave")
    (tmp_path / "query").rmdir()
    jpeg(tmp_path / "erin" / "cam1" / "1.jpg")
    with pytest.raises(DatasetError, match="camera folders for every person or for none"):
        load_dataset("folder", tmp_path)
    jpeg(tmp_path / "erin" / "loose.jpg")
    with pytest.raises(DatasetError, match=r"erin: holds both images and sub-folders"):
        load_dataset("folder", tmp_path)


# ---------------------------------------------------------------- CSV


def test_csv_with_split(tmp_path, jpeg):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        jpeg(tmp_path / "crops" / name)
    (tmp_path / "crops.csv").write_text(
        "path,person,camera,split\ncrops/a.jpg,zoe,c2,train\ncrops/b.jpg,amy,c1,query\n"
        "crops/c.jpg,amy,c2,gallery\ncrops/d.jpg,bea,c1,gallery\n"
    )
    ds = load_dataset("csv", tmp_path)  # the folder holding crops.csv
    assert ds.has_cameras
    assert [(r.path, r.pid, r.camid) for r in ds.train] == [(tmp_path / "crops/a.jpg", 3, 1)]
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 0)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(1, 1), (2, 0)]


def test_csv_without_split_or_cameras(tmp_path):
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("path,person,camera\nx/2.jpg,7,\nx/1.jpg,7,\nx/3.jpg,8,\n")
    ds = load_dataset("csv", csv_path)
    assert not ds.has_cameras and ds.train == []
    assert [(r.path.name, r.camid) for r in ds.query] == [("1.jpg", 0), ("3.jpg", 0)]
    assert [(r.path.name, r.camid) for r in ds.gallery] == [("2.jpg", 1)]


@pytest.mark.parametrize(
    "body,message",
    [
        ("path,person\na.jpg,1\n", r"mine.csv:1: header lacks camera"),
        ("path,person,camera,split\na.jpg,1,c1,query\nb.jpg,1,c1,test\n", r"mine.csv:3: split 'test' must be one of"),
        ("path,person,camera\na.jpg,1,c1\nb.jpg,1,\n", r"mine.csv:3: camera is empty here"),
        ("path,person,camera\na.jpg,1,c1\n,1,c1\n", r"mine.csv:3: row needs a path and a person"),
        ("path,person,camera\na.jpg,1,c1\nb.jpg,1,c1,extra\n", r"mine.csv:3: row needs"),
        ("path,person,camera\na.jpg,1,c1\nb.jpg,2,c1\na.jpg,3,c1\n", r"mine.csv:4: a.jpg is already listed on line 2"),
    ],
)
def test_csv_bad_rows(tmp_path, body, message):
    (tmp_path / "mine.csv").write_text(body)
    with pytest.raises(DatasetError, match=message):
        load_dataset("csv", tmp_path / "mine.csv")


def test_csv_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"crops\.csv: CSV file not found"):
        load_dataset("csv", tmp_path)
