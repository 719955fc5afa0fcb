"""Reading the audit log: list and export its records, and verify its hash chain.

Platform admins see every record. A project's admins see that project's records, so that they
can answer "who did what here" without being handed the whole platform's history.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from vteam.api.responses import AuditPage, AuditVerification, shaped
from vteam.auth import AuditRecord, Identity, Role
from vteam.auth.audit import Outcome
from vteam.edge.deps import PlatformAdmin, PlatformDep, SignedIn, hidden, role_in
from vteam.errors import Forbidden, InvalidInput
from vteam.resources import Project
from vteam.services.platform import Platform

router = APIRouter(prefix="/api/audit", tags=["audit"])

MAX_LIMIT = 1000
MAX_SEQ = 2**63 - 1
"""SQLite's largest integer: a larger `after` is refused with 422 rather than overflowing the query."""
EXPORT_PAGE = 500


async def record(
    request: Request,
    platform: Platform,
    caller: Identity,
    action: str,
    target: str,
    *,
    project: str | None = None,
    outcome: Outcome = "success",
    details: dict[str, Any] | None = None,
) -> None:
    """Record what a caller did, with the request's id, so one log line and one audit record can be matched."""
    await platform.audit.record(
        actor=caller.name,
        project=project,
        action=action,
        target=target,
        outcome=outcome,
        request_id=getattr(request.state, "request_id", None),
        details=details,
    )


@dataclass(frozen=True)
class AuditFilter:
    """What to list; `since` and `until` are normalised so they compare with the records' timestamps."""

    project: str | None = None
    actor: str | None = None
    action: str | None = None
    since: str | None = None
    until: str | None = None

    def query(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "actor": self.actor,
            "action": self.action,
            "since": self.since,
            "until": self.until,
        }


def _timestamp(value: str | None, name: str) -> str | None:
    """Records' `ts` are UTC ISO strings compared as text; a bound in any offset (or none: UTC) is made one too."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{name}: {value!r} is not an ISO 8601 time", errors=[{"loc": ["query", name], "msg": "not a time"}]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def filters(
    project: Annotated[str | None, Query(max_length=63, description="Only this project's records.")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="Only records by this actor.")] = None,
    action: Annotated[str | None, Query(max_length=100, description="An action or its prefix, e.g. `token.`")] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601 time, inclusive.")] = None,
    until: Annotated[str | None, Query(max_length=40, description="ISO 8601 time, exclusive.")] = None,
) -> AuditFilter:
    return AuditFilter(project, actor, action, _timestamp(since, "since"), _timestamp(until, "until"))


Filters = Annotated[AuditFilter, Depends(filters)]


async def check_reader(platform: Platform, caller: Identity, project: str | None) -> None:
    """Platform admins read everything; a project admin only with `project` naming their project.

    A caller with no role in the project hears 404, as everywhere, so that projects do not leak.
    """
    if caller.admin:
        return
    await _check_project_admin(platform, caller, project)


async def readable(platform: Platform, caller: Identity, where: AuditFilter, after: int) -> tuple[AuditFilter, int]:
    """Check the reader, and for a project admin bound the query to the project as it is now: a project made
    with a deleted project's name starts at its own `project.create` record (and never before its creation
    time), so its admins never read the old tenant's trail. Platform admins read every incarnation."""
    await check_reader(platform, caller, where.project)
    if caller.admin or where.project is None:
        return where, after
    project = await platform.store.get(Project, where.project)
    moment = project.metadata.creation_timestamp
    created = _timestamp(moment.isoformat(), "creationTimestamp") if moment else None
    if created is not None and (where.since is None or where.since < created):
        where = replace(where, since=created)
    creates = await platform.audit.list(project=where.project, action="project.create", limit=None)
    starts = [r.seq for r in creates if r.action == "project.create"]
    if starts:
        after = max(after, starts[-1] - 1)
    return where, after


async def _check_project_admin(platform: Platform, caller: Identity, project: str | None) -> None:
    if project is None:
        raise Forbidden("only platform admins may read the whole audit log; project admins pass project=<name>")
    role = await role_in(platform, caller, project)
    if role is None:
        raise hidden(project)
    if not role.allows(Role.ADMIN):
        raise Forbidden(f"your role in project {project!r} is {role.value}; reading its audit log needs admin")


@router.get("", **shaped(AuditPage))
async def list_records(
    platform: PlatformDep,
    caller: SignedIn,
    where: Filters,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Only records after this seq (the previous page's `next`).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """One page of records, oldest first; `next` is the `after` for the following page, or null at the end."""
    where, after = await readable(platform, caller, where, after)
    records = await platform.audit.list(**where.query(), after=after, limit=limit + 1)
    page = records[:limit]
    return {"items": [r.wire() for r in page], "next": page[-1].seq if len(records) > limit else None}


async def _lines(platform: Platform, where: AuditFilter, after: int) -> AsyncIterator[str]:
    """Page through the log, so an export of any size holds one page in memory at a time."""
    while True:
        records: list[AuditRecord] = await platform.audit.list(**where.query(), after=after, limit=EXPORT_PAGE)
        for record in records:
            yield json.dumps(record.wire(), separators=(",", ":"), ensure_ascii=False) + "\n"
        if len(records) < EXPORT_PAGE:
            return
        after = records[-1].seq


@router.get("/export", response_class=StreamingResponse)
async def export(
    platform: PlatformDep,
    caller: SignedIn,
    where: Filters,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Only records after this seq.")] = 0,
) -> StreamingResponse:
    """Every matching record as JSON Lines, oldest first, for archiving or other tools."""
    where, after = await readable(platform, caller, where, after)
    return StreamingResponse(
        _lines(platform, where, after),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="vteam-audit.jsonl"'},
    )


@router.get("/verify", **shaped(AuditVerification))
async def verify(platform: PlatformDep, _caller: PlatformAdmin) -> dict[str, Any]:
    """Walk the hash chain from the first record: ok, or the first record that was changed or is missing."""
    result = await platform.audit.verify()
    return {"ok": result.ok, "checked": result.checked, "seq": result.seq, "problem": result.problem}
