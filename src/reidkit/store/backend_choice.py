"""Which vector index backend a store uses and where, chosen once when the store is made and recorded in it.

The choice lives in the store's SQLite ``meta``: ``vector_index`` (a ``VECTOR_INDEXES`` name) and each option of
its ``IndexLocation`` as ``<backend>_<option>`` (Milvus: ``milvus_uri``, "" = the embedded database in the store
folder, and ``milvus_namespace``). A store made before the choice existed uses ``DEFAULT_BACKEND``. Later opens use
what the store records; asking for another backend or other options is refused in one line that says how to move
the store (``backend_move``). Nothing here names a backend: each brings its option checks, its new locations and
its description (``vector_index.IndexBackend``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reidkit.errors import ConfigError, StoreError
from reidkit.store.layout import vectors_folder
from reidkit.store.vector_index import DEFAULT_BACKEND, IndexLocation, describe_location, index_backend

if TYPE_CHECKING:
    from reidkit.store.reader import StoreReader
    from reidkit.store.writer import Store

BACKEND_KEY, PENDING_KEY = "vector_index", "vector_index_pending"


def check_choice(backend: str | None, options: Mapping[str, str]) -> None:
    """Refuse an unknown backend, an option it does not take, or one its backend finds wrong (``ConfigError``
    naming the option as the command line spells it, ``--<backend>-<option>``)."""
    if backend is None:
        if options:
            raise ConfigError(f"vector index options ({', '.join(sorted(options))}) need the --index they are for")
        return
    chosen = index_backend(backend)  # an unknown name lists the choices
    unknown = sorted(set(options) - set(chosen.option_names))
    if unknown:
        takes = ", ".join(f"--{backend}-{name}" for name in chosen.option_names) or "none"
        raise ConfigError(
            f"the {backend} vector index takes no {', '.join(f'--{backend}-{name}' for name in unknown)} "
            f"(its options: {takes})"
        )
    chosen.check_options(options)


def recorded_location(store: StoreReader) -> IndexLocation:
    """Where ``store`` records that its vector indexes live."""
    backend = store.meta_value(BACKEND_KEY) or DEFAULT_BACKEND
    return IndexLocation(backend, vectors_folder(store.root), _options_in(store.meta_values(f"{backend}_"), backend))


def store_location(store: Store, backend: str | None, options: Mapping[str, str]) -> IndexLocation:
    """The index location ``store`` records; a writable store holding no features yet records ``backend``
    (default ``DEFAULT_BACKEND``) first. Asking for another backend or option than recorded is a ``StoreError``."""
    check_choice(backend, options)
    if store.meta_value(BACKEND_KEY) is None and store.writable and store.model is None:
        chosen = backend or DEFAULT_BACKEND
        location = index_backend(chosen).new_location(vectors_folder(store.root), options)
        with store.transaction():
            record_location(store, location)
        return location
    location = recorded_location(store)
    differs = any(location.option(key) != value for key, value in options.items())
    if backend is not None and (backend != location.backend or differs):
        asked = f"--index {backend}" + "".join(f" --{backend}-{key} {value}" for key, value in options.items())
        raise StoreError(
            f"store {store.root} keeps its vectors in {describe_location(location)}, not as {asked}; leave the "
            f"option out, or move the store with `reidkit store reindex-backend --db {store.root} --to {backend}`"
        )
    return location


def record_location(store: Store, location: IndexLocation) -> None:
    """Inside a transaction: record ``location`` as the store's, blanking options a former location left behind."""
    stale = {key: "" for key in store.meta_values(f"{location.backend}_")}
    previous = store.meta_value(BACKEND_KEY)
    if previous is not None and previous != location.backend:
        stale.update({key: "" for key in store.meta_values(f"{previous}_")})
    store.set_meta_values({**stale, **meta_of(location)})


def meta_of(location: IndexLocation) -> dict[str, str]:
    """The ``meta`` keys and values that record ``location`` (its folder is always the store's own)."""
    return {BACKEND_KEY: location.backend, **{f"{location.backend}_{key}": v for key, v in location.options.items()}}


def location_from_meta(store: StoreReader, recorded: str) -> IndexLocation:
    """The location a JSON text of ``meta_of`` names (a move's pending target)."""
    values: dict[str, str] = json.loads(recorded)
    backend = values[BACKEND_KEY]
    return IndexLocation(backend, vectors_folder(store.root), _options_in(values, backend))


def _options_in(values: Mapping[str, str], backend: str) -> dict[str, str]:
    """The options of ``backend`` among ``meta``-style ``values`` (empty values: options left at their default)."""
    prefix = f"{backend}_"
    return {key.removeprefix(prefix): value for key, value in values.items() if key.startswith(prefix) and value}
