"""Change sets on GitLab: a real `vteam up` against the fake GitLab (its documented merge request API,
real bare repos over smart HTTP), through python-gitlab.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.fake_gitlab import REPORTER, FakeGitLab
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
    srv = Server(home, env={"VTEAM_GITLAB_URL": gitlab.url, "VTEAM_MAX_RUNNING_SESSIONS": "8"}).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _setup(api: httpx.Client, gitlab: FakeGitLab, user: str) -> tuple[str, str]:
    token = gitlab.add_user(user)
    response = api.put("/api/user/forges/gitlab/token", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json()["login"] == user
    project = _unique("p")
    assert api.post("/api/projects", json={"name": project}).status_code == 201
    return token, project


def _repo(gitlab: FakeGitLab, namespace: str, name: str) -> dict[str, Any]:
    gitlab.create_project(namespace, name, files={"README.md": f"# {name}\n"})
    url = f"{gitlab.url}/{namespace}/{name}.git"
    return {"input": {"url": url}, "output": {"url": url, "createPullRequest": True}}


def _run(api: httpx.Client, project: str, prompt: str, repos: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    name = _unique("s")
    create_session(api, project, name=name, prompt=prompt, repos=repos, **extra)
    return wait_phase(api, project, name, timeout=90)


def test_a_developer_gets_a_merge_request_and_a_rerun_updates_it(
    api: httpx.Client, gitlab: FakeGitLab, server: Server
) -> None:
    group, user = _unique("group"), _unique("dave")
    token, project = _setup(api, gitlab, user)
    repo = _repo(gitlab, group, "service")
    gitlab.add_member(f"{group}/service", user)
    first = _run(api, project, "echo one >> README.md", [repo], displayName="Tidy the service")
    assert first["status"]["phase"] == "Completed", (first["status"]["message"], first["status"]["repos"])
    [mr] = gitlab.merge_requests(f"{group}/service")
    assert mr["title"] == "Tidy the service"
    assert mr["source_branch"] == first["status"]["repos"][0]["branch"]
    assert mr["target_branch"] == "main"
    pull = first["status"]["repos"][0]["pullRequest"]
    assert pull["forge"] == "gitlab"
    assert pull["url"] == mr["web_url"]
    listed = api.get(sessions_path(project, first["metadata"]["name"]) + "/pull-requests").json()["items"]
    assert [(p["number"], p["state"]) for p in listed] == [(mr["iid"], "open")]

    response = api.post(
        sessions_path(project, first["metadata"]["name"]) + "/continue",
        json={"prompt": "echo two >> README.md", "name": _unique("s")},
    )
    assert response.status_code == 201, response.text
    second = wait_phase(api, project, response.json()["metadata"]["name"], timeout=90)
    assert second["status"]["phase"] == "Completed", second["status"]
    [updated] = gitlab.merge_requests(f"{group}/service")
    assert updated["iid"] == mr["iid"]
    assert updated["sha"] == second["status"]["repos"][0]["commitSha"]
    assert token not in server.log()


def test_a_reporter_pushes_to_a_fork_and_opens_the_merge_request_from_it(api: httpx.Client, gitlab: FakeGitLab) -> None:
    group, user = _unique("team"), _unique("erin")
    _, project = _setup(api, gitlab, user)
    repo = _repo(gitlab, group, "web")
    gitlab.add_member(f"{group}/web", user, access_level=REPORTER)
    done = _run(api, project, "echo fork >> README.md", [repo])
    assert done["status"]["phase"] == "Completed", done["status"]
    status = done["status"]["repos"][0]
    assert gitlab.branch_sha(f"{group}/web", status["branch"]) is None
    assert gitlab.branch_sha(f"{user}/web", status["branch"]) == status["commitSha"]
    [mr] = gitlab.merge_requests(f"{group}/web")
    assert mr["source_project_id"] != mr["target_project_id"]
    assert status["pullRequest"]["headRepo"] == f"{user}/web"


def test_the_repo_browser_reads_gitlab(api: httpx.Client, gitlab: FakeGitLab) -> None:
    group, user = _unique("docs"), _unique("fay")
    _, project = _setup(api, gitlab, user)
    gitlab.create_project(group, "handbook", files={"README.md": "# handbook\n", "guide/start.md": "start\n"})
    url = f"{gitlab.url}/{group}/handbook.git"
    tree = api.get(f"/api/projects/{project}/repo/tree", params={"repo": url})
    assert tree.status_code == 200, tree.text
    assert {(e["path"], e["type"]) for e in tree.json()["items"]} == {("README.md", "file"), ("guide", "dir")}
    blob = api.get(f"/api/projects/{project}/repo/blob", params={"repo": url, "path": "guide/start.md"})
    assert blob.json()["content"] == "start\n"
    branches = api.get(f"/api/projects/{project}/repo/branches", params={"repo": url}).json()
    assert [b["name"] for b in branches["items"]] == ["main"]
    seen = len(gitlab.requests)
    again = api.get(f"/api/projects/{project}/repo/tree", params={"repo": url})
    assert again.json() == tree.json()
    repeats = gitlab.requests[seen:]
    assert repeats, "the repeat asked GitLab again"
    assert {status for _, _, status in repeats} == {304}, "and GitLab answered every question with 304"
    missing = api.get(f"/api/projects/{project}/repo/tree", params={"repo": f"{gitlab.url}/{group}/nothing.git"})
    assert missing.status_code == 404
