"""The web page: ``/`` and its static files, and the API reference at ``/api/v1/docs``, served by the API's own app
(no build step, no CDN: they work on a machine without internet, which a camera network's server often is).

The reference is a page of our own that reads ``/api/v1/openapi.json`` (``web/docs.js``), not FastAPI's Swagger UI,
which loads its scripts from a CDN: a page that fetches code from elsewhere can be made to run someone else's.

The page is plain HTML, two scripts and one style sheet from ``reidkit/service/web/``. Its Content-Security-Policy
allows scripts and styles from this server only (no inline script, no ``eval``), images from this server and the
``blob:`` URLs the script makes from fetched crops and frames, and requests to this server only: a camera or file
name that slipped into the page as markup still could not run or send anything anywhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

WEB = Path(__file__).with_name("web")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
# Only these files are served: a fixed list, so no request path ever reaches the file system.
_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "panels.js": "text/javascript; charset=utf-8",
    "attributes.js": "text/javascript; charset=utf-8",
    "live-people.js": "text/javascript; charset=utf-8",
    "zones.js": "text/javascript; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "live-cameras.js": "text/javascript; charset=utf-8",
    "alerts.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

router = APIRouter(include_in_schema=False)


def _file(name: str, media_type: str) -> FileResponse:
    return FileResponse(WEB / name, media_type=media_type, headers={"Content-Security-Policy": CSP})


@router.get("/")
def index() -> FileResponse:
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/api/v1/docs")
def docs() -> FileResponse:
    return _file("docs.html", "text/html; charset=utf-8")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in _FILES:
        raise HTTPException(404, f"no file {name!r}")
    return _file(name, _FILES[name])
