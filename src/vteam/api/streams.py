"""Readers of a session's events: SSE and WebSocket, both replay from `after`, then live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, MutableMapping
from typing import Any, TypeAlias

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.websockets import WebSocketDisconnect

from vteam.api.conversation import MessageIn, send_control
from vteam.api.problems import deny
from vteam.auth import Identity, Role
from vteam.edge.deps import PlatformDep, authorize, check_access, get_platform
from vteam.edge.stream_access import CLOSE_TOO_BIG, GuardedEventSource, StreamGuard, close_code
from vteam.errors import Forbidden, InvalidInput, NotFound, VteamError
from vteam.events import MAX_SEQ, Envelope, resume_from
from vteam.events import follow as follow_events
from vteam.events.agui import USER_MESSAGE
from vteam.resources import AgenticSession
from vteam.services.platform import Platform

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions/{name}", tags=["events"])

_Close: TypeAlias = tuple[int, str] | None
"""How a WebSocket's part ended: the close code and reason to send, or None when the client left."""


def _events(
    platform: Platform, project: str, name: str, session: AgenticSession, after: int, live: bool = True
) -> AsyncGenerator[Envelope, None]:
    uid = session.metadata.uid or ""

    async def finished() -> bool:
        try:
            current = await platform.store.get(AgenticSession, name, project)
        except NotFound:
            return True
        return current.metadata.uid != uid or current.phase.terminal

    return follow_events(platform.events, platform.hub, uid, after=after, finished=finished, live=live)


@router.get("/events")
async def session_events(
    request: Request,
    project: str,
    name: str,
    platform: PlatformDep,
    caller: Identity = Depends(authorize()),
    after: int | None = Query(None, ge=0, le=MAX_SEQ, description="Send events with seq greater than this."),
    follow: bool = Query(True, description="Keep the stream open for live events until the session ends."),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """Server-sent events: each `data` is an envelope `{seq, ts, type, data}`; `id` is its seq."""
    session = await platform.store.get(AgenticSession, name, project)
    # A reconnecting EventSource repeats its URL (and `after`) but also says what it last received.
    start = resume_from(after, last_event_id)

    guard = StreamGuard(request, platform, caller, project)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with contextlib.aclosing(guard.bounded(_events(platform, project, name, session, start, follow))) as envs:
            async for env in envs:
                yield ServerSentEvent(id=str(env.seq), data=json.dumps(env.frame(), separators=(",", ":")))

    slot = platform.streams.take(caller, platform.settings.max_streams_per_caller)
    return GuardedEventSource(stream(), slot=slot, ping=15, headers={"Cache-Control": "no-store"})


@router.websocket("/ws")
async def session_ws(websocket: WebSocket, project: str, name: str, after: int = Query(0, ge=0, le=MAX_SEQ)) -> None:
    """WebSocket reader: envelopes as JSON text frames; closes with 1000 once the session has ended, with
    4000 + an HTTP status once the caller has lost access, and with 1009 after a frame over the size limit."""
    platform = get_platform(websocket)
    try:
        identity = await check_access(websocket, platform, runner=False)
        session = await platform.store.get(AgenticSession, name, project)
        slot = platform.streams.take(identity, platform.settings.max_streams_per_caller)
    except VteamError as exc:
        await deny(websocket, exc)
        return
    guard = StreamGuard(websocket, platform, identity, project)
    limit = platform.settings.max_ws_frame_bytes

    async def send() -> _Close:
        async with contextlib.aclosing(_events(platform, project, name, session, after)) as envs:
            async for env in envs:
                await websocket.send_text(json.dumps(env.frame(), separators=(",", ":")))
        return 1000, ""

    async def watch() -> _Close:
        return close_code(await guard.lost())

    async def until_client_leaves() -> _Close:
        """Take `{"type": "message", "text": ...}` frames as user messages until the client goes; each one
        re-checks the caller's access and role as it arrives."""
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            if _size(message) > limit:
                return CLOSE_TOO_BIG, f"a frame may be at most {limit} bytes (VTEAM_MAX_WS_FRAME_BYTES)"
            try:
                incoming = MessageIn.model_validate_json(_text(message))
                try:
                    role = await guard.role()
                except VteamError as exc:
                    return close_code(exc)
                if not role.allows(Role.EDIT):
                    raise Forbidden(f"your role in project {project!r} is {role.value}; sending messages needs edit")
                await send_control(
                    platform, project, name, USER_MESSAGE, identity, id=uuid.uuid4().hex, text=incoming.text
                )
            except (VteamError, ValidationError) as exc:
                detail = exc.detail if isinstance(exc, VteamError) else 'send {"type": "message", "text": "..."}'
                await websocket.send_text(json.dumps({"error": detail}))
        return None

    with slot:
        await websocket.accept()
        tasks = [asyncio.create_task(send()), asyncio.create_task(until_client_leaves()), asyncio.create_task(watch())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task
        first = next(iter(done))
        close = None if first.cancelled() or first.exception() is not None else first.result()
        if close is not None:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await websocket.close(code=close[0], reason=close[1])


def _size(message: MutableMapping[str, Any]) -> int:
    """A frame's size in bytes, measured before anything parses it."""
    if (text := message.get("text")) is not None:
        return len(text) if text.isascii() else len(text.encode())
    return len(message.get("bytes") or b"")


def _text(message: MutableMapping[str, Any]) -> str:
    """A frame's message as JSON text; InvalidInput for one that is not UTF-8 JSON, or not a message."""
    try:
        raw = message.get("text") or (message.get("bytes") or b"").decode()
        frame = json.loads(raw or "{}")
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser's depth
        raise InvalidInput('a frame must be UTF-8 JSON: send {"type": "message", "text": "..."}') from None
    if not isinstance(frame, dict) or frame.pop("type", None) != "message":
        raise InvalidInput("only message frames are accepted")
    return json.dumps(frame)
