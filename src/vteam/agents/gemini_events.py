"""Gemini CLI's JSONL output (`gemini -p … --output-format stream-json`) as AG-UI events.

Gemini prints one JSON object a line: `init` (the session id, to resume, and the model), `message` (the user's
prompt whole, then the assistant's text in `delta` pieces), `tool_use` (a tool's name, id and parameters),
`tool_result` (its status, and its output when that is text), `error` (warnings and non-fatal errors) and, last,
`result` with the status and the run's token counts. Thoughts are not in the stream, and there is no cost.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ag_ui.core import (
    BaseEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

MAX_RESULT_CHARS = 32_000
USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_tokens": "total_tokens",
    "cached": "cached_input_tokens",
    "tool_calls": "tool_calls",
}
"""Counts of `result.stats` kept as usage, under vTeam's names."""


class GeminiEvents:
    """Stateful translator for one `gemini -p` run; `feed` returns the AG-UI events for one JSONL line, in order.

    Beside the events it collects what the run reported: the session id, the model, the usage, the last assistant
    message, whether a `result` came and its status, errors and warnings.
    """

    def __init__(self, prefix: str | None = None) -> None:
        # Message ids are numbered per run: a per-run prefix keeps them unique over a session.
        self._prefix = prefix or uuid.uuid4().hex[:8]
        self._messages = 0
        self._open: str | None = None
        self._current: list[str] = []
        self._tools: dict[str, str] = {}
        self.session_id: str | None = None
        self.model: str | None = None
        self.usage: dict[str, float] | None = None
        self.text: str | None = None
        self.status: str | None = None
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def feed(self, line: dict[str, Any]) -> list[BaseEvent]:
        kind = line.get("type")
        if kind == "message":
            return self._message(line)
        out = self.close()
        if kind == "init":
            self.session_id = str(line.get("session_id") or "") or self.session_id
            self.model = str(line.get("model") or "") or self.model
        elif kind == "tool_use":
            out += self._tool_use(line)
        elif kind == "tool_result":
            out += self._tool_result(line)
        elif kind == "error":
            message = str(line.get("message") or "unknown error")
            (self.warnings if line.get("severity") == "warning" else self.errors).append(message)
        elif kind == "result":
            self.status = str(line.get("status") or "")
            stats = line.get("stats")
            if isinstance(stats, dict):
                self.usage = {new: float(stats[old]) for old, new in USAGE_KEYS.items() if _is_number(stats.get(old))}
            error = line.get("error")
            if self.status != "success":
                self.errors.append(_message_of(error) or f"the run ended with status {self.status or 'unknown'}")
        return out

    @property
    def failed(self) -> bool:
        """The run did not end with a successful `result` (or ended without one)."""
        return self.status != "success"

    def close(self) -> list[BaseEvent]:
        """End the assistant message in progress, if any (the run ended, or something else came)."""
        if self._open is None:
            return []
        message_id, self._open = self._open, None
        self.text = "".join(self._current)
        return [TextMessageEndEvent(message_id=message_id)]

    def _message(self, line: dict[str, Any]) -> list[BaseEvent]:
        if line.get("role") != "assistant":
            return []
        content = line.get("content")
        delta = content if isinstance(content, str) else ""
        out: list[BaseEvent] = []
        if self._open is None or not line.get("delta"):
            out += self.close()
            self._messages += 1
            self._open = f"{self._prefix}-msg-{self._messages}"
            self._current = []
            out.append(TextMessageStartEvent(message_id=self._open, role="assistant"))
        if delta:
            self._current.append(delta)
            out.append(TextMessageContentEvent(message_id=self._open, delta=delta))
        return out

    def _tool_id(self, line: dict[str, Any]) -> str:
        raw = str(line.get("tool_id") or "")
        if raw not in self._tools:
            self._tools[raw] = f"{self._prefix}-{raw or uuid.uuid4().hex[:8]}"
        return self._tools[raw]

    def _tool_use(self, line: dict[str, Any]) -> list[BaseEvent]:
        tool_id = self._tool_id(line)
        parameters = line.get("parameters")
        return [
            ToolCallStartEvent(tool_call_id=tool_id, tool_call_name=str(line.get("tool_name") or "tool")),
            ToolCallArgsEvent(tool_call_id=tool_id, delta=json.dumps(parameters if parameters is not None else {})),
            ToolCallEndEvent(tool_call_id=tool_id),
        ]

    def _tool_result(self, line: dict[str, Any]) -> list[BaseEvent]:
        tool_id = self._tool_id(line)
        output = line.get("output")
        content = output if isinstance(output, str) else ""
        if line.get("status") == "error":
            reason = _message_of(line.get("error")) or content or "the tool failed"
            content = reason if reason.startswith("error") else f"error: {reason}"
        return [
            ToolCallResultEvent(
                message_id=f"result-{tool_id}", tool_call_id=tool_id, content=content[:MAX_RESULT_CHARS], role="tool"
            )
        ]


def _message_of(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")
    return str(error) if error else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
