"""Issue 24: one project's sessions cannot take every running slot of the platform.

The runners are `sleep`, so a started session stays Creating and holds its slot until it is stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, get_session, sessions_path, wait_phase
from tests.support.server import Server

pytestmark = pytest.mark.integration

STARTED = ("Creating", "Running")


def _server(home: Path, **env: str) -> Server:
    settings = {
        "VTEAM_RUNNER_COMMAND": '["sleep", "600"]',
        "VTEAM_MAX_RUNNING_SESSIONS": "4",
        "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": "",
    }
    return Server(home, env={**settings, **env})


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[httpx.Client]:
    """The default share: a project may run half of the platform's 4 slots."""
    server = _server(tmp_path / "home").start()
    try:
        with server.client() as api:
            yield api
    finally:
        server.close()


@pytest.fixture
def whole(tmp_path: Path) -> Iterator[httpx.Client]:
    """A per-project cap as large as the platform's, so only the round-robin keeps projects fair."""
    server = _server(tmp_path / "home", VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT="4").start()
    try:
        with server.client() as api:
            yield api
    finally:
        server.close()


def _sessions(api: httpx.Client, project: str, count: int) -> list[str]:
    assert api.post("/api/projects", json={"name": project}).status_code in (201, 409)
    return [create_session(api, project, prompt="wait")["metadata"]["name"] for _ in range(count)]


def _phase(api: httpx.Client, project: str, name: str) -> str:
    return str(get_session(api, project, name)["status"]["phase"])


def test_a_second_project_runs_while_the_first_asks_for_every_slot(shared: httpx.Client) -> None:
    api = shared
    a = _sessions(api, "tenant-a", 4)
    for name in a[:2]:
        wait_phase(api, "tenant-a", name, *STARTED)
    b = _sessions(api, "tenant-b", 1)[0]
    assert wait_phase(api, "tenant-b", b, *STARTED)["status"]["phase"] in STARTED
    waiting = wait_phase(api, "tenant-a", a[3], "Pending")
    assert [_phase(api, "tenant-a", n) for n in a].count("Pending") == 2, "A runs only its share"
    message = waiting["status"].get("message") or ""
    assert "tenant-a" in message
    assert "(2)" in message


def test_a_freed_slot_goes_to_the_waiting_project_before_the_busy_ones_next(whole: httpx.Client) -> None:
    api = whole
    a = _sessions(api, "busy", 4)
    for name in a:
        wait_phase(api, "busy", name, *STARTED)
    [fifth] = _sessions(api, "busy", 1)
    b = _sessions(api, "quiet", 1)[0]
    wait_phase(api, "busy", fifth, "Pending")
    assert _phase(api, "quiet", b) == "Pending", "the platform is full"

    api.post(sessions_path("busy", a[0]) + "/stop")
    wait_phase(api, "busy", a[0], "Stopped")
    wait_phase(api, "quiet", b, *STARTED)
    behind = get_session(api, "busy", fifth)
    assert behind["status"]["phase"] == "Pending", "the older session of the busy project waits its turn"
    assert (behind["status"].get("message") or "").startswith("queued:")

    api.post(sessions_path("busy", a[1]) + "/stop")
    wait_phase(api, "busy", a[1], "Stopped")
    wait_phase(api, "busy", fifth, *STARTED)
