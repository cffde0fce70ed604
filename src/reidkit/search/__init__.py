"""Person search over stored video: ingest people into a store, then find where the cameras saw someone.

``ingest_video`` (decode, detect, track, embed, commit in resumable chunks into a ``reidkit.store.Store``) ->
``search_store`` (ranked tracks + trajectory); people (``grouping``, ``people``, ``identity``), ``reindex`` and
``retention`` work on the same store. See docs/search.md.

Nothing is imported here until it is asked for (PEP 562): the modules that read records (``results``,
``trajectory``) are imported by the viz page, the service and the CLI without loading ingest, video decoding or a
vector index library.
"""

import importlib
from typing import Any

# Each exported name and the module that defines it.
_EXPORTS = {
    "IngestOptions": "ingest",
    "IngestReport": "ingest",
    "ingest_video": "ingest",
    "plan_ingest": "ingest",
    "Hit": "results",
    "SearchResult": "results",
    "Visit": "results",
    "search_store": "search",
    "track_query": "search",
    "build_trajectory": "trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The exported names, each imported from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
