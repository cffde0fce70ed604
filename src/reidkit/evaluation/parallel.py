"""How many threads the evaluation kernels use.

Their heavy NumPy / torch / SciPy calls release the GIL, so plain threads over row blocks use every core the
process may run on (the affinity mask, not the machine's core count, which a container can hide).
"""

from __future__ import annotations

import os

_MAX_THREADS = 8


def worker_count() -> int:
    """Threads for a block loop: the CPUs this process may use, capped where more stop paying off."""
    return max(1, min(len(os.sched_getaffinity(0)), _MAX_THREADS))
