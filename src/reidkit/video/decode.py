"""Video decoding with PyAV: files and anything FFmpeg opens (rtsp://, http://, ...).

Frames are counted in decode (= presentation) order and timed from their PTS, so sampling with ``every_n`` never
loses the mapping back to wall-clock seconds. Every frame is still decoded (inter-frame codecs need them), but only
the sampled ones pay for the RGB conversion, which is most of the per-frame cost.

Truncated files are common (a recording cut off, a copy in progress): FFmpeg decodes them up to the damage without
an error, so we yield every frame that decodes and then emit a ``TruncatedVideoWarning`` when the stream ended well
before the frame count its header announces, or when the decoder fails part-way. A frame FFmpeg decoded from damaged
data (the last, cut-off packet of a copy still being written) is counted but not yielded, with the same warning: its
pixels are concealment guesswork, and a grown copy of the file has the real frame there. Only a video that yields
no frame at all is an error.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from tqdm import tqdm

from reidkit.errors import ConfigError, VideoError
from reidkit.image_open import too_many_pixels
from reidkit.video.types import Frame, VideoInfo

_FINGERPRINT_CHUNK = 1 << 20
_URL_TIMEOUT_S = 10.0


class TruncatedVideoWarning(UserWarning):
    """The video ended (or failed to decode) before its announced end; the frames before that were yielded."""


def iter_frames(
    source: str | Path,
    every_n: int = 1,
    start_frame: int = 0,
    end_frame: int | None = None,
    progress: bool = True,
) -> Iterator[Frame]:
    """Yield frames ``start_frame, start_frame + every_n, ...`` below ``end_frame`` (exclusive) as RGB ``Frame``s.

    The container is opened here, not on first ``next()``, so a missing or unreadable video fails at the call site.
    Raises ``VideoError`` if nothing in the requested range decodes.
    """
    if every_n < 1:
        raise ConfigError(f"every_n must be a positive integer, got {every_n}")
    if start_frame < 0:
        raise ConfigError(f"start_frame must be >= 0, got {start_frame}")
    if end_frame is not None and end_frame <= start_frame:
        raise ConfigError(f"end_frame ({end_frame}) must be greater than start_frame ({start_frame})")
    name = _source_text(source)
    container = _open(name)
    return _frames(container, name, every_n, start_frame, end_frame, progress)


def read_frame(source: str | Path, frame_index: int, seek: bool = True) -> Frame:
    """Frame ``frame_index`` (counted as ``iter_frames`` counts) of a video, found by seeking to the keyframe at or
    before it and decoding forward: decoding from the start costs time in proportion to the index (about 40 s late
    in an hour of video), a seek at most one keyframe interval.

    A frame is placed by its timestamp on the stream's frame grid (``start_time + index / fps``); when the stream's
    timestamps do not place it exactly (no frame rate; a frame count that does not fill the stream's duration slot
    by slot, as with a variable rate or skipped slots; a timestamp off the grid; the seek landing past the frame)
    or ``seek`` is False, it is decoded from the start instead. Callers holding a digest of the frame
    (``frame_digest``) may still check it and retry with ``seek=False``. ``VideoError`` when there is no such frame.
    """
    if frame_index < 0:
        raise ConfigError(f"frame index must be >= 0, got {frame_index}")
    name = _source_text(source)
    if seek and frame_index > 0:
        container = _open(name)
        try:
            found = _seek_frame(container, frame_index)
        except av.error.FFmpegError:
            found = None  # a failed seek or a damaged GOP: the straight decode below says what is wrong
        finally:
            container.close()
        if found is not None:
            return found
    frames = iter_frames(name, 1, frame_index, frame_index + 1, progress=False)
    try:
        return next(frames)
    finally:
        frames.close()


def _seek_frame(container: av.container.InputContainer, frame_index: int) -> Frame | None:
    """``read_frame``'s seek, or None when the timestamps cannot place the frame exactly."""
    stream = container.streams.video[0]
    rate, time_base = stream.base_rate, stream.time_base  # the grid every timestamp falls on (r_frame_rate)
    if not rate or time_base is None:
        return None
    ticks = 1 / (Fraction(rate) * time_base)  # one frame's duration in timestamp units
    if not stream.frames or stream.duration is None or abs(stream.duration / ticks - stream.frames) > Fraction(1, 2):
        return None  # frames that do not fill the grid slot by slot (variable rate, gaps): counts and slots differ
    base = stream.start_time or 0
    stream.thread_type = "AUTO"
    container.seek(base + int(frame_index * ticks), stream=stream, backward=True, any_frame=False)
    for av_frame in container.decode(stream):
        if av_frame.pts is None:
            return None
        position = round((av_frame.pts - base) / ticks)
        if abs(av_frame.pts - base - position * ticks) > ticks / 4 or position > frame_index:
            return None  # off the frame grid (rounded timestamps stay well inside), or the seek landed past it
        if position == frame_index:
            if av_frame.is_corrupt:
                return None
            time_s = float(av_frame.time) - float(base * time_base)  # as iter_frames times it
            return Frame(index=frame_index, time_s=time_s, image=av_frame.to_ndarray(format="rgb24"))
    return None


def probe_video(source: str | Path) -> VideoInfo:
    """Read the container's metadata, fingerprint the content and digest frame 0 (of a file, not of a URL).

    Frames over ``reidkit.image_open.MAX_IMAGE_PIXELS`` are refused here, before any is decoded.
    """
    name = _source_text(source)
    with _open(name) as container:
        stream = container.streams.video[0]
        fps = _fps(stream)
        duration_s = _duration_s(container, stream)
        num_frames = stream.frames or round(duration_s * fps)
        width, height = stream.codec_context.width, stream.codec_context.height
        oversized = too_many_pixels(int(width), int(height))
        if oversized is not None:
            raise VideoError(f"the frames of {name} are {oversized}; scale the video down first")
        head = None if _is_url(name) else _head_digest(container, stream, name)
    return VideoInfo(
        path=name,
        fps=fps,
        num_frames=int(num_frames),
        width=int(width),
        height=int(height),
        duration_s=duration_s,
        fingerprint=video_fingerprint(name),
        head_digest=head,
    )


def frame_digest(image: np.ndarray) -> str:
    """sha256 of a decoded frame's shape and pixels: equal for the same frame of two copies of one recording (same
    bytes, same decoder), different for anything else."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def _head_digest(container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str) -> str:
    try:
        for av_frame in container.decode(stream):
            return frame_digest(av_frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as exc:
        raise VideoError(f"no frame of {name} could be decoded ({_reason(exc)}); check the file with ffprobe") from exc
    raise VideoError(f"{name} contains no decodable video frame; check the file with ffprobe")


def video_fingerprint(source: str | Path) -> str:
    """sha256 over the file size and its first and last MiB: constant time for any length, and a re-encode, a cut
    or an append changes it. A URL's content is not stable, so a URL is identified by its text."""
    name = _source_text(source)
    digest = hashlib.sha256()
    if _is_url(name):
        digest.update(b"url:" + name.encode())
        return digest.hexdigest()
    path = Path(name)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            digest.update(str(size).encode() + b"\0")
            digest.update(handle.read(_FINGERPRINT_CHUNK))
            if size > _FINGERPRINT_CHUNK:
                handle.seek(max(_FINGERPRINT_CHUNK, size - _FINGERPRINT_CHUNK))
                digest.update(handle.read(_FINGERPRINT_CHUNK))
    except OSError as exc:
        raise VideoError(f"cannot read video file {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _frames(
    container: av.container.InputContainer,
    name: str,
    every_n: int,
    start_frame: int,
    end_frame: int | None,
    progress: bool,
) -> Iterator[Frame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = _fps(stream)
    announced = int(stream.frames or 0)
    stop = end_frame if end_frame is not None else (announced or None)
    start_s = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    bar = tqdm(
        total=None if stop is None else max(stop - start_frame, 0),
        desc=Path(name).name if not _is_url(name) else name,
        unit="frame",
        disable=not progress,
        leave=False,
    )
    index = -1
    yielded = 0
    damaged: list[int] = []
    failure: str | None = None
    try:
        try:
            for av_frame in container.decode(stream):
                index += 1
                if end_frame is not None and index >= end_frame:
                    break
                if index < start_frame:
                    continue
                bar.update(1)
                if (index - start_frame) % every_n:
                    continue
                if av_frame.is_corrupt:
                    damaged.append(index)
                    continue
                time_s = float(av_frame.time) - start_s if av_frame.time is not None else index / fps
                yield Frame(index=index, time_s=time_s, image=av_frame.to_ndarray(format="rgb24"))
                yielded += 1
        except av.error.FFmpegError as exc:
            failure = str(exc)
    finally:
        bar.close()
        container.close()
    decoded = index + 1
    if damaged:
        warnings.warn(
            f"{name}: frame(s) {', '.join(map(str, damaged[:5]))} decoded from damaged data (truncated or corrupt) "
            "and were skipped",
            TruncatedVideoWarning,
            stacklevel=2,
        )
    if yielded == 0:
        if failure is not None:
            raise VideoError(f"no frame of {name} could be decoded ({failure}); check the file with ffprobe")
        if decoded > 0:
            raise VideoError(f"{name} has only {decoded} frames; start_frame={start_frame} is past its end")
        raise VideoError(f"{name} contains no decodable video frame; check the file with ffprobe")
    if failure is not None:
        warnings.warn(
            f"{name}: decoding failed after frame {index} ({failure}); the frames before it were kept",
            TruncatedVideoWarning,
            stacklevel=2,
        )
    elif end_frame is None or decoded < end_frame:
        missing = announced - decoded
        if announced and missing > max(1, announced // 100):
            warnings.warn(
                f"{name} ended after {decoded} of the {announced} frames its header announces; "
                "the file looks truncated, so the frames before the cut were kept",
                TruncatedVideoWarning,
                stacklevel=2,
            )


def _open(name: str) -> av.container.InputContainer:
    if not _is_url(name) and not Path(name).is_file():
        what = "is a directory, not a video file" if Path(name).is_dir() else "does not exist"
        raise VideoError(f"video file {name} {what}")
    try:
        container = av.open(name, mode="r", timeout=_URL_TIMEOUT_S if _is_url(name) else None)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{name} is not a video FFmpeg can open ({_reason(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{name} has no video stream (audio or data only?)")
    return container


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _reason(exc: av.error.FFmpegError) -> str:
    return exc.strerror or str(exc)


def _is_url(name: str) -> bool:
    return "://" in name


def _source_text(source: str | Path) -> str:
    text = str(source)
    return text if _is_url(text) else str(Path(text).expanduser())
