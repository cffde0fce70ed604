"""Where a live camera's frames come from: a stream (rtsp://, http(s)://), a local capture device, or a file played
at its real frame rate (tests and demos), each read by a thread of its own into a bounded queue.

A reader never waits for the ingest: when the queue is full it drops the OLDEST frame and counts it, so the ingest
always works on the freshest footage (lag stays bounded, memory too) and the count says how much was skipped. A
stream that ends or fails is reopened with exponential back-off; the queue carries ``Connected`` / ``Disconnected``
events in order with the frames, so the ingest knows exactly which frames belong to which connection and can record
the gap between two. A file is not reopened: its end is its camera's end (``Finished``).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import warnings
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Union
from urllib.parse import urlsplit, urlunsplit

import av
import av.error

from reidkit.errors import ConfigError, ReidkitError
from reidkit.video import Frame, TruncatedVideoWarning, iter_frames

CAMERA_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
log = logging.getLogger(__name__)
_CREDENTIALS = re.compile(r"://[^/@\s]*@")  # user:password@ inside any text that quotes a URL
_OPEN_TIMEOUT_S = 10.0
_RATE_GUESS = 25.0  # frames per second of a source that does not say
_READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CameraSource:
    """A camera to watch: its name in the store and where its frames come from (``url`` may carry credentials; it
    is used only to connect, never shown or stored: see ``public_url``)."""

    name: str
    url: str
    every_n: int | None = None  # ingest every n-th frame of this camera (None: the watch options' every_n)

    @property
    def kind(self) -> str:
        """``stream`` (a URL), ``device`` (/dev/video*) or ``file`` (played at its real frame rate)."""
        if "://" in self.url:
            return "stream"
        return "device" if self.url.startswith("/dev/") else "file"

    @property
    def public_url(self) -> str:
        """The URL without user name and password: what the store, the health table and the API show."""
        return public_url(self.url)


def public_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed (a file path is returned as it is)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return _CREDENTIALS.sub("://", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_camera_name(name: str, field: str = "--camera") -> None:
    """A camera name is a file name (its snapshot) and a filter value: letters, digits, ``_-.``, at most 64."""
    if not CAMERA_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"{field}: camera name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")


def check_source(url: str, field: str = "--camera") -> None:
    """Refuse what can never be a camera: an unknown URL scheme, a file that does not exist."""
    if not url.isprintable() or ("://" in url and any(character.isspace() for character in url)):
        raise ConfigError(f"{field}: {public_url(url)!r} holds a control character (or a URL a space)")
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if scheme not in STREAM_SCHEMES or not host:
            raise ConfigError(f"{field}: {public_url(url)!r} is not a stream URL this reader opens (schemes: "
                              f"{', '.join(STREAM_SCHEMES)}, with a host)")
        return
    if not url.startswith("/dev/") and not _is_file(url):
        raise ConfigError(f"{field}: {url!r} is neither a stream URL nor an existing video file or /dev/ device")


def _is_file(text: str) -> bool:
    """Whether ``text`` names a file; False for what cannot be a path (a NUL, a part over the name limit)."""
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError, RuntimeError):
        return False


def parse_camera(text: str, option: str = "--camera") -> CameraSource:
    """``NAME=URL`` (as typed after ``--camera``) -> a checked ``CameraSource``; ``ConfigError`` naming ``option``."""
    name, sep, url = text.partition("=")
    if not sep or not url.strip():
        raise ConfigError(f"{option} {public_url(text)!r} must be NAME=URL, e.g. {option} door=rtsp://HOST/stream")
    name, url = name.strip(), url.strip()
    check_camera_name(name, option)
    check_source(url, option)
    return CameraSource(name, url if "://" in url or url.startswith("/dev/") else str(Path(url).expanduser()))


@dataclass(frozen=True)
class LiveFrame:
    """A sampled frame and when it was read (``time.time()``): where lag and "first frame to alert" start."""

    frame: Frame
    received: float


@dataclass(frozen=True)
class Connected:
    """A connection delivered its first frame: the frames after this event belong to it."""

    at: float  # time.time() of its first frame
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class Disconnected:
    """The connection ended (stream dropped, server gone, read timeout); a new one is being tried."""

    at: float
    reason: str


@dataclass(frozen=True)
class Unreachable:
    """A try to open the source failed (refused, timed out, not found); the next try follows after the back-off."""

    at: float
    reason: str


@dataclass(frozen=True)
class Finished:
    """The source will deliver nothing more: a file ended, or it could not be read at all (``error``)."""

    at: float
    error: str | None = None


Event = Union[Connected, Disconnected, Unreachable, Finished]


class FrameQueue:
    """Frames and events of one camera, in order; at most ``seconds`` of footage, the oldest frames dropped past
    that (counted in frames at the rate ``set_rate`` gives, until then at 25 sampled frames per second)."""

    def __init__(self, seconds: float, wake: threading.Event) -> None:
        self.seconds = seconds
        self.max_frames = _frames_in(seconds, _RATE_GUESS)
        self.items: deque[LiveFrame | Event] = deque()
        self.frames = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.wake = wake  # shared by every camera: set when anything arrives, so one worker waits on all of them

    def put(self, item: LiveFrame | Event) -> None:
        with self.lock:
            if isinstance(item, LiveFrame):
                if self.frames >= self.max_frames:
                    self._drop_oldest_frame()
                self.frames += 1
            self.items.append(item)
        self.wake.set()

    def set_rate(self, sampled_fps: float) -> None:
        """The rate frames arrive at (the source's frame rate over its every-n), once known."""
        with self.lock:
            self.max_frames = _frames_in(self.seconds, sampled_fps)

    def _drop_oldest_frame(self) -> None:
        for position, queued in enumerate(self.items):
            if isinstance(queued, LiveFrame):
                del self.items[position]
                self.frames -= 1
                self.dropped += 1
                return

    def take(self, max_frames: int) -> tuple[list[LiveFrame], Event | None]:
        """Up to ``max_frames`` frames from the head, or (when an event is at the head) that event alone."""
        with self.lock:
            if self.items and not isinstance(self.items[0], LiveFrame):
                return [], self.items.popleft()
            taken: list[LiveFrame] = []
            while self.items and len(taken) < max_frames and isinstance(self.items[0], LiveFrame):
                taken.append(self.items.popleft())  # type: ignore[arg-type]
            self.frames -= len(taken)
            return taken, None


def _frames_in(seconds: float, sampled_fps: float) -> int:
    return max(1, math.ceil(seconds * (sampled_fps if sampled_fps > 0 else _RATE_GUESS)))


@dataclass(frozen=True)
class ReadPlan:
    """How to read one camera: every ``every_n``-th frame; a file from ``start_frame`` (its resume point)."""

    every_n: int = 1
    start_frame: int = 0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0


def start_reader(source: CameraSource, plan: ReadPlan, out: FrameQueue, stop: threading.Event) -> threading.Thread:
    """Start the thread that reads ``source`` into ``out`` until ``stop`` is set (or a file ends)."""
    read = _read_file if source.kind == "file" else _read_stream

    def run() -> None:
        try:
            read(source, plan, out, stop)
        except Exception as exc:  # noqa: BLE001 - a reader's bug ends its camera (said in its health), not others
            log.exception("camera %s: reader failed", source.name)
            out.put(Finished(time.time(), _reason(exc)))

    thread = threading.Thread(target=run, name=f"camera-{source.name}", daemon=True)
    thread.start()
    return thread


def _read_file(source: CameraSource, plan: ReadPlan, out: FrameQueue, stop: threading.Event) -> None:
    """Play a file from ``plan.start_frame`` at its real frame rate (its timestamps), then ``Finished``."""
    error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedVideoWarning)
            with closing(iter_frames(source.url, plan.every_n, plan.start_frame, None, progress=False)) as frames:
                started, first_time = time.time(), None
                for frame in frames:
                    first_time = frame.time_s if first_time is None else first_time
                    delay = started + (frame.time_s - first_time) - time.time()
                    if (delay > 0 and stop.wait(delay)) or stop.is_set():
                        break
                    out.put(LiveFrame(frame, time.time()))
    except ReidkitError as exc:
        error = str(exc)
    if not stop.is_set():  # stopped part-way, the file is not finished: a restart resumes it
        out.put(Finished(time.time(), error))


def _read_stream(source: CameraSource, plan: ReadPlan, out: FrameQueue, stop: threading.Event) -> None:
    """Read a stream or device until ``stop``, reopening it with exponential back-off whenever it ends or fails."""
    backoff = plan.backoff_initial_s
    while not stop.is_set():
        delivered, reason = _read_connection(source, plan, out, stop)
        if delivered:
            out.put(Disconnected(time.time(), reason))
            backoff = plan.backoff_initial_s
        elif not stop.is_set():
            out.put(Unreachable(time.time(), reason))
        if stop.wait(backoff):
            break
        backoff = min(backoff * 2, plan.backoff_max_s)
    out.put(Finished(time.time()))


def _read_connection(
    source: CameraSource, plan: ReadPlan, out: FrameQueue, stop: threading.Event
) -> tuple[bool, str]:
    """One connection: ``(whether it delivered a frame, why it ended)``."""
    try:
        container = _open_live(source.url)
    except (av.error.FFmpegError, OSError) as exc:
        return False, _reason(exc)
    delivered, reason, index = False, "the stream ended", -1
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else _RATE_GUESS
        out.set_rate(fps / plan.every_n)
        started = 0.0
        for av_frame in container.decode(stream):
            if stop.is_set():
                reason = "stopped"
                break
            index += 1
            received = time.time()
            if not delivered:
                started, delivered = received, True
                out.put(Connected(received, fps, av_frame.width, av_frame.height))
            if index % plan.every_n:
                continue
            image = av_frame.to_ndarray(format="rgb24")
            out.put(LiveFrame(Frame(index, received - started, image), received))
    except (av.error.FFmpegError, OSError) as exc:
        reason = _reason(exc)
    finally:
        container.close()
    return delivered, reason


def _open_live(url: str) -> av.container.InputContainer:
    """Open a stream (RTSP over TCP: no lost packets on a busy host) or a V4L2 device, with timeouts."""
    options = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
    device_format = "v4l2" if url.startswith("/dev/") else None
    container = av.open(url, mode="r", format=device_format, options=options,
                        timeout=(_OPEN_TIMEOUT_S, _READ_TIMEOUT_S))
    if not container.streams.video:
        container.close()
        raise OSError("the source has no video stream")
    return container


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
    return _CREDENTIALS.sub("://", text)
