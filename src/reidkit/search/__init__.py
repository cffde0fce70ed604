"""Person search over stored video: ingest people into a store, then find where the cameras saw someone.

``ingest_video`` (decode, detect, track, embed, commit in resumable chunks into a ``reidkit.store.Store``) ->
``search_store`` (ranked tracks + trajectory); people (``grouping``, ``people``, ``identity``), ``reindex`` and
``retention`` work on the same store. See docs/search.md.

Nothing is imported here until it is asked for (PEP 562): the modules that read records (``results``,
``trajectory``) are imported by the viz page, the service and the CLI without loading ingest, video decoding or a
vector index library.
"""

from reidkit.lazy_exports import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
