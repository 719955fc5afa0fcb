"""The real Gemini CLI (`@google/gemini-cli`, installed by `make setup`) run by vTeam against a scripted Gemini API
on 127.0.0.1: the repo changes, the events, usage, follow-ups, continued sessions and failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import create_session, get_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.fake_gemini import FakeGemini, function_call, text
from tests.support.git import bare_repo, show
from tests.support.server import Server
from vteam.agents.gemini import gemini_binary

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


def test_a_continued_session_resumes_the_parents_chat(gemini_server: tuple[Server, FakeGemini]) -> None:
    server, fake = gemini_server
    fake.add([text("The first session's answer.")], [text("Picked up where we left off.")])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "g"})
        create_session(api, "g", name="first", framework="gemini", prompt="Start something.")
        parent = wait_phase(api, "g", "first", timeout=60)
        assert parent["status"]["phase"] == "Completed", parent["status"]
        assert parent["status"]["conversationId"]
        response = api.post(sessions_path("g", "first") + "/continue", json={"prompt": "Go on.", "name": "second"})
        assert response.status_code == 201, response.text
        child = wait_phase(api, "g", "second", timeout=60)
    assert child["status"]["phase"] == "Completed", child["status"]
    first, second = fake.of_kind("script")
    assert "The first session's answer." not in str(first.body["contents"])
    assert "The first session's answer." in str(second.body["contents"]), "the child sent the parent's chat"
    assert "Go on." in str(second.body["contents"][-1])
    assert child["status"]["conversationId"] == parent["status"]["conversationId"]
    assert fake.errors == []


def test_a_rejected_key_fails_the_session_with_the_reason(tmp_path: Path) -> None:
    with FakeGemini(api_key="the-right-key") as fake:
        env = {"GEMINI_API_KEY": "a-wrong-key-1234", "GOOGLE_GEMINI_BASE_URL": fake.url}
        server = Server(tmp_path / "home", env=env).start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "g"})
                create_session(api, "g", name="denied", framework="gemini", prompt="hi")
                started = time.monotonic()
                done = wait_phase(api, "g", "denied", timeout=60)
                took = time.monotonic() - started
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    message = done["status"]["message"]
    assert "Gemini failed" in message
    assert "API key not valid" in message, message
    assert "a-wrong-key-1234" not in message
    assert took < 30, "no retries"
    # Without a model, Gemini's router first asks a small model to pick one (rejected too), then the default model.
    main = [r for r in fake.of_kind("unauthorized") if r.method == "streamGenerateContent"]
    assert len(main) == 1, "a rejected key is not retried (the default of three attempts applies here)"


def test_interrupt_stops_gemini_mid_command(gemini_server: tuple[Server, FakeGemini], tmp_path: Path) -> None:
    server, fake = gemini_server
    marker = '"$HOME/started"'
    fake.add([function_call("run_shell_command", {"command": f"touch {marker}; sleep 600"})])
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "g"})
        create_session(api, "g", name="long", framework="gemini", prompt="Wait a while.", interactive=True)
        deadline = time.monotonic() + 60
        while server.session_file("g", "long", "home/started") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.session_file("g", "long", "home/started"), "Gemini started the command"
        api.post(sessions_path("g", "long") + "/interrupt")
        wait_turns(api, "g", "long", 1)
        session = get_session(api, "g", "long")
        assert session["status"]["phase"] == "Running"
        assert session["status"]["agentStatus"] == "waiting_input"
        errors = _types(read_events(api, "g", "long"), "RUN_ERROR")
        assert errors[-1]["code"] == "INTERRUPTED"
        api.post(sessions_path("g", "long") + "/end")
        assert wait_phase(api, "g", "long", timeout=30)["status"]["phase"] == "Completed"
    assert not _running(str(marker)), "the interrupted command is gone, though Gemini ran it in a session of its own"


def _running(needle: str) -> bool:
    """Whether a live (non-zombie) process has `needle` in its command line."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and needle in cmdline:
            return True
    return False
