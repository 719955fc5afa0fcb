"""Honest answers from forges: an unreachable GitLab fails a person's call quickly, naming GitLab."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import Server

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam") / "home"
    srv = Server(home, env={"VTEAM_GITLAB_URL": f"http://127.0.0.1:{_closed_port()}"}).start()
    yield srv
    srv.close()


def test_a_gitlab_token_check_against_an_unreachable_gitlab_answers_502_naming_gitlab(server: Server) -> None:
    with server.client(timeout=20) as api:
        response = api.put("/api/user/forges/gitlab/token", json={"token": "glpat-anything"})
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "GitLab could not be reached" in response.json()["detail"]
