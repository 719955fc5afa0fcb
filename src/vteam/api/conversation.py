"""Talking to a running session: user messages, interrupt and end.

Each is stored as an event (with who sent it), so readers see the conversation, and the
runner's connection forwards it to the runner, also after a reconnect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vteam.api.responses import ControlSent, MessageSent, shaped
from vteam.auth import Identity
from vteam.edge.deps import Editor, PlatformDep
from vteam.services import MessageIn
from vteam.services.platform import Platform

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions/{name}", tags=["conversation"])

__all__ = ["MessageIn", "router", "send_control"]


async def send_control(
    platform: Platform, project: str, name: str, kind: str, sender: Identity, **value: Any
) -> dict[str, Any]:
    """A control event from a sender whose role the caller has checked (the WebSocket checks it per frame)."""
    sent = await platform.sessions.deliver(project=project, name=name, kind=kind, sender=sender, **value)
    return {"seq": sent.seq, **sent.values}


@router.post("/messages", status_code=202, **shaped(MessageSent))
async def post_message(
    project: str, name: str, body: MessageIn, platform: PlatformDep, caller: Editor
) -> dict[str, Any]:
    """Send the agent a message; it is taken up when the current turn ends."""
    sent = await platform.sessions.send_message(caller=caller, project=project, name=name, message=body)
    return {"seq": sent.seq, **sent.values}


@router.post("/interrupt", status_code=202, **shaped(ControlSent))
async def interrupt(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> dict[str, Any]:
    """Stop the agent's current turn; the session stays, waiting for input."""
    sent = await platform.sessions.interrupt(
        caller=caller, project=project, name=name, request_id=getattr(request.state, "request_id", None)
    )
    return {"seq": sent.seq, **sent.values}


@router.post("/end", status_code=202, **shaped(ControlSent))
async def end(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> dict[str, Any]:
    """Finish the conversation: the current turn is stopped, the work committed and pushed."""
    sent = await platform.sessions.end(
        caller=caller, project=project, name=name, request_id=getattr(request.state, "request_id", None)
    )
    return {"seq": sent.seq, **sent.values}
