"""The real mini-swe-agent (in `.agents/mini-swe-agent`, installed by `make setup`) run by vTeam against a scripted
OpenAI Chat Completions API on 127.0.0.1: the repo changes, the events, usage, follow-ups and failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.fake_openai import FakeOpenAI, text, tool_call
from tests.support.git import bare_repo, show
from tests.support.server import Server
from vteam.agents.mini_swe import mini_swe_python

pytestmark = pytest.mark.integration

KEY = "sk-test-mini-0123456789abcdef"
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo"


@pytest.fixture(autouse=True)
def mini_swe_installed() -> None:
    """`make test` installs mini-swe-agent (`make setup`): its absence is a failure, not a reason to skip."""
    assert mini_swe_python() is not None, "mini-swe-agent is not installed: run `make setup`"


@pytest.fixture
def mini_server(tmp_path: Path) -> Iterator[tuple[Server, FakeOpenAI]]:
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


def test_mini_swe_runs_commands_and_pushes(mini_server: tuple[Server, FakeOpenAI], tmp_path: Path) -> None:
    server, fake = mini_server
    repo = bare_repo(tmp_path, files={"README.md": "# Demo\n"})
    fake.add(
        [text("Writing the notes."), tool_call("bash", {"command": "printf 'notes from mini\\n' > NOTES.md"})],
        [tool_call("bash", {"command": "cat missing-file"})],
        [tool_call("bash", {"command": f"{SUBMIT} done"})],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "m"})
        create_session(
            api,
            "m",
            name="agent",
            framework="mini-swe-agent",
            model="gpt-5.5",
            prompt="Add notes.",
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        done = wait_phase(api, "m", "agent", timeout=90)
        events = read_events(api, "m", "agent")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "vteam/agent", "NOTES.md") == "notes from mini\n"
    starts = _types(events, "TOOL_CALL_START")
    assert [t["toolCallName"] for t in starts] == ["bash", "bash", "bash"]
    args = "".join(a["delta"] for a in _types(events, "TOOL_CALL_ARGS") if a["toolCallId"] == starts[0]["toolCallId"])
    assert "NOTES.md" in args
    results = _types(events, "TOOL_CALL_RESULT")
    assert len(results) == 2, "the submitting command has no result message"
    assert results[1]["content"].startswith("error: exit code 1")
    assert "Writing the notes." in text_of(events)
    assert "done" in text_of(events)
    result = done["status"]["result"]
    assert result["text"].strip() == "done"
    assert result["usage"]["prompt_tokens"] > 0
    assert result["usage"]["completion_tokens"] > 0
    scripted = fake.of_kind("script")
    assert len(scripted) == 3
    assert all(r.path == "/v1/chat/completions" and r.body["model"] == "gpt-5.5" for r in scripted)
    assert [t["function"]["name"] for t in scripted[0].body["tools"]] == ["bash"]
    assert fake.errors == [], "every request and response matched OpenAI's published types"
    assert KEY not in str(events)
    assert KEY not in server.log()


def test_follow_up_messages_continue_the_conversation(mini_server: tuple[Server, FakeOpenAI]) -> None:
    server, fake = mini_server
    fake.add(
        [tool_call("bash", {"command": f"{SUBMIT} Hello, what next?"})],
        [tool_call("bash", {"command": f"{SUBMIT} Second answer, same conversation."})],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "m"})
        create_session(api, "m", name="chat", framework="mini-swe-agent", prompt="Say hello.", interactive=True)
        wait_turns(api, "m", "chat", 1)
        api.post(sessions_path("m", "chat") + "/messages", json={"text": "And now?"})
        wait_turns(api, "m", "chat", 2)
        api.post(sessions_path("m", "chat") + "/end")
        done = wait_phase(api, "m", "chat", timeout=60)
        events = read_events(api, "m", "chat")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Second answer, same conversation." in text_of(events)
    first, second = fake.of_kind("script")
    assert len(second.body["messages"]) > len(first.body["messages"]), "the follow-up carries the earlier turn"
    assert "Say hello." in str(second.body["messages"])
    assert "Hello, what next?" in str(second.body["messages"])
    assert "And now?" in str(second.body["messages"][-1])
    assert done["status"]["conversationId"]
    assert done["status"]["result"]["turns"] == 2
    assert fake.errors == []
