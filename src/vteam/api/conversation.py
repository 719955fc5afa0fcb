"""Talking to a running session: user messages, interrupt and end.

Each is stored as an event (with who sent it), so readers see the conversation, and the
runner's connection forwards it to the runner, also after a reconnect.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field, field_validator

from vteam.api.audit import record
from vteam.api.deps import Editor, PlatformDep
from vteam.api.platform import Platform
from vteam.auth import Identity
from vteam.errors import InvalidTransition
from vteam.events.agui import END, INTERRUPT, USER_MESSAGE, custom, dump
from vteam.resources import AgenticSession, CamelModel, validation

router = APIRouter(prefix="/api/projects/{project}/agentic-sessions/{name}", tags=["conversation"])


class MessageIn(CamelModel):
    text: str = Field(min_length=1, max_length=100_000)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        """The message becomes the agent's next prompt, which no process can be handed with a NUL in it."""
        validation.check_text(value, "text")
        return value


async def send_control(
    platform: Platform, project: str, name: str, kind: str, sender: Identity, **value: Any
) -> dict[str, Any]:
    session = await platform.store.get(AgenticSession, name, project)
    if session.phase.terminal:
        raise InvalidTransition(f"session {name!r} already ended ({session.phase.value})")
    if not session.spec.interactive:
        raise InvalidTransition(
            f"session {name!r} is not interactive; create it with interactive: true to talk to it, "
            "or stop it with POST .../stop"
        )
    uid = session.metadata.uid or ""
    env = await platform.events.append(uid, kind, dump(custom(kind, user=sender.name, **value)))
    platform.hub.publish(uid, [env])
    return {"seq": env.seq, **value}


@router.post("/messages", status_code=202)
async def post_message(
    project: str, name: str, body: MessageIn, platform: PlatformDep, caller: Editor
) -> dict[str, Any]:
    """Send the agent a message; it is taken up when the current turn ends."""
    return await send_control(platform, project, name, USER_MESSAGE, caller, id=uuid.uuid4().hex, text=body.text)


@router.post("/interrupt", status_code=202)
async def interrupt(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> dict[str, Any]:
    """Stop the agent's current turn; the session stays, waiting for input."""
    sent = await send_control(platform, project, name, INTERRUPT, caller)
    await record(request, platform, caller, "session.interrupt", f"session/{name}", project=project)
    return sent


@router.post("/end", status_code=202)
async def end(project: str, name: str, request: Request, platform: PlatformDep, caller: Editor) -> dict[str, Any]:
    """Finish the conversation: the current turn is stopped, the work committed and pushed."""
    sent = await send_control(platform, project, name, END, caller)
    await record(request, platform, caller, "session.end", f"session/{name}", project=project)
    return sent
