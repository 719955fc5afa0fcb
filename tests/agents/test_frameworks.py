"""What every agent CLI must do the same way, run for real against its scripted model API on 127.0.0.1: a
rejected key fails the session with the reason and without retries, a continued session resumes its parent's
conversation, and an interrupt stops the running command. What is a framework's own (its tools, events and usage)
stays in its test file (test_claude_code.py, test_codex.py, test_gemini.py, test_mini_swe.py)."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import fake_anthropic, fake_gemini, fake_openai
from tests.support.api import create_session, get_session, read_events, sessions_path, wait_phase, wait_turns
from tests.support.server import Server
from vteam.agents.codex import codex_binary
from vteam.agents.gemini import gemini_binary
from vteam.agents.mini_swe import mini_swe_python

pytestmark = [pytest.mark.integration, pytest.mark.alone]

Fake = fake_openai.FakeOpenAI | fake_gemini.FakeGemini | fake_anthropic.FakeAnthropic
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo"


@dataclass(frozen=True)
class Framework:
    """How one framework is run and read in these tests."""

    name: str
    installed: Callable[[], object]
    fake: Callable[[str], Fake]
    """The fake model API answering to a key."""
    env: Callable[[Fake, str], dict[str, str]]
    """The server's environment pointing the framework at the fake, with a key."""
    failed: str
    """How the framework's failure message starts."""
    rejected: tuple[str, ...]
    """Words of which one says the key was refused."""
    answer: Callable[[str], Any]
    """A scripted reply that ends a turn with this text."""
    conversation: Callable[[Any], list[Any]]
    """The conversation a recorded request sent (its messages)."""
    long_command: Callable[[str], Any] | None = None
    """A scripted reply running a shell command; None where the framework has no interrupt test."""
    prompt_tail: int = 1
    """How many of the latest messages a continued session's new prompt may be in (Claude Code adds a note)."""
    check_rejected: Callable[[Fake, str, list[dict[str, Any]]], None] = lambda fake, message, events: None
    """Checks of the fake, the session's message and its events after a rejected key."""
    check_continued: Callable[[dict[str, Any], Any], None] = lambda child, request: None


def _openai_env(fake: Fake, key: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": fake.url}


def _gemini_env(fake: Fake, key: str) -> dict[str, str]:
    return {"GEMINI_API_KEY": key, "GOOGLE_GEMINI_BASE_URL": fake.url}


def _tokens(body: Any) -> int:
    """What the fake counts as a request's input tokens: a byte of compact JSON in four."""
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) // 4


def _codex_continued(child: dict[str, Any], request: Any) -> None:
    """The child's usage is its own turn's, not the parent's thread's too."""
    counted = _tokens(request.body)
    assert abs(child["status"]["result"]["usage"]["input_tokens"] - counted) < counted / 10


def _gemini_rejected(fake: Fake, message: str, events: list[dict[str, Any]]) -> None:
    # Without a model, Gemini's router first asks a small model to pick one (rejected too), then the default model.
    main = [r for r in fake.of_kind("unauthorized") if r.method == "streamGenerateContent"]
    assert len(main) == 1, "a rejected key is not retried (the default of three attempts applies here)"


def _claude_rejected(fake: Fake, message: str, events: list[dict[str, Any]]) -> None:
    assert message == "Claude Code: the API key was rejected (401 authentication_failed)", message
    unauthorized = [r for r in fake.of_kind("unauthorized") if r.path == "/v1/messages"]
    assert len(unauthorized) == 1, "a rejected key is not retried"
    assert [e["data"]["message"] for e in events if e["type"] == "RUN_ERROR"] == [message]


CLAUDE_CODE = Framework(
    name="claude-code",
    installed=lambda: importlib.util.find_spec("claude_agent_sdk"),
    fake=lambda key: fake_anthropic.FakeAnthropic(api_key=key),
    env=lambda fake, key: {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": fake.url},
    failed="Claude Code",
    rejected=("API key was rejected",),
    answer=lambda words: [fake_anthropic.text(words)],
    conversation=lambda request: list(request.body["messages"]),
    long_command=lambda cmd: [fake_anthropic.tool_use("Bash", {"command": cmd, "description": "wait"})],
    prompt_tail=2,
    check_rejected=_claude_rejected,
)
CODEX = Framework(
    name="codex",
    installed=codex_binary,
    fake=lambda key: fake_openai.FakeOpenAI(api_key=key),
    env=_openai_env,
    failed="Codex failed",
    rejected=("401", "Unauthorized", "API key"),
    answer=lambda words: [fake_openai.text(words)],
    conversation=lambda request: list(request.body["input"]),
    long_command=lambda cmd: [fake_openai.function_call("exec_command", {"cmd": cmd, "yield_time_ms": 30000})],
    check_continued=_codex_continued,
)
GEMINI = Framework(
    name="gemini",
    installed=gemini_binary,
    fake=lambda key: fake_gemini.FakeGemini(api_key=key),
    env=lambda fake, key: {**_gemini_env(fake, key), "GEMINI_MAX_ATTEMPTS": "1"},
    failed="Gemini failed",
    rejected=("API key not valid",),
    answer=lambda words: [fake_gemini.text(words)],
    conversation=lambda request: list(request.body["contents"]),
    long_command=lambda cmd: [fake_gemini.function_call("run_shell_command", {"command": cmd})],
    check_rejected=_gemini_rejected,
)
MINI_SWE = Framework(
    name="mini-swe-agent",
    installed=mini_swe_python,
    fake=lambda key: fake_openai.FakeOpenAI(api_key=key),
    env=_openai_env,
    failed="mini-swe-agent failed",
    rejected=("401", "Authentication", "API key"),
    answer=lambda words: [fake_openai.tool_call("bash", {"command": f"{SUBMIT} {words}"})],
    conversation=lambda request: list(request.body["messages"]),
)
FRAMEWORKS = [CLAUDE_CODE, CODEX, GEMINI, MINI_SWE]
INTERRUPTIBLE = [f for f in FRAMEWORKS if f.long_command is not None]
KEY = "test-key-0123456789abcdef"


@pytest.fixture
def framework(request: pytest.FixtureRequest) -> Framework:
    """`make test` installs every framework (`make setup`): its absence is a failure, not a reason to skip."""
    chosen: Framework = request.param
    assert chosen.installed() is not None, f"{chosen.name} is not installed: run `make setup`"
    return chosen


@pytest.fixture
def running(framework: Framework, tmp_path: Path) -> Iterator[tuple[Server, Fake]]:
    with framework.fake(KEY) as fake:
        server = Server(tmp_path / "home", env=framework.env(fake, KEY)).start()
        try:
            yield server, fake
        finally:
            server.close()


def _ids(frameworks: list[Framework]) -> list[Any]:
    return [pytest.param(f, id=f.name) for f in frameworks]


@pytest.mark.parametrize("framework", _ids(FRAMEWORKS), indirect=True)
def test_a_rejected_key_fails_the_session_with_the_reason(framework: Framework, tmp_path: Path) -> None:
    with framework.fake("the-right-key") as fake:
        env = framework.env(fake, "a-wrong-key-1234")
        env.pop("GEMINI_MAX_ATTEMPTS", None)  # the default attempts: a refused key must not be retried anyway
        server = Server(tmp_path / "home", env=env).start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "p"})
                create_session(api, "p", name="denied", framework=framework.name, prompt="hi")
                started = time.monotonic()
                done = wait_phase(api, "p", "denied", timeout=60)
                took = time.monotonic() - started
                events = read_events(api, "p", "denied")
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    message = done["status"]["message"]
    assert framework.failed in message
    assert any(word in message for word in framework.rejected), message
    assert "a-wrong-key-1234" not in message
    assert took < 30, "no retries"
    assert fake.of_kind("unauthorized")
    framework.check_rejected(fake, message, events)


@pytest.mark.parametrize("framework", _ids(FRAMEWORKS), indirect=True)
def test_a_continued_session_resumes_the_parents_conversation(
    framework: Framework, running: tuple[Server, Fake]
) -> None:
    server, fake = running
    fake.add(framework.answer("The first answer, from the parent."), framework.answer("Picked up where we left off."))
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "p"})
        create_session(api, "p", name="first", framework=framework.name, prompt="Start something.")
        parent = wait_phase(api, "p", "first", timeout=60)
        assert parent["status"]["phase"] == "Completed", parent["status"]
        assert parent["status"]["conversationId"]
        assert fake.remaining == 1, "the parent stopped after its answer"
        response = api.post(sessions_path("p", "first") + "/continue", json={"prompt": "Go on.", "name": "second"})
        assert response.status_code == 201, response.text
        child = wait_phase(api, "p", "second", timeout=60)
    assert child["status"]["phase"] == "Completed", child["status"]
    first, second = fake.of_kind("script")
    assert "The first answer, from the parent." not in str(framework.conversation(first))
    assert "The first answer, from the parent." in str(framework.conversation(second)), "the child sent the parent's"
    assert "Go on." in str(framework.conversation(second)[-framework.prompt_tail :])
    assert child["status"]["conversationId"] == parent["status"]["conversationId"]
    framework.check_continued(child, second)
    assert fake.errors == []


@pytest.mark.parametrize("framework", _ids(INTERRUPTIBLE), indirect=True)
def test_interrupt_stops_the_agent_mid_command(framework: Framework, running: tuple[Server, Fake]) -> None:
    server, fake = running
    marker = '"$HOME/started"'
    assert framework.long_command is not None
    fake.add(framework.long_command(f"touch {marker}; sleep 600"))
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "p"})
        create_session(api, "p", name="long", framework=framework.name, prompt="Wait a while.", interactive=True)
        deadline = time.monotonic() + 60
        while server.session_file("p", "long", "home/started") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.session_file("p", "long", "home/started"), f"{framework.name} started the command"
        api.post(sessions_path("p", "long") + "/interrupt")
        wait_turns(api, "p", "long", 1)
        session = get_session(api, "p", "long")
        assert session["status"]["phase"] == "Running"
        assert session["status"]["agentStatus"] == "waiting_input"
        errors = [e["data"] for e in read_events(api, "p", "long") if e["type"] == "RUN_ERROR"]
        assert errors[-1]["code"] == "INTERRUPTED"
        api.post(sessions_path("p", "long") + "/end")
        assert wait_phase(api, "p", "long", timeout=30)["status"]["phase"] == "Completed"
    assert not _running(marker), "the interrupted command is gone, wherever the agent started it"


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
