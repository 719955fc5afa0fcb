"""Interactive sessions: follow-up messages, interrupt, end, idle timeout, delivery across restarts."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.api import create_session, get_session, read_events, sessions_path, text_of, wait_phase
from tests.support.git import show
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]


def _repo_body(repo: Path, prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "interactive": True,
        "repos": [{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        **extra,
    }


def wait_status(api: httpx.Client, project: str, name: str, agent_status: str, turns: int = 0) -> dict[str, Any]:
    """Until the agent is in `agent_status` after at least `turns` finished runs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        session = get_session(api, project, name)
        finished = [e for e in read_events(api, project, name) if e["type"] in ("RUN_FINISHED", "RUN_ERROR")]
        if session["status"].get("agentStatus") == agent_status and len(finished) >= turns:
            return session
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {agent_status} after {turns} turns: {session['status']}")


def post(api: httpx.Client, project: str, name: str, action: str, **body: Any) -> httpx.Response:
    return api.post(sessions_path(project, name) + f"/{action}", json=body or None)


def test_follow_up_messages_then_end(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(api, project, name="chat", **_repo_body(repo, "echo one > A.md"))
    waiting = wait_status(api, project, "chat", "waiting_input", turns=1)
    assert waiting["status"]["phase"] == "Running"
    sent = post(api, project, "chat", "messages", text="echo two >> A.md && echo turn-two")
    assert sent.status_code == 202, sent.text
    wait_status(api, project, "chat", "waiting_input", turns=2)
    assert post(api, project, "chat", "end").status_code == 202
    done = wait_phase(api, project, "chat")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert done["status"]["message"].startswith("ended by admin")
    assert done["status"]["result"]["turns"] == 2
    assert show(repo, "vteam/chat", "A.md") == "one\ntwo\n"
    events = read_events(api, project, "chat")
    [message] = [e for e in events if e["type"] == "vteam.user_message"]
    assert message["data"]["value"]["user"] == "admin"
    assert message["data"]["value"]["text"] == "echo two >> A.md && echo turn-two"
    runs = [e["data"]["runId"] for e in events if e["type"] == "RUN_STARTED"]
    assert len(set(runs)) == 2, "each turn is its own run"
    assert "turn-two" in text_of(events)
    ended = [e for e in events if e["type"] == "vteam.end"]
    assert ended
    assert ended[0]["seq"] > message["seq"]


def test_interrupt_stops_the_turn_and_keeps_the_session(api: httpx.Client, project: str, server: Server) -> None:
    create_session(api, project, name="brake", prompt="echo ready", interactive=True)
    wait_status(api, project, "brake", "waiting_input", turns=1)
    post(api, project, "brake", "messages", text="echo slow-start; sleep 600")
    wait_status(api, project, "brake", "working")
    deadline = time.monotonic() + 10
    while "slow-start" not in text_of(read_events(api, project, "brake")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert post(api, project, "brake", "interrupt").status_code == 202
    after = wait_status(api, project, "brake", "waiting_input", turns=2)
    assert after["status"]["phase"] == "Running", "an interrupt keeps the session"
    errors = [e for e in read_events(api, project, "brake") if e["type"] == "RUN_ERROR"]
    assert errors[-1]["data"]["code"] == "INTERRUPTED"
    assert "interrupted by admin" in errors[-1]["data"]["message"]
    post(api, project, "brake", "messages", text="echo still-here")
    wait_status(api, project, "brake", "waiting_input", turns=3)
    assert "still-here" in text_of(read_events(api, project, "brake"))
    post(api, project, "brake", "end")
    assert wait_phase(api, project, "brake")["status"]["phase"] == "Completed"


def test_end_during_a_turn_finishes_the_session(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="quit", prompt="sleep 600", interactive=True)
    wait_status(api, project, "quit", "working")
    post(api, project, "quit", "end")
    done = wait_phase(api, project, "quit", timeout=15)
    assert done["status"]["phase"] == "Completed"
    assert "ended by admin" in done["status"]["message"]


def test_idle_timeout_ends_the_session_with_a_reason(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(api, project, name="idle", **_repo_body(repo, "echo kept > KEPT.md", idleTimeout=2))
    done = wait_phase(api, project, "idle", timeout=30)
    assert done["status"]["phase"] == "Completed"
    assert "no input for 2 s (idle timeout)" in done["status"]["message"]
    assert show(repo, "vteam/idle", "KEPT.md") == "kept\n", "the work is pushed when the session idles out"


def test_messages_sent_before_the_runner_starts_are_delivered(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="early", prompt="echo first", interactive=True)
    assert post(api, project, "early", "messages", text="echo second").status_code == 202
    assert post(api, project, "early", "messages", text="echo third").status_code == 202
    wait_status(api, project, "early", "waiting_input", turns=3)
    post(api, project, "early", "end")
    wait_phase(api, project, "early")
    assert text_of(read_events(api, project, "early")) == "first\nsecond\nthird\n"


def test_readers_can_talk_over_the_session_websocket(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="sock", prompt="echo hello", interactive=True)
    wait_status(api, project, "sock", "waiting_input", turns=1)
    url = str(api.base_url).replace("http", "ws", 1) + sessions_path(project, "sock") + "/ws"
    with connect(url, additional_headers={"Authorization": api.headers["Authorization"]}) as ws:
        ws.send(json.dumps({"type": "bogus"}))
        while "error" not in (reply := json.loads(ws.recv(timeout=10))):
            pass
        assert "message frames" in reply["error"]
        ws.send(json.dumps({"type": "message", "text": "echo via-socket"}))
        seen = ""
        while "via-socket" not in seen:
            frame = json.loads(ws.recv(timeout=10))
            seen += frame.get("data", {}).get("delta", "") if frame.get("type") == "TEXT_MESSAGE_CONTENT" else ""
    post(api, project, "sock", "end")
    wait_phase(api, project, "sock")


def test_talking_to_the_wrong_session_is_refused(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="batch", prompt="sleep 600")
    response = post(api, project, "batch", "messages", text="hello")
    assert response.status_code == 409
    assert "not interactive" in response.json()["detail"]
    api.post(sessions_path(project, "batch") + "/stop")
    wait_phase(api, project, "batch")
    create_session(api, project, name="over", prompt="true", interactive=True, idleTimeout=1)
    wait_phase(api, project, "over")
    response = post(api, project, "over", "messages", text="too late")
    assert response.status_code == 409
    assert "already ended" in response.json()["detail"]
    assert post(api, project, "over", "messages", text="").status_code == 422


def test_messages_are_delivered_once_across_a_server_restart(tmp_path: Path) -> None:
    from tests.support.git import bare_repo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    repo = bare_repo(tmp_path)
    server = Server(tmp_path / "home", port=port).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "r"})
            create_session(api, "r", name="talk", **_repo_body(repo, "echo one > LOG.md"))
            wait_status(api, "r", "talk", "waiting_input", turns=1)
            post(api, "r", "talk", "messages", text="echo two >> LOG.md")
            wait_status(api, "r", "talk", "waiting_input", turns=2)
        server.stop(signal.SIGKILL)
        server.start()
        with server.client(timeout=30) as api:
            time.sleep(1)
            post(api, "r", "talk", "messages", text="echo three >> LOG.md")
            wait_status(api, "r", "talk", "waiting_input", turns=3)
            post(api, "r", "talk", "end")
            assert wait_phase(api, "r", "talk")["status"]["phase"] == "Completed"
        assert show(repo, "vteam/talk", "LOG.md") == "one\ntwo\nthree\n"
    finally:
        server.close()
