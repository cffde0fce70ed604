"""Search by description: the stored tracks ranked by the probability that they show the described person
("gender=female, upper=red, backpack=yes"), with no photo; and a photo search narrowed by a description.

A store whose model has an attribute head keeps every crop's attribute probabilities and each track's
(``store.schema``, version 4); a description's probability for a track is the product over the described groups of
the track's probability of the described value (``attribute_schema.description_log_probability``). The camera / time
filters keep a track when one of its crops passes them, as in a photo search; the crop shown for a track is its
passing crop most probably matching the description.

With a photo (or a track) as well, the description re-scores the photo's hits: they are ranked by cosine
similarity + ``DESCRIPTION_WEIGHT`` x the log of the description's probability, among ``CANDIDATES_PER_HIT`` times
as many appearance hits as asked for. Measured on the Market-1501 test split with a true three-term description of
each query's person (benchmarks/RESULTS.md, "Attributes: photo and description"): re-scoring with weight 0.01 lifts
Rank-1 / mAP from 77.1 / 58.5 to 77.7 / 59.3, while filtering out the hits below any probability threshold lowers
both (0.01: 76.1 / 56.0), because the predicted attributes of a true match are sometimes wrong and a filter loses
that match for good. So a description narrows by re-ordering, never by dropping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from reidkit.attribute_schema import AttributeSchema, description_log_probability
from reidkit.errors import ConfigError
from reidkit.search.hit_attributes import describe, with_attributes
from reidkit.search.results import Hit, SearchResult
from reidkit.search.search import CLI_OPTIONS, check_search_options, with_people
from reidkit.search.trajectory import build_trajectory
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import DetectionRow

DESCRIPTION_WEIGHT = 0.01
CANDIDATES_PER_HIT = 3
_BATCH = 256


def parse_description(store: StoreReader, terms: list[str], field: str) -> dict[str, str]:
    """``NAME=VALUE`` terms checked against the store's attributes; ``field`` names them in errors (``--attr``)."""
    return store.require_attribute_schema(field).parse_description(terms, field)


def search_by_description(
    store: StoreReader,
    description: Mapping[str, str],
    top_k: int = 20,
    filters: SearchFilters = SearchFilters(),
    min_score: float = 0.0,
    names: dict[str, str] = CLI_OPTIONS,
) -> SearchResult:
    """The ``top_k`` tracks most probably showing ``description`` (already parsed) among those passing ``filters``;
    a hit's ``score`` and ``track_score`` are the track's probability of the whole description."""
    check_search_options(store, filters, top_k, min_score, names)
    schema = store.require_attribute_schema(names.get("attributes", "attributes"))
    track_ids, probabilities = store.track_attributes()
    if len(track_ids) == 0:
        raise ConfigError(f"store {store.root} holds no tracks with attributes yet; ingest a video first")
    scores = np.exp(description_log_probability(schema, probabilities, description))
    order = np.argsort(-scores, kind="stable")
    chosen: list[tuple[int, float, DetectionRow]] = []
    for start in range(0, len(order), _BATCH):
        batch = [(int(track_ids[i]), float(scores[i])) for i in order[start : start + _BATCH] if scores[i] >= min_score]
        best = _best_crops(store, schema, description, [t for t, _ in batch], filters)
        chosen += [(track_id, score, best[track_id]) for track_id, score in batch if track_id in best]
        if len(chosen) >= top_k or len(batch) < _BATCH:
            break
    tracks = store.tracks(track_id for track_id, _, _ in chosen[:top_k])
    hits = [Hit(rank, tracks[track_id], score, score, crop, description_probability=score)
            for rank, (track_id, score, crop) in enumerate(chosen[:top_k], start=1)]
    hits = with_attributes(store, with_people(store, hits))
    notes = [] if hits else [f"no stored track matches {describe(description)} within the filters"]
    return SearchResult(hits=hits, trajectory=build_trajectory(hits), candidates=len(chosen), reranked=False,
                        notes=notes)


def rescore_by_description(
    store: StoreReader, result: SearchResult, description: Mapping[str, str], top_k: int
) -> SearchResult:
    """A photo or track search's hits (searched with ``CANDIDATES_PER_HIT`` x ``top_k``) re-ranked by appearance
    and the description together (module docstring), cut to ``top_k``, each with its attributes and the
    description's probability; an identity trajectory stays as it is, a trajectory of hits is rebuilt."""
    schema = store.require_attribute_schema("attributes")
    track_ids, probabilities = store.track_attributes(hit.track.id for hit in result.hits)
    log_p = dict(zip(track_ids.tolist(), description_log_probability(schema, probabilities, description).tolist()))
    floor = float(np.log(1e-12))  # a track without attributes (none in a store that has them) ranks last
    ranked = sorted(result.hits, key=lambda hit: -(hit.score + DESCRIPTION_WEIGHT * log_p.get(hit.track.id, floor)))
    hits = [replace(hit, rank=rank, description_probability=float(np.exp(log_p.get(hit.track.id, floor))))
            for rank, hit in enumerate(ranked[:top_k], start=1)]
    hits = with_attributes(store, hits)
    notes = result.notes + [f"ranked by appearance and the description {describe(description)}"]
    trajectory = result.trajectory if result.identity else build_trajectory(hits)
    return replace(result, hits=hits, trajectory=trajectory, notes=notes)


def _best_crops(
    store: StoreReader, schema: AttributeSchema, description: Mapping[str, str], track_ids: list[int],
    filters: SearchFilters,
) -> dict[int, DetectionRow]:
    """Each track's crop (among those passing ``filters``) most probably matching the description."""
    rows = [row for row in store.detections_of_tracks(track_ids) if filters.admits(row)]
    if not rows:
        return {}
    ids, probabilities = store.detection_attributes(row.id for row in rows)
    crop_scores = dict(zip(ids.tolist(), description_log_probability(schema, probabilities, description).tolist()))
    best: dict[int, DetectionRow] = {}
    for row in rows:
        held = best.get(row.track_id)
        if held is None or crop_scores.get(row.id, -np.inf) > crop_scores.get(held.id, -np.inf):
            best[row.track_id] = row
    return best
