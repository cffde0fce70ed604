"""Bad input to person search, caught before it can harm a store or pass as an answer (issue 9): stored paths that
lead out of the store, outputs aimed into it, read-only and older stores, options that can only answer nothing,
unusable queries and camera names. Real SQLite, FAISS and files; no video and no model (see test_cli_video.py for
the same through the command)."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidkit.cli.search_report import hits_table, trajectory_table
from reidkit.data import read_image, verify_images
from reidkit.data.types import ImageRecord
from reidkit.errors import ConfigError, ImageError, StoreError
from reidkit.search.ingest import IngestOptions, check_options
from reidkit.search.query import load_query_image, parse_box, query_crop
from reidkit.search.results import Hit, SearchResult
from reidkit.search.search import SearchFilters, check_search_options, search_store
from reidkit.search.trajectory import build_trajectory
from reidkit.store.layout import DB_NAME
from reidkit.store.paths import refuse_inside_store, stored_file
from reidkit.store.rows import NewDetection, normalise_rows
from reidkit.store.schema import SCHEMA_VERSION
from reidkit.store.writer import Store
from reidkit.video import VideoInfo
from reidkit.viz.search_page import write_search_page

DIM = 8
LONG_CAMERA = "north-entrance-lobby-2"  # longer than the tables' 12-character column


@pytest.fixture()
def store_root(tmp_path: Path) -> Path:
    """Two cameras, one track each, crop files on disk, indexes saved: a small complete store."""
    root = tmp_path / "store"
    rng = np.random.default_rng(0)
    with Store.open(root, writable=True, create=True) as store:
        store.require_model("model-a", DIM, "imagenet")
        for number, camera in enumerate(("cam1", LONG_CAMERA)):
            video = store.add_video(camera, f"v{number}.avi", f"fp{number}", 0, 10, 1, "hog", datetime(2024, 5, 1),
                                    10.0, 64, 48)
            rows = []
            for frame in range(3):
                crop_path = f"crops/v{video.id:06d}/{frame:07d}_00.jpg"
                (root / crop_path).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((64, 32, 3), 40 * frame, np.uint8)).save(root / crop_path)
                feature = normalise_rows(rng.standard_normal((1, DIM)))[0]
                rows.append(NewDetection(1, frame, frame / 10, (1.0, 2.0, 33.0, 66.0), 0.9, 0.5, crop_path, feature))
            store.commit_chunk(video.id, rows, 2, {})
            store.finish_video(video.id)
        store.save_indexes()
    return root


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: the store as it was. (SQLite's ``-wal``/``-shm`` companions are
    left out: a read-only connection in a writable folder creates them empty, to see a concurrent ingest's commits.)"""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def _query(store: Store) -> np.ndarray:
    ids, vectors = store.track_vectors(store.track_ids())
    return vectors[0]


def test_stored_paths_never_lead_out_of_the_store(store_root: Path, tmp_path: Path) -> None:
    assert stored_file(store_root, "crops/v000001/0000000_00.jpg") == store_root / "crops/v000001/0000000_00.jpg"
    secret = tmp_path / "secret.jpg"
    Image.fromarray(np.zeros((64, 32, 3), np.uint8)).save(secret)
    (store_root / "crops" / "link").symlink_to(tmp_path)
    for bad in (str(secret), "../secret.jpg", "crops/../../secret.jpg", "crops/link/secret.jpg", ""):
        with pytest.raises(StoreError, match="outside the store folder"):
            stored_file(store_root, bad)
    # a store whose rows name a file outside it: search and the page refuse it, naming the path
    with Store.open(store_root, writable=True) as store:
        store.db.execute("UPDATE detections SET crop_path = ? WHERE track_id = 1", (str(secret),))
    with Store.open(store_root) as store:
        assert any(str(secret) in problem for problem in store.integrity_problems())
        with pytest.raises(StoreError, match=f"crop file '{secret}', which lies outside"):
            search_store(store, _query(store), top_k=5)
        row = store.track_detections(1)[0]
        hit = Hit(1, store.tracks([1])[1], 0.9, 0.9, row)
    page = tmp_path / "page.html"
    with pytest.raises(StoreError, match="outside the store folder"):
        write_search_page(page, SearchResult([hit], build_trajectory([hit]), 1, False), store_root, None, "q")
    assert not page.exists()


def test_no_output_is_written_into_the_store(store_root: Path, tmp_path: Path) -> None:
    before = _files(store_root)
    for inside in (store_root / DB_NAME, store_root, store_root / "crops" / "v000001" / "0000000_00.jpg",
                   store_root / "vectors" / "new.html", tmp_path / "store" / ".." / "store" / DB_NAME):
        with pytest.raises(ConfigError, match=r"--html .* lies inside the store folder"):
            refuse_inside_store(store_root, inside, "--html")
    refuse_inside_store(store_root, tmp_path / "page.html", "--html")  # beside the store is fine
    with Store.open(store_root) as store:
        result = search_store(store, _query(store), top_k=2)
    with pytest.raises(ConfigError, match="search page"):
        write_search_page(store_root / DB_NAME, result, store_root, None, "q")
    assert _files(store_root) == before


def test_a_reader_writes_nothing_and_reads_an_older_store_as_it_is(store_root: Path) -> None:
    with Store.open(store_root, writable=True) as store:  # make it a version-1 store (no frame digests, no people)
        for table in ("frame_digests", "track_people", "people", "clustering", "detection_attributes",
                      "track_attributes"):
            store.db.execute(f"DROP TABLE {table}")
        store.db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    before = _files(store_root)
    with Store.open(store_root) as store:
        with pytest.raises(Exception, match="readonly"):
            store.db.execute("UPDATE meta SET value = '9' WHERE key = 'commit_seq'")
        assert len(search_store(store, _query(store), top_k=2).hits) == 2
    assert _files(store_root) == before  # no journal switch, no migration, no write of any kind
    with Store.open(store_root, writable=True) as store:  # a writer upgrades it
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == SCHEMA_VERSION
        assert store.frame_digests(1) == {}


def test_search_options_that_can_only_answer_nothing_are_refused(store_root: Path) -> None:
    with Store.open(store_root) as store:
        with pytest.raises(ConfigError, match=rf"--camera 'cam 1': no such camera .* its cameras are 'cam1', "
                                              rf"'{LONG_CAMERA}'"):
            check_search_options(store, SearchFilters(cameras=("cam1", "cam 1")))
        later, earlier = datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 9)
        with pytest.raises(ConfigError, match="--after 2024-05-01T10:00:00 is later than --before"):
            search_store(store, _query(store), filters=SearchFilters(after=later, before=earlier))
        for score in (math.nan, math.inf, 1.5):
            with pytest.raises(ConfigError, match="--min-score"):
                search_store(store, _query(store), min_score=score)
        with pytest.raises(ConfigError, match="--top-k"):
            check_search_options(store, SearchFilters(), top_k=0)
        assert search_store(store, _query(store), filters=SearchFilters(cameras=(LONG_CAMERA,))).hits


def test_a_missing_crop_file_is_reported_by_name(store_root: Path) -> None:
    with Store.open(store_root) as store:
        query = _query(store)
        first = search_store(store, query, top_k=1).hits[0].best
        store.crop_file(first).unlink()
        result = search_store(store, query, top_k=1)
    assert result.hits[0].best.id == first.id  # still listed ...
    assert result.notes == [f"crop file {first.crop_path} of track {first.track_id} is missing from store {store_root}"]


def test_tables_show_camera_names_whole(store_root: Path) -> None:
    with Store.open(store_root) as store:
        result = search_store(store, _query(store), top_k=2)
    hits, visits = hits_table(result.hits, store_root), trajectory_table(result.trajectory)
    assert {h.best.camera for h in result.hits} == {"cam1", LONG_CAMERA}
    for table in (hits, visits):
        rows = table.splitlines()
        assert any(f" {LONG_CAMERA} " in row for row in rows[1:])
        assert len({row.index("camera") if i == 0 else None for i, row in enumerate(rows)} - {None}) == 1


@pytest.mark.parametrize(
    ("camera", "start", "end", "message"),
    [
        ("lobby", 100, 50, "--end-frame 50 must be greater than --start-frame 100"),
        ("lobby", 100, 100, "--end-frame 100 must be greater than --start-frame 100"),
        ("lobby", -5, None, "--start-frame -5 must be 0 or more"),
        ("lo\nbby", 0, None, r"--camera 'lo\\nbby' contains control character"),
        ("cam\x1b[31m", 0, None, "control character"),
        ("   ", 0, None, "--camera must name the camera"),
        ("lobby", 795, None, r"--start-frame 795 is past the end of v.avi \(795 frames\)"),
    ],
)
def test_ingest_options_that_make_no_video_are_refused(camera: str, start: int, end: int | None, message: str) -> None:
    info = VideoInfo("v.avi", 10.0, 795, 64, 48, 79.5, "fp", "head")
    with pytest.raises(ConfigError, match=message):
        check_options(IngestOptions(camera, start_frame=start, end_frame=end), info)


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's first line)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


def test_unusable_query_images_are_refused_before_decoding(tmp_path: Path) -> None:
    bomb = _png_declaring(tmp_path / "bomb.png", 13000, 13000)
    assert bomb.stat().st_size < 100
    for read in (load_query_image, read_image):
        with pytest.raises(ImageError, match=r"bomb.png is 13000x13000 pixels \(169 megapixels\), over"):
            read(bomb)
    _, skipped = verify_images([ImageRecord(bomb, 1, 0)], mode="full", on_error="skip")
    assert "megapixels" in skipped[0][1]
    with pytest.raises(ImageError, match="query image .* is a folder"):
        load_query_image(tmp_path)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((2, 1, 3), 99, np.uint8)).save(tiny)
    with pytest.raises(ImageError, match=r"query image tiny.png is 1x2 pixels, too small"):
        query_crop(load_query_image(tiny), "tiny.png", None, detector=lambda: pytest.fail("no detector"))
    frame = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(ImageError, match=r"--box .* in frame.png is 4x4 pixels, too small"):
        query_crop(frame, "frame.png", (10, 10, 14, 14), detector=lambda: pytest.fail("no detector"))
    for text in ("0,0,inf,inf", "nan,0,10,10", "0,0,1e999,20"):
        with pytest.raises(ConfigError, match="finite"):
            parse_box(text)
