"""Decoding real and damaged videos with PyAV: sampling, frame times, truncation, unreadable inputs."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from reidkit.errors import ConfigError, VideoError
from reidkit.video import (
    Frame,
    TruncatedVideoWarning,
    frame_digest,
    iter_frames,
    probe_video,
    read_frame,
    video_fingerprint,
)
from reidkit.video.decode import _seek_frame


@pytest.fixture()
def truncated(vtest_video: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cut.avi"
    with vtest_video.open("rb") as handle:
        path.write_bytes(handle.read(300_000))
    return path


def test_probe_reads_container_metadata(vtest_video: Path) -> None:
    info = probe_video(vtest_video)
    assert (info.width, info.height) == (768, 576)
    assert info.fps == pytest.approx(10.0)
    assert info.num_frames == 795
    assert info.duration_s == pytest.approx(79.5, abs=0.2)
    assert len(info.fingerprint) == 64
    assert probe_video(str(vtest_video)).fingerprint == info.fingerprint


def test_every_nth_frame_of_the_whole_video(vtest_video: Path) -> None:
    frames = list(iter_frames(vtest_video, every_n=10, progress=False))
    assert [f.index for f in frames] == list(range(0, 795, 10))
    times = np.array([f.time_s for f in frames])
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, np.arange(0, 795, 10) / 10.0, atol=1e-6)
    first = frames[0].image
    assert first.shape == (576, 768, 3) and first.dtype == np.uint8
    assert first.std() > 10  # a real picture, not a blank buffer


def test_start_and_end_frame_bound_the_range(vtest_video: Path) -> None:
    frames = list(iter_frames(vtest_video, every_n=3, start_frame=100, end_frame=130, progress=False))
    assert [f.index for f in frames] == list(range(100, 130, 3))
    assert frames[0].time_s == pytest.approx(10.0)
    every = {f.index: f.image for f in iter_frames(vtest_video, start_frame=100, end_frame=104, progress=False)}
    np.testing.assert_array_equal(every[103], frames[1].image)


def test_truncated_file_yields_what_decodes_then_warns(vtest_video: Path, truncated: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(iter_frames(truncated, progress=False))
    assert 0 < len(frames) < 795
    assert any(issubclass(w.category, TruncatedVideoWarning) and "cut.avi" in str(w.message) for w in caught)
    # the cut-off last frame decodes as concealment guesswork: it is counted, warned about and not yielded, so every
    # frame yielded is exactly the original's (what lets a grown copy of the file be matched frame by frame)
    damaged = len(frames)
    assert any(f"frame(s) {damaged} decoded from damaged data" in str(w.message) for w in caught)
    originals = list(iter_frames(vtest_video, end_frame=len(frames), progress=False))
    assert [f.index for f in frames] == list(range(damaged))
    for cut, original in zip(frames, originals, strict=True):
        np.testing.assert_array_equal(cut.image, original.image)
        assert frame_digest(cut.image) == frame_digest(original.image)
    assert frame_digest(frames[0].image) != frame_digest(frames[1].image)
    assert probe_video(truncated).head_digest == probe_video(vtest_video).head_digest == frame_digest(frames[0].image)


def test_fingerprint_follows_content_not_name(vtest_video: Path, truncated: Path, tmp_path: Path) -> None:
    twin = tmp_path / "renamed.bin"
    twin.write_bytes(truncated.read_bytes())
    assert video_fingerprint(twin) == video_fingerprint(truncated)
    assert video_fingerprint(truncated) != video_fingerprint(vtest_video)


def test_not_a_video_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 100)
    with pytest.raises(VideoError, match="notes.mp4"):
        iter_frames(path)
    with pytest.raises(VideoError, match="notes.mp4"):
        probe_video(path)


def test_missing_path_and_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        iter_frames(tmp_path / "nowhere.avi")
    with pytest.raises(VideoError, match="directory"):
        probe_video(tmp_path)


def test_range_past_the_end_and_bad_options(vtest_video: Path) -> None:
    with pytest.raises(VideoError, match="past its end"):
        list(iter_frames(vtest_video, start_frame=10_000, progress=False))
    with pytest.raises(ConfigError, match="every_n"):
        iter_frames(vtest_video, every_n=0)
    with pytest.raises(ConfigError, match="end_frame"):
        iter_frames(vtest_video, start_frame=5, end_frame=5)


def test_times_come_from_pts_in_another_container(tmp_path: Path) -> None:
    """A Matroska file (millisecond time base, no frame count in the header) written here at 4 fps."""
    path = tmp_path / "ramp.mkv"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(4))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for level in range(0, 240, 20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    frames = list(iter_frames(path, progress=False))
    assert len(frames) == 12
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(12) / 4.0, atol=2e-3)
    brightness = [float(f.image.mean()) for f in frames]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 150
    assert probe_video(path).fps == pytest.approx(4.0)


def _decoder_at(path: Path, index: int) -> Frame | None:
    """What the seek alone finds for ``index`` (None: it declined, and read_frame would decode from the start)."""
    with av.open(str(path)) as container:
        return _seek_frame(container, index)


def test_read_frame_seeks_to_the_same_pixels_a_straight_decode_gives(vtest_video: Path) -> None:
    """Frame 0, a frame before and the keyframes 250 / 750 of the shared video, frames after them and the last."""
    wanted = [0, 1, 249, 250, 251, 620, 750, 793, 794]
    straight = {f.index: f for f in iter_frames(vtest_video, progress=False) if f.index in wanted}
    for index in wanted:
        frame = read_frame(vtest_video, index)
        assert frame.index == index and frame.time_s == straight[index].time_s
        np.testing.assert_array_equal(frame.image, straight[index].image, err_msg=f"frame {index}")
        if index > 0:  # the seek itself found it: no silent fall-back to the decode from the start
            sought = _decoder_at(vtest_video, index)
            assert sought is not None, index
            np.testing.assert_array_equal(sought.image, straight[index].image, err_msg=f"frame {index}")
    assert not np.array_equal(read_frame(vtest_video, 250).image, straight[249].image)
    with pytest.raises(VideoError, match="has only 795 frames"):
        read_frame(vtest_video, 795)


def test_read_frame_of_a_video_that_skips_timestamp_slots_counts_frames_as_iter_frames(
    vtest_video: Path, tmp_path: Path
) -> None:
    """An MP4 whose 4th frame sits in slot 5 (slot 4 skipped, as a camera dropping a frame records it): the frame
    counted 6th is in slot 7, so a seek by timestamp would return the wrong frame; read_frame must not."""
    path = tmp_path / "gap.mp4"
    with av.open(str(vtest_video)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream("mpeg4", rate=10)
        out.width, out.height, out.pix_fmt, out.codec_context.gop_size = 768, 576, "yuv420p", 4
        for index, frame in enumerate(src.decode(src.streams.video[0])):
            if index == 20:
                break
            rgb = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            rgb.pts, rgb.time_base = index + (index >= 4), Fraction(1, 10)
            for packet in out.encode(rgb):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    straight = list(iter_frames(path, progress=False))
    assert len(straight) == 20 and straight[6].time_s == pytest.approx(0.7)
    for index in (3, 4, 6, 9, 19):
        np.testing.assert_array_equal(read_frame(path, index).image, straight[index].image, err_msg=f"frame {index}")
        assert _decoder_at(path, index) is None
