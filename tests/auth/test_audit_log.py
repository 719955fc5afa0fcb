"""The audit log on a real, migrated SQLite database: its chain verifies, and an attacker who gets past
the append-only triggers to change or remove a record, or who lacks the key, is caught by `verify`."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.support.tasks import no_leftover_tasks  # noqa: F401 - autouse fixture
from vteam.auth.audit import GENESIS, AuditLog
from vteam.db import Database, open_database

KEY = b"platform-key-audit" * 2


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "x.db", synchronous="NORMAL")
    yield database
    await database.close()


@pytest.fixture
async def log(db: Database) -> AuditLog:
    audit = AuditLog(db, KEY)
    await audit.record(actor="admin", action="user.create", target="user/alice", details={"admin": False})
    await audit.record(actor="alice", action="token.issue", target="token/t1", details={"kind": "api"})
    await audit.record(actor="alice", project="p1", action="session.create", target="session/s1")
    await audit.record(actor="bob", project="p2", action="secret.write", target="secret/GIT_TOKEN")
    await audit.record(actor="alice", project="p1", action="session.stop", target="session/s1", outcome="denied")
    return audit


@contextmanager
def raw(db: Database) -> Iterator[sqlite3.Connection]:
    """The database file opened directly, as someone with the file (but not the key) could."""
    with closing(sqlite3.connect(db.path)) as conn:
        yield conn
        conn.commit()


def untrigger(db: Database) -> None:
    with raw(db) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")


async def test_an_untouched_chain_verifies(log: AuditLog) -> None:
    result = await log.verify()
    assert (result.ok, result.checked, result.seq, result.problem) == (True, 5, None, None)
    records = await log.list()
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))


async def test_an_empty_log_verifies(db: Database) -> None:
    result = await AuditLog(db, KEY).verify()
    assert (result.ok, result.checked) == (True, 0)


async def test_the_database_refuses_update_and_delete(log: AuditLog, db: Database) -> None:
    with raw(db) as conn:
        with pytest.raises((sqlite3.IntegrityError, sqlite3.OperationalError), match="append-only"):
            conn.execute("UPDATE audit SET target = 'session/other' WHERE seq = 3")
        with pytest.raises((sqlite3.IntegrityError, sqlite3.OperationalError), match="append-only"):
            conn.execute("DELETE FROM audit WHERE seq = 3")
    assert (await log.verify()).ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("target", "session/other"), ("actor", "mallory"), ("outcome", "success"), ("details", '{"admin":true}')],
)
async def test_a_changed_record_is_named(log: AuditLog, db: Database, column: str, value: str) -> None:
    untrigger(db)
    seq = 1 if column == "details" else 5 if column == "outcome" else 3
    with raw(db) as conn:
        conn.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (value, seq))  # noqa: S608 - test columns
    result = await log.verify()
    assert (result.ok, result.seq) == (False, seq)
    assert result.problem is not None
    assert "was changed" in result.problem
    assert result.checked == seq - 1


async def test_a_deleted_middle_record_is_named_missing(log: AuditLog, db: Database) -> None:
    untrigger(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 3")
    result = await log.verify()
    assert (result.ok, result.seq) == (False, 4)
    assert result.problem == "records 3..3 are missing"


async def test_a_relinked_chain_without_the_key_fails(log: AuditLog, db: Database) -> None:
    """Deleting a record and recomputing every later hash with a guessed key does not verify."""
    untrigger(db)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq = 3")
    forger = AuditLog(db, b"not-the-platform-key")
    records = await forger.list()
    prev = GENESIS
    with raw(db) as conn:
        conn.execute("DELETE FROM audit")
    for number, record in enumerate(records, start=1):
        fields = {
            "seq": number,
            "ts": record.ts,
            "actor": record.actor,
            "project": record.project,
            "action": record.action,
            "target": record.target,
            "outcome": record.outcome,
            "request_id": record.request_id,
            "details": record.details,
        }
        digest = forger._hash(prev, fields)
        with raw(db) as conn:
            conn.execute(
                "INSERT INTO audit (seq, ts, actor, project, action, target, outcome, request_id, details, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    record.ts,
                    record.actor,
                    record.project,
                    record.action,
                    record.target,
                    record.outcome,
                    record.request_id,
                    None if record.details is None else json.dumps(record.details, sort_keys=True),
                    prev,
                    digest,
                ),
            )
        prev = digest
    assert (await forger.verify()).ok, "the forger's own key verifies its chain"
    result = await log.verify()
    assert (result.ok, result.seq) == (False, 1)
    assert result.problem is not None
    assert "was changed" in result.problem


async def test_filters(log: AuditLog) -> None:
    assert [r.seq for r in await log.list(project="p1")] == [3, 5]
    assert [r.seq for r in await log.list(actor="alice")] == [2, 3, 5]
    assert [r.seq for r in await log.list(action="session.")] == [3, 5]
    assert [r.seq for r in await log.list(action="session.create")] == [3]
    assert [r.seq for r in await log.list(action="session%")] == [], "a prefix is literal, not a LIKE pattern"
    assert [r.seq for r in await log.list(after=2, limit=2)] == [3, 4]
    assert [r.seq for r in await log.list(project="p1", actor="bob")] == []
    records = await log.list()
    assert [r.seq for r in await log.list(since=records[2].ts)] == [r.seq for r in records if r.ts >= records[2].ts]
    assert [r.seq for r in await log.list(until=records[0].ts)] == []
    assert await log.list(limit=None) == records


async def test_records_carry_what_was_recorded(log: AuditLog) -> None:
    created = await log.record(
        actor="carol", project="p3", action="secret.delete", target="secret/X", request_id="req-1"
    )
    (stored,) = await log.list(project="p3")
    assert stored == created
    wire = stored.wire()
    assert wire["requestId"] == "req-1"
    assert wire["prevHash"] == (await log.list(after=4, limit=1))[0].hash
    assert set(wire) == {
        "seq",
        "ts",
        "actor",
        "project",
        "action",
        "target",
        "outcome",
        "requestId",
        "details",
        "prevHash",
        "hash",
    }
