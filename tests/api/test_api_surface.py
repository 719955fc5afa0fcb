"""The API's surface: health, OpenAPI, runner types, and one authorization check on every route."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute, APIWebSocketRoute

from vteam.api.app import ROUTERS

pytestmark = pytest.mark.integration


def _dependency_names(router: APIRouter, route: APIRoute) -> set[str]:
    names = {getattr(dep.dependency, "__name__", "") for dep in router.dependencies}
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        names.add(getattr(dep.call, "__name__", ""))
        stack.extend(dep.dependencies)
    return names


def test_every_route_passes_through_authorization() -> None:
    routes = [(router, r) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 10
    guards = {"authorize", "authorize_runner"}
    unguarded = [r.path for router, r in routes if not _dependency_names(router, r) & guards]
    assert unguarded == []
    runner_routes = sorted(r.path for router, r in routes if "authorize_runner" in _dependency_names(router, r))
    assert runner_routes == [
        "/api/projects/{project}/agentic-sessions/{name}",
        "/api/projects/{project}/agentic-sessions/{name}/runner/push-targets",
        "/api/projects/{project}/agentic-sessions/{name}/runner/status",
    ]
    sockets = [r for router in ROUTERS for r in router.routes if isinstance(r, APIWebSocketRoute)]
    assert {r.path for r in sockets} == {
        "/api/projects/{project}/agentic-sessions/{name}/ws",
        "/api/projects/{project}/agentic-sessions/{name}/runner/ws",
    }


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_the_root_leads_a_browser_to_sign_in_and_a_signed_in_one_to_projects(api: httpx.Client) -> None:
    with httpx.Client(base_url=str(api.base_url)) as browser:
        response = browser.get("/", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url).endswith("/signin")
    assert "Sign in to vTeam" in response.text
    assert str(api.get("/", follow_redirects=True).url).endswith("/projects")
    assert api.get("/api/docs").status_code == 200


def test_openapi_describes_the_resource_paths(api: httpx.Client) -> None:
    spec = api.get("/api/openapi.json").json()
    assert spec["info"]["title"] == "vTeam"
    for path in (
        "/api/projects",
        "/api/projects/{project}/agentic-sessions",
        "/api/projects/{project}/agentic-sessions/{name}",
        "/api/projects/{project}/agentic-sessions/{name}/stop",
        "/api/projects/{project}/agentic-sessions/{name}/events",
    ):
        assert path in spec["paths"]


def test_runner_types_lists_script(api: httpx.Client) -> None:
    types = {t["name"]: t for t in api.get("/api/runner-types").json()}
    assert types["script"]["capabilities"]["streaming"] is True
    assert types["script"]["capabilities"]["interactive"] is True
    assert types["script"]["secrets"] == []
    claude = types["claude-code"]
    assert claude["secrets"] == ["ANTHROPIC_API_KEY"]
    assert "CLAUDE_CODE_USE_VERTEX" in claude["secretAlternatives"]
    assert "ANTHROPIC_BASE_URL" in claude["settings"]
    assert "sonnet" in claude["models"]
    assert claude["modelPattern"]
    assert claude["capabilities"] == {"interactive": True, "resume": True, "streaming": True}


def test_session_websocket_reader_replays_then_closes(api: httpx.Client, project: str) -> None:
    import json

    from websockets.sync.client import connect

    from tests.support.api import create_session, wait_phase

    create_session(api, project, name="wsread", prompt="echo via-websocket")
    wait_phase(api, project, "wsread")
    url = str(api.base_url).replace("http", "ws", 1) + f"/api/projects/{project}/agentic-sessions/wsread/ws?after=0"
    with connect(url, additional_headers={"Authorization": api.headers["Authorization"]}) as ws:
        frames = [json.loads(m) for m in ws]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert "via-websocket\n" in [f["data"].get("delta") for f in frames]
    assert frames[-1]["type"] == "vteam.phase"
    assert frames[-1]["data"]["value"]["phase"] == "Completed"
