"""Person search over stored video: ingest people into a store, then find where the cameras saw someone.

``Store`` (SQLite + crop JPEGs + FAISS behind ``VectorIndex``) <- ``ingest_video`` (decode, detect, track, embed,
commit in resumable chunks) -> ``search_store`` (ranked tracks + trajectory). See docs/search.md.
"""

from reidkit.index.ingest import IngestOptions, IngestReport, ingest_video, plan_ingest
from reidkit.index.model_choice import ModelChoice, choose_detector, choose_model
from reidkit.index.search import Hit, SearchFilters, SearchResult, search_store, track_query
from reidkit.index.store import ModelInfo, Store
from reidkit.index.trajectory import Visit, build_trajectory
from reidkit.index.vectors import FaissIndex, VectorIndex, create_vector_index, load_vector_index, plan_index

__all__ = [
    "FaissIndex",
    "Hit",
    "IngestOptions",
    "IngestReport",
    "ModelChoice",
    "ModelInfo",
    "SearchFilters",
    "SearchResult",
    "Store",
    "VectorIndex",
    "Visit",
    "build_trajectory",
    "choose_detector",
    "choose_model",
    "create_vector_index",
    "ingest_video",
    "load_vector_index",
    "plan_index",
    "plan_ingest",
    "search_store",
    "track_query",
]
