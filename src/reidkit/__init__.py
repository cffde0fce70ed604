"""reidkit: person re-identification from raw video to a ranked answer.

Importing reidkit turns off OpenVINO's usage telemetry for the process (unless OpenVINO was imported first). Its
model converter sends about 11 events per conversion, each by forking a copy of the whole process from a thread
pool to make one HTTP request. A fork taken while other threads (PyAV's decoders, torch, a server) hold locks can
deadlock in the child: such a child of a `reidkit ingest` that was killed was found stuck in a PyAV destructor for
good, holding the store's lock, so that resuming the ingest failed as "another reidkit ingest is writing". The
converter falls back to its own no-op stub when ``openvino_telemetry`` cannot be imported, which a ``None`` entry
in ``sys.modules`` makes so.
"""

import sys

sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]

__version__ = "0.1.0"
