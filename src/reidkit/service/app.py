"""The FastAPI application: routes, JSON errors, request-size and security headers, and start-up.

Every error is ``{"error": {"code": ..., "message": ...}}`` with a 4xx status: ``ApiError`` carries its own, a
``ReidkitError`` from the search code (a bad box, an unknown camera, an unreadable query) is a 400, FastAPI's own
validation a 422, an unknown route a 404. A 500 is a bug; it is logged with its traceback and answered without one.
Before a request reaches a route, ``gate.Gate`` checks who is asking (token, rate limits, role) from its headers,
and then its body is capped before it is read (``Content-Length``, or counted as it streams in): neither a stranger
nor a client with a token can fill the disk with a multipart upload that the checks would only see afterwards.
A 405 lists in ``Allow`` every method the path takes, from all the routes that share it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reidkit.errors import ReidkitError
from reidkit.service import page
from reidkit.service.gate import Gate
from reidkit.service.limits import ApiError, error_response
from reidkit.service.live_worker import restart_live_cameras
from reidkit.service.routers import admin, alerts, live_people, media, meta, people, search, videos, watchlist, zones
from reidkit.service.routers import cameras as live_cameras
from reidkit.service.services import API, Services
from reidkit.service.settings import ServiceSettings

log = logging.getLogger("reidkit.service")
# Multipart framing and the form's text fields, on top of the file a route accepts.
_FORM_SLACK = 256 * 1024
_VIDEO_UPLOAD = f"{API}/videos"


def create_app(db: Path, settings: ServiceSettings | None = None) -> FastAPI:
    """The service for store folder ``db``; the store's ReID model is loaded before the first request."""
    state = Services.create(Path(db), settings or ServiceSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.jobs.recover()  # jobs whose worker died with the last server: interrupted, resumable
        restart_live_cameras(state.root, state.settings.checkpoint)  # their watcher, if it died with the machine
        held = state.reader.call(lambda store: None if store is None else store.model)
        if held is not None:
            state.embedder.load(held)
        yield
        state.reader.close()

    app = FastAPI(
        title="reidkit person search",
        version=_version(),
        description="Search stored video for a person. Every route but /health needs `Authorization: Bearer <token>`.",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # page.py serves its own, without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = state
    routers = (meta.router, search.router, media.router, people.router, admin.router, videos.router, page.router)
    routers += (watchlist.router, alerts.router, live_cameras.router, live_people.router, zones.router)
    for router in routers:
        app.include_router(router)
    # The routes as declared, in the order the app tries them (FastAPI's own list nests them in private wrappers).
    routes = [route for router in routers for route in router.routes]
    _add_error_handlers(app, state, routes)
    app.add_middleware(_BodyLimit, image_bytes=state.settings.max_image_bytes,
                       video_bytes=state.settings.max_video_bytes)
    app.add_middleware(Gate, routes=routes, services=state)  # outside the body limit: who asks, first
    app.add_middleware(_SecurityHeaders)
    return app


def _add_error_handlers(app: FastAPI, state: Services, routes: list[BaseRoute]) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, state.scrub(exc.message), exc.headers)

    async def reidkit_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, "bad_request", state.scrub_paths(str(exc)))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'body'}: {error['msg']}" for error in exc.errors()
        )
        return error_response(422, "invalid_request", problems)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names only the methods of the first route with this path
            headers = {**(headers or {}), "Allow": ", ".join(_methods(routes, request))}
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "an internal error; it has been logged")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ReidkitError, reidkit_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)


def _methods(routes: list[BaseRoute], request: Request) -> list[str]:
    """Every method some route takes at this request's path."""
    found: set[str] = set()
    for route in routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            found |= getattr(route, "methods", None) or set()
    return sorted(found)


class _TooLarge(Exception):
    pass


class _BodyLimit:
    """Refuse (413) a request body over the route's limit before the multipart parser spools it to disk."""

    def __init__(self, app: ASGIApp, image_bytes: int, video_bytes: int) -> None:
        self.app, self.image_bytes, self.video_bytes = app, image_bytes, video_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.video_bytes if scope["path"] == _VIDEO_UPLOAD else self.image_bytes) + _FORM_SLACK
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_too_large(send, limit)
            return
        received = 0
        refused = False  # the body went past the limit: whatever the app answers, the client gets a 413

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                refused = True
                raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if refused:
            await _send_too_large(send, limit)


async def _send_too_large(send: Send, limit: int) -> None:
    response = error_response(413, "too_large", f"the request body is over the limit of {limit / 1e6:.0f} MB")
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class _SecurityHeaders:
    """Surveillance data must not linger in shared caches or be re-interpreted by browsers."""

    HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _version() -> str:
    import reidkit

    return reidkit.__version__

