"""Fixtures for every room (registered in tests/conftest.py): a real server per module, a real HTTP client, a
fresh project and a bare repo per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.git import bare_repo
from tests.support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("vteam") / "home"
    srv = Server(home, env={"VTEAM_MAX_RUNNING_SESSIONS": "8"}).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as client:
        yield client


@pytest.fixture
def project(api: httpx.Client) -> str:
    name = f"p-{uuid.uuid4().hex[:10]}"
    response = api.post("/api/projects", json={"name": name, "displayName": "Test project"})
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return bare_repo(tmp_path, files={"README.md": "hello\n", "src/app.py": "print('v1')\n"})
