"""mini-swe-agent's messages, as the driver (`mini_swe_driver.py`) prints them, become AG-UI events.

The driver prints one JSON object a line: `{"type": "message", "message": {...}}` for each message the agent adds
(an assistant message with `tool_calls` of its one tool, `bash`; a `tool` message with the command's output, its
return code in `extra.returncode`; a `user` message when a reply had no tool call (a format error); an `exit`
message when the run ends), then `{"type": "result", ...}` with the exit status, submission, usage and cost.
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
SUBMITTED = "Submitted"


class MiniSweEvents:
    """Stateful translator for one driver run; `feed` returns the AG-UI events for one line, in order."""

    def __init__(self, prefix: str | None = None) -> None:
        # Tool call ids repeat across runs (call_1, …) with some providers: a per-run prefix keeps them unique.
        self._prefix = prefix or uuid.uuid4().hex[:8]
        self._count = 0
        self.result: dict[str, Any] | None = None
        self.exit_status: str | None = None
        self.text: str | None = None
        self.steps = 0

    def feed(self, line: dict[str, Any]) -> list[BaseEvent]:
        if line.get("type") == "result":
            self.result = line
            return []
        message = line.get("message")
        if line.get("type") != "message" or not isinstance(message, dict):
            return []
        role = message.get("role")
        raw_extra = message.get("extra")
        extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
        if role == "assistant":
            self.steps += 1
            return self._assistant(message)
        if role == "tool":
            return self._tool_result(message, extra)
        if role == "exit":
            self.exit_status = str(extra.get("exit_status") or message.get("content") or "")
            submission = str(extra.get("submission") or "")
            if self.exit_status == SUBMITTED:
                self.text = submission
                return self._text(submission) if submission.strip() else []
            return []
        return []

    @property
    def submitted(self) -> bool:
        return self.exit_status == SUBMITTED

    def _next_id(self, kind: str) -> str:
        self._count += 1
        return f"{self._prefix}-{kind}-{self._count}"

    def _text(self, content: str) -> list[BaseEvent]:
        message_id = self._next_id("msg")
        return [
            TextMessageStartEvent(message_id=message_id, role="assistant"),
            TextMessageContentEvent(message_id=message_id, delta=content),
            TextMessageEndEvent(message_id=message_id),
        ]

    def _assistant(self, message: dict[str, Any]) -> list[BaseEvent]:
        out: list[BaseEvent] = []
        content = _content_text(message.get("content"))
        if content.strip():
            out += self._text(content)
        for call in message.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call.get("function") or {}
            tool_id = f"{self._prefix}-{call.get('id') or uuid.uuid4().hex[:8]}"
            arguments = function.get("arguments")
            out += [
                ToolCallStartEvent(tool_call_id=tool_id, tool_call_name=str(function.get("name") or "bash")),
                ToolCallArgsEvent(
                    tool_call_id=tool_id,
                    delta=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                ),
                ToolCallEndEvent(tool_call_id=tool_id),
            ]
        return out

    def _tool_result(self, message: dict[str, Any], extra: dict[str, Any]) -> list[BaseEvent]:
        call_id = message.get("tool_call_id")
        if not call_id:
            return []
        tool_id = f"{self._prefix}-{call_id}"
        content = _content_text(message.get("content"))
        output = content
        # The content is the observation template's rendering: JSON {"returncode", "output"} or XML-ish text.
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(extra.get("raw_output"), str):
            output = extra["raw_output"]
        elif isinstance(parsed, dict) and "output" in parsed:
            output = str(parsed.get("output") or "")
        code = extra.get("returncode")
        if isinstance(code, int) and code != 0:
            output = f"error: exit code {code}\n{output}".rstrip("\n")
        elif extra.get("exception_info"):
            output = f"error: {extra['exception_info']}\n{output}".rstrip("\n")
        return [
            ToolCallResultEvent(
                message_id=f"result-{tool_id}", tool_call_id=tool_id, content=output[:MAX_RESULT_CHARS], role="tool"
            )
        ]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""
