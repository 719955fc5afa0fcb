"""The event logs side by side: SQLite (embedded mode) and S3 (cluster mode) on moto's S3 server on loopback.

A runner's events are appended one envelope at a time, as the backend stores them; each append returns only
once the event is stored. Reads are what a live reader asks (the newest page, from the S3 log's memory) and
what a late one asks (the whole log, from the objects). moto answers from memory on this machine, so the S3
figures are vTeam's own cost plus HTTP to a local server, not an S3 region's latency.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import Summary, summarize
from vteam.db import open_database
from vteam.events import Envelope, EventLog, now_ts
from vteam.events.s3 import S3EventLog
from vteam.events.sqlite import SqliteEventLog

EVENTS = 400
UID = "bench-0000-0000-0000-000000000000"


def _event(seq: int) -> Envelope:
    data = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": f"line {seq} " + "x" * 80}
    return Envelope(seq=seq, ts=now_ts(), type="TEXT_MESSAGE_CONTENT", data=data)


async def _measure(name: str, log: EventLog) -> tuple[list[Summary], dict[str, Any]]:
    appends: list[float] = []
    began = time.perf_counter()
    for seq in range(1, EVENTS + 1):
        start = time.perf_counter()
        await log.append_runner(UID, [_event(seq)])
        appends.append((time.perf_counter() - start) * 1000)
    rate = EVENTS / (time.perf_counter() - began)
    live: list[float] = []
    for after in range(EVENTS - 50, EVENTS):
        start = time.perf_counter()
        await log.read(UID, after=after, limit=500)
        live.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    everything = await log.read(UID, after=0, limit=EVENTS)
    whole = (time.perf_counter() - start) * 1000
    assert len(everything) == EVENTS
    rows = [
        summarize(f"{name} log: append one event", appends),
        summarize(f"{name} log: read the newest events", live),
    ]
    return rows, {f"{name}_appends_per_s": rate, f"{name}_read_all_{EVENTS}_ms": whole}


async def _sqlite(home: Path) -> tuple[list[Summary], dict[str, Any]]:
    db = await open_database(home / "events.sqlite", synchronous="FULL")
    try:
        return await _measure("sqlite", SqliteEventLog(db))
    finally:
        await db.close()


async def _s3() -> tuple[list[Summary], dict[str, Any]]:
    from tests.support.moto_s3 import MotoS3, create_bucket, s3_client

    server = MotoS3().start()
    try:
        bucket = create_bucket(server.endpoint)

        async def locate(uid: str) -> tuple[str, str]:
            return ("bench", "session")

        rows, figures = await _measure("s3", S3EventLog(s3_client(server.endpoint), bucket=bucket, locate=locate))
        cold = S3EventLog(s3_client(server.endpoint), bucket=bucket, locate=locate)
        start = time.perf_counter()
        assert len(await cold.read(UID, after=0, limit=EVENTS)) == EVENTS
        figures[f"s3_read_all_{EVENTS}_after_restart_ms"] = (time.perf_counter() - start) * 1000
        return rows, figures
    finally:
        server.stop()


def measure() -> tuple[list[Summary], dict[str, Any]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="vteam-bench-events-") as home:
        sqlite_rows, sqlite_figures = asyncio.run(_sqlite(Path(home)))
    s3_rows, s3_figures = asyncio.run(_s3())
    return [*sqlite_rows, *s3_rows], {**sqlite_figures, **s3_figures}
