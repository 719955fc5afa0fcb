"""A stop racing the runner's own completion: the session's final phase and message agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.server import Server
from vteam.auth import RunnerTokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose 'runner' sleeps through SIGTERM (as a runner finishing its work does), so the test
    speaks the runner's side of the race itself while the session is Stopping."""
    home: Path = tmp_path_factory.mktemp("stop") / "home"
    server = Server(
        home, env={"VTEAM_RUNNER_COMMAND": '["sh", "-c", "trap \'\' TERM; sleep 600"]', "VTEAM_STOP_GRACE_SECONDS": "5"}
    ).start()
    yield server
    server.close()


def test_a_completion_report_after_a_stop_ends_stopped_saying_so(idle_server: Server) -> None:
    with idle_server.client(timeout=30) as api:
        assert api.post("/api/projects", json={"name": "race"}).status_code == 201
        created = create_session(api, "race", prompt="unused")
        name = created["metadata"]["name"]
        wait_phase(api, "race", name, "Creating")
        key = bytes.fromhex((idle_server.home / "secret.key").read_text())
        auth = {"Authorization": f"Bearer {RunnerTokens(key).mint('race', name, created['metadata']['uid'])}"}
        status = sessions_path("race", name) + "/runner/status"
        assert api.post(status, json={"phase": "Running"}, headers=auth).status_code == 200

        assert api.post(sessions_path("race", name) + "/stop").status_code == 202
        late = api.post(status, json={"final": True, "message": "completed"}, headers=auth)
        assert late.status_code == 200, late.text
        assert late.json()["status"]["phase"] == "Stopping"

        ended = wait_phase(api, "race", name, timeout=30)
        assert ended["status"]["phase"] == "Stopped"
        assert ended["status"]["message"] == "stopped on request"
        final = [
            e for e in read_events(api, "race", name) if e["type"] == "vteam.phase" and e["data"]["value"]["final"]
        ]
        assert [e["data"]["value"]["phase"] for e in final] == ["Stopped"]
