"""``reidkit serve`` (the HTTP service) and ``reidkit token create|list|revoke`` (who may use it).

FastAPI, uvicorn and torch are imported inside the commands, so ``reidkit --help`` and the token commands stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.options import EmbedBackendOption
from reidkit.errors import ConfigError

DbOption = Annotated[Path, typer.Option("--db", help="store folder (its service.sqlite holds tokens and the audit log)")]
token_app = typer.Typer(help="Make, list and revoke the service's access tokens.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``token`` group to the ``reidkit`` app."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")


def serve(
    db: DbOption,
    host: Annotated[str, typer.Option("--host", help="address to listen on (loopback unless you mean otherwise)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one, printed at start)")] = 8000,
    rate_limit: Annotated[int, typer.Option("--rate-limit", help="requests per token per minute")] = 120,
    auth_failures: Annotated[
        int, typer.Option("--auth-failures", help="failed authentications per client address per minute")
    ] = 20,
    max_image_mb: Annotated[float, typer.Option("--max-image-mb", help="largest query photo, in MB")] = 20.0,
    max_video_mb: Annotated[float, typer.Option("--max-video-mb", help="largest video upload, in MB")] = 4096.0,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="the store's ReID model, if it moved since ingest")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="torch device for the ReID model")] = "cpu",
    embed_backend: EmbedBackendOption = "auto",
) -> None:
    """Serve person search over HTTP (API under /api/v1; OpenAPI at /api/v1/openapi.json)."""
    import socket

    import uvicorn
    from threadpoolctl import threadpool_limits

    from reidkit.inference.device import resolve_device
    from reidkit.inference.model_choice import resolve_backend
    from reidkit.service.app import create_app
    from reidkit.service.settings import ServiceSettings

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} must be from 0 to 65535")
    if rate_limit < 1 or auth_failures < 1 or max_image_mb <= 0 or max_video_mb <= 0:
        raise ConfigError("--rate-limit, --auth-failures, --max-image-mb and --max-video-mb must be positive")
    settings = ServiceSettings(
        max_image_bytes=int(max_image_mb * 1e6),
        max_video_bytes=int(max_video_mb * 1e6),
        requests_per_minute=rate_limit,
        failed_auth_per_minute=auth_failures,
        checkpoint=checkpoint,
        device=device,
        embed_backend=resolve_backend(embed_backend, str(resolve_device(device, "--device"))),  # checked before start
    )
    try:
        listener = socket.create_server((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from exc
    bound = listener.getsockname()[1]
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}, not loopback: put TLS in front of it", err=True)
    # One BLAS thread: the server's numpy products are one query against a few thousand crops, too small to share
    # out, and concurrent requests already keep the cores busy; woken BLAS threads only spun beside the model.
    threadpool_limits(limits={"openblas": 1})
    server = uvicorn.Server(uvicorn.Config(create_app(db, settings), log_level="info", access_log=False))
    typer.echo(f"reidkit service for {db} on http://{host}:{bound}/api/v1 (Ctrl-C stops it)", err=True)
    server.run(sockets=[listener])


@token_app.command("create")
def token_create(
    db: DbOption,
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin")],
    name: Annotated[str, typer.Option("--name", help="who or what uses it (shown in the audit log)")] = "token",
    expires: Annotated[
        str | None, typer.Option("--expires", help="refuse it after this long: days or hours, e.g. 90d or 12h")
    ] = None,
) -> None:
    """Make a token; its secret is printed once, alone on the last line, and stored only as a salted hash."""
    from reidkit.service.access import Role, create_token, parse_duration

    parsed_role, lifetime = Role.parse(role), None if expires is None else parse_duration(expires)
    info, secret = create_token(_existing_store(db), parsed_role, name, lifetime)
    until = "" if info.expires_at is None else f", expires {info.expires_at}"
    typer.echo(f"token {info.id} ({info.name!r}, {info.role.name}{until}) created; keep the secret below, it is not "
               "stored")
    typer.echo(secret)


@token_app.command("list")
def token_list(db: DbOption) -> None:
    """List the tokens (never their secrets)."""
    from reidkit.service.access import list_tokens

    typer.echo(f"{'id':>4}  {'role':<8}  {'created':<25}  {'expires':<25}  {'revoked':<25}  name")
    for token in list_tokens(_existing_store(db)):
        expires, revoked = token.expires_at or "never", token.revoked_at or "-"
        typer.echo(f"{token.id:>4}  {token.role.name:<8}  {token.created_at:<25}  {expires:<25}  {revoked:<25}  "
                   f"{token.name!r}")


@token_app.command("revoke")
def token_revoke(db: DbOption, token_id: Annotated[int, typer.Argument(help="the id from `token list`")]) -> None:
    """Revoke a token: the server refuses it from its next request."""
    from reidkit.service.access import revoke_token

    info = revoke_token(_existing_store(db), token_id)
    typer.echo(f"token {info.id} ({info.name!r}) revoked at {info.revoked_at}")


def _existing_store(db: Path) -> Path:
    """``db`` when it is a store or a served folder; a mistyped ``--db`` is refused before anything is created there
    (a token in a folder no server reads would only look like access that works)."""
    from reidkit.service.service_db import SERVICE_DB
    from reidkit.store.layout import DB_NAME

    if not ((db / DB_NAME).is_file() or (db / SERVICE_DB).is_file()):
        raise ConfigError(f"--db {db} holds no reidkit store ({DB_NAME} or {SERVICE_DB}); pass the folder that "
                          "`reidkit ingest` or `reidkit serve` uses")
    return db
