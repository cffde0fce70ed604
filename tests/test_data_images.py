"""Bad image files are found before training and reported by name, never as a crash inside a DataLoader worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFile

from reidkit.data import ImageRecord, read_image, verify_images
from reidkit.errors import ConfigError, ImageError


@pytest.fixture
def files(tmp_path, jpeg) -> dict[str, Path]:
    good = jpeg(tmp_path / "good.jpg", size=(64, 128))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a JPEG")
    return {"good": good, "truncated": truncated, "empty": empty, "text": text, "missing": tmp_path / "gone.jpg"}


def _records(*paths: Path) -> list[ImageRecord]:
    return [ImageRecord(p, i + 1, 0) for i, p in enumerate(paths)]


def test_truncated_images_are_not_silently_padded():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_read_image_is_rgb(files, tmp_path, jpeg):
    image = read_image(files["good"])
    assert image.mode == "RGB" and image.size == (64, 128)
    gray = tmp_path / "gray.png"
    image.convert("L").save(gray)
    assert read_image(gray).mode == "RGB"


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("truncated", "truncated"),
        ("empty", "file is empty"),
        ("text", "not an image"),
        ("missing", "file not found"),
    ],
)
def test_read_image_names_the_file(files, kind, reason):
    with pytest.raises(ImageError, match=f"{files[kind].name}: cannot read image .*{reason}"):
        read_image(files[kind])


def test_full_check_reports_every_bad_file_in_order(files):
    records = _records(
        files["good"], files["truncated"], files["empty"], files["good"], files["text"], files["missing"]
    )
    good, skipped = verify_images(records, mode="full", on_error="skip")
    assert good == [records[0], records[3]]
    assert [path.name for path, _ in skipped] == ["truncated.jpg", "empty.jpg", "notes.jpg", "gone.jpg"]
    reasons = dict(skipped)
    assert "truncated" in reasons[files["truncated"]] and reasons[files["empty"]] == "file is empty"


def test_header_check_is_cheap_but_misses_truncation(files):
    good, skipped = verify_images(_records(files["good"], files["truncated"], files["empty"]), on_error="skip")
    assert [r.path for r in good] == [files["good"], files["truncated"]]
    assert skipped == [(files["empty"], "file is empty")]


def test_raise_names_the_first_bad_file(files):
    records = _records(files["good"], files["truncated"], files["text"])
    with pytest.raises(ImageError, match=r"truncated\.jpg: image data is truncated"):
        verify_images(records, mode="full")
    good, skipped = verify_images(_records(files["good"]), mode="full")
    assert len(good) == 1 and skipped == []


def test_many_images_in_parallel(tmp_path, jpeg, files):
    paths = [jpeg(tmp_path / "many" / f"{i}.jpg", size=(8, 16), seed=i) for i in range(40)]
    paths[17] = files["truncated"]
    good, skipped = verify_images(_records(*paths), mode="full", on_error="skip")
    assert len(good) == 39 and [p for p, _ in skipped] == [files["truncated"]]
    assert [r.path for r in good] == paths[:17] + paths[18:]


def test_bad_mode():
    with pytest.raises(ConfigError, match="mode must be"):
        verify_images([], mode="quick")  # type: ignore[arg-type]
