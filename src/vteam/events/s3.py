"""EventLog on S3-compatible object storage (AWS S3, MinIO): the event log of cluster mode.

Every append is one segment object under `{prefix}sessions/{project}/{session}/{uid}/`, stored
before the call returns. The uid level keeps a re-created session of the same name from seeing
old events. Recent events stay in memory after they are stored, so live readers cost no requests.
One writer per session at a time is assumed (the backend holding the runner's WebSocket);
conditional writes guarantee that a second one can never overwrite a stored segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vteam.errors import Conflict, InvalidInput, NotFound, Unavailable, VteamError
from vteam.events import segments
from vteam.events.envelope import Envelope, now_ts
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
DELETE_BATCH = 1000
ATTEMPTS = 3
CONTENT_TYPE = "application/x-ndjson"


class _Taken(Exception):
    """A conditional write found an object already under that name."""


class _Gone(Exception):
    """An object listed a moment ago has gone (compaction or retention moved or removed it)."""


@dataclass
class _Session:
    """What this process knows of one session; `loaded` is False until its heads were read from S3."""

    base: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
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
        self._client = client
        self._bucket = bucket
        self._locate = locate
        self._root = f"{prefix.rstrip('/')}/sessions/" if prefix.strip("/") else "sessions/"
        self._hot = hot_events
        self._retention = retention_days
        self._compact_parts = max(2, compact_parts)
        self._segment_bytes = segment_bytes
        self._where = _host(client)
        self._places: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}

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
            await self._call("head_bucket", "")
        except _Gone:
            raise Unavailable(f"S3 at {self._where} has no bucket {self._bucket}") from None

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
        """Merge a session's segments into as few as `segment_bytes` allows; how many objects went."""
        st = await self._loaded(session_uid)
        if st is None:
            return 0
        async with st.lock:
            if not st.loaded:
                await self._recover(st)
            try:
                return await self._compact(st, full=True)
            except (_Gone, _Taken):
                raise Unavailable(f"the events under s3://{self._bucket}/{st.base} changed while compacting") from None

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
        for item in await self._list(self._root):
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
            async with st.lock:
                st.forget()
                await self._delete(old)
                if len(old) == total:
                    self._sessions.pop(uid, None)
            removed += len(old)
        return removed

    async def _append(self, uid: str, new: Callable[[int, int], list[Row]]) -> list[Row]:
        st = await self._session(uid)
        if st is None:
            raise NotFound(f"session {uid} does not exist, so its events cannot be stored")
        async with st.lock:
            for _ in range(ATTEMPTS):
                if not st.loaded:
                    await self._recover(st)
                rows = new(st.head, st.runner)
                if not rows:
                    return []
                key = st.base + segments.part_name(rows[0].seq)
                try:
                    await self._put(key, rows)
                except _Taken:
                    log.warning("another writer stored %s first; reloading that session's events", key)
                    st.forget()
                    continue
                except BaseException:
                    st.forget()
                    raise
                self._keep(st, rows)
                break
            else:
                raise Conflict(f"another writer keeps appending to the events of session {uid}")
            await self._tidy(st, final=any(is_final(row.envelope()) for row in rows))
        return rows

    def _keep(self, st: _Session, rows: list[Row]) -> None:
        st.head, st.runner = rows[-1].seq, rows[-1].runner
        st.parts += 1
        if self._hot:
            st.hot.extend(rows)
            if len(st.hot) > self._hot:
                del st.hot[: len(st.hot) - self._hot]

    async def _tidy(self, st: _Session, *, final: bool) -> None:
        """Compact once parts pile up or the session ends; the append is already stored either way."""
        if final or st.parts >= self._compact_parts:
            try:
                await self._compact(st, full=final)
            except (VteamError, _Gone, _Taken) as exc:
                st.parts = 0
                log.warning("could not compact the events under %s: %s", st.base, exc)
        if final:
            st.hot = []

    async def _compact(self, st: _Session, *, full: bool) -> int:
        """Write each merged segment before deleting its parts; readers skip parts a merged one holds."""
        live, covered = segments.live(await self._segments(st.base))
        removed = 0
        for group, end in self._groups(live, st.head, full=full):
            rows = await self._gather(st, group, end)
            if not rows:
                continue
            key = st.base + segments.compacted_name(group[0].first, rows[-1].seq)
            with contextlib.suppress(_Taken):
                await self._put(key, rows)
            await self._delete([seg.key for seg in group])
            removed += len(group)
        await self._delete([seg.key for seg in covered])
        st.parts = 0 if full else sum(not seg.compacted for seg in live) - removed
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
            except _Gone:
                continue
        raise Unavailable(f"the events under s3://{self._bucket}/{st.base} kept moving while being read")

    async def _fetch(self, segs: list[Segment], *, after: int = 0, limit: int | None = None) -> list[Row]:
        """Rows of these segments after `after`, each seq once (a merged segment may repeat its parts)."""
        rows: dict[int, Row] = {}
        for start in range(0, len(segs), FETCH_AT_ONCE):
            results = await asyncio.gather(
                *(self._rows(seg) for seg in segs[start : start + FETCH_AT_ONCE]), return_exceptions=True
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
            except _Gone:
                continue
            st.parts = sum(not seg.compacted for seg in live)
            st.hot = []
            st.loaded = True
            return
        raise Unavailable(f"the events under s3://{self._bucket}/{st.base} kept moving while being loaded")

    async def _heads(self, seg: Segment) -> tuple[int, int]:
        answer = await self._call("head_object", seg.key, Key=seg.key)
        meta = answer.get("Metadata") or {}
        with contextlib.suppress(KeyError, ValueError):
            return int(meta[segments.LAST_SEQ]), int(meta[segments.RUNNER_SEQ])
        rows = await self._rows(seg)
        if not rows:
            raise Unavailable(f"s3://{self._bucket}/{seg.key} holds no events")
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
        for item in await self._list(self._root):
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
        async with st.lock:
            st.forget()
            await self._delete([item["Key"] for item in await self._list(base)])
            self._sessions.pop(uid, None)
            self._places.pop(uid, None)

    async def _segments(self, base: str) -> list[Segment]:
        found: list[Segment] = []
        for item in await self._list(base):
            seg = segments.parse(item["Key"], item["Key"][len(base) :], int(item["Size"]))
            if seg is not None:
                found.append(seg)
        return found

    async def _list(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = await self._call("list_objects_v2", prefix, **params)
            items.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return items
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def _rows(self, seg: Segment) -> list[Row]:
        def get() -> bytes:
            return cast(bytes, self._client.get_object(Bucket=self._bucket, Key=seg.key)["Body"].read())

        body = await self._guard("get_object", seg.key, get)
        try:
            return segments.decode(body)
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"s3://{self._bucket}/{seg.key} is not an event segment") from None

    async def _put(self, key: str, rows: list[Row]) -> None:
        await self._call(
            "put_object",
            key,
            Key=key,
            Body=segments.encode(rows),
            IfNoneMatch="*",
            Metadata=segments.metadata(rows),
            ContentType=CONTENT_TYPE,
        )

    async def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = await self._call(
                "delete_objects", batch[0], Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            if errors := answer.get("Errors"):
                code = errors[0].get("Code", "unknown")
                raise Unavailable(f"S3 refused to delete {len(errors)} event objects, {errors[0].get('Key')}: {code}")

    async def _call(self, operation: str, key: str, **params: Any) -> dict[str, Any]:
        method = getattr(self._client, operation)
        return cast(dict[str, Any], await self._guard(operation, key, lambda: method(Bucket=self._bucket, **params)))

    async def _guard(self, operation: str, key: str, call: Callable[[], Any]) -> Any:
        """Run a blocking boto3 call off the event loop; failures name the object, never a credential."""
        try:
            return await asyncio.to_thread(call)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _Taken(key) from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise _Gone(key) from None
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            raise Unavailable(f"S3 refused {operation} on s3://{self._bucket}/{key}: {code} (HTTP {status})") from None
        except BotoCoreError as exc:
            raise Unavailable(
                f"S3 at {self._where} failed {operation} on s3://{self._bucket}/{key}: {type(exc).__name__}"
            ) from None


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


def _host(client: Any) -> str:
    """Where the client sends requests, without any user or password a URL might carry."""
    parts = urlsplit(str(getattr(getattr(client, "meta", None), "endpoint_url", "") or ""))
    if parts.hostname is None:
        return "the configured endpoint"
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
