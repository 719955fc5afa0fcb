"""When a session's runner exits (completed or stopped), nothing secret is left on disk in its workspace: the agent's
HOME keeps only what a continue needs, with secret values replaced, and its temp folder is gone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.fake_openai import FakeOpenAI, tool_call
from tests.support.server import Server
from vteam.agents.mini_swe import mini_swe_python

pytestmark = pytest.mark.integration

VALUE = "wipe-me-s3cr3t-" + uuid.uuid4().hex
KEY = "sk-test-wipe-0123456789abcdef"
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo"
TMP_NAME = f"vteam-wipe-test-{uuid.uuid4().hex}"
LEAK = f"""
mkdir -p "$HOME/.codex/shell_snapshots"
echo "export DEMO_API_KEY=$DEMO_API_KEY" > "$HOME/.codex/shell_snapshots/x.sh"
echo "$DEMO_API_KEY" > "$HOME/notes"
echo "$DEMO_API_KEY" > "${{TMPDIR:-/tmp}}/{TMP_NAME}"
"""


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Server, FakeOpenAI]]:
    fake = FakeOpenAI(api_key=KEY)
    with fake:
        started = Server(tmp_path / "home", env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.url}).start()
        try:
            yield started, fake
        finally:
            started.close()
            # Without a sandbox the agent's /tmp is the machine's: leave nothing there either.
            Path("/tmp", TMP_NAME).unlink(missing_ok=True)


def _project(api: httpx.Client, name: str) -> None:
    assert api.post("/api/projects", json={"name": name}).status_code == 201
    put = api.put(f"/api/projects/{name}/secrets/DEMO_API_KEY", json={"value": VALUE})
    assert put.status_code == 200, put.text


def _workspace(server: Server, project: str, name: str) -> Path:
    found = list((server.home / "workspaces" / project).glob(f"{name}-*"))
    assert len(found) == 1, found
    return found[0]


def _leaks(workspace: Path) -> list[str]:
    """Every file of the workspace holding a secret value, and any shell snapshot left in the agent's HOME."""
    found = [str(p) for p in (workspace / "home").rglob("shell_snapshots")]
    for path in workspace.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if VALUE.encode() in data or KEY.encode() in data:
                found.append(str(path))
    return found


def _wait_wiped(workspace: Path, timeout: float = 20) -> None:
    """The wipe runs once the runner has exited, a moment after the session's final phase is recorded."""
    deadline = time.monotonic() + timeout
    while (leaks := _leaks(workspace)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leaks == []
    assert not (workspace / "tmp").exists()
    assert list((workspace / "home").iterdir()) == [], "the script framework keeps nothing for a continue"


def test_a_completed_session_leaves_no_secret_in_its_workspace(platform: tuple[Server, FakeOpenAI]) -> None:
    server, _ = platform
    with server.client(timeout=30) as api:
        _project(api, "w")
        create_session(api, "w", name="done", framework="script", prompt=LEAK + "echo written")
        done = wait_phase(api, "w", "done", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    _wait_wiped(_workspace(server, "w", "done"))


def test_a_stopped_session_leaves_no_secret_in_its_workspace(platform: tuple[Server, FakeOpenAI]) -> None:
    server, _ = platform
    with server.client(timeout=30) as api:
        _project(api, "w")
        create_session(api, "w", name="long", framework="script", prompt=LEAK + "sleep 600")
        wait_phase(api, "w", "long", "Running", timeout=60)
        workspace = _workspace(server, "w", "long")
        deadline = time.monotonic() + 30
        while not (workspace / "home/notes").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert VALUE.encode() in (workspace / "home/notes").read_bytes(), "the agent wrote the secret in its HOME"
        assert VALUE.encode() in (workspace / "tmp" / TMP_NAME).read_bytes(), "the agent's temp is the workspace's"
        assert api.post(sessions_path("w", "long") + "/stop").status_code in (200, 202)
        stopped = wait_phase(api, "w", "long", timeout=30)
    assert stopped["status"]["phase"] == "Stopped", stopped["status"]
    _wait_wiped(workspace)


def test_a_continue_gets_the_conversation_without_its_secrets(platform: tuple[Server, FakeOpenAI]) -> None:
    assert mini_swe_python() is not None, "mini-swe-agent is not installed: run `make setup`"
    server, fake = platform
    fake.add(
        [tool_call("bash", {"command": 'echo "the key is $DEMO_API_KEY"'})],
        [tool_call("bash", {"command": f"{SUBMIT} The first answer."})],
        [tool_call("bash", {"command": f"{SUBMIT} Second session done."})],
    )
    with server.client(timeout=30) as api:
        _project(api, "m")
        create_session(api, "m", name="first", framework="mini-swe-agent", prompt="Show the key.")
        first = wait_phase(api, "m", "first", timeout=90)
        assert first["status"]["phase"] == "Completed", first["status"]
        workspace = _workspace(server, "m", "first")
        deadline = time.monotonic() + 20
        while _leaks(workspace) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _leaks(workspace) == []
        kept = [p for p in (workspace / "home").rglob("*") if p.is_file()]
        assert [p.parent.name for p in kept] == [".mini-swe-agent-vteam"], kept
        assert "the key is [redacted]" in kept[0].read_text()
        response = api.post(sessions_path("m", "first") + "/continue", json={"prompt": "Go on.", "name": "second"})
        assert response.status_code == 201, response.text
        child = wait_phase(api, "m", "second", timeout=90)
    assert child["status"]["phase"] == "Completed", child["status"]["message"]
    *_, second = fake.of_kind("script")
    assert "The first answer." in str(second.body["messages"]), "the child sent the parent's conversation"
    assert "the key is [redacted]" in str(second.body["messages"])
    assert VALUE not in str(second.body["messages"])
    assert fake.errors == []
