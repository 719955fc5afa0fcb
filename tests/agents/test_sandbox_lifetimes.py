"""Every process a session starts ends within 5 s of its stop, its timeout and the end of its turn, whatever it did
to detach (`setsid`, a double fork, `nohup`, `disown`), with `script` and each real framework CLI driven by a scripted
model server. The stop case is repeated: an escape from a tree walk is a race, seen in 5 of 6 tries with Codex."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import fake_anthropic, fake_gemini, fake_openai
from tests.support.api import FINAL, create_session, get_session, sessions_path, wait_phase
from tests.support.server import Server
from vteam.agents.codex import codex_binary
from vteam.agents.gemini import gemini_binary
from vteam.agents.mini_swe import mini_swe_python

pytestmark = [pytest.mark.integration, pytest.mark.alone]

FRAMEWORKS = ("script", "claude-code", "codex", "gemini", "mini-swe-agent")
STOP_TRIES = {"script": 3, "claude-code": 3, "codex": 5, "gemini": 3, "mini-swe-agent": 3}
"""Codex, whose stop leaked its command in most tries before the sandbox, gets the most."""
TIMEOUT = {"script": 3, "claude-code": 10, "codex": 10, "gemini": 15, "mini-swe-agent": 10}
"""The session timeout for the timeout case: enough for the CLI to start and run the command on a busy machine."""
GRACE = 5.0
"""The issue's bound: every process of the session is gone this long after it ends."""
SURVIVORS = ("setsid", "double", "nohup", "disown")
"""The ways the command detaches a `sleep 600`, each named in that sleep's argv[0] after the marker."""
PROJECT = "life"
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo"
KEYS = {
    "claude-code": "sk-ant-test-lifetimes-0123456789",
    "codex": "sk-test-lifetimes-codex-0123456789",
    "mini-swe-agent": "sk-test-lifetimes-mini-0123456789",
    "gemini": "AIza-test-lifetimes-0123456789",
}

Fake = fake_anthropic.FakeAnthropic | fake_openai.FakeOpenAI | fake_gemini.FakeGemini


def _command(marker: str, *, block: bool) -> str:
    """A shell command (for whatever shell the framework uses) that starts four detached `sleep 600`s, then either
    blocks in a fifth or returns after a moment (long enough to see them start). The four ignore SIGHUP, so the end of
    a pty session (as Codex and Gemini run commands) does not end them either; each carries `marker` in argv[0]."""
    lines = [
        'trap "" HUP',
        f'setsid bash -c "exec -a {marker}-setsid sleep 600" </dev/null >/dev/null 2>&1 &',
        f"( ( exec -a {marker}-double sleep 600 </dev/null >/dev/null 2>&1 & ) & )",
        f'nohup bash -c "exec -a {marker}-nohup sleep 600" </dev/null >/dev/null 2>&1 &',
        f'bash -c "exec -a {marker}-disown sleep 600" </dev/null >/dev/null 2>&1 & disown',
        # The blocking command is a plain one, as in the report of Codex's leak (SIGHUP as usual).
        f"trap - HUP; exec -a {marker}-block sleep 600" if block else "sleep 2; echo started",
    ]
    return "bash -c '" + "\n".join(lines) + "'"


@dataclass(frozen=True)
class Proc:
    """A live process whose command line holds the marker, with what shows how it escaped."""

    pid: int
    ppid: int
    sid: int
    state: str
    argv: tuple[str, ...]


def _marked(marker: str) -> list[Proc]:
    """Live processes (any state but zombie: init reaps those) with `marker` in their command line."""
    needle = marker.encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            if needle not in cmdline:
                continue
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            continue
        argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0") if part)
        found.append(Proc(int(entry.name), int(fields[1]), int(fields[3]), fields[0], argv))
    return found


def _names(marker: str, procs: list[Proc]) -> set[str]:
    """Which of the marked sleeps are among `procs` (by the suffix of their argv[0])."""
    prefix = marker + "-"
    return {p.argv[0].removeprefix(prefix) for p in procs if p.argv and p.argv[0].startswith(prefix)}


def _wait_started(api: httpx.Client, name: str, marker: str, names: tuple[str, ...], seconds: float) -> None:
    """Until every named sleep of `marker` has been seen running (not necessarily all at once); fails at once if
    the session ends first, with its message."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= _names(marker, _marked(marker))
        if seen >= set(names):
            return
        status = get_session(api, PROJECT, name)["status"]
        assert status["phase"] not in FINAL, (
            f"{name} ended before its agent started {sorted(set(names) - seen)}: {status}"
        )
        time.sleep(0.05)
    raise AssertionError(f"the agent did not start {sorted(set(names) - seen)} within {seconds:g} s")


def _leftovers(marker: str, seconds: float) -> list[Proc]:
    """The marked processes still alive `seconds` from now (fewer if they end sooner); the caller kills them."""
    deadline = time.monotonic() + seconds
    while (left := _marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill(procs: list[Proc]) -> None:
    """Ends what a failed case left, so that it burdens neither the machine nor the next case."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)


def _describe(procs: list[Proc]) -> str:
    return "; ".join(f"pid {p.pid} ppid {p.ppid} sid {p.sid} {p.state} {' '.join(p.argv)[:80]!r}" for p in procs)


@dataclass
class Agent:
    """One framework served by one vTeam server, with its scripted model server."""

    framework: str
    server: Server
    fake: Fake | None

    def start(self, api: httpx.Client, name: str, command: str, *, blocks: bool, **spec: Any) -> None:
        """Creates a session whose agent runs `command` once, then (if the command returns) ends its turn."""
        if self.fake is None:
            create_session(api, PROJECT, name=name, framework="script", prompt=command, **spec)
            return
        assert self.fake.remaining == 0, "an earlier case left scripted replies unconsumed"
        self.fake.add(*self._replies(command, blocks=blocks))
        create_session(
            api, PROJECT, name=name, framework=self.framework, prompt="Run the command you are given.", **spec
        )

    def _replies(self, command: str, *, blocks: bool) -> list[Any]:
        """The framework's shell tool call, and for a command that returns, the reply that ends the turn (the
        fakes' default final text, but mini-swe-agent ends only by submitting)."""
        match self.framework:
            case "claude-code":
                return [[fake_anthropic.tool_use("Bash", {"command": command, "description": "start helpers"})]]
            case "codex":
                # Codex hands a command still running after `yield_time_ms` back to the model; it must block.
                call = fake_openai.function_call("exec_command", {"cmd": command, "yield_time_ms": 60000})
                return [[call]]
            case "gemini":
                return [[fake_gemini.function_call("run_shell_command", {"command": command})]]
            case "mini-swe-agent":
                replies = [[fake_openai.tool_call("bash", {"command": command})]]
                if not blocks:
                    replies.append([fake_openai.tool_call("bash", {"command": f"{SUBMIT} done"})])
                return replies
        raise AssertionError(self.framework)


def _missing(framework: str) -> str | None:
    """Why `framework` cannot run here (what `make setup` did not install), or None."""
    match framework:
        case "codex" if codex_binary() is None:
            return "the Codex CLI is not installed (make setup: npm @openai/codex)"
        case "gemini" if gemini_binary() is None:
            return "the Gemini CLI is not installed (make setup: npm @google/gemini-cli)"
        case "mini-swe-agent" if mini_swe_python() is None:
            return "mini-swe-agent is not installed (make setup)"
        case "claude-code":
            try:
                import claude_agent_sdk
            except ImportError:
                return "claude-agent-sdk is not installed"
            if not (Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude").is_file():
                return "claude-agent-sdk's bundled Claude Code CLI is missing"
    return None


def _fake(framework: str) -> tuple[Fake | None, dict[str, str]]:
    """The scripted model server for `framework` (not started) and the server settings that point at it."""
    if framework == "script":
        return None, {}
    key = KEYS[framework]
    if framework == "claude-code":
        return fake_anthropic.FakeAnthropic(api_key=key), {"ANTHROPIC_API_KEY": key}
    if framework == "gemini":
        return fake_gemini.FakeGemini(api_key=key), {"GEMINI_API_KEY": key, "GEMINI_MAX_ATTEMPTS": "1"}
    return fake_openai.FakeOpenAI(api_key=key), {"OPENAI_API_KEY": key}


BASE_URL = {"claude-code": "ANTHROPIC_BASE_URL", "codex": "OPENAI_BASE_URL", "mini-swe-agent": "OPENAI_BASE_URL"}


@pytest.fixture(scope="module", params=FRAMEWORKS)
def agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    framework: str = request.param
    if reason := _missing(framework):
        pytest.skip(reason)
    fake, env = _fake(framework)
    with contextlib.ExitStack() as stack:
        if fake is not None:
            stack.enter_context(fake)
            env[BASE_URL.get(framework, "GOOGLE_GEMINI_BASE_URL")] = fake.url
        home = tmp_path_factory.mktemp(f"lifetimes-{framework}") / "home"
        server = Server(home, env=env).start()
        stack.callback(server.close)
        with server.client(timeout=30) as api:
            response = api.post("/api/projects", json={"name": PROJECT})
            assert response.status_code == 201, response.text
        yield Agent(framework, server, fake)


@pytest.fixture
def api(agent: Agent) -> Iterator[httpx.Client]:
    with agent.server.client(timeout=30) as client:
        yield client


def test_stop_ends_every_process_within_five_seconds(agent: Agent, api: httpx.Client) -> None:
    tries = STOP_TRIES[agent.framework]
    leaks: list[str] = []
    for attempt in range(tries):
        name = f"stop-{attempt}"
        marker = f"vtlife-{uuid.uuid4().hex[:12]}"
        agent.start(api, name, _command(marker, block=True), blocks=True)
        try:
            _wait_started(api, name, marker, (*SURVIVORS, "block"), 90)
            stopped = time.monotonic()
            response = api.post(sessions_path(PROJECT, name) + "/stop")
            assert response.status_code == 202, response.text
            left = _leftovers(marker, GRACE)
            done = wait_phase(api, PROJECT, name, "Stopped", "Failed", "Completed", "TimedOut", timeout=GRACE)
            took = time.monotonic() - stopped
        except BaseException:
            _kill(_marked(marker))
            raise
        assert done["status"]["phase"] == "Stopped", done["status"]
        assert took < GRACE + 1, f"stop took {took:.1f} s"
        if left:
            leaks.append(f"try {attempt + 1}: {_describe(left)}")
            _kill(left)
    assert not leaks, f"{agent.framework}: processes outlived the stop in {len(leaks)} of {tries} tries: {leaks}"


def test_timeout_ends_every_process_within_five_seconds(agent: Agent, api: httpx.Client) -> None:
    marker = f"vtlife-{uuid.uuid4().hex[:12]}"
    limit = TIMEOUT[agent.framework]
    agent.start(api, "timeout", _command(marker, block=True), blocks=True, timeout=limit)
    try:
        _wait_started(api, "timeout", marker, (*SURVIVORS, "block"), limit)
        done = wait_phase(api, PROJECT, "timeout", timeout=limit + 30)
        left = _leftovers(marker, GRACE)
    finally:
        _kill(_marked(marker))
    assert done["status"]["phase"] == "TimedOut", done["status"]
    assert not left, f"{agent.framework}: processes outlived the timeout: {_describe(left)}"


def test_end_of_turn_ends_every_process_within_five_seconds(agent: Agent, api: httpx.Client) -> None:
    marker = f"vtlife-{uuid.uuid4().hex[:12]}"
    agent.start(api, "turn", _command(marker, block=False), blocks=False)
    try:
        _wait_started(api, "turn", marker, SURVIVORS, 90)
        done = wait_phase(api, PROJECT, "turn", timeout=90)
        left = _leftovers(marker, GRACE)
    finally:
        _kill(_marked(marker))
    assert done["status"]["phase"] == "Completed", done["status"]
    assert not left, f"{agent.framework}: processes outlived the end of the turn: {_describe(left)}"
