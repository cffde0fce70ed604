"""What every request handler shares: the store reader, the model, tokens, the rate limiters; and the dependency
that hands a route the ``Caller`` that ``gate.Gate`` authenticated, naming the role the route needs.

The ReID model is loaded once (at start-up when the store already has one) and shared. Concurrent searches' query
crops are embedded together, one forward pass per batch on one worker thread (``batching.Batcher``): on a CPU server
each pass already uses every core, so passes side by side only make each slower, and a batch of N costs less than
N passes; the batch's searches then go to the store's thread together, in one call. The query detector (a whole
frame without a box) runs one frame at a time under its own lock: not every detector backend promises to be
thread-safe, and such queries are rare, so they never hold up the crops.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reidkit.search.retention import UPLOADS
from reidkit.service.access import Caller, Role, TokenVerifier
from reidkit.service.batching import Batcher
from reidkit.service.jobs import JobRunner
from reidkit.service.limits import RateLimiter
from reidkit.service.reader import StoreThread
from reidkit.service.schemas import ErrorBody
from reidkit.service.settings import ServiceSettings
from reidkit.store.rows import ModelInfo, normalise_rows

if TYPE_CHECKING:
    from reidkit.inference.model_choice import ModelChoice
    from reidkit.store.reader import StoreReader
    from reidkit.video import Detector

T = TypeVar("T")
API = "/api/v1"
CALLER = "reidkit.caller"  # the ASGI scope's key for the caller ``gate.Gate`` authenticated
# Row ids in a URL: SQLite's INTEGER is 64-bit, so a larger number is refused (422) before it reaches a query.
SQLITE_MAX_ID = 2**63 - 1
ItemId = Annotated[int, PathParam(ge=1, le=SQLITE_MAX_ID)]
# A POSIX path of at least two parts standing on its own (not inside a URL): group 1 is its last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")
# Every status a route may answer besides 200, documented in the spec (the fuzz test holds the API to it).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "a field is wrong (the message names it)"),
        (401, "no token, or an unknown, revoked or expired one"),
        (403, "the token's role may not do this"),
        (404, "no such item"),
        (409, "the store or a job is not in a state that allows this now (the message says why)"),
        (413, "an upload or image over the limits"),
        (415, "an upload that is not what it should be, judged by its content"),
        (422, "a field of the wrong type or out of range"),
        (429, "too many requests with this token, or failed authentications from this address; see Retry-After"),
    )
}


class QueryModels:
    """The store's ReID model, loaded once, and the query detector, built on first need.

    ``settings.embed_backend``: ``auto`` (OpenVINO on the CPU when installed, as ``reidkit ingest``; its features
    equal PyTorch's to 1e-4 and it embeds a crop about 3x faster), ``torch``, ``openvino`` or ``onnxruntime``.
    ``held`` is the store's model as last checked: a search that finds the store's model moved on (a reindex while
    the server runs) calls ``forget`` so that the next one checks and loads again.
    """

    def __init__(self, settings: ServiceSettings, reader: StoreThread) -> None:
        self.settings, self.reader = settings, reader
        self.batcher: Batcher[StoreReader | None] = Batcher(hand_off=reader.post)
        self.held: ModelInfo | None = None
        self._choice: ModelChoice | None = None
        self._rows: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None
        self._detector: Detector | None = None
        self._load_lock = threading.Lock()
        self._detect_lock = threading.Lock()

    def load(self, held: ModelInfo) -> ModelChoice:
        """The model whose features the store holds (as ``reidkit search`` picks it), checked against the store."""
        from reidkit.inference.model_choice import choose_model

        with self._load_lock:
            if self._choice is None or self._choice.extractor.model_id != held.model_id:
                choice = choose_model(self.settings.checkpoint, held, device=self.settings.device,
                                      backend=self.settings.embed_backend)
                extractor = choice.extractor
                self.reader.call(lambda store: _require(store, extractor.model_id, extractor.feature_dim,
                                                        choice.source))
                self._choice = choice
                # One function per model: the batcher puts crops for the same function in one pass.
                self._rows = lambda crops: normalise_rows(extractor(crops))
            self.held = held
            return self._choice

    def forget(self) -> None:
        self.held = None

    def embed_then(
        self, held: ModelInfo, crop: np.ndarray, then: Callable[[StoreReader | None, np.ndarray], T]
    ) -> T:
        """``then(store, feature)`` on the store's thread, ``feature`` being ``crop``'s unit-length feature computed
        in one batch with the other requests' crops waiting now (``batching.Batcher``)."""
        self.load(held)
        assert self._rows is not None
        return self.batcher.embed(self._rows, crop, then)  # type: ignore[no-any-return]

    def detector(self) -> Callable[[], Detector]:
        """A factory for ``search.query.query_crop``: the detector is only built when a frame without a box
        needs it, and its ``detect`` is serialised."""

        def build() -> Detector:
            from reidkit.video.detector_choice import choose_detector

            with self._detect_lock:
                if self._detector is None:
                    self._detector = _Serialised(choose_detector(None, self.settings.device), self._detect_lock)
                return self._detector

        return build


class _Serialised:
    def __init__(self, detector: Detector, lock: threading.Lock) -> None:
        self.inner, self.lock, self.name = detector, lock, detector.name

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.inner.detect(image_rgb)

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            return self.inner.detect_batch(images_rgb)


def _require(store: StoreReader | None, model_id: str, dim: int, source: str) -> None:
    if store is not None:
        store.check_model(model_id, dim, source)


@dataclass
class Services:
    root: Path
    settings: ServiceSettings
    reader: StoreThread
    tokens: TokenVerifier
    limiter: RateLimiter
    failures: RateLimiter
    embedder: QueryModels
    jobs: JobRunner

    @classmethod
    def create(cls, root: Path, settings: ServiceSettings) -> Services:
        reader = StoreThread(root)
        return cls(
            root=Path(root),
            settings=settings,
            reader=reader,
            tokens=TokenVerifier(root),
            limiter=RateLimiter(settings.requests_per_minute),
            failures=RateLimiter(settings.failed_auth_per_minute,
                                 what="failed authentications in a minute from this address"),
            embedder=QueryModels(settings, reader),
            jobs=JobRunner(root, settings.checkpoint),
        )

    def scrub(self, text: str) -> str:
        """``text`` without the server's folders: an uploaded file is named by its name alone, the store folder is
        "the store" (messages from ``reidkit.search`` and ingest jobs name them for the CLI's user)."""
        for root in sorted({str(self.root.resolve()), str(self.root.absolute()), str(self.root)}, key=len,
                           reverse=True):
            text = text.replace(str(Path(root) / UPLOADS) + os.sep, "").replace(root, "the store")
        return text

    def scrub_paths(self, text: str) -> str:
        """``scrub``, and any other absolute file path cut to its file name: for messages worded for a log or the
        command line (``reidkit.search``, ingest jobs), which name files wherever they are on the server."""
        return _ABSOLUTE_PATH.sub(lambda found: found[1], self.scrub(text))


_bearer = HTTPBearer(auto_error=False, description="a token made with `reidkit token create`")


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def require(role: Role, optional: bool = False) -> Callable[..., Caller | None]:
    """A dependency: the request's caller of at least ``role``. ``gate.Gate`` reads ``role`` (and ``optional``: a
    request without a token passes, as None) from it and checks the token before the body is read; by the time
    FastAPI runs this, the request has passed the gate and only its caller is left to hand over."""

    def caller(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Caller | None:
        # ``credentials`` only puts the bearer scheme in the OpenAPI spec; the gate has read the header.
        return request.scope.get(CALLER)

    def maybe_caller(request: Request) -> Caller | None:  # no scheme in the spec: the route is public
        return request.scope.get(CALLER)

    chosen = maybe_caller if optional else caller
    chosen.role = role  # type: ignore[attr-defined]
    chosen.optional = optional  # type: ignore[attr-defined]
    return chosen


viewer = require(Role.viewer)
operator = require(Role.operator)
admin = require(Role.admin)
anyone = require(Role.viewer, optional=True)
