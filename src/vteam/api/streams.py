"""Readers of a session's events: SSE and WebSocket, both replay from `after`, then live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, WebSocket
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.websockets import WebSocketDisconnect

from vteam.api.conversation import MessageIn, send_control
from vteam.api.deps import PlatformDep, authorize, check_access, get_platform, role_in
from vteam.api.platform import Platform
from vteam.api.problems import deny
from vteam.auth import Role
from vteam.errors import Forbidden, InvalidInput, NotFound, VteamError
from vteam.events import follow as follow_events
from vteam.events.agui import USER_MESSAGE
from vteam.resources import AgenticSession

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions/{name}", tags=["events"])


def _events(
    platform: Platform, project: str, name: str, session: AgenticSession, after: int, live: bool = True
) -> AsyncIterator[Any]:
    uid = session.metadata.uid or ""

    async def finished() -> bool:
        try:
            current = await platform.store.get(AgenticSession, name, project)
        except NotFound:
            return True
        return current.metadata.uid != uid or current.phase.terminal

    return follow_events(platform.events, platform.hub, uid, after=after, finished=finished, live=live)


@router.get("/events", dependencies=[Depends(authorize())])
async def session_events(
    project: str,
    name: str,
    platform: PlatformDep,
    after: int | None = Query(None, ge=0, description="Send events with seq greater than this."),
    follow: bool = Query(True, description="Keep the stream open for live events until the session ends."),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """Server-sent events: each `data` is an envelope `{seq, ts, type, data}`; `id` is its seq."""
    session = await platform.store.get(AgenticSession, name, project)
    # A reconnecting EventSource repeats its URL (and `after`) but also says what it last received.
    resumed = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    start = max(after or 0, resumed)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for env in _events(platform, project, name, session, start, follow):
            yield ServerSentEvent(id=str(env.seq), data=json.dumps(env.frame(), separators=(",", ":")))

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


@router.websocket("/ws")
async def session_ws(websocket: WebSocket, project: str, name: str, after: int = Query(0, ge=0)) -> None:
    """WebSocket reader: envelopes as JSON text frames; closes with 1000 once the session has ended."""
    platform = get_platform(websocket)
    try:
        identity = await check_access(websocket, platform, runner=False)
        session = await platform.store.get(AgenticSession, name, project)
        role = await role_in(platform, identity, project)
        can_send = role is not None and role.allows(Role.EDIT)
    except VteamError as exc:
        await deny(websocket, exc)
        return
    await websocket.accept()

    async def send() -> None:
        async for env in _events(platform, project, name, session, after):
            await websocket.send_text(json.dumps(env.frame(), separators=(",", ":")))
        await websocket.close(code=1000)

    async def until_client_leaves() -> None:
        """Take `{"type": "message", "text": ...}` frames as user messages until the client goes."""
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            try:
                incoming = MessageIn.model_validate_json(_text(message))
                if not can_send:
                    raise Forbidden(f"your role in project {project!r} is {role}; sending messages needs edit")
                await send_control(
                    platform, project, name, USER_MESSAGE, identity, id=uuid.uuid4().hex, text=incoming.text
                )
            except (VteamError, ValidationError) as exc:
                detail = exc.detail if isinstance(exc, VteamError) else 'send {"type": "message", "text": "..."}'
                await websocket.send_text(json.dumps({"error": detail}))

    tasks = [asyncio.create_task(send()), asyncio.create_task(until_client_leaves())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


def _text(message: MutableMapping[str, Any]) -> str:
    raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
    frame = json.loads(raw or "{}")
    if not isinstance(frame, dict) or frame.pop("type", None) != "message":
        raise InvalidInput("only message frames are accepted")
    return json.dumps(frame)
