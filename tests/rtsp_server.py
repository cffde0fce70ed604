"""A real RTSP server on loopback for the live-ingest tests: Debian's gst-rtsp-server through python3-gi.

Run with the system Python (``/usr/bin/python3``, which has python3-gi; the project's venv does not):
``/usr/bin/python3 tests/rtsp_server.py VIDEO --port N [--mount /cam] [--passthrough]``. It serves VIDEO as
H.264 at the file's real frame rate, one shared stream for every client, prints ``ready rtsp://127.0.0.1:N/cam``
once it listens, and runs until killed; the stream ends with the file. Installed by ``.ci/install-rtsp``; nothing
is downloaded at run time.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_ENCODE = ("videoconvert ! videorate ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
           "! rtph264pay name=pay0 pt=96 config-interval=1")


def launch_line(video: str, passthrough: bool = False) -> str:
    """The media pipeline: the file decoded and re-encoded live, as a camera's encoder would; or, for an H.264 MP4
    (``passthrough``, the benchmarks' long clips), its packets sent as they are, costing the server next to no CPU
    beside the program measured."""
    if passthrough:
        return f'( filesrc location="{video}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    return f'( filesrc location="{video}" ! decodebin ! {_ENCODE} )'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--passthrough", action="store_true", help="VIDEO is an H.264 MP4: send it without re-encoding")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.video, args.passthrough))
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"error: cannot listen on 127.0.0.1:{args.port}")
    print(f"ready rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
