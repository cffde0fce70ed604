"""One OpenVINO ``Core`` for the whole process, shared by every model reidkit compiles (embedding, detector, export
check).

OpenVINO's CPU plugin (seen with 2026.4) gives the thread that first compiles a model on a ``Core`` a signal stack
of its own (``sigaltstack``) and, when that ``Core`` goes, puts back the one it found. Two ``Core``s that go in the
order they came, not the reverse, leave the thread's signal stack pointing at freed memory. The next signal that has
a handler (a child process ending once torch's DataLoader watches SIGCHLD, pytest-timeout's alarm) then kills the
process with SIGSEGV and no trace at all: faulthandler's handler needs that stack too. This was the test worker that
died "without a trace, in a different test each time". One ``Core`` that lives as long as the process never gives
its signal stack back, so no order of model lifetimes can go wrong.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def shared_core() -> Any:
    """The process's ``openvino.Core``. Callers import ``openvino`` first, to fail with their own message when it is
    missing."""
    import openvino

    return openvino.Core()
