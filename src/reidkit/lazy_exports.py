"""Package ``__init__``s that import nothing until a name is asked for (PEP 562), written once.

``search``, ``video``, ``clustering``, ``models`` and ``inference`` export their public names lazily, so that
importing a light module of theirs (``models.zoo``, ``video.types``, ``search.results``) does not load torch, PyAV,
OpenVINO, SciPy or FAISS: ``reidkit --help`` and a torch-free ``reidkit search`` start in a fraction of a second.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a submodule) on first access."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
