"""Every agent run that started ends with one RUN_FINISHED or RUN_ERROR, however its session ends: here a session
stopped mid-command, with each real framework CLI against its scripted model server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import fake_anthropic, fake_gemini, fake_openai
from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]

KEY = "test-key-0123456789abcdef"
BLOCK = 'touch "$HOME/started"; sleep 600'
ENDINGS = ("RUN_FINISHED", "RUN_ERROR")


@contextmanager
def _claude(home: Path) -> Iterator[Server]:
    with fake_anthropic.FakeAnthropic(api_key=KEY) as fake:
        fake.add([fake_anthropic.tool_use("Bash", {"command": BLOCK, "description": "wait"})])
        with _server(home, {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url}) as server:
            yield server


@contextmanager
def _codex(home: Path) -> Iterator[Server]:
    with fake_openai.FakeOpenAI(api_key=KEY) as fake:
        fake.add([fake_openai.function_call("exec_command", {"cmd": BLOCK, "yield_time_ms": 30000})])
        with _server(home, {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url}) as server:
            yield server


@contextmanager
def _gemini(home: Path) -> Iterator[Server]:
    with fake_gemini.FakeGemini(api_key=KEY) as fake:
        fake.add([fake_gemini.function_call("run_shell_command", {"command": BLOCK})])
        env = {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": fake.url, "GEMINI_MAX_ATTEMPTS": "1"}
        with _server(home, env) as server:
            yield server


@contextmanager
def _server(home: Path, env: dict[str, str]) -> Iterator[Server]:
    server = Server(home, env=env).start()
    try:
        yield server
    finally:
        server.close()


FRAMEWORKS: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
    "claude-code": _claude,
    "codex": _codex,
    "gemini": _gemini,
}


def _endings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in ENDINGS]


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_stopped_session_ends_its_agent_run(framework: str, tmp_path: Path) -> None:
    with FRAMEWORKS[framework](tmp_path / "home") as server, server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "p"})
        create_session(api, "p", name="long", framework=framework, prompt="Wait a while.")
        deadline = time.monotonic() + 60
        while server.session_file("p", "long", "home/started") is None:
            assert time.monotonic() < deadline, f"{framework} never started the command"
            time.sleep(0.1)
        assert api.post(sessions_path("p", "long") + "/stop").status_code == 202
        assert wait_phase(api, "p", "long", timeout=60)["status"]["phase"] == "Stopped"
        deadline = time.monotonic() + 15
        while not _endings(events := read_events(api, "p", "long")) and time.monotonic() < deadline:
            time.sleep(0.1)
    kinds = [e["type"] for e in events]
    started = kinds.index("RUN_STARTED")
    endings = _endings(events)
    assert len(endings) == 1, kinds
    assert kinds.index(endings[0]["type"]) > started, kinds
    assert endings[0]["type"] == "RUN_ERROR", endings[0]
    assert endings[0]["data"]["code"] == "STOPPED", endings[0]
    assert "stopped" in endings[0]["data"]["message"], endings[0]
