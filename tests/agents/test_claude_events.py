"""Claude Code's stream and messages become AG-UI events a reader can follow."""

from __future__ import annotations

from typing import Any

from ag_ui.core import BaseEvent
from claude_agent_sdk import TextBlock, ToolResultBlock, ToolUseBlock

from vteam.agents.claude_events import ClaudeEvents


def kinds(events: list[BaseEvent]) -> list[str]:
    return [str(e.type.value) for e in events]


def stream(translator: ClaudeEvents, *events: dict[str, Any]) -> list[BaseEvent]:
    out: list[BaseEvent] = []
    for event in events:
        out += translator.feed_stream(event)
    return out


def test_streamed_text_thinking_and_tool_call() -> None:
    t = ClaudeEvents()
    out = stream(
        t,
        {"type": "message_start", "message": {"id": "msg_1"}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "look."}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read"},
        },
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"file_'}},
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'path": "a"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
        {"type": "message_stop"},
    )
    assert kinds(out) == [
        "REASONING_MESSAGE_START",
        "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
    ]
    start = out[7].model_dump()
    assert start["tool_call_name"] == "Read"
    assert start["parent_message_id"] == "msg_1"
    args = "".join(e.model_dump()["delta"] for e in out if str(e.type.value) == "TOOL_CALL_ARGS")
    assert args == '{"file_path": "a"}'
    # the whole message that follows its stream adds nothing twice
    whole = [TextBlock(text="Let me look."), ToolUseBlock(id="toolu_1", name="Read", input={"file_path": "a"})]
    assert t.feed_assistant(whole, "msg_1") == []


def test_whole_messages_fill_in_what_no_stream_showed() -> None:
    t = ClaudeEvents()
    out = t.feed_assistant(
        [TextBlock(text="Hi"), ToolUseBlock(id="toolu_9", name="Bash", input={"command": "ls"})], "m"
    )
    assert kinds(out) == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
    ]
    assert out[4].model_dump()["delta"] == '{"command": "ls"}'


def test_tool_results_and_errors() -> None:
    t = ClaudeEvents()
    out = t.feed_user(
        [
            ToolResultBlock(tool_use_id="toolu_1", content="file text"),
            ToolResultBlock(tool_use_id="toolu_2", content=[{"type": "text", "text": "boom"}], is_error=True),
            TextBlock(text="not a result"),
        ]
    )
    assert [(e.model_dump()["tool_call_id"], e.model_dump()["content"]) for e in out] == [
        ("toolu_1", "file text"),
        ("toolu_2", "error: boom"),
    ]


def test_deltas_for_unknown_blocks_are_ignored() -> None:
    assert stream(ClaudeEvents(), {"type": "content_block_delta", "index": 5, "delta": {"text": "x"}}) == []
