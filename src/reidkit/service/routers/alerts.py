"""``GET /alerts`` (the newest alerts, with links to their crop and track) and ``GET /alerts/stream`` (each new alert
as it is stored, as server-sent events): for viewers; both written to the audit log.

The watcher that raises alerts may run in another process (``reidkit watch``), so the stream follows the alerts
table of the store's ``live.sqlite``: every ``POLL_S`` it reads the rows above the last id sent (an indexed read of
nothing, mostly), and every ``KEEP_ALIVE_S`` without one it sends a comment line so that proxies and the browser
keep the connection open. Each event carries the alert's id as its SSE ``id``; a client that reconnects sends it
back (``Last-Event-ID``, or ``after``) and misses nothing. A stream ends after ``MAX_STREAM_S``; the client
reconnects (the rate limit then counts one request per reconnection, not one per alert).

Authentication: the stream takes the token in the ``Authorization`` header, as every other route does, and nowhere
else: the page reads it with ``fetch`` and a body reader (``web/alerts.js``), which can send the header, rather than
with ``EventSource``, which cannot; so no token ever appears in a URL (where server and proxy logs would keep it).
The gate checks the token before the stream starts; a token revoked meanwhile ends the stream at the next check
(every ``RECHECK_S``). The stream is left out of the OpenAPI spec: a response that never ends is not something a
spec-driven client (or the fuzz test) can call; docs/live.md describes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import closing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from reidkit.live.alerts import Alert, alert_json, alerts_db, last_alert_id, read_alerts
from reidkit.service import audit
from reidkit.service.access import Caller, token_caller
from reidkit.service.routers.search import links
from reidkit.service.services import API, ERRORS, SQLITE_MAX_ID, services, viewer

router = APIRouter(prefix=API, tags=["alerts"], responses=ERRORS)
POLL_S = 0.2
KEEP_ALIVE_S = 15.0
RECHECK_S = 30.0
MAX_STREAM_S = 3600.0


class PersonRef(BaseModel):
    id: int
    name: str


class AlertModel(BaseModel):
    id: int
    person: PersonRef
    camera: str
    track_id: int
    detection_id: int
    score: float
    threshold: float
    first_seen: str
    raised_at: str
    latency_s: float
    crop_url: str
    frame_url: str
    track_url: str


class AlertsResponse(BaseModel):
    alerts: list[AlertModel]
    next_before_id: int | None


@router.get("/alerts", response_model=AlertsResponse, summary="The newest alerts, newest first")
def get_alerts(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=SQLITE_MAX_ID, description="page back: alerts older than this")]
    = None,
) -> dict[str, Any]:
    state = services(request)
    with closing(alerts_db(state.root)) as connection:
        where, params = ("WHERE id < ?", (before_id, limit)) if before_id else ("", (limit,))
        rows = connection.execute(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", params).fetchall()
    found = [Alert(*row) for row in rows]
    audit.record(state.root, caller, "alerts", f"limit={limit} before_id={before_id}", len(found))
    more = len(found) == limit and found[-1].id > 1
    return {"alerts": [linked(alert) for alert in found], "next_before_id": found[-1].id if more else None}


@router.get("/alerts/stream", include_in_schema=False)
async def stream_alerts(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    after: Annotated[int | None, Query(ge=0, le=SQLITE_MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: ``event: alert`` with the alert's JSON (as ``GET /alerts`` lists it) for every alert
    stored after ``after`` / ``Last-Event-ID`` (default: from now on)."""
    state = services(request)
    start = after if after is not None else _event_id(last_event_id)
    if start is None:
        start = await run_in_threadpool(_last_id, state.root)
    await run_in_threadpool(audit.record, state.root, caller, "alerts.stream", f"after alert {start}")
    return StreamingResponse(_events(request, caller, start), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


def linked(alert: Alert) -> dict[str, Any]:
    """An alert as the API answers it: with the service's links to its crop, frame and track."""
    return {**alert_json(alert), **links(alert.detection_id, alert.track_id)}


async def _events(request: Request, caller: Caller, after: int) -> AsyncIterator[bytes]:
    state = services(request)
    started = checked = quiet_since = time.monotonic()
    yield b"retry: 2000\n: alerts of this store from here on\n\n"
    with closing(await run_in_threadpool(alerts_db, state.root)) as connection:
        while time.monotonic() - started < MAX_STREAM_S:
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - checked >= RECHECK_S:
                if await run_in_threadpool(_revoked, state, caller):
                    yield b"event: end\ndata: the token is no longer valid\n\n"
                    return
                checked = now
            found = await run_in_threadpool(read_alerts, connection, after, 100)
            for alert in found:
                after = alert.id
                yield f"id: {alert.id}\nevent: alert\ndata: {json.dumps(linked(alert))}\n\n".encode()
            if found:
                quiet_since = now
            elif now - quiet_since >= KEEP_ALIVE_S:
                yield b": keep-alive\n\n"
                quiet_since = now
            await asyncio.sleep(POLL_S)


def _last_id(root: Any) -> int:
    with closing(alerts_db(root)) as connection:
        return last_alert_id(connection)


def _event_id(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) < 19 else None


def _revoked(state: Any, caller: Caller) -> bool:
    """Whether the stream's token has been revoked or has expired since the stream began."""
    return token_caller(state.root, caller.token_id) is None
