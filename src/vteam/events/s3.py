"""EventLog on S3-compatible object storage (AWS S3, MinIO): the event log of cluster mode.

Appends to a session that arrive while its previous PUT is in flight are stored together, as one
segment object under `{prefix}sessions/{project}/{session}/{uid}/`, before any of them returns.
The uid level keeps a re-created session of the same name from seeing old events. Recent events
stay in memory after they are stored, so live readers cost no requests. Compaction runs beside
the appends, never in their way. One writer per session at a time is assumed (the backend holding
the runner's WebSocket); conditional writes guarantee that a second one can never overwrite a
stored segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

from vteam.errors import Conflict, InvalidInput, NotFound, Unavailable, VteamError
from vteam.events import segments
from vteam.events.envelope import Envelope, now_ts
from vteam.events.s3_bucket import Bucket, Gone, Taken
from vteam.events.segments import Row, Segment
from vteam.events.stream import is_final
from vteam.settings import Settings

log = logging.getLogger(__name__)

Locate = Callable[[str], Awaitable[tuple[str, str] | None]]
"""A session uid → (project, session name); None when the platform knows no such session."""

COMPACT_PARTS = 64
"""Parts a session may gather before they are merged into one segment."""
SEGMENT_BYTES = 8 * 1024 * 1024
"""Compaction stops growing a segment here, so one read never fetches much more than it needs."""
FETCH_AT_ONCE = 8
ATTEMPTS = 3


New = Callable[[int, int], list[Row]]
"""The rows an append adds after the given log and runner heads."""


@dataclass
class _Request:
    """One caller's append, waiting for the PUT that stores it with whatever else is waiting."""

    new: New
    answer: asyncio.Future[list[Row]]


@dataclass
class _Session:
    """What this process knows of one session; `loaded` is False until its heads were read from S3.

    `lock` is held by the one PUT (or recovery) under way; `tidying` by compaction, retention and
    deletion, which change stored segments, and is always taken before `lock`.
    """

    base: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tidying: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: list[_Request] = field(default_factory=list)
    tidier: asyncio.Task[None] | None = None
    full_due: bool = False
    loaded: bool = False
    head: int = 0
    runner: int = 0
    parts: int = 0
    hot: list[Row] = field(default_factory=list)

    @property
    def lo(self) -> int:
        """The lowest seq the hot buffer answers for: it holds every event from here to `head`."""
        return self.head + 1 - len(self.hot)

    def forget(self) -> None:
        """After a write whose outcome is unknown, the next use learns the truth from S3 again."""
        self.loaded = False
        self.hot = []


class S3EventLog:
    """`locate` answers are cached: a uid's project and name never change, and deletion may forget them."""

    def __init__(
        self,
        client: Any,
        *,
        bucket: str,
        locate: Locate,
        prefix: str = "",
        hot_events: int = 2000,
        retention_days: int | None = None,
        compact_parts: int = COMPACT_PARTS,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self._s3 = Bucket(client, bucket)
        self._locate = locate
        self._root = f"{prefix.rstrip('/')}/sessions/" if prefix.strip("/") else "sessions/"
        self._hot = hot_events
        self._retention = retention_days
        self._compact_parts = max(2, compact_parts)
        self._segment_bytes = segment_bytes
        self._places: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}
        self._tidiers: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, locate: Locate) -> S3EventLog:
        """Build the client from `VTEAM_S3_*`; without keys boto3 uses its own chain (env, pod identity)."""
        if not settings.s3_bucket:
            raise InvalidInput("the S3 event log needs a bucket: set VTEAM_S3_BUCKET")
        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        if (key_id is None) != (secret is None):
            raise InvalidInput("set both VTEAM_S3_ACCESS_KEY_ID and VTEAM_S3_SECRET_ACCESS_KEY, or neither")
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": 3},
            "connect_timeout": 5,
            "read_timeout": 30,
            "max_pool_connections": 32,
        }
        if settings.s3_endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(**options),
        )
        return cls(
            client,
            bucket=settings.s3_bucket,
            locate=locate,
            prefix=settings.s3_prefix,
            hot_events=settings.event_hot_events,
            retention_days=settings.event_retention_days,
        )

    async def check(self) -> None:
        """Fail early, with a readable reason, when the bucket cannot be reached (for readiness checks)."""
        try:
            await self._s3.check()
        except Gone:
            raise Unavailable(f"S3 at {self._s3.where} has no bucket {self._s3.name}") from None

    async def append_runner(self, session_uid: str, envelopes: list[Envelope]) -> list[Envelope]:
        def new(head: int, runner: int) -> list[Row]:
            rows: list[Row] = []
            for env in envelopes:
                if env.seq > runner:
                    runner, head = env.seq, head + 1
                    rows.append(Row(head, env.ts, env.type, env.data, runner))
            return rows

        return [row.envelope() for row in await self._append(session_uid, new)]

    async def append(self, session_uid: str, type: str, data: dict[str, Any]) -> Envelope:
        ts = now_ts()
        rows = await self._append(session_uid, lambda head, runner: [Row(head + 1, ts, type, data, runner)])
        return rows[0].envelope()

    async def read(self, session_uid: str, *, after: int = 0, limit: int = 500) -> list[Envelope]:
        st = await self._loaded(session_uid)
        after = max(after, 0)
        if st is None or limit <= 0 or after >= st.head:
            return []
        if after + 1 >= st.lo:
            start = after + 1 - st.lo
            return [row.envelope() for row in st.hot[start : start + limit]]
        return [row.envelope() for row in await self._read_stored(st, after, min(limit, st.head - after))]

    async def last_runner_seq(self, session_uid: str) -> int:
        st = await self._loaded(session_uid)
        return st.runner if st is not None else 0

    async def last_seq(self, session_uid: str) -> int:
        st = await self._loaded(session_uid)
        return st.head if st is not None else 0

    async def stored_bytes(self, session_uid: str) -> int:
        """The sizes of the session's live segments, from one listing."""
        st = await self._session(session_uid)
        if st is None:
            return 0
        live, _ = segments.live(await self._segments(st.base))
        return sum(seg.size for seg in live)

    async def delete(self, session_uid: str) -> None:
        base = await self._place(session_uid, scan=True)
        if base is not None:
            await self._erase(session_uid, base)

    async def prune(self, keep: set[str]) -> int:
        doomed = {uid: base for uid, base in (await self._scan()).items() if uid not in keep}
        for uid, base in doomed.items():
            await self._erase(uid, base)
        return len(doomed)

    async def compact(self, session_uid: str) -> int:
        """Merge a session's segments into as few as `segment_bytes` allows; how many objects went.

        Appends go on meanwhile; a compaction already under way for the session finishes first.
        """
        st = await self._loaded(session_uid)
        if st is None:
            return 0
        async with st.tidying:
            try:
                return await self._compact(st, full=True)
            except (Gone, Taken):
                raise Unavailable(f"the events under s3://{self._s3.name}/{st.base} changed while compacting") from None

    async def settle(self) -> None:
        """Wait for the compactions under way, so a shutdown or a test cuts none off midway."""
        while self._tidiers:
            await asyncio.gather(*self._tidiers, return_exceptions=True)

    async def expire(self, now: datetime | None = None) -> int:
        """Delete segments written more than `retention_days` ago; how many went.

        A method rather than a bucket lifecycle rule: a rule replaces the bucket's whole lifecycle
        configuration (other users of a shared bucket lose theirs), needs a broader permission, and
        expires objects a day or more late; here the platform calls this on its own schedule.
        """
        if self._retention is None:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self._retention)
        by_uid: dict[str, tuple[str, list[str], int]] = {}
        for item in await self._s3.objects(self._root):
            place = self._split(item["Key"])
            if place is None:
                continue
            uid, base = place
            _, old, total = by_uid.get(uid, (base, [], 0))
            if item["LastModified"] < cutoff:
                old.append(item["Key"])
            by_uid[uid] = (base, old, total + 1)
        removed = 0
        for uid, (base, old, total) in by_uid.items():
            if not old:
                continue
            st = self._sessions.get(uid) or _Session(base)
            async with st.tidying, st.lock:
                st.forget()
                await self._s3.delete(old)
                if len(old) == total:
                    self._sessions.pop(uid, None)
            removed += len(old)
        return removed

    async def _append(self, uid: str, new: New) -> list[Row]:
        """Wait for this append's PUT; the caller holding the lock stores everything waiting so far."""
        st = await self._session(uid)
        if st is None:
            raise NotFound(f"session {uid} does not exist, so its events cannot be stored")
        mine = _Request(new, asyncio.get_running_loop().create_future())
        st.waiting.append(mine)
        try:
            async with st.lock:
                if not mine.answer.done():
                    await self._write(st)
        finally:
            if not mine.answer.done():  # cancelled before any PUT took it: it is not stored
                with contextlib.suppress(ValueError):
                    st.waiting.remove(mine)
                mine.answer.cancel()
            elif not mine.answer.cancelled():
                mine.answer.exception()  # this caller sees the outcome; asyncio need not report it
        return mine.answer.result()

    async def _write(self, st: _Session) -> None:
        """Store every waiting append in one PUT and answer each caller; a failure fails them all."""
        batch, st.waiting = st.waiting, []
        try:
            shares = await self._store(st, [request.new for request in batch])
        except BaseException as exc:
            st.forget()
            error = exc if isinstance(exc, Exception) else Unavailable("the PUT of these events was interrupted")
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for request, rows in zip(batch, shares, strict=True):
            if not request.answer.done():  # a caller cancelled once its PUT began still has its events stored
                request.answer.set_result(rows)
        self._tidy(st, final=any(is_final(row.envelope()) for rows in shares for row in rows))

    async def _store(self, st: _Session, news: list[New]) -> list[list[Row]]:
        """Each append's rows, numbered in turn after the heads and stored as one part."""
        for _ in range(ATTEMPTS):
            if not st.loaded:
                await self._recover(st)
            head, runner, shares = st.head, st.runner, []
            for new in news:
                rows = new(head, runner)
                if rows:
                    head, runner = rows[-1].seq, rows[-1].runner
                shares.append(rows)
            rows = [row for share in shares for row in share]
            if not rows:
                return shares
            key = st.base + segments.part_name(rows[0].seq)
            try:
                await self._s3.put(key, rows)
            except Taken:
                log.warning("another writer stored %s first; reloading that session's events", key)
                st.forget()
                continue
            self._keep(st, rows)
            return shares
        raise Conflict(f"another writer keeps appending to the events of {st.base}")

    def _keep(self, st: _Session, rows: list[Row]) -> None:
        st.head, st.runner = rows[-1].seq, rows[-1].runner
        st.parts += 1
        if self._hot:
            st.hot.extend(rows)
            if len(st.hot) > self._hot:
                del st.hot[: len(st.hot) - self._hot]

    def _tidy(self, st: _Session, *, final: bool) -> None:
        """Compact once parts pile up or the session ends, in a task of its own: appends never wait for it."""
        st.full_due = st.full_due or final
        if not (st.full_due or st.parts >= self._compact_parts):
            return
        if st.tidier is None or st.tidier.done():
            st.tidier = asyncio.create_task(self._tidy_now(st), name=f"compact {st.base}")
            self._tidiers.add(st.tidier)
            st.tidier.add_done_callback(self._tidiers.discard)

    async def _tidy_now(self, st: _Session) -> None:
        """One compaction, and a full one after it when the session ended meanwhile; the appends are stored anyway."""
        async with st.tidying:
            while True:
                full, st.full_due = st.full_due, False
                try:
                    await self._compact(st, full=full)
                except (VteamError, Gone, Taken) as exc:
                    st.parts = 0
                    log.warning("could not compact the events under %s: %s", st.base, exc)
                if full:
                    st.hot = []
                if not st.full_due:
                    return

    async def _compact(self, st: _Session, *, full: bool) -> int:
        """Merge the segments up to the head when it began; each merged one is written before its parts go.

        A reader or a restart that lists both skips the parts a merged segment holds, so a crash between the
        write and the delete leaves nothing doubled, and a merged segment is written only when it holds
        every event of the parts it replaces.
        """
        if not st.loaded:
            async with st.lock:
                if not st.loaded:
                    await self._recover(st)
        head = st.head
        found, covered = segments.live(await self._segments(st.base))
        live = [seg for seg in found if seg.first <= head]
        removed = merged_parts = 0
        for group, end in self._groups(live, head, full=full):
            rows = await self._gather(st, group, end)
            first = group[0].first
            if len(rows) != end - first + 1 or rows[0].seq != first or rows[-1].seq != end:
                log.warning("not compacting %s: its segments from seq %d do not run to %d", st.base, first, end)
                continue
            key = st.base + segments.compacted_name(first, end)
            with contextlib.suppress(Taken):
                await self._s3.put(key, rows)
            await self._s3.delete([seg.key for seg in group])
            removed += len(group)
            merged_parts += sum(not seg.compacted for seg in group)
        await self._s3.delete([seg.key for seg in covered])
        st.parts = max(0, st.parts - merged_parts)
        return removed + len(covered)

    def _groups(self, live: list[Segment], head: int, *, full: bool) -> list[tuple[list[Segment], int]]:
        """Runs of adjacent segments, each within `segment_bytes`, with the last seq each run holds."""
        groups: list[tuple[list[Segment], int]] = []
        run: list[Segment] = []
        size = 0
        for index, seg in enumerate(live):
            skip = seg.compacted and not full
            if skip or size + seg.size > self._segment_bytes:
                if len(run) > 1:
                    groups.append((run, seg.first - 1))
                run, size = [], 0
            if not skip:
                run.append(seg)
                size += seg.size
            if index == len(live) - 1 and len(run) > 1:
                groups.append((run, head))
        return groups

    async def _gather(self, st: _Session, group: list[Segment], end: int) -> list[Row]:
        first = group[0].first
        if st.lo <= first and end <= st.head:
            return st.hot[first - st.lo : end - st.lo + 1]
        return await self._fetch(group)

    async def _read_stored(self, st: _Session, after: int, limit: int) -> list[Row]:
        for _ in range(ATTEMPTS):
            live, _ = segments.live(await self._segments(st.base))
            wanted = _overlapping(live, after + 1, after + limit)
            try:
                return await self._fetch(wanted, after=after, limit=limit)
            except Gone:
                continue
        raise Unavailable(f"the events under s3://{self._s3.name}/{st.base} kept moving while being read")

    async def _fetch(self, segs: list[Segment], *, after: int = 0, limit: int | None = None) -> list[Row]:
        """Rows of these segments after `after`, each seq once (a merged segment may repeat its parts)."""
        rows: dict[int, Row] = {}
        for start in range(0, len(segs), FETCH_AT_ONCE):
            results = await asyncio.gather(
                *(self._s3.rows(seg.key) for seg in segs[start : start + FETCH_AT_ONCE]), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                for row in result:
                    if row.seq > after:
                        rows.setdefault(row.seq, row)
            if limit is not None and len(rows) >= limit:
                break
        return [rows[seq] for seq in sorted(rows)][:limit]

    async def _session(self, uid: str) -> _Session | None:
        st = self._sessions.get(uid)
        if st is None:
            base = await self._place(uid)
            if base is None:
                return None
            st = self._sessions.setdefault(uid, _Session(base))
        return st

    async def _loaded(self, uid: str) -> _Session | None:
        st = await self._session(uid)
        if st is not None and not st.loaded:
            async with st.lock:
                if not st.loaded:
                    await self._recover(st)
        return st

    async def _recover(self, st: _Session) -> None:
        """Learn a session's heads from S3: one listing, and one HEAD of its newest segment."""
        for _ in range(ATTEMPTS):
            live, _ = segments.live(await self._segments(st.base))
            try:
                st.head, st.runner = await self._heads(live[-1]) if live else (0, 0)
            except Gone:
                continue
            st.parts = sum(not seg.compacted for seg in live)
            st.hot = []
            st.loaded = True
            return
        raise Unavailable(f"the events under s3://{self._s3.name}/{st.base} kept moving while being loaded")

    async def _heads(self, seg: Segment) -> tuple[int, int]:
        meta = await self._s3.metadata(seg.key)
        with contextlib.suppress(KeyError, ValueError):
            return int(meta[segments.LAST_SEQ]), int(meta[segments.RUNNER_SEQ])
        rows = await self._s3.rows(seg.key)
        if not rows:
            raise Unavailable(f"s3://{self._s3.name}/{seg.key} holds no events")
        return rows[-1].seq, rows[-1].runner

    async def _place(self, uid: str, *, scan: bool = False) -> str | None:
        """The key prefix of a session's events; a deleted session is found by listing, if asked."""
        base = self._places.get(uid)
        if base is not None:
            return base
        where = await self._locate(uid)
        if where is not None:
            project, name = where
            base = self._places[uid] = f"{self._root}{project}/{name}/{uid}/"
        elif scan:
            base = (await self._scan()).get(uid)
        return base

    async def _scan(self) -> dict[str, str]:
        """Every session uid that has objects, with its key prefix."""
        found: dict[str, str] = {}
        for item in await self._s3.objects(self._root):
            place = self._split(item["Key"])
            if place is not None:
                found[place[0]] = place[1]
        self._places.update(found)
        return found

    def _split(self, key: str) -> tuple[str, str] | None:
        parts = key[len(self._root) :].split("/")
        if len(parts) != 4 or not all(parts):
            return None
        project, name, uid, _ = parts
        return uid, f"{self._root}{project}/{name}/{uid}/"

    async def _erase(self, uid: str, base: str) -> None:
        st = self._sessions.get(uid) or _Session(base)
        async with st.tidying, st.lock:
            st.forget()
            await self._s3.delete([item["Key"] for item in await self._s3.objects(base)])
            self._sessions.pop(uid, None)
            self._places.pop(uid, None)

    async def _segments(self, base: str) -> list[Segment]:
        found: list[Segment] = []
        for item in await self._s3.objects(base):
            seg = segments.parse(item["Key"], item["Key"][len(base) :], int(item["Size"]))
            if seg is not None:
                found.append(seg)
        return found


def _overlapping(live: list[Segment], first: int, last: int) -> list[Segment]:
    """The segments that can hold seqs first..last: each runs up to where the next one starts."""
    out: list[Segment] = []
    for index, seg in enumerate(live):
        if seg.first > last:
            break
        if index + 1 < len(live) and live[index + 1].first <= first:
            continue
        out.append(seg)
    return out
