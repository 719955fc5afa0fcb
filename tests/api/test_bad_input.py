"""Bad requests get a problem-details answer a person can act on, and change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import sessions_path

pytestmark = pytest.mark.integration


def _count(api: httpx.Client, project: str) -> int:
    return len(api.get(sessions_path(project)).json()["items"])


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("repos", "needle"),
    [
        ([{"input": {"url": "ftp://example.com/r.git"}}], "scheme 'ftp'"),
        ([{"input": {"url": "relative/path"}}], "is not a URL vTeam can clone"),
        ([{"input": {"url": "ext::sh -c touch% /tmp/pwned"}}], "remote helper"),
        (
            [{"input": {"url": "https://user:hunter22@example.com/r.git"}}],
            "must not carry a user name, password or token",
        ),
        ([{"input": {"url": "/tmp/r", "branch": "bad..branch"}}], "contains '..'"),
        ([{"input": {"url": "/tmp/r", "branch": "-rf"}}], "starts with '-'"),
        ([{"input": {"url": "/tmp/r"}, "output": {"url": "/tmp/r", "targetBranch": "a b"}}], "space"),
        (
            [{"input": {"url": "/tmp/r", "branch": "main"}, "output": {"url": "/tmp/r", "targetBranch": "main"}}],
            "allowDefaultBranch",
        ),
    ],
)
def test_bad_repos_are_rejected(api: httpx.Client, project: str, repos: list[Any], needle: str) -> None:
    before = _count(api, project)
    body = _problem(api.post(sessions_path(project), json={"prompt": "true", "repos": repos}), 422)
    assert needle in body["detail"]
    if needle != "allowDefaultBranch":
        assert body["errors"][0]["loc"][0] == "repos", "field errors point at the field"
    assert "hunter22" not in str(body), "a password in a rejected URL is not echoed back"
    assert _count(api, project) == before


def test_unknown_framework_names_the_valid_ones(api: httpx.Client, project: str) -> None:
    body = _problem(api.post(sessions_path(project), json={"prompt": "x", "framework": "skynet"}), 422)
    assert "unknown framework 'skynet'" in body["detail"]
    assert "script" in body["detail"]
    assert _count(api, project) == 0


def test_claude_code_needs_its_secret_and_a_known_model(api: httpx.Client, project: str) -> None:
    body = _problem(api.post(sessions_path(project), json={"prompt": "x", "framework": "claude-code"}), 422)
    assert "needs the secret ANTHROPIC_API_KEY" in body["detail"]
    model = {"prompt": "x", "framework": "claude-code", "model": "gpt-5"}
    body = _problem(api.post(sessions_path(project), json=model), 422)
    assert "unknown model 'gpt-5'" in body["detail"]
    assert "sonnet" in body["detail"]
    assert _count(api, project) == 0


def test_main_repo_index_out_of_range(api: httpx.Client, project: str) -> None:
    body = _problem(
        api.post(sessions_path(project), json={"prompt": "x", "repos": [{"input": {"url": "/r"}}], "mainRepoIndex": 2}),
        422,
    )
    assert "mainRepoIndex 2 is out of range" in body["detail"]


def test_bad_names_timeout_and_fields(api: httpx.Client, project: str) -> None:
    assert (
        "DNS-1123"
        in _problem(api.post(sessions_path(project), json={"prompt": "x", "name": "Bad_Name"}), 422)["detail"]
    )
    assert "86400" in _problem(api.post(sessions_path(project), json={"prompt": "x", "timeout": 90000}), 422)["detail"]
    assert "prompt" in _problem(api.post(sessions_path(project), json={"repos": []}), 422)["detail"]
    assert "promt" in _problem(api.post(sessions_path(project), json={"promt": "typo", "prompt": "x"}), 422)["detail"]
    _problem(api.post(sessions_path(project), content=b"{not json", headers={"content-type": "application/json"}), 422)
    _problem(api.post(sessions_path(project), json=["a", "list"]), 422)
    assert _count(api, project) == 0


def test_missing_project_and_session(api: httpx.Client) -> None:
    body = _problem(api.post(sessions_path("nope"), json={"prompt": "x"}), 404)
    assert "project 'nope' not found" in body["detail"].lower()
    _problem(api.get(sessions_path("nope")), 404)
    body = _problem(api.get("/api/projects/nope"), 404)
    assert "not found" in body["detail"]


def test_duplicate_names_conflict(api: httpx.Client, project: str) -> None:
    assert api.post(sessions_path(project), json={"prompt": "true", "name": "twin"}).status_code == 201
    body = _problem(api.post(sessions_path(project), json={"prompt": "true", "name": "twin"}), 409)
    assert "already exists" in body["detail"]
    _problem(api.post("/api/projects", json={"name": project}), 409)
    _problem(api.post("/api/projects", json={"name": "UPPER"}), 422)


def test_bad_label_selector_and_paging_token(api: httpx.Client, project: str) -> None:
    body = _problem(api.get(sessions_path(project), params={"labelSelector": "a=b=c"}), 422)
    assert "label selector" in body["detail"]
    _problem(api.get(sessions_path(project), params={"continue": "garbage!"}), 422)


def test_unknown_route_is_a_problem(api: httpx.Client) -> None:
    assert "no route" in _problem(api.get("/api/nothing-here"), 404)["detail"]


def test_labels_filter_and_pagination(api: httpx.Client, project: str) -> None:
    for i in range(5):
        body = {"prompt": "true", "name": f"s{i}", "labels": {"team": "a" if i % 2 else "b"}}
        assert api.post(sessions_path(project), json=body).status_code == 201
    team_a = api.get(sessions_path(project), params={"labelSelector": "team=a"}).json()["items"]
    assert sorted(s["metadata"]["name"] for s in team_a) == ["s1", "s3"]
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"continue": token} if token else {})}
        page = api.get(sessions_path(project), params=params).json()
        seen += [s["metadata"]["name"] for s in page["items"]]
        token = page["metadata"]["continue"]
        if not token:
            break
    assert seen == [f"s{i}" for i in range(5)]


def test_create_bodies_with_unknown_or_conflicting_fields_are_refused(api: httpx.Client, project: str) -> None:
    body = {"metadata": {"name": "x", "generateName": "y-"}, "spec": {"prompt": "true"}}
    assert "generateName" in _problem(api.post(sessions_path(project), json=body), 422)["detail"]
    body = {"metadata": {"name": "x", "namespace": "other"}, "spec": {"prompt": "true"}}
    assert "does not match the project" in _problem(api.post(sessions_path(project), json=body), 422)["detail"]
    body = {"spec": {"prompt": "true"}, "extra": 1}
    assert "extra" in _problem(api.post(sessions_path(project), json=body), 422)["detail"]
    assert _count(api, project) == 0


def test_phase_filter_fills_pages(api: httpx.Client, project: str) -> None:
    from tests.support.api import wait_phase

    for i in range(6):
        prompt = "true" if i % 2 else "exit 1"
        assert api.post(sessions_path(project), json={"prompt": prompt, "name": f"f{i}"}).status_code == 201
    for i in range(6):
        wait_phase(api, project, f"f{i}")
    page = api.get(sessions_path(project), params={"phase": "Completed", "limit": 2}).json()
    assert [s["metadata"]["name"] for s in page["items"]] == ["f1", "f3"]
    rest = api.get(
        sessions_path(project), params={"phase": "Completed", "limit": 2, "continue": page["metadata"]["continue"]}
    )
    assert [s["metadata"]["name"] for s in rest.json()["items"]] == ["f5"]


def test_full_resource_shape_is_accepted(api: httpx.Client, project: str, tmp_path: Path) -> None:
    body = {"metadata": {"name": "shaped", "labels": {"x": "y"}}, "spec": {"prompt": "true", "framework": "script"}}
    response = api.post(sessions_path(project), json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["apiVersion"] == "vteam.ambient-code/v1alpha1"
    assert created["kind"] == "AgenticSession"
    assert created["metadata"]["labels"] == {"x": "y"}
    assert created["metadata"]["namespace"] == project
