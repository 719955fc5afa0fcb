"""Small helpers over vTeam's HTTP API for integration tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

FINAL = {"Completed", "Failed", "Stopped", "TimedOut"}


def sessions_path(project: str, name: str = "") -> str:
    return f"/api/projects/{project}/agentic-sessions" + (f"/{name}" if name else "")


def create_session(api: httpx.Client, project: str, **body: Any) -> dict[str, Any]:
    body.setdefault("framework", "script")
    response = api.post(sessions_path(project), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def get_session(api: httpx.Client, project: str, name: str) -> dict[str, Any]:
    response = api.get(sessions_path(project, name))
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def wait_phase(api: httpx.Client, project: str, name: str, *phases: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll until the session reaches one of `phases` (any final phase when none are given)."""
    wanted = set(phases) or FINAL
    deadline = time.monotonic() + timeout
    session: dict[str, Any] = {}
    while time.monotonic() < deadline:
        session = get_session(api, project, name)
        if session["status"]["phase"] in wanted:
            return session
        time.sleep(0.05)
    raise AssertionError(f"session {name} did not reach {sorted(wanted)}; last status: {session.get('status')}")


def read_events(
    api: httpx.Client, project: str, name: str, *, after: int | None = None, follow: bool = False, **headers: str
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"follow": str(follow).lower()}
    if after is not None:
        params["after"] = after
    out = []
    with api.stream("GET", sessions_path(project, name) + "/events", params=params, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
    return out


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"].get("delta", "") for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")


def phases_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["value"]["phase"] for e in events if e["type"] == "vteam.phase"]


def wait_turns(api: httpx.Client, project: str, name: str, turns: int) -> None:
    """Until the agent has ended `turns` runs and is waiting for input; fails fast if the session ends."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = get_session(api, project, name)
        events = read_events(api, project, name)
        ended = [e for e in events if e["type"] in ("RUN_FINISHED", "RUN_ERROR")]
        if len(ended) >= turns and session["status"].get("agentStatus") == "waiting_input":
            return
        assert session["status"]["phase"] in ("Pending", "Creating", "Running"), session["status"]
        time.sleep(0.1)
    raise AssertionError(f"{name} did not finish {turns} turns")


def start_live(api: httpx.Client, project: str) -> str:
    """An interactive `script` session waiting for its next message (a shell command); its name."""
    name = f"s-{uuid.uuid4().hex[:8]}"
    create_session(api, project, name=name, prompt="echo ready", interactive=True)
    deadline = time.monotonic() + 30
    while get_session(api, project, name)["status"].get("agentStatus") != "waiting_input":
        assert time.monotonic() < deadline, f"{name} never waited for input"
        time.sleep(0.05)
    return name
