"""Gemini CLI's JSONL lines (`--output-format stream-json`, as 0.61.0 prints them) become AG-UI events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ag_ui.core import BaseEvent

from vteam.agents.base import Resume, TurnContext
from vteam.agents.gemini import VERSION, _adopt, command, environment, readable, settings
from vteam.agents.gemini_events import GeminiEvents

RUN = """\
{"type":"init","timestamp":"2026-11-21T17:31:17.339Z","session_id":"cea02657-4346-438d-bb12-c6853b411dfe","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2026-11-21T17:31:17.341Z","role":"user","content":"Write notes"}
{"type":"message","timestamp":"2026-11-21T17:31:17.458Z","role":"assistant","content":"Let me ","delta":true}
{"type":"message","timestamp":"2026-11-21T17:31:17.459Z","role":"assistant","content":"write.","delta":true}
{"type":"tool_use","timestamp":"2026-11-21T17:31:17.563Z","tool_name":"write_file","tool_id":"write_file__write_file_1795282277463_0","parameters":{"file_path":"/tmp/w/NOTES.md","content":"hi\\n"}}
{"type":"tool_result","timestamp":"2026-11-21T17:31:17.654Z","tool_id":"write_file__write_file_1795282277463_0","status":"success"}
{"type":"message","timestamp":"2026-11-21T17:31:17.689Z","role":"assistant","content":"All done.","delta":true}
{"type":"result","timestamp":"2026-11-21T17:31:17.692Z","status":"success","stats":{"total_tokens":23606,"input_tokens":23566,"output_tokens":40,"cached":0,"input":23566,"duration_ms":354,"tool_calls":1,"models":{"gemini-2.5-pro":{"total_tokens":23606,"input_tokens":23566,"output_tokens":40,"cached":0,"input":23566}}}}
"""
FAILED_TOOL = """\
{"type":"tool_use","timestamp":"2026-11-21T17:31:34.020Z","tool_name":"read_file","tool_id":"read_file__read_file_1795282293980_0","parameters":{"file_path":"/tmp/w/nope.md"}}
{"type":"tool_result","timestamp":"2026-11-21T17:31:34.052Z","tool_id":"read_file__read_file_1795282293980_0","status":"error","output":"File not found.","error":{"type":"file_not_found","message":"File not found: /tmp/w/nope.md"}}
"""  # noqa: E501
REJECTED = """\
{"type":"init","timestamp":"2026-11-21T17:31:39.406Z","session_id":"074d270b-7108-48da-bbe4-831d22416d9b","model":"gemini-2.5-flash"}
{"type":"message","timestamp":"2026-11-21T17:31:39.408Z","role":"user","content":"hi"}
{"type":"result","timestamp":"2026-11-21T17:31:39.512Z","status":"error","error":{"type":"unknown","message":"[API Error: {\\"error\\":{\\"code\\":400,\\"message\\":\\"API key not valid. Please pass a valid API key.\\",\\"status\\":\\"INVALID_ARGUMENT\\"}}]"},"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0,"duration_ms":0,"tool_calls":0,"models":{}}}
"""  # noqa: E501


def feed(translator: GeminiEvents, lines: str) -> list[BaseEvent]:
    out: list[BaseEvent] = []
    for line in lines.splitlines():
        out += translator.feed(json.loads(line))
    return out + translator.close()


def kinds(events: list[BaseEvent]) -> list[str]:
    return [str(e.type.value) for e in events]


def data(events: list[BaseEvent], kind: str) -> list[dict[str, Any]]:
    return [e.model_dump() for e in events if str(e.type.value) == kind]


def test_a_run_with_text_a_tool_call_and_an_answer() -> None:
    t = GeminiEvents(prefix="run1")
    out = feed(t, RUN)
    assert kinds(out) == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
    ]
    messages = data(out, "TEXT_MESSAGE_START")
    assert len({m["message_id"] for m in messages}) == 2
    assert all(m["message_id"].startswith("run1-") for m in messages)
    assert "".join(d["delta"] for d in data(out, "TEXT_MESSAGE_CONTENT")[:2]) == "Let me write."
    start = data(out, "TOOL_CALL_START")[0]
    assert start["tool_call_name"] == "write_file"
    assert start["tool_call_id"] == "run1-write_file__write_file_1795282277463_0"
    assert json.loads(data(out, "TOOL_CALL_ARGS")[0]["delta"]) == {"file_path": "/tmp/w/NOTES.md", "content": "hi\n"}
    result = data(out, "TOOL_CALL_RESULT")[0]
    assert result["tool_call_id"] == start["tool_call_id"]
    assert result["content"] == ""
    assert t.session_id == "cea02657-4346-438d-bb12-c6853b411dfe"
    assert t.model == "gemini-2.5-pro"
    assert t.text == "All done."
    assert not t.failed
    assert t.usage == {
        "input_tokens": 23566.0,
        "output_tokens": 40.0,
        "total_tokens": 23606.0,
        "cached_input_tokens": 0.0,
        "tool_calls": 1.0,
    }


def test_a_failed_tool_reports_its_error() -> None:
    t = GeminiEvents(prefix="p")
    out = feed(t, FAILED_TOOL)
    assert kinds(out) == ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"]
    assert data(out, "TOOL_CALL_RESULT")[0]["content"] == "error: File not found: /tmp/w/nope.md"


def test_a_tool_result_with_output_and_no_error_object() -> None:
    t = GeminiEvents(prefix="p")
    ok = t.feed({"type": "tool_result", "tool_id": "a", "status": "success", "output": "x" * 40_000})
    bad = t.feed({"type": "tool_result", "tool_id": "b", "status": "error", "output": "boom"})
    assert len(data(ok, "TOOL_CALL_RESULT")[0]["content"]) == 32_000
    assert data(bad, "TOOL_CALL_RESULT")[0]["content"] == "error: boom"


def test_a_rejected_key_fails_with_the_apis_words() -> None:
    t = GeminiEvents()
    assert feed(t, REJECTED) == []
    assert t.failed
    assert t.session_id == "074d270b-7108-48da-bbe4-831d22416d9b"
    assert readable(t.errors[0]) == "API key not valid. Please pass a valid API key. (400 INVALID_ARGUMENT)"
    assert readable("plain words") == "plain words"
    assert readable("[API Error: {not json}]") == "[API Error: {not json}]"


def test_a_run_without_a_result_failed_and_errors_are_kept() -> None:
    t = GeminiEvents()
    out = feed(
        t,
        '{"type":"message","role":"assistant","content":"half","delta":true}\n'
        '{"type":"error","severity":"warning","message":"Loop detected"}\n'
        '{"type":"error","severity":"error","message":"Maximum session turns exceeded"}\n',
    )
    assert kinds(out) == ["TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"]
    assert t.failed
    assert t.warnings == ["Loop detected"]
    assert t.errors == ["Maximum session turns exceeded"]
    assert t.text == "half"


def test_the_command_resumes_and_keeps_a_dash_prompt(tmp_path: Path) -> None:
    ctx = TurnContext(session="s", prompt="-rf what", workdir=tmp_path, home=tmp_path / "home", model="gemini-2.5-pro")
    assert command(ctx, None) == [
        "--prompt=-rf what",
        "--output-format",
        "stream-json",
        "--yolo",
        "--model",
        "gemini-2.5-pro",
    ]
    assert command(ctx, "abc")[-2:] == ["--resume", "abc"]
    assert VERSION == "0.61.0"


def test_the_environment_carries_the_key_and_trust_but_no_vteam_variables(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("VTEAM_SECRET_THING", "x")
    ctx = TurnContext(
        session="s",
        prompt="p",
        workdir=tmp_path,
        home=tmp_path / "home",
        secrets={"GEMINI_API_KEY": "k"},
        settings={"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9/"},
    )
    env = environment(ctx)
    assert env["GEMINI_API_KEY"] == "k"
    assert env["GEMINI_CLI_HOME"] == str(tmp_path / "home")
    assert env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9"
    assert not any(name.startswith("VTEAM_") for name in env)
    assert settings(3)["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings(1)["general"] == {
        "disableAutoUpdate": True,
        "disableUpdateNag": True,
        "maxAttempts": 1,
        "retryFetchErrors": False,
    }


def test_a_continued_session_adopts_the_parents_chat(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    project = parent / ".gemini" / "tmp" / "repo"
    (project / "chats").mkdir(parents=True)
    (project / "chats" / "session-2026-11-21T17-31-cea02657.jsonl").write_text("{}\n")
    (project / ".project_root").write_text("/old/repo")
    (parent / ".gemini" / "projects.json").write_text(json.dumps({"projects": {"/old/repo": "repo"}}))
    resume = Resume("cea02657-4346-438d-bb12-c6853b411dfe", parent)
    child = tmp_path / "child"
    assert _adopt(resume, child, Path("/new/repo"))
    assert json.loads((child / ".gemini" / "projects.json").read_text()) == {"projects": {"/new/repo": "repo"}}
    assert (child / ".gemini" / "tmp" / "repo" / ".project_root").read_text() == "/new/repo"
    assert not _adopt(resume, child, Path("/new/repo")), "only once, into an empty home"
    assert not _adopt(Resume("ffffffff-0000", parent), tmp_path / "other", Path("/x")), "an unknown chat"
