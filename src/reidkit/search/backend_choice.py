"""Which vector index a store uses (FAISS files or Milvus), chosen once when the store is made, and moving a store
from one to the other.

The choice lives in the store's SQLite ``meta``: ``vector_index`` (a ``VECTOR_INDEXES`` name), and for Milvus
``milvus_uri`` ("" = the embedded milvus-lite database ``vectors/milvus.db`` in the store folder, so the folder can
be moved) and ``milvus_namespace`` (the prefix of the store's collections, fresh for every move, so one server can
hold many stores and a move never writes over the collections still serving). A store made before the choice
existed is a FAISS store. Later opens use what the store records; asking for another backend is refused in one
line that says how to move the store.

``move_store`` (``reidkit store reindex-backend``) builds the new indexes completely from SQLite's features while
the old ones keep serving, then switches the recorded backend in one SQLite transaction, then deletes the old
indexes; the commit sequence is unchanged, so the new indexes are in step at once. A crash before the switch leaves
the old backend in use; the half-built target, recorded as ``vector_index_pending``, is deleted by the next move.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reidkit.errors import ConfigError, StoreError
from reidkit.search.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.search.vectors import VECTOR_INDEXES, IndexLocation, VectorIndex, discard_vector_index

if TYPE_CHECKING:
    from reidkit.search.store import Store

BACKEND_KEY, URI_KEY, NAMESPACE_KEY, PENDING_KEY = "vector_index", "milvus_uri", "milvus_namespace", "vector_index_pending"
_MILVUS_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


@dataclass(frozen=True)
class MoveReport:
    source: str
    target: str
    crops: int
    tracks: int
    seconds: float


def check_choice(backend: str | None, milvus_uri: str | None) -> None:
    """Refuse, naming the option, an unknown backend or a ``--milvus-uri`` that is not a server address."""
    if backend is not None:
        VECTOR_INDEXES.get(backend)  # an unknown name lists the choices
    if milvus_uri is not None:
        if backend not in (None, "milvus"):
            raise ConfigError(f"--milvus-uri is for --index milvus, not --index {backend}")
        if not milvus_uri.startswith(_MILVUS_SCHEMES):
            raise ConfigError(
                f"--milvus-uri {milvus_uri!r} is not a Milvus server address; write e.g. http://HOST:19530 "
                "(leave it out for the embedded database inside the store folder)"
            )


def store_location(store: Store, backend: str | None, milvus_uri: str | None) -> IndexLocation:
    """The index location ``store`` records; a writable store holding no features yet records ``backend``
    (default faiss) first. Asking for another backend or server than the recorded one is a ``StoreError``."""
    check_choice(backend, milvus_uri)
    recorded = store.meta_value(BACKEND_KEY)
    if recorded is None and store.writable and store.model is None:
        chosen = backend or ("milvus" if milvus_uri else "faiss")
        location = _new_location(store, chosen, milvus_uri or "")
        with store.transaction():
            store.set_meta_values(_meta_of(location))
        return location
    location = _recorded(store)
    wanted = backend or ("milvus" if milvus_uri else None)
    if wanted is not None and wanted != location.backend or (milvus_uri is not None and milvus_uri != location.uri):
        asked = f"--index {wanted}" + (f" --milvus-uri {milvus_uri}" if milvus_uri else "")
        raise StoreError(
            f"store {store.root} keeps its vectors in {_describe(location)}, not as {asked}; leave the option out, "
            f"or move the store with `reidkit store reindex-backend --db {store.root} --to {wanted}`"
        )
    return location


def move_store(store: Store, target: str, milvus_uri: str | None = None) -> MoveReport:
    """Rebuild ``store``'s indexes in ``target`` from SQLite, switch to them, delete the old ones (module doc)."""
    check_choice(target, milvus_uri)
    if not store.writable:
        raise StoreError(f"moving store {store.root} to another vector index needs it opened for writing")
    source = store.location
    if target == source.backend and (milvus_uri or "") == source.uri:
        raise ConfigError(
            f"store {store.root} already keeps its vectors in {_describe(source)} (opening it for this move has "
            "checked them against SQLite and repaired them)"
        )
    started = time.perf_counter()
    _discard_pending(store)
    destination = _new_location(store, target, milvus_uri or "")
    with store.transaction():
        store.set_meta_values({PENDING_KEY: json.dumps(_meta_of(destination))})
    built: dict[str, VectorIndex] = {}
    model = store.model
    if model is not None:
        for name in (CROP_INDEX, TRACK_INDEX):
            built[name] = store.vectors.rebuild(name, model.feature_dim, destination)
            built[name].save(store.commit_seq)
    with store.transaction():
        store.set_meta_values({**_meta_of(destination), PENDING_KEY: ""})
    store.location = destination
    store.vectors.replace(built)
    for name in (CROP_INDEX, TRACK_INDEX):
        discard_vector_index(source, name)
    counts = {name: index.count for name, index in built.items()}
    return MoveReport(_describe(source), _describe(destination), counts.get(CROP_INDEX, 0),
                      counts.get(TRACK_INDEX, 0), time.perf_counter() - started)


def _new_location(store: Store, backend: str, uri: str) -> IndexLocation:
    namespace = f"reidkit_{uuid.uuid4().hex[:16]}" if backend == "milvus" else ""
    return IndexLocation(backend, store.root / "vectors", uri, namespace)


def _recorded(store: Store) -> IndexLocation:
    return IndexLocation(
        store.meta_value(BACKEND_KEY) or "faiss",
        store.root / "vectors",
        store.meta_value(URI_KEY) or "",
        store.meta_value(NAMESPACE_KEY) or "",
    )


def _meta_of(location: IndexLocation) -> dict[str, str]:
    return {BACKEND_KEY: location.backend, URI_KEY: location.uri, NAMESPACE_KEY: location.namespace}


def _describe(location: IndexLocation) -> str:
    if location.backend == "faiss":
        return "FAISS files (faiss)"
    return f"Milvus at {location.uri} (milvus)" if location.uri else "the embedded Milvus database (milvus)"


def _discard_pending(store: Store) -> None:
    """Delete what a move that crashed before its switch had built (best effort: its server may be gone)."""
    pending = store.meta_value(PENDING_KEY)
    if not pending:
        return
    recorded = json.loads(pending)
    location = IndexLocation(recorded[BACKEND_KEY], store.root / "vectors", recorded[URI_KEY], recorded[NAMESPACE_KEY])
    if location != store.location:
        for name in (CROP_INDEX, TRACK_INDEX):
            try:
                discard_vector_index(location, name)
            except StoreError:
                pass  # unreachable server: its leftovers are named in the meta no more, nothing else uses them
    with store.transaction():
        store.set_meta_values({PENDING_KEY: ""})
