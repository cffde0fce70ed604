"""The RTSP server of the live tests (``tests/rtsp_server.py``, run by Debian's Python with python3-gi) as an object
a test starts, kills and restarts on the same port; ``rtsp_server`` is its pytest fixture (import ``rtsp_server_fixture`` to use it).

Without the Debian packages the tests skip, except under ``REIDKIT_REQUIRE_RTSP=1`` (``make test``), where a missing
server is a failure: a live test must never silently not run in CI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_CHECK = "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')"


def rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"{SYSTEM_PYTHON} is missing"
    checked = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    if checked.returncode != 0:
        return "python3-gi with gst-rtsp-server is not installed (`make test` installs it: .ci/install-rtsp)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspServer:
    """``video`` served at ``url`` (one shared stream at the file's real frame rate) while running."""

    def __init__(self, video: Path, port: int | None = None) -> None:
        self.video, self.port = video, port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> RtspServer:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.video), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ready"), f"the RTSP server did not start: {line}"
        return self

    def kill(self) -> None:
        """SIGKILL, as a crashed camera or server would go: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture(name="rtsp_server")
def rtsp_server_fixture() -> Iterator[Callable[[Path], RtspServer]]:
    """``rtsp_server(video)`` starts a server on a free loopback port; every one is killed after the test."""
    missing = rtsp_missing()
    if missing is not None:
        if os.environ.get("REIDKIT_REQUIRE_RTSP"):
            pytest.fail(missing)
        pytest.skip(missing)
    servers: list[RtspServer] = []

    def start(video: Path) -> RtspServer:
        servers.append(RtspServer(video).start())
        return servers[-1]

    yield start
    for server in servers:
        server.kill()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
