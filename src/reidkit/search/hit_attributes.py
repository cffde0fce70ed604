"""The attributes shown beside search hits: each hit's track's most probable values, where the store holds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reidkit.attribute_schema import most_probable
from reidkit.search.results import Hit
from reidkit.store.reader import StoreReader


def with_attributes(store: StoreReader, hits: list[Hit]) -> list[Hit]:
    """The hits with their tracks' most probable attribute values (a store without attributes: as they are)."""
    schema = store.attribute_schema
    if schema is None or not hits:
        return hits
    track_ids, probabilities = store.track_attributes(hit.track.id for hit in hits)
    found = {t: most_probable(schema, row.tolist()) for t, row in zip(track_ids.tolist(), probabilities, strict=True)}
    return [replace(hit, attributes=found.get(hit.track.id)) for hit in hits]


def describe(description: Mapping[str, str]) -> str:
    return " ".join(f"{name}={value}" for name, value in description.items())
