"""Person search over stored video: ingest people into a store, then find where the cameras saw someone.

``Store`` (SQLite + crop JPEGs + FAISS or Milvus behind ``VectorIndex``) <- ``ingest_video`` (decode, detect, track, embed,
commit in resumable chunks) -> ``search_store`` (ranked tracks + trajectory). See docs/search.md.
"""

from reidkit.search.ingest import IngestOptions, IngestReport, ingest_video, plan_ingest
from reidkit.search.model_choice import ModelChoice, choose_detector, choose_model
from reidkit.search.search import Hit, SearchFilters, SearchResult, search_store, track_query
from reidkit.search.store import Store
from reidkit.search.rows import ModelInfo
from reidkit.search.trajectory import Visit, build_trajectory
from reidkit.search.milvus_index import MilvusIndex
from reidkit.search.vectors import VECTOR_INDEXES, FaissIndex, VectorIndex, create_vector_index, load_vector_index, plan_index

__all__ = [
    "VECTOR_INDEXES",
    "FaissIndex",
    "Hit",
    "IngestOptions",
    "IngestReport",
    "MilvusIndex",
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
