"""AG-UI events as vTeam emits them, and vTeam's own `vteam.`-named custom events."""

from __future__ import annotations

from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)

PHASE = "vteam.phase"
CLONE = "vteam.clone"
BRANCH = "vteam.branch"
COMMIT = "vteam.commit"
PUSH = "vteam.push"
PULL_REQUEST = "vteam.pull_request"
DIFF = "vteam.diff"
"""A published repo's unified diff (base..head), so readers can review the change without git."""
USER_MESSAGE = "vteam.user_message"
INTERRUPT = "vteam.interrupt"
END = "vteam.end"
CONTROLS = frozenset({USER_MESSAGE, INTERRUPT, END})
"""Events people send to a running session; the API stores them and forwards them to its runner."""


def dump(event: BaseEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def envelope_type(event: BaseEvent) -> str:
    """Custom events travel under their own `vteam.` name; the rest under their AG-UI type."""
    if isinstance(event, CustomEvent):
        return event.name
    return str(event.type.value)


def custom(name: str, **value: Any) -> CustomEvent:
    return CustomEvent(name=name, value=value)


__all__ = [
    "BRANCH",
    "CLONE",
    "COMMIT",
    "CONTROLS",
    "DIFF",
    "END",
    "INTERRUPT",
    "PHASE",
    "PUSH",
    "USER_MESSAGE",
    "BaseEvent",
    "CustomEvent",
    "RunErrorEvent",
    "RunFinishedEvent",
    "RunStartedEvent",
    "TextMessageContentEvent",
    "TextMessageEndEvent",
    "TextMessageStartEvent",
    "custom",
    "dump",
    "envelope_type",
]
