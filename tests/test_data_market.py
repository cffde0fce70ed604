"""Market-1501-layout readers: the real shared CUHK03 benchmark, official junk/distractor rules, strict names."""

from __future__ import annotations

import tarfile
import threading
from pathlib import Path

import pytest

from reidkit.data import ImageRecord, load_dataset, prepare_shared_cuhk03
from reidkit.data.atomic_dir import publish_atomically
from reidkit.errors import ConfigError, DatasetError


def test_shared_benchmark_counts(cuhk03_dataset):
    ds = cuhk03_dataset
    assert (len(ds.train), ds.num_train_pids) == (7357, 767)
    assert (len(ds.query), len({r.pid for r in ds.query})) == (1400, 700)
    assert (len(ds.gallery), len({r.pid for r in ds.gallery})) == (5340, 700)
    assert ds.multi_query == [] and ds.skipped == [] and ds.has_cameras


def test_shared_benchmark_labels(cuhk03_dataset):
    ds = cuhk03_dataset
    everything = ds.train + ds.query + ds.gallery
    assert {r.camid for r in everything} == {0, 1}
    assert min(r.pid for r in everything) >= 1 and max(r.pid for r in everything) <= 1467
    train_pids = {r.pid for r in ds.train}
    assert train_pids.isdisjoint(r.pid for r in ds.query + ds.gallery)
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery}
    # the benchmark has one query per identity per camera
    assert len({(r.pid, r.camid) for r in ds.query}) == len(ds.query)
    assert all(r.path.is_absolute() and r.path.is_file() for r in ds.query)
    assert "767" in ds.summary() and "5340" in ds.summary()


def test_market1501_release_counts(market_root):
    """The official protocol's counts, the release's 24 ``*.jpg.jpg`` crops included (6 queries, 18 gallery files,
    2 of those junk): 12,936 / 751 train, 3,368 / 750 query, 19,732 gallery files less 3,819 junk."""
    ds = load_dataset("market1501", market_root)
    assert (len(ds.train), ds.num_train_pids) == (12936, 751)
    assert (len(ds.query), len({r.pid for r in ds.query})) == (3368, 750)
    assert len(ds.gallery) == 19732 - 3819 and sum(r.pid == 0 for r in ds.gallery) == 2798
    assert {r.pid for r in ds.gallery} - {0} == {r.pid for r in ds.query}
    assert ds.skipped == [] and {r.camid for r in ds.query + ds.gallery} == set(range(6))
    doubled = [r.path.name for r in ds.query if r.path.name.endswith(".jpg.jpg")]
    assert len(doubled) == 6 and "1488_c1s6_023021_00.jpg.jpg" in doubled
    assert sum(p.name.endswith(".jpg.jpg") for p in (market_root / "bounding_box_test").iterdir()) == 18


def test_shared_benchmark_is_unpacked_once(shared_dir, cuhk03_root):
    marker = cuhk03_root / "query"
    before = marker.stat().st_mtime_ns
    assert prepare_shared_cuhk03(shared_dir, cuhk03_root.parent) == cuhk03_root
    assert marker.stat().st_mtime_ns == before


def _market(root: Path, jpeg, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(files):
            jpeg(root / folder / name, seed=i)
    return root


@pytest.fixture
def small_market(tmp_path, jpeg):
    return _market(
        tmp_path / "Market-1501-v15.09.15",
        jpeg,
        {
            "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c6s4_002202_02.jpg"],
            "query": ["0001_c1s1_001051_00.jpg", "0003_c3s1_000001_00.jpg"],
            "bounding_box_test": [
                "-1_c1s1_000401_03.jpg",  # junk
                "0000_c1s1_000151_01.jpg",  # distractor
                "0001_c2s1_000301_01.jpg",
                "0001_c1s1_001051_01.jpg",
                "0003_c4s2_000010_02.jpg",
            ],
            "gt_bbox": ["0001_c1s1_001051_00.jpg", "0001_c1s1_001052_00.jpg", "0002_c1s1_000451_00.jpg"],
        },
    )


def test_junk_dropped_distractors_only_in_gallery(small_market):
    (small_market / "bounding_box_train" / "Thumbs.db").write_bytes(b"not an image, ignored")
    ds = load_dataset("market1501", small_market)
    assert [(r.pid, r.camid) for r in ds.train] == [(2, 0), (2, 1), (7, 5)]
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 0), (3, 2)]
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 0), (1, 0), (1, 1), (3, 3)]
    # gt_bbox crops count only for identities that have a query (0002 is a training identity)
    assert sorted(r.path.name for r in ds.multi_query) == ["0001_c1s1_001051_00.jpg", "0001_c1s1_001052_00.jpg"]


def test_parent_of_release_folder_is_accepted(small_market):
    assert load_dataset("market1501", small_market.parent).root == small_market


def test_bad_name_names_the_file(small_market, jpeg):
    jpeg(small_market / "query" / "0001_c1_f0046182.jpg")
    with pytest.raises(DatasetError, match=r"query/0001_c1_f0046182\.jpg: file name does not match"):
        load_dataset("market1501", small_market)


@pytest.mark.parametrize("name", ["0001_c0s1_000001_00.jpg", "1_c1s1_000001_00.jpg", "0001_c1s1_000001_00.png"])
def test_strict_names(small_market, jpeg, name):
    jpeg(small_market / "bounding_box_test" / name)
    with pytest.raises(DatasetError, match=name.replace(".", r"\.")):
        load_dataset("market1501", small_market)


def test_bad_names_can_be_skipped_and_reported(small_market, jpeg):
    bad = jpeg(small_market / "query" / "holiday.jpg")
    ds = load_dataset("market1501", small_market, skip_bad_names=True)
    assert [path for path, _ in ds.skipped] == [bad]
    assert len(ds.query) == 2 and "skipped 1 file" in ds.summary()


def test_missing_folder(small_market):
    (small_market / "bounding_box_test").rename(small_market / "gallery")
    with pytest.raises(DatasetError, match=r"bounding_box_test: folder missing; market1501 expects"):
        load_dataset("market1501", small_market)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("market1501", tmp_path / "nowhere")


def test_unknown_dataset_and_option(small_market):
    with pytest.raises(ConfigError, match=r"choose one of .*market1501"):
        load_dataset("market", small_market)
    with pytest.raises(ConfigError, match="no option variant; valid options: skip_bad_names"):
        load_dataset("market1501", small_market, variant="labeled")


def test_dukemtmc_names(tmp_path, jpeg):
    root = _market(
        tmp_path / "DukeMTMC-reID",
        jpeg,
        {
            "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c5_f0051981.jpg"],
            "query": ["0005_c2_f0046985.jpg"],
            "bounding_box_test": ["0005_c8_f0051203.jpg", "0019_c1_f0056053.jpg"],
        },
    )
    ds = load_dataset("dukemtmc", tmp_path)
    assert ds.root == root and ds.name == "dukemtmc"
    assert [(r.pid, r.camid) for r in ds.train] == [(1, 1), (1, 4)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(5, 7), (19, 0)]
    jpeg(root / "query" / "0002_c1s1_000451_03.jpg")  # a Market name is not a Duke name
    with pytest.raises(DatasetError, match=r"0002_c1s1_000451_03\.jpg: file name does not match dukemtmc"):
        load_dataset("dukemtmc", root)


def _tiny_shared(tmp_path: Path, jpeg) -> Path:
    """A stand-in for ../shared whose tar has the real benchmark's top folder and layout, only smaller."""
    src = _market(
        tmp_path / "src" / "cuhk03-detected-64x128",
        jpeg,
        {
            "bounding_box_train": ["0002_c1s1_000000_00.jpg"],
            "query": ["0001_c1s1_000000_00.jpg"],
            "bounding_box_test": ["0001_c2s1_000001_00.jpg"],
        },
    )
    tar_path = tmp_path / "shared" / "datasets" / "cuhk03-detected-64x128.tar"
    tar_path.parent.mkdir(parents=True)
    with tarfile.open(tar_path, "w") as archive:
        archive.add(src, arcname=src.name)
    return tmp_path / "shared"


def test_prepare_shared_is_idempotent_and_race_safe(tmp_path, jpeg):
    shared = _tiny_shared(tmp_path, jpeg)
    data_dir = tmp_path / "data"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(prepare_shared_cuhk03(shared, data_dir))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [data_dir / "cuhk03-detected-64x128"] * 4
    assert [p.name for p in data_dir.iterdir()] == ["cuhk03-detected-64x128"]  # no scratch folders left behind
    ds = load_dataset("market1501", results[0])
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (1, 1, 1)


def test_prepare_shared_without_tar(tmp_path):
    with pytest.raises(DatasetError, match=r"cuhk03-detected-64x128.tar: shared benchmark not found"):
        prepare_shared_cuhk03(tmp_path, tmp_path / "data")
    assert not (tmp_path / "data" / "cuhk03-detected-64x128").exists()


def test_publish_atomically_race_and_failure(tmp_path):
    target = tmp_path / "out"
    barrier = threading.Barrier(2)

    def build(scratch: Path, label: str) -> Path:
        (scratch / "result").mkdir()
        (scratch / "result" / "who").write_text(label)
        barrier.wait()  # both builds are complete before either publishes
        return scratch / "result"

    threads = [threading.Thread(target=publish_atomically, args=(target, lambda s, x=x: build(s, x))) for x in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (target / "who").read_text() in {"a", "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    def broken(scratch: Path) -> Path:
        (scratch / "half").mkdir()
        raise DatasetError("interrupted")

    with pytest.raises(DatasetError, match="interrupted"):
        publish_atomically(tmp_path / "other", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_records_are_frozen(cuhk03_dataset):
    record: ImageRecord = cuhk03_dataset.train[0]
    with pytest.raises(AttributeError):
        record.pid = 5  # type: ignore[misc]


def test_shared_benchmark_cut_by_camera_pair(cuhk03_root):
    """Pair 1 trains, pair 2 tests: the issue's measured split sizes, and no pair leaks into the other side."""
    from reidkit.data.shared_benchmark import camera_pair

    ds = load_dataset("cuhk03_shared", cuhk03_root, train_pairs=[1], test_pairs=[2])
    assert (len({r.pid for r in ds.train}), len(ds.train)) == (437, 4229)
    assert (len({r.pid for r in ds.query}), len(ds.query), len(ds.gallery)) == (215, 430, 1687)
    assert {camera_pair(r) for r in ds.train} == {1}
    assert {camera_pair(r) for r in ds.query + ds.gallery} == {2}
    whole = load_dataset("cuhk03_shared", cuhk03_root)
    assert (len(whole.train), len(whole.query), len(whole.gallery)) == (7357, 1400, 5340)


def test_shared_benchmark_bad_camera_pair(cuhk03_root):
    with pytest.raises(ConfigError, match="train_pairs.*among"):
        load_dataset("cuhk03_shared", cuhk03_root, train_pairs=[7])
