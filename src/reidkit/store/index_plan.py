"""How a store's vector index is laid out for its gallery size; no backend library is imported here.

``plan_index`` picks exact search while the gallery is small and an approximate layout past ``FLAT_MAX_ELEMENTS``
(vectors x dimensions), both thresholds measured by ``benchmarks/bench_search_scale.py`` (docs/search.md, Vector
index). FAISS builds the plan as ``IndexFlatIP`` / ``IVF-PQ`` (``faiss_index``); Milvus as ``FLAT`` / ``HNSW``
(``milvus_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Exact search up to this many stored floats (vectors x dim): where its p50 crossed 20 ms on 2 cores.
FLAT_MAX_ELEMENTS = 14_000_000


@dataclass(frozen=True)
class IndexPlan:
    """Which layout suits ``count`` vectors of ``dim`` dimensions (``nlist`` and ``subquantizers``: FAISS's IVF-PQ)."""

    kind: str  # "flat" or "ivf_pq"
    nlist: int = 0
    subquantizers: int = 0

    @property
    def description(self) -> str:
        if self.kind == "flat":
            return "IDMap2,Flat"
        return f"IVF{self.nlist},PQ{self.subquantizers}np"  # np: no polysemous training (slow, unused here)

    @property
    def training_size(self) -> int:
        """k-means wants ~40 points per list; PQ's 256 codes per sub-quantizer want tens of thousands."""
        return 0 if self.kind == "flat" else max(64 * self.nlist, 50_000)


def plan_index(count: int, dim: int) -> IndexPlan:
    """Exact while small, IVF-PQ (about sqrt(n) lists, 8 or 4 dims per code byte) past ``FLAT_MAX_ELEMENTS``."""
    if count * dim <= FLAT_MAX_ELEMENTS:
        return IndexPlan("flat")
    nlist = max(16, 2 ** round(math.log2(math.sqrt(count))))
    per_code = 8 if dim >= 1024 else 4
    subquantizers = dim // per_code if dim % per_code == 0 else dim
    return IndexPlan("ivf_pq", nlist, subquantizers)
