"""A project's session defaults: set with PATCH (a merge patch, admins only, checked against the agent
registry), and filled into every new session whose request leaves the field out; the request always wins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import sessions_path
from tests.support.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Runners that only sleep: these tests look at sessions' specs, not at what agents do."""
    home = tmp_path_factory.mktemp("defaults") / "home"
    srv = Server(home, env={"VTEAM_RUNNER_COMMAND": '["sleep", "600"]', "VTEAM_MAX_RUNNING_SESSIONS": "100"})
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def project(api: httpx.Client) -> str:
    """A project whose claude-code sessions can be created (a stand-in key; runners only sleep)."""
    name = f"d-{uuid.uuid4().hex[:10]}"
    assert api.post("/api/projects", json={"name": name, "description": "kept"}).status_code == 201
    put = api.put(f"/api/projects/{name}/secrets/ANTHROPIC_API_KEY", json={"value": "sk-test-not-real"})
    assert put.status_code == 200, put.text
    return name


def _patch(api: httpx.Client, project: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = api.patch(f"/api/projects/{project}", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _spec(api: httpx.Client, project: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(sessions_path(project), json=body)
    assert response.status_code == 201, response.text
    spec: dict[str, Any] = response.json()["spec"]
    return spec


def test_sessions_take_the_defaults_their_request_leaves_out(api: httpx.Client, project: str) -> None:
    defaults = {"framework": "claude-code", "model": "sonnet", "timeout": 1234}
    answer = _patch(api, project, {"defaults": defaults})
    assert answer["spec"]["defaults"] == defaults
    assert api.get(f"/api/projects/{project}").json()["spec"]["defaults"] == defaults

    spec = _spec(api, project, {"prompt": "hello"})
    assert (spec["framework"], spec["model"], spec["timeout"]) == ("claude-code", "sonnet", 1234)

    spec = _spec(api, project, {"prompt": "hello", "model": "opus", "timeout": 60})
    assert (spec["framework"], spec["model"], spec["timeout"]) == ("claude-code", "opus", 60), "the request wins"

    spec = _spec(api, project, {"prompt": "hello", "model": None})
    assert "model" not in spec, "an explicit null model wins over the default"

    spec = _spec(api, project, {"prompt": "echo hi", "framework": "script"})
    assert (spec["framework"], spec.get("model"), spec["timeout"]) == ("script", None, 1234), (
        "the default model belongs to the default framework only"
    )

    spec = _spec(api, project, {"metadata": {"name": "full-shape"}, "spec": {"prompt": "hello"}})
    assert (spec["framework"], spec["model"], spec["timeout"]) == ("claude-code", "sonnet", 1234)


def test_patch_merges(api: httpx.Client, project: str) -> None:
    _patch(api, project, {"defaults": {"framework": "claude-code", "timeout": 600}})
    spec = _patch(api, project, {"displayName": "Team A"})["spec"]
    assert spec == {
        "displayName": "Team A",
        "description": "kept",
        "defaults": {"framework": "claude-code", "timeout": 600},
    }
    spec = _patch(api, project, {"description": None, "defaults": {"model": "haiku", "timeout": None}})["spec"]
    assert spec == {"displayName": "Team A", "defaults": {"framework": "claude-code", "model": "haiku"}}
    assert "defaults" not in _patch(api, project, {"defaults": None})["spec"]
    assert _spec(api, project, {"prompt": "echo hi"})["framework"] == "script", "no defaults: the spec's own"


@pytest.mark.parametrize(
    ("defaults", "says"),
    [
        ({"framework": "no-such-agent"}, "unknown framework 'no-such-agent'"),
        ({"framework": "claude-code", "model": "gpt-5.5"}, "unknown model 'gpt-5.5'"),
        ({"model": "sonnet"}, "a default model needs a default framework"),
        ({"timeout": 0}, "greater than or equal to 1"),
        ({"timeout": 86401}, "less than or equal to 86400"),
        ({"framework": "script", "color": "blue"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_defaults_are_refused(api: httpx.Client, project: str, defaults: dict[str, Any], says: str) -> None:
    response = api.patch(f"/api/projects/{project}", json={"defaults": defaults})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert says in problem["detail"] or any(says in e["msg"] for e in problem.get("errors", []))
    assert "defaults" not in api.get(f"/api/projects/{project}").json()["spec"], "nothing was written"


def test_only_admins_patch_and_it_is_audited(server: Server, api: httpx.Client, project: str) -> None:
    made = api.post("/api/users", json={"name": f"ed-{uuid.uuid4().hex[:6]}"}).json()
    link = made["loginLink"].split("token=", 1)[1]
    token = api.post("/api/login", json={"token": link}).json()["token"]
    body = {"subjectType": "user", "subjectName": made["name"], "role": "edit"}
    assert api.post(f"/api/projects/{project}/permissions", json=body).status_code == 201
    with server.client(token=token) as editor:
        denied = editor.patch(f"/api/projects/{project}", json={"defaults": {"framework": "script"}})
    assert denied.status_code == 403, denied.text
    _patch(api, project, {"defaults": {"framework": "script"}})
    records = api.get("/api/audit", params={"project": project, "action": "project.update"}).json()["items"]
    assert [(r["target"], r["details"]) for r in records] == [(f"project/{project}", {"fields": ["defaults"]})]
