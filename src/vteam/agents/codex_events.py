"""Codex CLI's JSONL output (`codex exec --json`) as AG-UI events: messages, reasoning, tool calls and results.

Codex prints one JSON object a line: `thread.started` (the thread id, to resume), `turn.started`, items as they
start and complete (`item.started` / `item.updated` / `item.completed`), then `turn.completed` with the token usage
or `turn.failed` / `error`. Messages and reasoning arrive whole, at `item.completed`; a command or other tool call
opens at `item.started` (its name and arguments) and gets its result at `item.completed`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ag_ui.core import (
    BaseEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

MAX_RESULT_CHARS = 32_000
TOOL_ITEMS = frozenset({"command_execution", "file_change", "mcp_tool_call", "web_search", "todo_list"})
FAILED_STATUSES = frozenset({"failed", "declined"})


class CodexEvents:
    """Stateful translator for one `codex exec` run; `feed` returns the AG-UI events for one JSONL line, in order.

    Beside the events it collects what the run reported: the thread id, the (cumulative) usage of the last
    completed turn, the last agent message, the number of turns, errors and warnings.
    """

    def __init__(self, prefix: str | None = None) -> None:
        # Codex numbers items per run (item_0, item_1, …): a per-run prefix keeps ids unique over a session.
        self._prefix = prefix or uuid.uuid4().hex[:8]
        self._started: set[str] = set()
        self.thread_id: str | None = None
        self.usage: dict[str, float] | None = None
        self.text: str | None = None
        self.turns = 0
        self.completed_turns = 0
        self.turn_failed = False
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def feed(self, line: dict[str, Any]) -> list[BaseEvent]:
        kind = line.get("type")
        if kind == "thread.started":
            self.thread_id = str(line.get("thread_id") or "") or self.thread_id
        elif kind == "turn.started":
            self.turns += 1
        elif kind == "turn.completed":
            self.completed_turns += 1
            usage = line.get("usage") or {}
            self.usage = {k: float(v) for k, v in usage.items() if isinstance(v, int | float)}
        elif kind == "turn.failed":
            self.turn_failed = True
            self.errors.append(str((line.get("error") or {}).get("message") or "the turn failed"))
        elif kind == "error":
            self.errors.append(str(line.get("message") or "unknown error"))
        elif kind in ("item.started", "item.completed"):
            item = line.get("item") or {}
            if isinstance(item, dict):
                return self._started_item(item) if kind == "item.started" else self._completed_item(item)
        return []

    @property
    def failed(self) -> bool:
        """A turn failed, or none completed (Codex then printed only `error` lines, or nothing)."""
        return self.turn_failed or self.completed_turns == 0

    def _id(self, item: dict[str, Any]) -> str:
        return f"{self._prefix}-{item.get('id') or uuid.uuid4().hex[:8]}"

    def _started_item(self, item: dict[str, Any]) -> list[BaseEvent]:
        if item.get("type") not in TOOL_ITEMS:
            return []
        tool_id = self._id(item)
        self._started.add(tool_id)
        return _tool_call(tool_id, item)

    def _completed_item(self, item: dict[str, Any]) -> list[BaseEvent]:
        item_type = item.get("type")
        item_id = self._id(item)
        if item_type == "agent_message":
            message = str(item.get("text") or "")
            self.text = message
            return [
                TextMessageStartEvent(message_id=item_id, role="assistant"),
                *([TextMessageContentEvent(message_id=item_id, delta=message)] if message else []),
                TextMessageEndEvent(message_id=item_id),
            ]
        if item_type == "reasoning":
            thought = str(item.get("text") or "")
            if not thought:
                return []
            return [
                ReasoningMessageStartEvent(message_id=item_id),
                ReasoningMessageContentEvent(message_id=item_id, delta=thought),
                ReasoningMessageEndEvent(message_id=item_id),
            ]
        if item_type == "error":
            # A non-fatal notice (e.g. "Model metadata for `x` not found"): fatal errors come as `error` lines.
            self.warnings.append(str(item.get("message") or ""))
            return []
        if item_type not in TOOL_ITEMS:
            return []
        out = [] if item_id in self._started else _tool_call(item_id, item)
        self._started.discard(item_id)
        content = _result_of(item)
        if item.get("status") in FAILED_STATUSES and not content.startswith("error"):
            content = f"error: {content}" if content else f"error: {item.get('status')}"
        result = ToolCallResultEvent(
            message_id=f"result-{item_id}", tool_call_id=item_id, content=content[:MAX_RESULT_CHARS], role="tool"
        )
        return [*out, result]


def usage_delta(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """One turn's usage from two cumulative totals: a resumed thread reports its usage since it started."""
    return {key: max(0.0, value - before.get(key, 0.0)) for key, value in now.items()}


def _tool_call(tool_id: str, item: dict[str, Any]) -> list[BaseEvent]:
    name, arguments = _name_and_arguments(item)
    return [
        ToolCallStartEvent(tool_call_id=tool_id, tool_call_name=name),
        ToolCallArgsEvent(tool_call_id=tool_id, delta=json.dumps(arguments)),
        ToolCallEndEvent(tool_call_id=tool_id),
    ]


def _name_and_arguments(item: dict[str, Any]) -> tuple[str, Any]:
    item_type = str(item.get("type"))
    if item_type == "command_execution":
        return item_type, {"command": item.get("command", "")}
    if item_type == "file_change":
        return item_type, {"changes": item.get("changes") or []}
    if item_type == "mcp_tool_call":
        name = f"{item.get('server') or 'mcp'}.{item.get('tool') or 'tool'}"
        return name, item.get("arguments") if item.get("arguments") is not None else {}
    if item_type == "web_search":
        return item_type, {"query": item.get("query", "")}
    if item_type == "todo_list":
        return item_type, {"items": item.get("items") or []}
    return item_type, {}


def _result_of(item: dict[str, Any]) -> str:
    item_type = item.get("type")
    if item_type == "command_execution":
        output = str(item.get("aggregated_output") or "")
        code = item.get("exit_code")
        if isinstance(code, int) and code != 0:
            return f"error: exit code {code}\n{output}".rstrip("\n")
        return output
    if item_type == "file_change":
        return "\n".join(
            f"{change.get('kind', 'update')} {change.get('path', '')}"
            for change in item.get("changes") or []
            if isinstance(change, dict)
        )
    if item_type == "mcp_tool_call":
        error = item.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"error: {error['message']}"
        result = item.get("result")
        if isinstance(result, dict):
            texts = [str(p.get("text")) for p in result.get("content") or [] if isinstance(p, dict) and p.get("text")]
            if texts:
                return "\n".join(texts)
            return json.dumps(result.get("structured_content") or result)
        return "" if result is None else json.dumps(result)
    if item_type == "web_search":
        return str(item.get("query") or "")
    if item_type == "todo_list":
        return "\n".join(
            f"[{'x' if entry.get('completed') else ' '}] {entry.get('text', '')}"
            for entry in item.get("items") or []
            if isinstance(entry, dict)
        )
    return ""
