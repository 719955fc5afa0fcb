"""A runner's report cannot plant a link: pull-request fields are the server's own record, and a `javascript:`
URL never reaches an `href` on the session's page or the project's sessions table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.api import create_session, get_session, sessions_path, wait_phase
from tests.support.server import Server
from vteam.auth import RunnerTokens

pytestmark = pytest.mark.integration

SCRIPT_URL = "javascript:alert(document.cookie)"
FOREIGN_URL = "https://evil.example/acme/app/pull/1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose 'runner' is `sleep`, so the test speaks the runner's protocol itself."""
    home = tmp_path_factory.mktemp("links") / "home"
    srv = Server(home, env={"VTEAM_RUNNER_COMMAND": '["sleep", "600"]'}).start()
    yield srv
    srv.close()


@dataclass
class Session:
    api: httpx.Client
    project: str
    name: str
    runner: httpx.Client


@pytest.fixture
def session(server: Server) -> Iterator[Session]:
    with server.client() as api:
        project = f"links-{uuid.uuid4().hex[:8]}"
        assert api.post("/api/projects", json={"name": project}).status_code == 201
        created = create_session(api, project, prompt="unused")
        name = created["metadata"]["name"]
        wait_phase(api, project, name, "Creating")
        key = bytes.fromhex((server.home / "secret.key").read_text())
        token = RunnerTokens(key).mint(project, name, created["metadata"]["uid"])
        with server.client(token=token) as runner:
            yield Session(api, project, name, runner)


def _report(session: Session, pull_url: str) -> httpx.Response:
    repo = {
        "url": "https://github.com/acme/app",
        "branch": "vteam/x",
        "pushed": True,
        "pullRequestUrl": pull_url,
        "pullRequest": {
            "url": pull_url,
            "number": 7,
            "forge": "github",
            "repo": "acme/app",
            "head": "vteam/x",
            "base": "main",
            "title": "looks legitimate",
        },
    }
    path = sessions_path(session.project, session.name) + "/runner/status"
    assert session.runner.post(path, json={"phase": "Running"}).status_code == 200
    return session.runner.post(path, json={"final": True, "message": "done", "repos": [repo]})


def _pages(session: Session) -> str:
    pages = [f"/projects/{session.project}/sessions/{session.name}", f"/projects/{session.project}"]
    html = ""
    for page in pages:
        response = session.api.get(page)
        assert response.status_code == 200, response.text
        html += response.text
    return html


@pytest.mark.parametrize("pull_url", [SCRIPT_URL, FOREIGN_URL], ids=["javascript", "foreign"])
def test_a_runner_reported_pull_request_is_not_stored(session: Session, pull_url: str) -> None:
    answer = _report(session, pull_url)
    assert answer.status_code == 200, answer.text
    repos = get_session(session.api, session.project, session.name)["status"]["repos"]
    assert len(repos) == 1
    assert repos[0]["pushed"] is True, "the rest of the report is kept"
    assert "pullRequestUrl" not in repos[0]
    assert "pullRequest" not in repos[0]
    html = _pages(session)
    assert pull_url not in html
    assert "javascript:" not in html
    assert "looks legitimate" not in html
