"""A GitLab re-run finds the user's existing fork through GitLab's forks API, renamed or in a group,
instead of forking again or assuming `<username>/<project>`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.api import create_session, wait_phase
from tests.support.fake_gitlab import DEVELOPER, REPORTER, FakeGitLab
from tests.support.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path_factory.mktemp("gitlab")) as fake:
        yield fake
        fake.check()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gitlab: FakeGitLab) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("vteam") / "home"
    srv = Server(home, env={"VTEAM_GITLAB_URL": gitlab.url}).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _reporter(api: httpx.Client, gitlab: FakeGitLab) -> tuple[str, str, str, str, dict[str, Any]]:
    """A user who may only read `group/web`, signed in with their token, in a fresh vTeam project."""
    group, user, project = _unique("team"), _unique("erin"), _unique("p")
    token = gitlab.add_user(user)
    assert api.put("/api/user/forges/gitlab/token", json={"token": token}).status_code == 200
    assert api.post("/api/projects", json={"name": project}).status_code == 201
    gitlab.create_project(group, "web", files={"README.md": "# web\n"})
    gitlab.add_member(f"{group}/web", user, access_level=REPORTER)
    url = f"{gitlab.url}/{group}/web.git"
    return group, user, token, project, {"input": {"url": url}, "output": {"url": url, "createPullRequest": True}}


def _run(api: httpx.Client, project: str, prompt: str, repo: dict[str, Any]) -> dict[str, Any]:
    name = _unique("s")
    create_session(api, project, name=name, prompt=prompt, repos=[repo])
    done = wait_phase(api, project, name, timeout=90)
    assert done["status"]["phase"] == "Completed", (done["status"]["message"], done["status"]["repos"])
    status: dict[str, Any] = done["status"]["repos"][0]
    return status


def test_a_rerun_uses_the_users_renamed_fork(api: httpx.Client, gitlab: FakeGitLab) -> None:
    group, user, _, project, repo = _reporter(api, gitlab)
    first = _run(api, project, "echo one >> README.md", repo)
    assert first["pullRequest"]["headRepo"] == f"{user}/web"
    gitlab.rename_project(f"{user}/web", "web-mine")

    second = _run(api, project, "echo two >> README.md", repo)
    assert gitlab.forks_of(f"{group}/web") == [f"{user}/web-mine"], "no second fork"
    assert second["pullRequest"]["headRepo"] == f"{user}/web-mine"
    assert gitlab.branch_sha(f"{user}/web-mine", second["branch"]) == second["commitSha"]


def test_a_fork_in_a_group_the_user_develops_in_is_used(api: httpx.Client, gitlab: FakeGitLab) -> None:
    group, user, token, project, repo = _reporter(api, gitlab)
    forks_group = _unique("forks")
    made = httpx.post(
        f"{gitlab.url}/api/v4/projects/{quote(f'{group}/web', safe='')}/fork",
        json={"namespace_path": forks_group, "path": "web-work"},
        headers={"PRIVATE-TOKEN": token},
    )
    assert made.status_code == 201, made.text
    gitlab.add_member(f"{forks_group}/web-work", user, access_level=DEVELOPER)

    done = _run(api, project, "echo grouped >> README.md", repo)
    assert gitlab.forks_of(f"{group}/web") == [f"{forks_group}/web-work"]
    assert done["pullRequest"]["headRepo"] == f"{forks_group}/web-work"
