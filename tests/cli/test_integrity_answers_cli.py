"""The CLI on bad input and a lost server: one readable line and a non-zero exit, never a traceback;
`--days 0` reaches the server; `logs -f` says it is reconnecting, and fails at once when it never connected.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, wait_phase
from tests.support.cli import vteam
from tests.support.server import Server

pytestmark = pytest.mark.integration


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


@pytest.mark.parametrize("token", ["vt_tök", "vt_abc\ndef"], ids=["non-ascii", "newline"])
def test_a_malformed_token_is_named_not_a_traceback_or_an_unreachable_server(server: Server, token: str) -> None:
    line = _one_line_error(vteam(server, "project", "list", token=token))
    assert "API token" in line
    assert "cannot reach" not in line
    assert token not in line


def test_a_malformed_server_url_is_one_line(server: Server) -> None:
    line = _one_line_error(vteam("http://[::1", "project", "list", token="vt_x"))
    assert "server URL 'http://[::1' is not a valid URL" in line
    line = _one_line_error(vteam(server, "login", "http://[::1/login?token=x"))
    assert "not a valid URL" in line


def test_key_create_days_0_reaches_the_server(server: Server, project: str, api: httpx.Client) -> None:
    line = _one_line_error(vteam(server, "key", "create", "zero", "-p", project, "--days", "0"))
    assert "expiresInDays" in line or "greater than or equal to 1" in line
    assert api.get(f"/api/projects/{project}/keys").json()["items"] == []


def test_logs_follow_fails_at_once_when_it_never_connected() -> None:
    line = _one_line_error(vteam(_closed_url(), "session", "logs", "-f", "s", "-p", "p", token="vt_x", timeout=20))
    assert "cannot reach vTeam" in line


def test_logs_follow_says_it_is_reconnecting_when_the_server_goes_down(tmp_path: Path) -> None:
    srv = Server(tmp_path / "home").start()
    follower: subprocess.Popen[str] | None = None
    try:
        with srv.client() as api:
            project = f"p-{uuid.uuid4().hex[:8]}"
            assert api.post("/api/projects", json={"name": project}).status_code == 201
            create_session(api, project, name="long", prompt="echo started; sleep 120")
            wait_phase(api, project, "long", "Running")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
        env |= {"VTEAM_SERVER": srv.url, "VTEAM_TOKEN": srv.token, "VTEAM_CONFIG_DIR": str(tmp_path / "cfg")}
        follower = subprocess.Popen(
            [sys.executable, "-m", "vteam", "session", "logs", "-f", "long", "-p", project],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        assert follower.stderr is not None
        deadline = time.monotonic() + 20
        seen = ""
        while "started" not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert "started" in seen, "the follower streamed the session's output"
        srv.stop(signal.SIGKILL)
        note = follower.stderr.readline()
        assert "lost the connection to vTeam" in note
        assert "reconnecting" in note
        assert follower.poll() is None, "it keeps trying while the server is down"
    finally:
        if follower is not None:
            follower.kill()
            follower.communicate(timeout=5)
        srv.close()
