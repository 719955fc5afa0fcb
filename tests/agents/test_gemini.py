"""The real Gemini CLI (`@google/gemini-cli`, installed by `make setup`) run by vTeam against a scripted Gemini API
on 127.0.0.1: the repo changes, the events, usage, follow-ups, continued sessions and failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.fake_gemini import FakeGemini, function_call, text
from tests.support.git import bare_repo, show
from tests.support.server import Server
from vteam.agents.gemini import gemini_binary

pytestmark = pytest.mark.integration

KEY = "AIza-test-gemini-0123456789abcdef"


@pytest.fixture(autouse=True)
def gemini_installed() -> None:
    """`make test` installs Gemini (`make setup`): its absence is a failure, not a reason to skip."""
    assert gemini_binary() is not None, "the Gemini CLI is not installed: run `make setup` (npm @google/gemini-cli)"


@pytest.fixture
def gemini_server(tmp_path: Path) -> Iterator[tuple[Server, FakeGemini]]:
    fake = FakeGemini(api_key=KEY)
    with fake:
        env = {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": fake.url, "GEMINI_MAX_ATTEMPTS": "1"}
        server = Server(tmp_path / "home", env=env).start()
        try:
            yield server, fake
        finally:
            server.close()


def _types(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


def test_gemini_writes_a_file_and_pushes(gemini_server: tuple[Server, FakeGemini], tmp_path: Path) -> None:
    server, fake = gemini_server
    repo = bare_repo(tmp_path, files={"README.md": "# Demo\n"})
    fake.add(
        [text("Reading first."), function_call("read_file", {"file_path": "README.md"})],
        [function_call("write_file", {"file_path": "NOTES.md", "content": "notes from gemini\n"})],
        [text("All done.")],
    )
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "g"})
        create_session(
            api,
            "g",
            name="agent",
            framework="gemini",
            model="gemini-2.5-pro",
            prompt="Add notes.",
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        done = wait_phase(api, "g", "agent", timeout=90)
        events = read_events(api, "g", "agent")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "vteam/agent", "NOTES.md") == "notes from gemini\n"
    starts = _types(events, "TOOL_CALL_START")
    assert [t["toolCallName"] for t in starts] == ["read_file", "write_file"]
    args = "".join(a["delta"] for a in _types(events, "TOOL_CALL_ARGS") if a["toolCallId"] == starts[1]["toolCallId"])
    assert "NOTES.md" in args
    results = _types(events, "TOOL_CALL_RESULT")
    assert [r["toolCallId"] for r in results] == [s["toolCallId"] for s in starts]
    assert not any(r["content"].startswith("error") for r in results), results
    assert "Reading first." in text_of(events)
    assert "All done." in text_of(events)
    result = done["status"]["result"]
    assert result["text"] == "All done."
    assert result["usage"]["input_tokens"] > 0
    assert result["usage"]["output_tokens"] > 0
    scripted = fake.of_kind("script")
    assert len(scripted) == 3
    assert all(r.model == "gemini-2.5-pro" and r.method == "streamGenerateContent" for r in scripted)
    assert all(r.query.get("alt") == ["sse"] for r in scripted)
    declared = {f["name"] for tool in scripted[0].body["tools"] for f in tool.get("functionDeclarations", [])}
    assert {"read_file", "write_file"} <= declared, declared
    assert fake.errors == [], "every request and response matched the google-genai types"
    assert KEY not in str(events)
    assert KEY not in server.log()


def test_follow_up_messages_resume_the_session(gemini_server: tuple[Server, FakeGemini]) -> None:
    server, fake = gemini_server
    fake.add([text("Hello! What next?")], [text("Second answer, same chat.")])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "g"})
        create_session(api, "g", name="chat", framework="gemini", prompt="Say hello.", interactive=True)
        wait_turns(api, "g", "chat", 1)
        api.post(sessions_path("g", "chat") + "/messages", json={"text": "And now?"})
        wait_turns(api, "g", "chat", 2)
        api.post(sessions_path("g", "chat") + "/end")
        done = wait_phase(api, "g", "chat", timeout=60)
        events = read_events(api, "g", "chat")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "Second answer, same chat." in text_of(events)
    first, second = fake.of_kind("script")
    assert len(second.body["contents"]) > len(first.body["contents"]), "the follow-up carries the earlier turn"
    assert "Hello! What next?" in str(second.body["contents"])
    assert "And now?" in str(second.body["contents"][-1])
    assert done["status"]["conversationId"]
    result = done["status"]["result"]
    assert result["turns"] == 2
    assert result["usage"]["input_tokens"] > 0
    assert fake.errors == []
