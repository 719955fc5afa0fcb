"""The real Claude Code agent (the CLI bundled in claude-agent-sdk) run by vTeam against a scripted
Anthropic Messages API on 127.0.0.1: the repo changes, the events, usage and follow-ups. What every framework
does alike (a rejected key, continue, interrupt) is in test_frameworks.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.fake_anthropic import FakeAnthropic, text, thinking, tool_use
from tests.support.git import bare_repo, show
from tests.support.server import Server

pytestmark = pytest.mark.integration

KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def claude_server(tmp_path: Path) -> Iterator[tuple[Server, FakeAnthropic]]:
    fake = FakeAnthropic(api_key=KEY)
    with fake:
        env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}
        server = Server(tmp_path / "home", env=env).start()
        try:
            yield server, fake
        finally:
            server.close()


def _types(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


def test_claude_code_reads_writes_runs_and_pushes(claude_server: tuple[Server, FakeAnthropic], tmp_path: Path) -> None:
    server, fake = claude_server
    repo = bare_repo(tmp_path, files={"README.md": "# Demo\n"})
    fake.add(
        [
            thinking("Look at the README first."),
            text("Reading the README."),
            tool_use("Read", {"file_path": "README.md"}),
        ],
        [tool_use("Write", {"file_path": "NOTES.md", "content": "notes from claude\n"})],
        [tool_use("Bash", {"command": "echo ran > RAN.txt", "description": "leave a mark"})],
        [text("All done.")],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(
            api,
            "c",
            name="agent",
            framework="claude-code",
            model="sonnet",
            prompt="Add notes and leave a mark.",
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        done = wait_phase(api, "c", "agent", timeout=90)
        events = read_events(api, "c", "agent")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "vteam/agent", "NOTES.md") == "notes from claude\n"
    assert show(repo, "vteam/agent", "RAN.txt") == "ran\n"
    assert [t["toolCallName"] for t in _types(events, "TOOL_CALL_START")] == ["Read", "Write", "Bash"]
    results = _types(events, "TOOL_CALL_RESULT")
    assert len(results) == 3
    assert "# Demo" in results[0]["content"]
    args = "".join(a["delta"] for a in _types(events, "TOOL_CALL_ARGS") if a["toolCallId"] == results[1]["toolCallId"])
    assert '"file_path": "NOTES.md"' in args or '"file_path":"NOTES.md"' in args
    assert "Look at the README first." in "".join(r["delta"] for r in _types(events, "REASONING_MESSAGE_CONTENT"))
    assert "All done." in text_of(events)
    result = done["status"]["result"]
    assert result["text"] == "All done."
    assert result["turns"] == 4
    assert result["usage"]["input_tokens"] > 0
    assert result["usage"]["output_tokens"] > 0
    assert result["costUsd"] > 0
    scripted = fake.of_kind("script")
    assert len(scripted) == 4
    assert all(r.body["model"].startswith("claude-") for r in scripted)
    assert fake.errors == [], "every request and response matched Anthropic's published types"
    assert KEY not in str(events)
    assert KEY not in server.log()


def test_a_follow_up_after_an_interrupt_resumes_the_conversation(
    claude_server: tuple[Server, FakeAnthropic], tmp_path: Path
) -> None:
    """The CLI is killed mid-command (test_frameworks.py checks the command dies), yet its transcript holds:
    the follow-up turn carries the earlier turns of the same conversation."""
    server, fake = claude_server
    marker = '"$HOME/started"'
    fake.add(
        [tool_use("Bash", {"command": f"touch {marker}; sleep 600", "description": "wait"})],
        [text("Picked up after the interrupt.")],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(api, "c", name="long", framework="claude-code", prompt="Wait a while.", interactive=True)
        deadline = time.monotonic() + 60
        while server.session_file("c", "long", "home/started") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.session_file("c", "long", "home/started"), "Claude Code started the command"
        api.post(sessions_path("c", "long") + "/interrupt")
        api.post(sessions_path("c", "long") + "/messages", json={"text": "And now?"})
        wait_turns(api, "c", "long", 2)
        events = read_events(api, "c", "long")
        api.post(sessions_path("c", "long") + "/end")
        assert wait_phase(api, "c", "long", timeout=30)["status"]["phase"] == "Completed"
    runs = [(e["type"], e["data"].get("code")) for e in events if e["type"].startswith("RUN_")]
    assert runs == [("RUN_STARTED", None), ("RUN_ERROR", "INTERRUPTED"), ("RUN_STARTED", None), ("RUN_FINISHED", None)]
    assert "Picked up after the interrupt." in text_of(events)
    scripted = fake.of_kind("script")
    first, follow_up = scripted[0], scripted[-1]
    assert len(follow_up.body["messages"]) > len(first.body["messages"]), "the follow-up carries the earlier turns"
    assert "Wait a while." in str(follow_up.body["messages"])
    assert "And now?" in str(follow_up.body["messages"][-1])
    assert fake.errors == []
