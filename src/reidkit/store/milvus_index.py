"""Milvus behind ``VectorIndex``: one code path for an embedded milvus-lite database and for a Milvus server.

A store's index ``name`` (crops, tracks) is the collection ``<namespace>_<name>``: ``id`` (INT64 primary key, the
SQLite row id), ``vector`` (FLOAT_VECTOR, inner product), and the ``VectorFields`` a search filters on, ``camera``
(VARCHAR) and ``first_epoch`` / ``last_epoch`` (nullable DOUBLE: NULL for a video without ``--start-time``, which
fails every time filter, as in ``SearchFilters.admits``). The store commit the collection reflects and the layout
it was built as are collection properties (``reidkit.commit_seq``, ``reidkit.kind``); ``save`` flushes, then
records the commit, so the recorded commit never claims rows the database has not taken. Rows written after it
(then a crash) carry a later SQLite ``seq`` and are replaced by the store's repair on open, as for FAISS files.

Unlike a FAISS file, ``add`` and ``remove`` change the database at once (``writes_through``): a read-only store
only searches it, and only a writer (ingest, ``reidkit store reindex-backend``) repairs or rebuilds it.

The ``plan`` maps to ``FLAT`` (exact, as FAISS's small layout) or ``HNSW`` past ``FLAT_MAX_ELEMENTS``: Milvus's
HNSW, unlike FAISS's, deletes vectors, and the search re-scores its shortlist exactly from SQLite either way.
milvus-lite serves one process at a time: while an ingest holds a store's embedded database, a search from
another process is refused in one line (a server URI has no such limit; docs/search.md, When to switch to Milvus).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reidkit.errors import ConfigError, StoreError
from reidkit.store.index_plan import plan_index
from reidkit.store.vector_index import IndexLocation

if TYPE_CHECKING:
    from reidkit.store.filters import SearchFilters, VectorFields
    from reidkit.store.index_plan import IndexPlan

EMBEDDED_NAME = "milvus.db"  # inside the store's vectors/ folder (milvus-lite makes it a folder)
MAX_TOP_K = 16_384  # Milvus's limit on one search's k
# Push-down compares epochs computed in Milvus with the exact wall times ``admits`` checks afterwards; the margin
# keeps a sighting exactly on an --after/--before boundary from being lost to float rounding in between.
_EPOCH_MARGIN_S = 1e-3
_HNSW = {"M": 16, "efConstruction": 128}
_HNSW_MIN_EF = 128
_INSERT_BYTES = 16 << 20  # per insert call: well under Milvus's 64 MB request limit
_PAGE = 16_384
# Clients of this process per embedded database: milvus-lite keeps a database's server (and its file lock) until
# the process exits, so the last client to close stops it, and another process can open the store meanwhile.
_EMBEDDED_CLIENTS: dict[str, int] = {}
_EMBEDDED_LOCK = threading.Lock()
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")


def embedded_uri(location: IndexLocation) -> str:
    return os.path.abspath(location.folder / EMBEDDED_NAME)


def address(location: IndexLocation) -> str:
    """The server URI, or the embedded database's path."""
    return location.option("uri") or embedded_uri(location)


def filter_expression(filters: SearchFilters | None) -> str:
    """The Milvus boolean expression for ``filters`` ("" for none): a vector passes when its camera is one of
    them and its first..last seconds overlap [after, before]."""
    if filters is None or not filters.active:
        return ""
    terms = []
    if filters.cameras:
        terms.append(f"camera in {json.dumps(list(filters.cameras), ensure_ascii=False)}")
    if filters.after_epoch is not None:
        terms.append(f"last_epoch >= {filters.after_epoch - _EPOCH_MARGIN_S!r}")
    if filters.before_epoch is not None:
        terms.append(f"first_epoch <= {filters.before_epoch + _EPOCH_MARGIN_S!r}")
    return " and ".join(terms)


@contextmanager
def _milvus_errors(what: str, where: str) -> Iterator[None]:
    """pymilvus's exceptions as one-line ``StoreError``s naming the database."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        message = str(getattr(exc, "message", "") or exc).strip().splitlines()[0]
        if "Open local milvus failed" in message:
            raise StoreError(
                f"cannot open the embedded Milvus database {where}: another process has it open (milvus-lite "
                "serves one process at a time); wait for it to finish, or put the store on a Milvus server "
                "(`reidkit store reindex-backend --to milvus --milvus-uri http://HOST:19530`)"
            ) from None
        raise StoreError(f"Milvus at {where} failed to {what}: {message}") from None


def connect(location: IndexLocation) -> Any:
    """A ``MilvusClient`` for ``location`` (clients of one process share an embedded database's server)."""
    # gRPC's C core writes to stderr itself, e.g. "too_many_pings" GOAWAYs when pymilvus's keepalive outpaces the
    # in-process milvus-lite server during a long ingest (harmless: the client reconnects); it reads this setting
    # when gRPC is first imported, and a failure that matters reaches the user as a StoreError anyway.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreError(
            "this store keeps its vectors in Milvus, which needs pymilvus and milvus-lite: pip install 'reidkit[milvus]'"
        ) from None

    # pymilvus logs every failed call with a traceback before raising, milvus-lite a refused start, and the gRPC
    # server that milvus-lite runs in this process every call it does not implement (the query iterator asks for
    # a timestamp first, then does without); the user gets each failure once, as one line.
    for noisy in ("pymilvus", "milvus_lite", "grpc._server"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    where = address(location)
    if not location.option("uri"):
        try:
            location.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {location.folder} for the embedded Milvus database: {exc}") from exc
    with _milvus_errors("connect", where):
        try:
            client = MilvusClient(uri=where)
        except Exception as exc:  # a server that is down raises plain connection errors, not MilvusException
            if type(exc).__module__.startswith("pymilvus"):
                raise
            raise StoreError(f"cannot reach Milvus at {where}: {exc}") from None
    if not location.option("uri"):
        with _EMBEDDED_LOCK:
            _EMBEDDED_CLIENTS[where] = _EMBEDDED_CLIENTS.get(where, 0) + 1
    return client


def disconnect(client: Any, location: IndexLocation) -> None:
    """Close ``client``; the last one of an embedded database stops its milvus-lite server (see ``connect``)."""
    client.close()
    if location.option("uri"):
        return
    where = embedded_uri(location)
    with _EMBEDDED_LOCK:
        left = _EMBEDDED_CLIENTS.get(where, 1) - 1
        _EMBEDDED_CLIENTS[where] = left
    if left <= 0:
        _EMBEDDED_CLIENTS.pop(where, None)
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(where)


class MilvusIndex:
    """One Milvus collection holding one of a store's indexes. The class is the registered ``IndexBackend``; its
    options are ``uri`` (a server; "" = the embedded database in the store folder, so the folder can be moved)
    and ``namespace`` (the prefix of the store's collections, fresh for every ``new_location``, so one server can
    hold many stores and a move never writes over the collections still serving)."""

    writes_through = True
    option_names = ("uri",)

    def __init__(
        self, client: Any, location: IndexLocation, collection: str, dim: int, kind: str, commit_seq: int
    ) -> None:
        self._client, self._location, self.collection = client, location, collection
        self._where = address(location)
        self._dim, self._kind, self._commit_seq = dim, kind, commit_seq

    # --- the IndexBackend interface ----------------------------------------------------------------------------
    @staticmethod
    def check_options(options: Mapping[str, str]) -> None:
        uri = options.get("uri")
        if uri is not None and not uri.startswith(_SERVER_SCHEMES):
            raise ConfigError(
                f"--milvus-uri {uri!r} is not a Milvus server address; write e.g. http://HOST:19530 "
                "(leave it out for the embedded database inside the store folder)"
            )

    @staticmethod
    def new_location(folder: Path, options: Mapping[str, str]) -> IndexLocation:
        uri = {"uri": options["uri"]} if options.get("uri") else {}
        return IndexLocation("milvus", folder, {**uri, "namespace": f"reidkit_{uuid.uuid4().hex[:16]}"})

    @staticmethod
    def describe(location: IndexLocation) -> str:
        uri = location.option("uri")
        return f"Milvus at {uri} (milvus)" if uri else "the embedded Milvus database (milvus)"

    @classmethod
    def create(
        cls, location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
    ) -> MilvusIndex:
        """A new empty collection (replacing any of the same name); ``training`` is not needed: Milvus builds
        its index per segment as rows arrive."""
        from pymilvus import DataType

        client, where, collection = connect(location), address(location), _name(location, name)
        with _closing_on_error(client, location), _milvus_errors(f"create collection {collection}", where):
            if client.has_collection(collection):
                client.drop_collection(collection)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("camera", DataType.VARCHAR, max_length=4096)
            schema.add_field("first_epoch", DataType.DOUBLE, nullable=True)
            schema.add_field("last_epoch", DataType.DOUBLE, nullable=True)
            params = client.prepare_index_params()
            if plan.kind == "flat":
                params.add_index("vector", index_type="FLAT", metric_type="IP")
            else:
                params.add_index("vector", index_type="HNSW", metric_type="IP", params=_HNSW)
            client.create_collection(collection, schema=schema, index_params=params, consistency_level="Strong")
            index = cls(client, location, collection, dim, plan.kind, -1)
            index._record(-1)
            return index

    @classmethod
    def load(cls, location: IndexLocation, name: str, dim: int) -> MilvusIndex | None:
        """The store's collection ``name``, or None when there is none of this dimension (the store rebuilds)."""
        client, where, collection = connect(location), address(location), _name(location, name)
        with _closing_on_error(client, location), _milvus_errors(f"open collection {collection}", where):
            properties: dict[str, str] = {}
            if client.has_collection(collection):
                described = client.describe_collection(collection)
                vector = [f for f in described["fields"] if f["name"] == "vector"]
                if vector and int(vector[0]["params"]["dim"]) == dim:
                    properties = described.get("properties", {})
            if "reidkit.commit_seq" not in properties:
                disconnect(client, location)
                return None
            client.load_collection(collection)
        kind, seq = properties.get("reidkit.kind", "flat"), int(properties["reidkit.commit_seq"])
        return cls(client, location, collection, dim, kind, seq)

    @staticmethod
    def discard(location: IndexLocation, name: str) -> None:
        """Drop the collection ``name`` (a store moved to another backend, or the leftovers of a failed move)."""
        client, collection = connect(location), _name(location, name)
        try:
            with _milvus_errors(f"drop collection {collection}", address(location)):
                if client.has_collection(collection):
                    client.drop_collection(collection)
        finally:
            disconnect(client, location)

    # --- the VectorIndex interface ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def count(self) -> int:
        with self._errors("count rows"):
            rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def commit_seq(self) -> int:
        return self._commit_seq

    @property
    def applies_filters(self) -> bool:
        return True

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: VectorFields | None = None) -> None:
        if len(ids) == 0:
            return
        if fields is None or len(fields) != len(ids):
            raise ValueError("a Milvus index needs the camera and time of every vector it adds")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        step = max(1, _INSERT_BYTES // (4 * self.dim))
        with self._errors("add vectors"):
            for start in range(0, len(ids), step):
                part = slice(start, start + step)
                rows = [
                    {"id": int(i), "vector": v, "camera": str(c), "first_epoch": _number(f), "last_epoch": _number(t)}
                    for i, v, c, f, t in zip(ids[part], vectors[part], fields.cameras[part],
                                             fields.first_epoch[part], fields.last_epoch[part])
                ]
                self._client.insert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        before = self.count
        with self._errors("remove vectors"):
            for start in range(0, len(ids), _PAGE):
                self._client.delete(self.collection, ids=[int(i) for i in ids[start : start + _PAGE]])
        return before - self.count

    def search(
        self, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``MAX_TOP_K`` neighbours passing ``filters``; the rest of ``k`` is padded with id -1."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        scores = np.zeros((len(vectors), max(k, 0)), dtype=np.float32)
        ids = np.full((len(vectors), max(k, 0)), -1, dtype=np.int64)
        limit = min(k, MAX_TOP_K)
        if limit <= 0 or len(vectors) == 0:
            return scores, ids
        params: dict[str, Any] = {"metric_type": "IP"}
        if self._kind != "flat":
            params["params"] = {"ef": max(limit, _HNSW_MIN_EF)}
        with self._errors("search"):
            found = self._client.search(
                self.collection, data=list(vectors), limit=limit, filter=filter_expression(filters),
                output_fields=["id"], search_params=params,
            )
        for row, hits in enumerate(found):
            for column, hit in enumerate(hits):
                ids[row, column], scores[row, column] = int(hit["id"]), float(hit["distance"])
        return scores, ids

    def ids(self) -> np.ndarray:
        with self._errors("list ids"):
            pages = self._client.query_iterator(self.collection, batch_size=_PAGE, filter="", output_fields=["id"])
            found: list[int] = []
            try:
                while page := pages.next():
                    found.extend(int(row["id"]) for row in page)
            finally:
                pages.close()
        return np.array(sorted(found), dtype=np.int64)

    def save(self, commit_seq: int) -> None:
        with self._errors("save"):
            self._client.flush(self.collection)
        self._record(commit_seq)

    def outgrown(self, count: int) -> bool:
        """Only the exact / approximate switch: HNSW needs no re-planning as it grows (no lists to re-train)."""
        return plan_index(count, self.dim).kind != self._kind

    def close(self) -> None:
        disconnect(self._client, self._location)

    def _record(self, commit_seq: int) -> None:
        with self._errors("record its commit"):
            self._client.alter_collection_properties(
                self.collection, properties={"reidkit.commit_seq": str(commit_seq), "reidkit.kind": self._kind}
            )
        self._commit_seq = commit_seq

    def _errors(self, what: str) -> Any:
        return _milvus_errors(f"{what} in collection {self.collection}", self._where)


@contextmanager
def _closing_on_error(client: Any, location: IndexLocation) -> Iterator[None]:
    try:
        yield
    except BaseException:
        disconnect(client, location)
        raise


def _name(location: IndexLocation, name: str) -> str:
    namespace = location.option("namespace")
    return f"{namespace}_{name}" if namespace else name


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
