"""The runner's side of the API: its status reports and its one event WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from vteam.api.problems import deny
from vteam.api.responses import PushTargetList, resource, shaped
from vteam.api.schemas import PushTargetsIn
from vteam.controller import update_status
from vteam.edge.deps import PlatformDep, Runner, check_access, get_platform
from vteam.edge.stream_access import CLOSE_TOO_BIG
from vteam.errors import Conflict, NotFound, VteamError
from vteam.events import Joiner, PartialError, Recorder
from vteam.events import follow as follow_events
from vteam.events.agui import CONTROLS, custom, dump
from vteam.events.envelope import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_FRAME_BYTES, BatchError
from vteam.events.quota import SessionQuota
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
    RunnerReport,
    UnsupportedProtocol,
    check,
    offered,
)
from vteam.resources import AgenticSession, Phase, RepoStatus
from vteam.services.platform import Platform

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions/{name}/runner", tags=["runner"])

_quotas: weakref.WeakValueDictionary[str, SessionQuota] = weakref.WeakValueDictionary()
"""One storage quota per session while any of its runner's connections is open, so parallel connections share it."""


@router.post("/status", **resource(AgenticSession))
async def runner_status(
    project: str, name: str, report: RunnerReport, platform: PlatformDep, _caller: Runner
) -> AgenticSession:
    fields = report.model_dump(exclude={"phase", "final"}, exclude_none=True)
    if report.phase == "Running":
        session = await platform.store.get(AgenticSession, name, project)
        if session.phase == Phase.PENDING:
            # The runner runs, so it was created: an operator that has not recorded that yet is only late.
            session = await platform.phases(project, name, Phase.CREATING)
        if session.phase == Phase.CREATING:
            return await platform.phases(project, name, Phase.RUNNING, message=None, **fields)
    if report.final and report.repos:
        session = await platform.store.get(AgenticSession, name, project)
        fields["repos"] = await _change_set(platform, session, report)
    updated = await update_status(platform.store, project, name, **fields)
    if report.final:
        platform.controller.enqueue(updated.key)
    return updated


async def _change_set(platform: Platform, session: AgenticSession, report: RunnerReport) -> list[RepoStatus]:
    """Open or update the session's pull requests; each one is announced as a `vteam.pull_request` event."""
    uid = session.metadata.uid or ""

    recorder = Recorder(platform.events, platform.hub)

    async def emit(name: str, value: dict[str, Any]) -> None:
        await recorder.record(uid, name, dump(custom(name, **value)))

    base = platform.settings.public_url or platform.server_url
    url = f"{base.rstrip('/')}/api/projects/{session.namespace}/agentic-sessions/{session.name}"
    text = report.result.text if report.result else None
    repos = report.repos or []
    try:
        return await platform.forges.open_change_set(session, repos, text, url, emit)
    except Exception:
        # The pushes happened; a bug here must not make the runner retry its final report forever.
        log.exception("opening the change set of %s/%s failed", session.namespace, session.name)
        failed = "pull request: vTeam hit an unexpected error opening it; see the server's log"
        specs = session.spec.repos

        def wanted(index: int, repo: RepoStatus) -> bool:
            owner = index if repo.submodule_of is None else repo.submodule_of
            out = specs[owner].output if owner < len(specs) else None
            return repo.pushed and out is not None and out.create_pull_request

        return [r.model_copy(update={"error": r.error or failed}) if wanted(i, r) else r for i, r in enumerate(repos)]


@router.post("/push-targets", **shaped(PushTargetList))
async def push_targets(
    project: str, name: str, body: PushTargetsIn, platform: PlatformDep, _caller: Runner
) -> dict[str, Any]:
    """For the session's own runner only: where each changed repo's branch goes, and the token to push it with."""
    session = await platform.store.get(AgenticSession, name, project)
    for item in body.repos:
        if item.index >= len(session.spec.repos):
            raise NotFound(f"session {name!r} has no repos[{item.index}]")
    wanted = [item.model_dump() for item in body.repos]
    return {"repos": await platform.forges.push_targets(session, wanted)}


@router.websocket("/ws")
async def runner_ws(websocket: WebSocket, project: str, name: str) -> None:
    """The runner's one connection, in `vteam.protocol`'s frames. Server: `Hello` (its protocol, the runner's
    highest stored seq and, to a runner offering the `batch` feature, how large a batch may be), then `Ack`
    after each durable append, and `Control` for each user message, interrupt or end after the cursor the
    runner sends first in `ControlAfter` (with its protocol).

    Events come one to a frame (or as partials), or as a batch `{"events": [...]}` that is appended in one
    call and acknowledged once, by its highest seq. A frame over the batch limit closes the socket with 1009.

    A runner speaking another protocol is refused with the reason: in the handshake when it names its
    protocol in a header, or with a close (code 4409) when its `ControlAfter` does.
    """
    platform = get_platform(websocket)
    try:
        declared = websocket.headers.get(PROTOCOL_HEADER)
        if declared is not None:
            _supported(declared)
        await check_access(websocket, platform, only_runner=True)
        session = await platform.store.get(AgenticSession, name, project)
    except VteamError as exc:
        await deny(websocket, exc)
        return
    uid = session.metadata.uid or ""
    limits = _batch_limits(platform.settings.max_ws_frame_bytes)
    await websocket.accept()
    sending = asyncio.Lock()

    async def send(frame: Hello | Ack | Control) -> None:
        async with sending:
            await websocket.send_text(json.dumps(frame.wire()))

    async def forward_controls(after: int) -> None:
        async def finished() -> bool:
            try:
                return (await platform.store.get(AgenticSession, name, project)).phase.terminal
            except NotFound:
                return True

        async for env in follow_events(platform.events, platform.hub, uid, after=after, finished=finished):
            if env.type in CONTROLS:
                await send(Control(control=env.frame()))

    forwarder: asyncio.Task[None] | None = None
    joiner = Joiner()
    recorder = Recorder(platform.events, platform.hub)
    try:
        held = await platform.events.last_runner_seq(uid)
        quota = _quotas.get(uid)
        if quota is None:
            fresh = SessionQuota(
                used=await platform.events.stored_bytes(uid),
                event_limit=platform.settings.max_event_bytes,
                session_limit=platform.settings.max_session_event_bytes,
            )
            quota = _quotas.setdefault(uid, fresh)
        offers = BATCH in offered(websocket.headers.get(FEATURES_HEADER))
        await send(Hello(protocol=PROTOCOL_VERSION, last_seq=held, batch=limits if offers else None))
        while True:
            raw = await websocket.receive_text()
            if len(raw.encode()) > limits.max_bytes:
                log.warning("runner %s/%s sent a frame over %d bytes", project, name, limits.max_bytes)
                with contextlib.suppress(RuntimeError):
                    await websocket.close(code=CLOSE_TOO_BIG, reason=f"a frame may be at most {limits.max_bytes} bytes")
                return
            frame = json.loads(raw)
            if "controlAfter" in frame:
                cursor = ControlAfter.model_validate(frame)
                check(cursor.protocol)
                if forwarder is None:
                    forwarder = asyncio.create_task(forward_controls(cursor.control_after))
                continue
            if "events" in frame:
                envelopes = joiner.feed_batch(frame, limits.max_events)
            elif (envelope := joiner.feed(frame)) is not None:
                envelopes = [envelope]
            else:
                continue
            kept = [k for env in envelopes if env.seq > held and (k := quota.admit(env)) is not None]
            if kept:
                await recorder.record_runner(uid, kept)
            held = max(held, envelopes[-1].seq)
            await send(Ack(ack=envelopes[-1].seq))
    except WebSocketDisconnect:
        return
    except UnsupportedProtocol as exc:
        log.warning("runner %s/%s refused: %s", project, name, exc)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=REFUSED_CLOSE_CODE, reason=_reason(str(exc)))
    except (PartialError, BatchError, ValueError, KeyError) as exc:
        log.warning("runner %s/%s sent a bad frame: %s", project, name, exc)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1003, reason="bad frame")
    finally:
        if forwarder is not None:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await forwarder


def _batch_limits(user_frame_bytes: int) -> BatchLimits:
    """At most MAX_BATCH_BYTES, and never more than the server reads in one message: `vteam up` lets a message
    be as large as the users' frame limit or a runner's largest partial (MAX_FRAME_BYTES), whichever is more."""
    readable = max(user_frame_bytes, MAX_FRAME_BYTES)
    return BatchLimits(max_events=MAX_BATCH_EVENTS, max_bytes=min(MAX_BATCH_BYTES, readable))


def _supported(declared: str) -> None:
    """The protocol a runner names in its handshake, refused as a problem when this backend does not speak it."""
    try:
        check(int(declared))
    except ValueError as exc:
        raise Conflict(
            str(exc) if isinstance(exc, UnsupportedProtocol) else f"runner protocol {declared!r} is not a number"
        ) from exc


def _reason(message: str) -> str:
    """A close reason holds 123 bytes of UTF-8; the message is ASCII and kept whole when it fits."""
    return message.encode()[:123].decode(errors="ignore")
