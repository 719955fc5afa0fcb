"""The real Claude Code agent (the CLI bundled in claude-agent-sdk) run by vTeam against a scripted
Anthropic Messages API on 127.0.0.1: the repo changes, the events, usage, follow-ups and failures."""

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


def test_follow_up_messages_resume_the_conversation(
    claude_server: tuple[Server, FakeAnthropic], tmp_path: Path
) -> None:
    server, fake = claude_server
    fake.add([text("Hello! What next?")], [text("Second answer, same conversation.")])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(api, "c", name="chat", framework="claude-code", prompt="Say hello.", interactive=True)
        wait_turns(api, "c", "chat", 1)
        api.post(sessions_path("c", "chat") + "/messages", json={"text": "And now?"})
        wait_turns(api, "c", "chat", 2)
        api.post(sessions_path("c", "chat") + "/end")
        done = wait_phase(api, "c", "chat", timeout=60)
        events = read_events(api, "c", "chat")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Second answer, same conversation." in text_of(events)
    first, second = fake.of_kind("script")
    assert len(second.body["messages"]) > len(first.body["messages"]), "the follow-up carries the earlier turns"
    assert "Hello! What next?" in str(second.body["messages"])
    assert "And now?" in str(second.body["messages"][-1])
    assert done["status"]["result"]["turns"] == 2
    assert fake.errors == []


def test_interrupt_stops_claude_mid_command(claude_server: tuple[Server, FakeAnthropic], tmp_path: Path) -> None:
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
    # The CLI was killed mid-command, yet its transcript held: the next turn continued the same conversation.
    follow_up = fake.of_kind("script")[-1]
    assert "Wait a while." in str(follow_up.body["messages"])
    assert "And now?" in str(follow_up.body["messages"][-1])
    assert fake.errors == []


def test_a_rejected_key_fails_the_session_with_the_reason(tmp_path: Path) -> None:
    with FakeAnthropic(api_key="the-right-key") as fake:
        env = {"ANTHROPIC_API_KEY": "a-wrong-key-1234", "ANTHROPIC_BASE_URL": fake.url}
        server = Server(tmp_path / "home", env=env).start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "c"})
                create_session(api, "c", name="denied", framework="claude-code", prompt="hi")
                done = wait_phase(api, "c", "denied", timeout=60)
                events = read_events(api, "c", "denied")
        finally:
            server.close()
    message = done["status"]["message"]
    assert done["status"]["phase"] == "Failed"
    assert message == "Claude Code: the API key was rejected (401 authentication_failed)", message
    assert "a-wrong-key-1234" not in message
    unauthorized = [r for r in fake.of_kind("unauthorized") if r.path == "/v1/messages"]
    assert len(unauthorized) == 1, "a rejected key is not retried"
    assert [e["data"]["message"] for e in events if e["type"] == "RUN_ERROR"] == [message]


def test_a_continued_session_resumes_claudes_conversation(claude_server: tuple[Server, FakeAnthropic]) -> None:
    server, fake = claude_server
    fake.add([text("The first session's answer.")], [text("Picked up where we left off.")])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(api, "c", name="first", framework="claude-code", prompt="Start something.")
        parent = wait_phase(api, "c", "first", timeout=60)
        assert parent["status"]["conversationId"]
        response = api.post(sessions_path("c", "first") + "/continue", json={"prompt": "Go on.", "name": "second"})
        assert response.status_code == 201, response.text
        child = wait_phase(api, "c", "second", timeout=60)
    assert child["status"]["phase"] == "Completed", child["status"]
    first, second = fake.of_kind("script")
    assert "The first session's answer." not in str(first.body["messages"])
    assert "The first session's answer." in str(second.body["messages"]), "the child sent the parent's conversation"
    assert "Go on." in str(second.body["messages"][-2:]), "then the new prompt (and a note that the cwd moved)"
    assert child["status"]["conversationId"] == parent["status"]["conversationId"]
    assert fake.errors == []
