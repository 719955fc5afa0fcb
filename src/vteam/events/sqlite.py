"""EventLog on the embedded SQLite database."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vteam.db import Database
from vteam.db.schema import events
from vteam.events.envelope import Envelope, now_ts


class SqliteEventLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _heads(self, conn: AsyncConnection, uid: str) -> tuple[int, int]:
        row = (
            await conn.execute(
                select(func.max(events.c.seq), func.max(events.c.runner_seq)).where(events.c.session_uid == uid)
            )
        ).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def append_runner(self, session_uid: str, envelopes: list[Envelope]) -> list[Envelope]:
        stored: list[Envelope] = []
        async with self._db.begin() as conn:
            seq, runner_seq = await self._heads(conn, session_uid)
            rows = []
            for env in envelopes:
                if env.seq <= runner_seq:
                    continue
                runner_seq = env.seq
                seq += 1
                rows.append(
                    {
                        "session_uid": session_uid,
                        "seq": seq,
                        "runner_seq": env.seq,
                        "ts": env.ts,
                        "type": env.type,
                        "data": json.dumps(env.data, separators=(",", ":")),
                    }
                )
                stored.append(Envelope(seq=seq, ts=env.ts, type=env.type, data=env.data))
            if rows:
                await conn.execute(insert(events), rows)
        return stored

    async def append(self, session_uid: str, type: str, data: dict[str, Any]) -> Envelope:
        async with self._db.begin() as conn:
            seq, _ = await self._heads(conn, session_uid)
            env = Envelope(seq=seq + 1, ts=now_ts(), type=type, data=data)
            await conn.execute(
                insert(events).values(
                    session_uid=session_uid,
                    seq=env.seq,
                    runner_seq=None,
                    ts=env.ts,
                    type=env.type,
                    data=json.dumps(data, separators=(",", ":")),
                )
            )
        return env

    async def read(self, session_uid: str, *, after: int = 0, limit: int = 500) -> list[Envelope]:
        query = (
            select(events.c.seq, events.c.ts, events.c.type, events.c.data)
            .where(and_(events.c.session_uid == session_uid, events.c.seq > after))
            .order_by(events.c.seq)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Envelope(seq=s, ts=t, type=ty, data=json.loads(d)) for s, t, ty, d in rows]

    async def last_runner_seq(self, session_uid: str) -> int:
        async with self._db.read() as conn:
            return (await self._heads(conn, session_uid))[1]

    async def last_seq(self, session_uid: str) -> int:
        async with self._db.read() as conn:
            return (await self._heads(conn, session_uid))[0]

    async def stored_bytes(self, session_uid: str) -> int:
        query = select(func.coalesce(func.sum(func.length(events.c.data)), 0)).where(
            events.c.session_uid == session_uid
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def prune(self, keep: set[str]) -> int:
        async with self._db.read() as conn:
            held = {row[0] for row in await conn.execute(select(events.c.session_uid).distinct())}
        doomed = held - keep
        for uid in doomed:
            await self.delete(uid)
        return len(doomed)

    async def delete(self, session_uid: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(delete(events).where(events.c.session_uid == session_uid))
