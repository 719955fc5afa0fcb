"""The runner's one WebSocket to the API: events out with runner-assigned seqs, acks back.

Events stay queued until acknowledged; after a reconnect the server says the last seq it holds
and the runner resends everything after it. To a backend that takes batches, whatever is queued goes in
one frame as soon as fewer than IN_FLIGHT frames await their ack: a lone event leaves at once, and events
that come faster than the backend stores them gather into the next frame, with no timer holding any back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from ag_ui.core import BaseEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from vteam.events import Envelope, now_ts, split
from vteam.events.agui import dump, envelope_type
from vteam.events.envelope import PARTIAL_LIMIT, batch_frame
from vteam.protocol import (
    BATCH,
    FEATURES_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    REFUSED_CLOSE_CODE,
    Ack,
    BatchLimits,
    Control,
    ControlAfter,
    Hello,
    mismatch,
    server_frame,
)
from vteam.runner.redact import Redactor

log = logging.getLogger(__name__)

MAX_UNACKED_BYTES = 4 * 1024 * 1024
IN_FLIGHT = 2
"""Batch frames sent and not yet acknowledged: two keep the backend busy while the runner gathers the next."""


class StreamClosed(Exception):
    """The server could not be reached for longer than the reconnect window, or refused the runner."""


class EventStream:
    def __init__(
        self,
        url: str,
        token: str,
        redactor: Redactor,
        *,
        reconnect_seconds: float = 300,
        protocol: int = PROTOCOL_VERSION,
    ) -> None:
        self._url = url
        self._token = token
        self._protocol = protocol
        """The protocol this runner speaks; another value only in tests of a mismatch."""
        self._greeted = asyncio.Event()
        self._redactor = redactor
        self._reconnect_seconds = reconnect_seconds
        self._seq = 0
        self._acked = 0
        self._pending: deque[Envelope] = deque()
        self._sizes: dict[int, int] = {}
        self._pending_bytes = 0
        self._room = asyncio.Event()
        self._new = asyncio.Event()
        self._acked_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._control_after = 0
        self.controls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        """Control events (user messages, interrupt, end) from the API, each delivered once."""
        self._error: BaseException | None = None

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def acked(self) -> int:
        return self._acked

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-stream")

    async def ready(self) -> None:
        """Wait until the server has greeted this runner in a protocol both speak; StreamClosed saying why not."""
        await self._greeted.wait()
        if self._error is not None:
            raise StreamClosed(str(self._error))

    async def emit(self, event: BaseEvent) -> None:
        """Queue an event; waits while too much is unacknowledged, which slows the agent to what is stored."""
        while self._pending_bytes > MAX_UNACKED_BYTES and self._error is None:
            self._room.clear()
            await self._room.wait()
        if self._error is not None:
            raise StreamClosed(str(self._error))
        self._seq += 1
        data = self._redactor.data(dump(event))
        envelope = Envelope(seq=self._seq, ts=now_ts(), type=envelope_type(event), data=data)
        self._sizes[envelope.seq] = size = len(json.dumps(data, ensure_ascii=False))
        self._pending_bytes += size
        self._pending.append(envelope)
        self._new.set()

    async def flush(self, timeout: float = 60.0) -> bool:  # noqa: ASYNC109 - a bound, not a cancel scope
        """Wait until every emitted event is acknowledged; False if that did not happen in time."""
        deadline = time.monotonic() + timeout
        while self._acked < self._seq:
            if self._error is not None:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._acked_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked_event.wait(), remaining)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        down_since: float | None = None
        while True:
            try:
                async with connect(
                    self._url,
                    additional_headers={
                        "Authorization": f"Bearer {self._token}",
                        PROTOCOL_HEADER: str(self._protocol),
                        FEATURES_HEADER: BATCH,
                    },
                    max_size=None,
                    open_timeout=10,
                    ping_interval=20,
                ) as ws:
                    down_since, delay = None, 0.1
                    await self._session(ws)
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403, 404, 409):
                    self._fail(StreamClosed(_refusal(exc)))
                    log.error("server refused the event stream: %s", self._error)
                    return
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == REFUSED_CLOSE_CODE:
                    self._fail(StreamClosed(exc.rcvd.reason))
                    log.error("server refused the event stream: %s", self._error)
                    return
                log.warning("event stream interrupted: %s", type(exc).__name__)
            except _Refused as exc:
                self._fail(StreamClosed(str(exc)))
                log.error("refusing the server: %s", self._error)
                return
            except (OSError, WebSocketException, TimeoutError) as exc:
                log.warning("event stream interrupted: %s", type(exc).__name__)
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > self._reconnect_seconds:
                self._fail(StreamClosed("could not reach the server to deliver events"))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)

    def _fail(self, error: StreamClosed) -> None:
        """The stream is over for good: wake everyone waiting on it, so they see why."""
        self._error = error
        self._greeted.set()
        self._acked_event.set()
        self._room.set()

    async def _session(self, ws: ClientConnection) -> None:
        hello = Hello.model_validate(json.loads(await ws.recv()))
        if hello.protocol != self._protocol:
            raise _Refused(mismatch(self._protocol, hello.protocol))
        self._ack(hello.last_seq)
        cursor = ControlAfter(protocol=self._protocol, control_after=self._control_after)
        await ws.send(json.dumps(cursor.wire()))
        self._greeted.set()
        sender = asyncio.create_task(self._send(ws, hello.batch))
        try:
            async for raw in ws:
                frame = server_frame(json.loads(raw))
                if isinstance(frame, Ack):
                    self._ack(frame.ack)
                elif isinstance(frame, Control) and frame.seq > self._control_after:
                    self._control_after = frame.seq
                    self.controls.put_nowait(frame.control)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                await sender

    async def _send(self, ws: ClientConnection, limits: BatchLimits | None) -> None:
        """Send what is queued: in batches within `limits` and IN_FLIGHT, or, to a backend without batches
        (`limits` None), each event on its own frame(s) as soon as it is queued."""
        sent = self._acked
        flight: deque[int] = deque()
        while True:
            self._new.clear()
            while flight and flight[0] <= self._acked:
                flight.popleft()
            if self._pending and self._pending[-1].seq > sent and len(flight) < IN_FLIGHT:
                start = max(sent + 1 - self._pending[0].seq, 0)
                frames, sent = _next_frames(islice(self._pending, start, None), limits)
                for frame in frames:
                    await ws.send(frame)
                if limits is not None:
                    flight.append(sent)
                continue
            await self._new.wait()

    def _ack(self, seq: int) -> None:
        if seq > self._acked:
            self._acked = seq
        while self._pending and self._pending[0].seq <= self._acked:
            self._pending_bytes -= self._sizes.pop(self._pending.popleft().seq, 0)
        self._acked_event.set()
        self._room.set()
        self._new.set()


def _next_frames(queued: Iterator[Envelope], limits: BatchLimits | None) -> tuple[list[str], int]:
    """The frames for the next queued events and the last seq they carry. Without `limits`: every queued
    event, each on its own frame(s). With them: one batch of whole events within `limits`, or one event alone
    when it must travel as partials or nothing else is queued."""
    first = next(queued)
    texts = _frames(first)
    last = first.seq
    if limits is None:
        for env in queued:
            texts += _frames(env)
            last = env.seq
        return texts, last
    if len(texts) > 1:
        return texts, last
    size = len(batch_frame(texts).encode())
    for env in queued:
        if len(texts) >= limits.max_events or len(frames := _frames(env)) > 1:
            break
        size += len(frames[0].encode()) + 1
        if size > limits.max_bytes:
            break
        texts += frames
        last = env.seq
    return [batch_frame(texts) if len(texts) > 1 else texts[0]], last


def _frames(env: Envelope) -> list[str]:
    """The event's frame texts: the envelope whole, or its partials when its data is over PARTIAL_LIMIT."""
    text = json.dumps(env.frame(), separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= PARTIAL_LIMIT:
        return [text]
    parts = split(env)
    return [json.dumps(part, separators=(",", ":"), ensure_ascii=False) for part in parts] if len(parts) > 1 else [text]


class _Refused(Exception):
    """The server speaks a protocol this runner does not."""


def _refusal(exc: InvalidStatus) -> str:
    """The server's reason for refusing the handshake: its problem's detail, or the status."""
    try:
        detail = json.loads(exc.response.body or b"{}").get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or f"the server refused the event stream ({exc.response.status_code})")
