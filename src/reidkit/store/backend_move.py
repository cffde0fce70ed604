"""Moving a store from one vector index backend to another (``reidkit store reindex-backend``).

``move_store`` builds the new indexes completely from SQLite's features while the old ones keep serving, then
switches the recorded location in one SQLite transaction, then deletes the old indexes; the commit sequence is
unchanged, so the new indexes are in step at once. A crash before the switch leaves the old backend in use; the
half-built target, recorded as ``vector_index_pending``, is deleted by the next move.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from reidkit.errors import ConfigError, StoreError
from reidkit.store.backend_choice import PENDING_KEY, check_choice, location_from_meta, meta_of, record_location
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.layout import vectors_folder
from reidkit.store.vector_index import VectorIndex, describe_location, discard_vector_index, index_backend
from reidkit.store.writer import Store


@dataclass(frozen=True)
class MoveReport:
    source: str
    target: str
    crops: int
    tracks: int
    seconds: float


def move_store(store: Store, target: str, options: Mapping[str, str] | None = None) -> MoveReport:
    """Rebuild ``store``'s indexes in ``target`` from SQLite, switch to them, delete the old ones (module doc)."""
    options = dict(options or {})
    check_choice(target, options)
    if not store.writable:
        raise StoreError(f"moving store {store.root} to another vector index needs it opened for writing")
    source, backend = store.location, index_backend(target)
    if target == source.backend and all(source.option(key) == options.get(key, "") for key in backend.option_names):
        raise ConfigError(
            f"store {store.root} already keeps its vectors in {describe_location(source)} (opening it for this "
            "move has checked them against SQLite and repaired them)"
        )
    started = time.perf_counter()
    _discard_pending(store)
    destination = backend.new_location(vectors_folder(store.root), options)
    with store.transaction():
        store.set_meta_values({PENDING_KEY: json.dumps(meta_of(destination))})
    built: dict[str, VectorIndex] = {}
    model = store.model
    if model is not None:
        for name in (CROP_INDEX, TRACK_INDEX):
            built[name] = store.vectors.rebuild(name, model.feature_dim, destination)
            built[name].save(store.commit_seq)
    with store.transaction():
        record_location(store, destination)
        store.set_meta_values({PENDING_KEY: ""})
    store.location = destination
    store.vectors.replace(built)
    for name in (CROP_INDEX, TRACK_INDEX):
        discard_vector_index(source, name)
    counts = {name: index.count for name, index in built.items()}
    return MoveReport(describe_location(source), describe_location(destination), counts.get(CROP_INDEX, 0),
                      counts.get(TRACK_INDEX, 0), time.perf_counter() - started)


def _discard_pending(store: Store) -> None:
    """Delete what a move that crashed before its switch had built (best effort: its server may be gone)."""
    pending = store.meta_value(PENDING_KEY)
    if not pending:
        return
    location = location_from_meta(store, pending)
    if location != store.location:
        for name in (CROP_INDEX, TRACK_INDEX):
            try:
                discard_vector_index(location, name)
            except StoreError:
                pass  # unreachable server: its leftovers are named in the meta no more, nothing else uses them
    with store.transaction():
        store.set_meta_values({PENDING_KEY: ""})
