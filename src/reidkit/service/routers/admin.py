"""``GET /audit``: the audit log, newest first, for admins only (reading it is itself logged)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.schemas import AuditResponse
from reidkit.service.services import API, ERRORS, SQLITE_MAX_ID, admin, services

router = APIRouter(prefix=API, tags=["admin"], responses=ERRORS)


@router.get("/audit", response_model=AuditResponse, summary="The audit log, newest first (admin)")
def read_audit(
    request: Request,
    caller: Annotated[Caller, Depends(admin)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=SQLITE_MAX_ID, description="page back: entries older than this id")] = None,
) -> dict[str, Any]:
    state = services(request)
    audit.record(state.root, caller, "audit", f"limit={limit} before_id={before_id}")
    entries = audit.read(state.root, limit, before_id)
    more = len(entries) == limit and entries[-1].id > 1
    return {"entries": [asdict(entry) for entry in entries], "next_before_id": entries[-1].id if more else None}
