"""Claude Code's output as AG-UI events: streamed text, thinking and tool calls, then tool results.

Claude Code (through claude-agent-sdk) yields raw Anthropic stream events as they arrive
(`StreamEvent`), whole assistant messages after them, user messages carrying tool results, and a
final `ResultMessage`. Streams give the live view; whole messages only fill in what no stream showed.
"""

from __future__ import annotations

import json
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
from claude_agent_sdk import TextBlock, ToolResultBlock, ToolUseBlock

MAX_RESULT_CHARS = 32_000


class ClaudeEvents:
    """Stateful translator for one turn; `feed_*` return the AG-UI events to emit, in order."""

    def __init__(self) -> None:
        self._message_id = "msg"
        self._blocks: dict[int, tuple[str, str]] = {}
        self._streamed_tools: set[str] = set()
        self._streamed_text = False

    def feed_stream(self, event: dict[str, Any]) -> list[BaseEvent]:
        kind = event.get("type")
        if kind == "message_start":
            self._message_id = str(event.get("message", {}).get("id") or self._message_id)
            self._blocks.clear()
            return []
        index = int(event.get("index", 0))
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            block_type = block.get("type")
            if block_type == "text":
                block_id = f"{self._message_id}-{index}"
                self._blocks[index] = ("text", block_id)
                self._streamed_text = True
                return [TextMessageStartEvent(message_id=block_id, role="assistant")]
            if block_type == "thinking":
                block_id = f"{self._message_id}-{index}-thinking"
                self._blocks[index] = ("thinking", block_id)
                return [ReasoningMessageStartEvent(message_id=block_id)]
            if block_type == "tool_use":
                tool_id = str(block.get("id"))
                self._blocks[index] = ("tool", tool_id)
                self._streamed_tools.add(tool_id)
                start = ToolCallStartEvent(
                    tool_call_id=tool_id, tool_call_name=str(block.get("name")), parent_message_id=self._message_id
                )
                return [start]
            return []
        opened = self._blocks.get(index)
        if opened is None:
            return []
        block_kind, block_id = opened
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if block_kind == "text" and delta.get("text"):
                return [TextMessageContentEvent(message_id=block_id, delta=delta["text"])]
            if block_kind == "thinking" and delta.get("thinking"):
                return [ReasoningMessageContentEvent(message_id=block_id, delta=delta["thinking"])]
            if block_kind == "tool" and delta.get("partial_json"):
                return [ToolCallArgsEvent(tool_call_id=block_id, delta=delta["partial_json"])]
            return []
        if kind == "content_block_stop":
            del self._blocks[index]
            if block_kind == "text":
                return [TextMessageEndEvent(message_id=block_id)]
            if block_kind == "thinking":
                return [ReasoningMessageEndEvent(message_id=block_id)]
            return [ToolCallEndEvent(tool_call_id=block_id)]
        return []

    def feed_assistant(self, blocks: list[Any], message_id: str | None) -> list[BaseEvent]:
        """A whole assistant message: only what its stream did not already show."""
        out: list[BaseEvent] = []
        for index, block in enumerate(blocks):
            if isinstance(block, ToolUseBlock) and block.id not in self._streamed_tools:
                self._streamed_tools.add(block.id)
                out += [
                    ToolCallStartEvent(tool_call_id=block.id, tool_call_name=block.name, parent_message_id=message_id),
                    ToolCallArgsEvent(tool_call_id=block.id, delta=json.dumps(block.input)),
                    ToolCallEndEvent(tool_call_id=block.id),
                ]
            elif isinstance(block, TextBlock) and not self._streamed_text and block.text:
                block_id = f"{message_id or 'msg'}-{index}"
                out += [
                    TextMessageStartEvent(message_id=block_id, role="assistant"),
                    TextMessageContentEvent(message_id=block_id, delta=block.text),
                    TextMessageEndEvent(message_id=block_id),
                ]
        return out

    def feed_user(self, blocks: list[Any]) -> list[BaseEvent]:
        """Tool results come back to the model as a user message."""
        out: list[BaseEvent] = []
        for block in blocks:
            if not isinstance(block, ToolResultBlock):
                continue
            content = block.content
            text = content if isinstance(content, str) else _text_of(content)
            if block.is_error:
                text = f"error: {text}"
            out.append(
                ToolCallResultEvent(
                    message_id=f"result-{block.tool_use_id}",
                    tool_call_id=block.tool_use_id,
                    content=text[:MAX_RESULT_CHARS],
                    role="tool",
                )
            )
        return out


def _text_of(content: list[dict[str, Any]] | None) -> str:
    parts = [str(part.get("text", "")) for part in content or [] if isinstance(part, dict)]
    return "\n".join(p for p in parts if p)
