"""The audit log: append-only, hash-chained records of every security-relevant action.

Each record's hash is an HMAC (keyed by the platform key) over the previous record's hash and the
record's own fields, so changing or removing a record breaks the chain at that point, and nobody
without the key can forge a chain that verifies. The database refuses UPDATE and DELETE on the
table, and `verify` walks the chain from the first record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, insert, select

from vteam.db import Database
from vteam.db.schema import audit

GENESIS = "0" * 64
Outcome = Literal["success", "denied", "failure"]


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: str
    actor: str
    project: str | None
    action: str
    target: str
    outcome: str
    request_id: str | None
    details: dict[str, Any] | None
    prev_hash: str
    hash: str

    def wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["requestId"] = out.pop("request_id")
        out["prevHash"] = out.pop("prev_hash")
        return out


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    seq: int | None = None
    problem: str | None = None


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditLog:
    def __init__(self, db: Database, key: bytes) -> None:
        self._db = db
        self._key = hashlib.sha256(b"vteam-audit\0" + key).digest()

    def _hash(self, prev_hash: str, fields: dict[str, Any]) -> str:
        return hmac.new(self._key, prev_hash.encode() + b"\n" + _canonical(fields), hashlib.sha256).hexdigest()

    async def record(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        outcome: Outcome = "success",
        project: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        async with self._db.begin() as conn:
            last = (await conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1))).first()
            seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
            fields: dict[str, Any] = {
                "seq": seq,
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "actor": actor,
                "project": project,
                "action": action,
                "target": target,
                "outcome": outcome,
                "request_id": request_id,
                "details": details,
            }
            digest = self._hash(prev_hash, fields)
            row = {**fields, "details": _canonical(details).decode() if details else None}
            await conn.execute(insert(audit).values(**row, prev_hash=prev_hash, hash=digest))
        return AuditRecord(**fields, prev_hash=prev_hash, hash=digest)

    async def list(
        self,
        *,
        project: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: int = 0,
        limit: int | None = 100,
    ) -> list[AuditRecord]:
        query = select(audit).where(audit.c.seq > after)
        if project is not None:
            query = query.where(audit.c.project == project)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if action is not None:
            query = query.where(audit.c.action.startswith(action, autoescape=True))
        if since is not None:
            query = query.where(audit.c.ts >= since)
        if until is not None:
            query = query.where(audit.c.ts < until)
        query = query.order_by(audit.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def verify(self) -> Verification:
        """Walk the whole chain; the first record that was changed, or whose predecessor is gone."""
        checked = 0
        prev_hash, expected_seq = GENESIS, 1
        async with self._db.read() as conn:
            count = int((await conn.execute(select(func.count()).select_from(audit))).scalar_one())
            result = await conn.stream(select(audit).order_by(audit.c.seq))
            async for row in result:
                record = _record(row)
                if record.seq != expected_seq:
                    return Verification(
                        False, checked, record.seq, f"records {expected_seq}..{record.seq - 1} are missing"
                    )
                if record.prev_hash != prev_hash:
                    return Verification(False, checked, record.seq, "its link to the previous record is broken")
                fields = {k: v for k, v in asdict(record).items() if k not in ("prev_hash", "hash")}
                if not hmac.compare_digest(self._hash(prev_hash, fields), record.hash):
                    return Verification(False, checked, record.seq, "it was changed after it was written")
                prev_hash, expected_seq = record.hash, record.seq + 1
                checked += 1
        if checked != count:
            return Verification(False, checked, None, "the log changed while it was being verified")
        return Verification(True, checked)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        project=row.project,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        request_id=row.request_id,
        details=json.loads(row.details) if row.details else None,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
