"""Codex CLI's JSONL lines (`codex exec --json`, as 0.169.0 prints them) become AG-UI events a reader can follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ag_ui.core import BaseEvent

from vteam.agents.base import TurnContext
from vteam.agents.codex import VERSION, command, thread_usage
from vteam.agents.codex_events import CodexEvents, usage_delta

RUN = """\
{"type":"thread.started","thread_id":"01a1ff20-2958-75b2-a7cc-931cf5dfa9b2"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"think first"}}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > F.txt && echo done'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > F.txt && echo done'","aggregated_output":"done\\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"All done."}}
{"type":"turn.completed","usage":{"input_tokens":19138,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":48,"reasoning_output_tokens":2}}
"""  # noqa: E501 (the lines as Codex prints them)
TODOS = [{"text": "read", "completed": True}, {"text": "write", "completed": False}]


def feed(translator: CodexEvents, lines: str) -> list[BaseEvent]:
    out: list[BaseEvent] = []
    for line in lines.splitlines():
        out += translator.feed(json.loads(line))
    return out


def kinds(events: list[BaseEvent]) -> list[str]:
    return [str(e.type.value) for e in events]


def data(events: list[BaseEvent], kind: str) -> list[dict[str, Any]]:
    return [e.model_dump() for e in events if str(e.type.value) == kind]


def test_a_run_with_reasoning_a_command_and_an_answer() -> None:
    t = CodexEvents(prefix="run1")
    out = feed(t, RUN)
    assert kinds(out) == [
        "REASONING_MESSAGE_START",
        "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
    ]
    assert data(out, "REASONING_MESSAGE_CONTENT")[0]["delta"] == "think first"
    start = data(out, "TOOL_CALL_START")[0]
    assert start["tool_call_name"] == "command_execution"
    assert start["tool_call_id"] == "run1-item_1"
    assert json.loads(data(out, "TOOL_CALL_ARGS")[0]["delta"]) == {
        "command": "/bin/bash -lc 'echo hi > F.txt && echo done'"
    }
    result = data(out, "TOOL_CALL_RESULT")[0]
    assert result["tool_call_id"] == "run1-item_1"
    assert result["content"] == "done\n"
    assert data(out, "TEXT_MESSAGE_CONTENT")[0]["delta"] == "All done."
    assert t.thread_id == "01a1ff20-2958-75b2-a7cc-931cf5dfa9b2"
    assert t.text == "All done."
    assert t.turns == 1
    assert t.usage == {
        "input_tokens": 19138.0,
        "cached_input_tokens": 0.0,
        "cache_write_input_tokens": 0.0,
        "output_tokens": 48.0,
        "reasoning_output_tokens": 2.0,
    }
    assert not t.failed
    assert t.errors == []


def test_item_ids_differ_between_runs_of_one_session() -> None:
    """Codex numbers items from item_0 in every run: the ids of two turns must not collide."""
    first, second = feed(CodexEvents(), RUN), feed(CodexEvents(), RUN)
    ids = {e["tool_call_id"] for e in data(first, "TOOL_CALL_START") + data(second, "TOOL_CALL_START")}
    assert len(ids) == 2


def test_a_failing_command_is_an_error_result() -> None:
    item = {
        "id": "item_3",
        "type": "command_execution",
        "command": "/bin/bash -lc false",
        "aggregated_output": "boom\n",
        "exit_code": 1,
        "status": "failed",
    }
    out = CodexEvents(prefix="p").feed({"type": "item.completed", "item": item})
    # Never seen started: the call is shown whole before its result.
    assert kinds(out) == ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"]
    assert data(out, "TOOL_CALL_RESULT")[0]["content"] == "error: exit code 1\nboom"


@pytest.mark.parametrize(
    ("item", "name", "arguments", "result"),
    [
        (
            {"type": "file_change", "changes": [{"path": "a.py", "kind": "add"}], "status": "completed"},
            "file_change",
            {"changes": [{"path": "a.py", "kind": "add"}]},
            "add a.py",
        ),
        (
            {
                "type": "mcp_tool_call",
                "server": "docs",
                "tool": "search",
                "arguments": {"q": "x"},
                "result": {"content": [{"type": "text", "text": "found"}], "structured_content": None},
                "error": None,
                "status": "completed",
            },
            "docs.search",
            {"q": "x"},
            "found",
        ),
        (
            {
                "type": "mcp_tool_call",
                "server": "docs",
                "tool": "search",
                "arguments": {},
                "result": None,
                "error": {"message": "no such tool"},
                "status": "failed",
            },
            "docs.search",
            {},
            "error: no such tool",
        ),
        ({"type": "web_search", "query": "ag-ui events"}, "web_search", {"query": "ag-ui events"}, "ag-ui events"),
        (
            {"type": "todo_list", "items": TODOS},
            "todo_list",
            {"items": TODOS},
            "[x] read\n[ ] write",
        ),
    ],
)
def test_other_tool_items(item: dict[str, Any], name: str, arguments: Any, result: str) -> None:
    t = CodexEvents(prefix="p")
    started = t.feed({"type": "item.started", "item": {"id": "item_5", **item}})
    updated = t.feed({"type": "item.updated", "item": {"id": "item_5", **item}})
    completed = t.feed({"type": "item.completed", "item": {"id": "item_5", **item}})
    assert kinds(started) == ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END"]
    assert updated == []
    assert kinds(completed) == ["TOOL_CALL_RESULT"]
    assert data(started, "TOOL_CALL_START")[0]["tool_call_name"] == name
    assert json.loads(data(started, "TOOL_CALL_ARGS")[0]["delta"]) == arguments
    assert data(completed, "TOOL_CALL_RESULT")[0]["content"] == result


def test_a_metadata_error_item_is_only_a_warning() -> None:
    t = CodexEvents()
    warning = "Model metadata for `gpt-5.5` not found. Defaulting to fallback metadata; this can degrade performance."
    lines = [
        {"type": "thread.started", "thread_id": "t1"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": warning}},
        {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "hi"}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 2}},
    ]
    out = [event for line in lines for event in t.feed(line)]
    assert kinds(out) == ["TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"]
    assert t.warnings == [warning]
    assert t.errors == []
    assert not t.failed


def test_a_failed_turn_collects_the_errors() -> None:
    t = CodexEvents()
    message = "unexpected status 401 Unauthorized: Incorrect API key provided"
    lines = [
        {"type": "thread.started", "thread_id": "t1"},
        {"type": "turn.started"},
        {"type": "error", "message": message},
        {"type": "turn.failed", "error": {"message": message}},
    ]
    assert [event for line in lines for event in t.feed(line)] == []
    assert t.failed
    assert t.errors == [message, message]
    assert t.usage is None


def test_a_run_without_a_completed_turn_failed() -> None:
    t = CodexEvents()
    t.feed({"type": "thread.started", "thread_id": "t1"})
    assert t.failed


def test_unknown_lines_and_items_are_ignored() -> None:
    t = CodexEvents()
    assert t.feed({"type": "something.new"}) == []
    assert t.feed({"type": "item.completed", "item": {"id": "item_9", "type": "collab_thing"}}) == []
    assert t.feed({"type": "item.started", "item": {"id": "item_9", "type": "agent_message", "text": ""}}) == []


def test_usage_of_a_resumed_thread_is_the_difference() -> None:
    first = {"input_tokens": 19138.0, "output_tokens": 48.0}
    both = {"input_tokens": 28868.0, "output_tokens": 59.0, "reasoning_output_tokens": 2.0}
    assert usage_delta(first, {}) == first
    assert usage_delta(both, first) == {"input_tokens": 9730.0, "output_tokens": 11.0, "reasoning_output_tokens": 2.0}


def test_the_command_line_sets_the_provider_and_resumes() -> None:
    ctx = TurnContext(
        session="s",
        prompt="-do it",
        workdir=Path("/w"),
        home=Path("/h"),
        model="gpt-5.5",
        settings={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"},
        secrets={"OPENAI_API_KEY": "sk-secret"},
    )
    fresh = command(ctx, None)
    assert fresh[:2] == ["exec", "--json"]
    assert fresh[-2:] == ["--", "-do it"]
    assert "resume" not in fresh
    assert "sk-secret" not in " ".join(fresh), "the key goes in the environment only"
    provider = next(arg for arg in fresh if arg.startswith("model_providers.vteam="))
    assert 'base_url="http://127.0.0.1:9/v1"' in provider
    assert 'env_key="OPENAI_API_KEY"' in provider
    assert fresh[fresh.index("-m") + 1] == "gpt-5.5"
    resumed = command(ctx, "thread-1")
    assert resumed[-4:] == ["resume", "thread-1", "--", "-do it"]


def test_a_threads_usage_so_far_comes_from_its_rollout(tmp_path: Path) -> None:
    day = tmp_path / "sessions" / "2026" / "11" / "21"
    day.mkdir(parents=True)
    total = {"input_tokens": 28868, "output_tokens": 59, "total_tokens": 28927}
    lines = [
        {"type": "session_meta", "payload": {"id": "t-1"}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 1}}}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": total}}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": None}},
    ]
    (day / "rollout-2026-11-21T17-21-00-t-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert thread_usage(tmp_path, "t-1") == {"input_tokens": 28868.0, "output_tokens": 59.0, "total_tokens": 28927.0}
    assert thread_usage(tmp_path, "t-2") == {}


def test_the_makefile_installs_the_pinned_version() -> None:
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    assert f"CODEX_VERSION := {VERSION}\n" in makefile.read_text()
