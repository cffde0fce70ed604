"""Who is asking, checked from the request's headers before one byte of its body is read.

FastAPI parses a form (spooling its file to the temporary folder) before it runs a route's dependencies, so a role
checked in a dependency came after a stranger's 300 MB upload had been written to disk. ``Gate`` sits in front of
the app instead: it finds the route a request is for and, when the route's ``services.require`` dependency names a
role, checks the bearer token, the token's rate limit and the role, answering 401, 429 or 403 without receiving the
body. The caller it found travels to the route's dependency in the ASGI scope (``CALLER``).

Failed authentications (no token, or an unknown, revoked or expired one) are written to the audit log with the path
and the client's address, never the secret, and counted per address: past ``failed_auth_per_minute`` in a minute the
address is answered 429 with ``Retry-After`` and its tokens are not even looked up, so guessing costs the server
next to nothing. Behind a reverse proxy every client has the proxy's address; limit per client there.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from reidkit.service import audit
from reidkit.service.access import Caller, Role
from reidkit.service.limits import ApiError, error_response
from reidkit.service.services import CALLER, Services

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Gate:
    """ASGI middleware: authenticate and authorise requests for routes that need a role (see the module docstring)."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], services: Services) -> None:
        self.app, self.routes, self.services = app, routes, services
        self._needs: dict[int, tuple[Role, bool] | None] = {}  # id(route) -> (role, optional) or None: public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        need = self._need(scope) if scope["type"] == "http" else None
        if need is not None:
            try:  # a thread: the token's row is read from SQLite, an older token's hash takes tens of ms
                caller = await run_in_threadpool(self._authenticate, scope, *need)
            except ApiError as refused:
                await error_response(refused.status, refused.code, refused.message, refused.headers)(
                    scope, receive, send)
                return
            scope[CALLER] = caller
        await self.app(scope, receive, send)

    def _need(self, scope: Scope) -> tuple[Role, bool] | None:
        """The role the matching route needs (and whether a request without a token may pass), as the router will
        pick the route: the first full match. None: a public route, or none matches (the app answers 404 / 405)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                if id(route) not in self._needs:
                    dependant = getattr(route, "dependant", None)
                    self._needs[id(route)] = None if dependant is None else _role_of(dependant)
                return self._needs[id(route)]
        return None

    def _authenticate(self, scope: Scope, role: Role, optional: bool) -> Caller | None:
        state = self.services
        secret = _bearer_secret(scope)
        if secret is None and optional:
            return None
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        state.failures.refuse_if_full(address)
        found = None if secret is None else state.tokens.verify(secret)
        if found is None:
            blocked = state.failures.add(address)
            reason = "no bearer token" if secret is None else "an unknown, revoked or expired token"
            audit.record_failure(state.root, f"{scope['method']} {scope['path']} from {address}: {reason}"
                                 + ("; further tries from this address refused for a minute" if blocked else ""))
            message = ("send Authorization: Bearer <token> (make one with `reidkit token create`)" if secret is None
                       else "the token is unknown, revoked or expired")
            raise ApiError(401, "unauthorized", message, _CHALLENGE)
        state.limiter.check(found.token_id)
        if found.role < role:
            audit.record(state.root, found, "denied", f"{scope['method']} {scope['path']}")
            raise ApiError(
                403, "forbidden", f"this needs the {role.name} role; token {found.name!r} is a {found.role.name}"
            )
        return found


def _role_of(dependant: Dependant) -> tuple[Role, bool] | None:
    for inner in _walk(dependant):
        role = getattr(inner.call, "role", None)
        if isinstance(role, Role):
            return role, bool(getattr(inner.call, "optional", False))
    return None


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for inner in dependant.dependencies:
        yield inner
        yield from _walk(inner)


def _bearer_secret(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None (no header, another scheme)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    value = next((v for k, v in headers if k == b"authorization"), None)
    if value is None:
        return None
    scheme, _, secret = value.decode("latin-1").partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None
