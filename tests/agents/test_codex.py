"""The real Codex CLI (`@openai/codex`, installed by `make setup`) run by vTeam against a scripted OpenAI Responses
API on 127.0.0.1: the repo changes, the events, usage, follow-ups and failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.fake_openai import FakeOpenAI, function_call, reasoning, text
from tests.support.git import bare_repo, show
from tests.support.server import Server
from vteam.agents.codex import codex_binary

pytestmark = pytest.mark.integration

KEY = "sk-test-codex-0123456789abcdef"


@pytest.fixture(autouse=True)
def codex_installed() -> None:
    """`make test` installs Codex (`make setup`): its absence is a failure, not a reason to skip."""
    assert codex_binary() is not None, "the Codex CLI is not installed: run `make setup` (npm @openai/codex)"


@pytest.fixture
def codex_server(tmp_path: Path) -> Iterator[tuple[Server, FakeOpenAI]]:
    fake = FakeOpenAI(api_key=KEY)
    with fake:
        env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url}
        server = Server(tmp_path / "home", env=env).start()
        try:
            yield server, fake
        finally:
            server.close()


def _types(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


def test_codex_runs_a_command_and_pushes(codex_server: tuple[Server, FakeOpenAI], tmp_path: Path) -> None:
    server, fake = codex_server
    repo = bare_repo(tmp_path, files={"README.md": "# Demo\n"})
    fake.add(
        [reasoning("Write the notes with a command."), function_call("exec_command", {"cmd": "cat README.md"})],
        [function_call("exec_command", {"cmd": "printf 'notes from codex\\n' > NOTES.md && echo written"})],
        [text("All done.")],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(
            api,
            "c",
            name="agent",
            framework="codex",
            model="gpt-5.5",
            prompt="Add notes.",
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        done = wait_phase(api, "c", "agent", timeout=90)
        events = read_events(api, "c", "agent")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "vteam/agent", "NOTES.md") == "notes from codex\n"
    starts = _types(events, "TOOL_CALL_START")
    assert [t["toolCallName"] for t in starts] == ["command_execution", "command_execution"]
    args = "".join(a["delta"] for a in _types(events, "TOOL_CALL_ARGS") if a["toolCallId"] == starts[1]["toolCallId"])
    assert "NOTES.md" in args
    results = _types(events, "TOOL_CALL_RESULT")
    assert len(results) == 2
    assert "# Demo" in results[0]["content"]
    assert "written" in results[1]["content"]
    assert "Write the notes with a command." in "".join(r["delta"] for r in _types(events, "REASONING_MESSAGE_CONTENT"))
    assert "All done." in text_of(events)
    result = done["status"]["result"]
    assert result["text"] == "All done."
    assert result["usage"]["input_tokens"] > 0
    assert result["usage"]["output_tokens"] > 0
    scripted = fake.of_kind("script")
    assert len(scripted) == 3
    assert all(r.body["model"] == "gpt-5.5" for r in scripted)
    assert all(r.path == "/v1/responses" and r.body["stream"] is True for r in scripted)
    tools = {tool.get("name"): tool for tool in scripted[0].body["tools"]}
    assert tools["exec_command"]["parameters"]["required"] == ["cmd"], "the schema the scripted calls rely on"
    assert fake.errors == [], "every request and response matched OpenAI's published types"
    assert KEY not in str(events)
    assert KEY not in server.log()


def test_follow_up_messages_resume_the_thread(codex_server: tuple[Server, FakeOpenAI]) -> None:
    server, fake = codex_server
    fake.add([text("Hello! What next?")], [text("Second answer, same thread.")])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "c"})
        create_session(api, "c", name="chat", framework="codex", prompt="Say hello.", interactive=True)
        wait_turns(api, "c", "chat", 1)
        api.post(sessions_path("c", "chat") + "/messages", json={"text": "And now?"})
        wait_turns(api, "c", "chat", 2)
        api.post(sessions_path("c", "chat") + "/end")
        done = wait_phase(api, "c", "chat", timeout=60)
        events = read_events(api, "c", "chat")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Second answer, same thread." in text_of(events)
    first, second = fake.of_kind("script")
    assert len(second.body["input"]) > len(first.body["input"]), "the follow-up carries the earlier turn"
    assert "Hello! What next?" in str(second.body["input"])
    assert "And now?" in str(second.body["input"][-1])
    assert done["status"]["conversationId"]
    result = done["status"]["result"]
    assert result["turns"] == 2
    # Codex reports a resumed thread's usage cumulatively; each turn counts its own, so the sum is what the fake
    # counted for the two requests (a byte in four), not the first request's tokens twice over.
    counted = [_tokens(r.body) for r in (first, second)]
    assert abs(result["usage"]["input_tokens"] - sum(counted)) < counted[0] / 10, (result["usage"], counted)
    assert fake.errors == []


def _tokens(body: Any) -> int:
    """What the fake counts as a request's input tokens: a byte of compact JSON in four."""
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) // 4
