"""Who may call what: every API route against every kind of caller, with the exact status each one gets.

`ROUTES` names, for every HTTP and WebSocket route of `vteam.api.app.ROUTERS`, what it requires and how
to call it successfully; `expected()` turns that requirement into the status each identity must get.
A route missing from `ROUTES` (or an entry for a route that no longer exists) fails
`test_every_route_is_in_the_matrix`, so a new route cannot ship without its row.

Identities: anonymous; three users holding view, edit and admin in project A; a user who is admin of
project B only; a revoked and an expired API token (both of A's admin, so only their state denies them);
a runner token of another session in A; the runner token of the session in the path; the platform admin.

Calls that destroy something (delete a project, a session, a key, a token; stop or end a session; log
out) act on throwaway objects made for their cell, so the cells do not depend on each other's order.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.api import sessions_path, wait_phase
from tests.support.fake_gitlab import FakeGitLab
from tests.support.server import Server
from vteam.api.app import ROUTERS
from vteam.auth import RunnerTokens

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MISSING = "authz-no-such-project"
"""A project that does not exist: the other project's admin must not tell it apart from project A."""
WS = "WS"


class Need(Enum):
    PUBLIC = "public"
    SIGNED_IN = "signed-in"
    VIEW = "view"
    EDIT = "edit"
    ADMIN = "admin"
    PLATFORM = "platform-admin"
    RUNNER = "runner-only"
    RUNNER_OR_VIEW = "runner-or-view"


IDENTITIES = ("anonymous", "view", "edit", "admin", "other", "revoked", "expired", "runner", "own-runner", "platform")
PEOPLE = ("view", "edit", "admin", "other")
"""Identities that are users with API tokens of their own."""
RANK = {"view": 0, "edit": 1, "admin": 2}
NEEDED = {Need.VIEW: 0, Need.RUNNER_OR_VIEW: 0, Need.EDIT: 1, Need.ADMIN: 2}


def expected(need: Need, ok: int, who: str) -> int:
    """The status `who` gets from a route that answers `ok` to those it lets in."""
    if need is Need.PUBLIC:
        return ok
    if who in ("revoked", "expired", "anonymous"):
        return 401
    if who == "runner":
        return 403
    if who == "own-runner":
        return ok if need in (Need.RUNNER, Need.RUNNER_OR_VIEW) else 403
    if need is Need.RUNNER:
        return 403
    if need in (Need.PUBLIC, Need.SIGNED_IN):
        return ok
    if need is Need.PLATFORM:
        return ok if who == "platform" else 403
    if who == "platform":
        return ok
    if who == "other":
        return 404
    return ok if RANK[who] >= NEEDED[need] else 403


@dataclass
class World:
    """Project A with its members and sessions, project B, and every identity's credentials."""

    server: Server
    api: httpx.Client
    """Signed in as the platform admin, for setting things up."""
    http: httpx.Client
    """Sends the cells' requests, with no credentials of its own."""
    project: str
    other_project: str
    users: dict[str, str]
    tokens: dict[str, str]
    live: str
    chat: str
    stopped: str
    gitlab_repo: str
    gitlab_token: str
    runner_tokens: RunnerTokens
    uids: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        return {
            "project": self.project,
            "live": self.live,
            "chat": self.chat,
            "stopped": self.stopped,
            "viewer": self.users["view"],
            "repo": quote(self.gitlab_repo, safe=""),
            "unique": uuid.uuid4().hex[:10],
        }

    def new_session(self, *, interactive: bool = False) -> str:
        body = {"prompt": "sleep 600", "framework": "script", "interactive": interactive}
        response = self.api.post(sessions_path(self.project), json=body)
        assert response.status_code == 201, response.text
        created = response.json()["metadata"]
        self.uids[created["name"]] = created["uid"]
        return str(created["name"])

    def token(self, who: str, path: str) -> str | None:
        if who == "own-runner":
            match = re.match(r"/api/projects/([^/]+)/agentic-sessions/([^/?]+)", path)
            project, name = (match[1], match[2]) if match else (self.project, self.live)
            return self.runner_tokens.mint(project, name, self.uids[name])
        return self.tokens.get(who)

    def as_(self, who: str) -> dict[str, str]:
        """Headers that sign a setup request in as `who` (A's admin for identities that are not people)."""
        token = self.tokens["platform"] if who == "platform" else self.tokens[who if who in PEOPLE else "admin"]
        return {"Authorization": f"Bearer {token}"}


Setup = Callable[[World, str], dict[str, str]]


@dataclass(frozen=True)
class Case:
    need: Need
    ok: int
    """The status of a successful call (or of a stable answer past authorization, see `detail`)."""
    path: str | None = None
    """The URL to call, formatted with `World.fields()` and the setup's fields; default: the route's own path."""
    body: Any = None
    setup: Setup | None = None
    """Makes the cell's throwaway objects; its fields fill `path` and `body`; `_token` replaces the caller's token."""
    detail: str | None = None
    """For an `ok` that is not 2xx: what the problem's detail says, proving the call got past authorization."""


# Per-cell setups: throwaway objects, made by the platform admin unless they must be the caller's own.


def _throwaway_project(world: World, who: str) -> dict[str, str]:
    name = f"authz-t-{uuid.uuid4().hex[:8]}"
    assert world.api.post("/api/projects", json={"name": name}).status_code == 201
    for role in ("view", "edit", "admin"):
        body = {"subjectType": "user", "subjectName": world.users[role], "role": role}
        assert world.api.post(f"/api/projects/{name}/permissions", json=body).status_code == 201
    return {"project": name}


def _throwaway_session(world: World, who: str) -> dict[str, str]:
    return {"session": world.new_session()}


def _throwaway_chat(world: World, who: str) -> dict[str, str]:
    return {"session": world.new_session(interactive=True)}


def _login_link(world: World, who: str) -> dict[str, str]:
    response = world.api.post(f"/api/users/{world.users['view']}/login-link")
    assert response.status_code == 201, response.text
    return {"link": _link_token(response.json()["loginLink"])}


def _fresh_token(world: World, who: str) -> dict[str, str]:
    """Logging out revokes the token it comes with: people (and the platform admin, whose VTEAM_ADMIN_TOKEN
    cannot be revoked that way) log out with a token of their own made for it."""
    if who not in (*PEOPLE, "platform"):
        return {}
    response = world.http.post("/api/tokens", json={"name": "to log out"}, headers=world.as_(who))
    assert response.status_code == 201, response.text
    return {"_token": response.json()["token"]}


def _own_token_id(world: World, who: str) -> dict[str, str]:
    response = world.http.post("/api/tokens", json={"name": "to revoke"}, headers=world.as_(who))
    assert response.status_code == 201, response.text
    return {"token_id": response.json()["id"]}


def _forge_token(world: World, who: str) -> dict[str, str]:
    if who in (*PEOPLE, "platform"):
        body = {"token": world.gitlab_token}
        response = world.http.put("/api/user/forges/gitlab/token", json=body, headers=world.as_(who))
        assert response.status_code == 200, response.text
    return {}


def _secret(world: World, who: str) -> dict[str, str]:
    name = f"AUTHZ_{uuid.uuid4().hex[:8].upper()}"
    response = world.api.put(f"/api/projects/{world.project}/secrets/{name}", json={"value": "throwaway"})
    assert response.status_code == 200, response.text
    return {"secret": name}


def _binding(world: World, who: str) -> dict[str, str]:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    body = {"subjectType": "user", "subjectName": name, "role": "view"}
    assert world.api.post(f"/api/projects/{world.project}/permissions", json=body).status_code == 201
    return {"subject": name}


def _key(world: World, who: str) -> dict[str, str]:
    """Editors revoke the keys they made: a key the caller made where they may make one, else one A's admin made."""
    maker = who if who in ("edit", "admin", "platform") else "admin"
    body = {"name": "throwaway"}
    response = world.http.post(f"/api/projects/{world.project}/keys", json=body, headers=world.as_(maker))
    assert response.status_code == 201, response.text
    return {"key": response.json()["id"]}


SESSION = "/api/projects/{project}/agentic-sessions/{name}"
NO_APP = "no GitHub App is configured"

ROUTES: dict[tuple[str, str], Case] = {
    # health
    ("GET", "/healthz"): Case(Need.PUBLIC, 200),
    ("GET", "/readyz"): Case(Need.PUBLIC, 200),
    # projects
    ("GET", "/api/projects"): Case(Need.SIGNED_IN, 200),
    ("POST", "/api/projects"): Case(Need.SIGNED_IN, 201, body={"name": "authz-new-{unique}"}),
    ("GET", "/api/projects/{project}"): Case(Need.VIEW, 200),
    ("PATCH", "/api/projects/{project}"): Case(
        Need.ADMIN, 200, body={"description": "patched by the matrix", "defaults": {"framework": "script"}}
    ),
    ("DELETE", "/api/projects/{project}"): Case(Need.ADMIN, 204, setup=_throwaway_project),
    # sessions
    ("GET", "/api/projects/{project}/agentic-sessions"): Case(Need.VIEW, 200),
    ("POST", "/api/projects/{project}/agentic-sessions"): Case(
        Need.EDIT, 201, body={"prompt": "sleep 600", "framework": "script"}
    ),
    ("GET", SESSION): Case(Need.RUNNER_OR_VIEW, 200, path="/api/projects/{project}/agentic-sessions/{live}"),
    ("DELETE", SESSION): Case(
        Need.EDIT, 204, path="/api/projects/{project}/agentic-sessions/{session}", setup=_throwaway_session
    ),
    ("POST", SESSION + "/stop"): Case(
        Need.EDIT, 202, path="/api/projects/{project}/agentic-sessions/{session}/stop", setup=_throwaway_session
    ),
    ("POST", SESSION + "/continue"): Case(
        Need.EDIT, 201, path="/api/projects/{project}/agentic-sessions/{stopped}/continue", body={"prompt": "again"}
    ),
    # conversation
    ("POST", SESSION + "/messages"): Case(
        Need.EDIT, 202, path="/api/projects/{project}/agentic-sessions/{chat}/messages", body={"text": "hello"}
    ),
    ("POST", SESSION + "/interrupt"): Case(
        Need.EDIT, 202, path="/api/projects/{project}/agentic-sessions/{chat}/interrupt"
    ),
    ("POST", SESSION + "/end"): Case(
        Need.EDIT, 202, path="/api/projects/{project}/agentic-sessions/{session}/end", setup=_throwaway_chat
    ),
    # events
    ("GET", SESSION + "/events"): Case(
        Need.VIEW, 200, path="/api/projects/{project}/agentic-sessions/{live}/events?follow=false"
    ),
    (WS, SESSION + "/ws"): Case(Need.VIEW, 101, path="/api/projects/{project}/agentic-sessions/{stopped}/ws"),
    # runner
    ("POST", SESSION + "/runner/status"): Case(
        Need.RUNNER, 200, path="/api/projects/{project}/agentic-sessions/{live}/runner/status", body={}
    ),
    ("POST", SESSION + "/runner/push-targets"): Case(
        Need.RUNNER,
        200,
        path="/api/projects/{project}/agentic-sessions/{live}/runner/push-targets",
        body={"repos": []},
    ),
    (WS, SESSION + "/runner/ws"): Case(
        Need.RUNNER, 101, path="/api/projects/{project}/agentic-sessions/{live}/runner/ws"
    ),
    ("GET", "/api/runner-types"): Case(Need.SIGNED_IN, 200),
    ("GET", SESSION + "/pull-requests"): Case(
        Need.VIEW, 200, path="/api/projects/{project}/agentic-sessions/{live}/pull-requests"
    ),
    # repo browser, against a fake GitLab's public project
    ("GET", "/api/projects/{project}/repo/branches"): Case(
        Need.VIEW, 200, path="/api/projects/{project}/repo/branches?repo={repo}"
    ),
    ("GET", "/api/projects/{project}/repo/tree"): Case(
        Need.VIEW, 200, path="/api/projects/{project}/repo/tree?repo={repo}"
    ),
    ("GET", "/api/projects/{project}/repo/blob"): Case(
        Need.VIEW, 200, path="/api/projects/{project}/repo/blob?repo={repo}&path=README.md"
    ),
    # the caller's forge accounts; no GitHub App is configured
    ("GET", "/api/user/forges"): Case(Need.SIGNED_IN, 200),
    ("PUT", "/api/user/forges/{forge}/token"): Case(
        Need.SIGNED_IN, 200, path="/api/user/forges/gitlab/token", body={"token": "{gitlab_token}"}
    ),
    ("DELETE", "/api/user/forges/{forge}/token"): Case(
        Need.SIGNED_IN, 204, path="/api/user/forges/gitlab/token", setup=_forge_token
    ),
    ("GET", "/api/user/forges/github/install"): Case(Need.SIGNED_IN, 422, detail=NO_APP),
    ("GET", "/api/user/forges/github/callback"): Case(
        Need.SIGNED_IN, 422, path="/api/user/forges/github/callback?installation_id=1&state=s&code=c", detail=NO_APP
    ),
    ("DELETE", "/api/user/forges/github/installation"): Case(
        Need.SIGNED_IN, 404, detail="no GitHub App installation is linked"
    ),
    # secrets
    ("GET", "/api/projects/{project}/secrets"): Case(Need.ADMIN, 200),
    ("PUT", "/api/projects/{project}/secrets/{name}"): Case(
        Need.ADMIN, 200, path="/api/projects/{project}/secrets/AUTHZ_PUT", body={"value": "s3cret"}
    ),
    ("DELETE", "/api/projects/{project}/secrets/{name}"): Case(
        Need.ADMIN, 204, path="/api/projects/{project}/secrets/{secret}", setup=_secret
    ),
    # accounts
    ("POST", "/api/login"): Case(Need.PUBLIC, 200, body={"token": "{link}"}, setup=_login_link),
    ("POST", "/api/logout"): Case(Need.SIGNED_IN, 204, setup=_fresh_token),
    ("GET", "/api/me"): Case(Need.SIGNED_IN, 200),
    ("GET", "/api/users"): Case(Need.PLATFORM, 200),
    ("POST", "/api/users"): Case(Need.PLATFORM, 201, body={"name": "authz-u-{unique}"}),
    ("POST", "/api/users/{user}/login-link"): Case(Need.PLATFORM, 201, path="/api/users/{viewer}/login-link"),
    ("GET", "/api/tokens"): Case(Need.SIGNED_IN, 200),
    ("POST", "/api/tokens"): Case(Need.SIGNED_IN, 201, body={"name": "authz"}),
    ("DELETE", "/api/tokens/{token_id}"): Case(Need.SIGNED_IN, 204, setup=_own_token_id),
    # access
    ("GET", "/api/projects/{project}/access"): Case(Need.VIEW, 200),
    ("GET", "/api/projects/{project}/permissions"): Case(Need.VIEW, 200),
    ("POST", "/api/projects/{project}/permissions"): Case(
        Need.ADMIN, 201, body={"subjectType": "user", "subjectName": "bound-{unique}", "role": "view"}
    ),
    ("DELETE", "/api/projects/{project}/permissions/{subject_type}/{subject_name}"): Case(
        Need.ADMIN, 204, path="/api/projects/{project}/permissions/user/{subject}", setup=_binding
    ),
    # access keys: editors make keys up to their role and revoke their own; admins revoke any
    ("GET", "/api/projects/{project}/keys"): Case(Need.EDIT, 200),
    ("POST", "/api/projects/{project}/keys"): Case(Need.EDIT, 201, body={"name": "authz", "role": "view"}),
    ("DELETE", "/api/projects/{project}/keys/{key_id}"): Case(
        Need.EDIT, 204, path="/api/projects/{project}/keys/{key}", setup=_key
    ),
    # audit: platform admins read it all, a project's admins that project's records
    ("GET", "/api/audit"): Case(Need.ADMIN, 200, path="/api/audit?project={project}"),
    ("GET", "/api/audit/export"): Case(Need.ADMIN, 200, path="/api/audit/export?project={project}"),
    ("GET", "/api/audit/verify"): Case(Need.PLATFORM, 200),
    ("POST", "/api/admin/vault/rotate"): Case(Need.PLATFORM, 200),
    # the repository policy: which local folders a project's sessions may use (platform admins only)
    ("GET", "/api/admin/projects/{project}/repository-policy"): Case(Need.PLATFORM, 200),
    ("PUT", "/api/admin/projects/{project}/repository-policy"): Case(
        Need.PLATFORM, 200, body={"localRoots": ["/srv/git/authz"]}
    ),
}


def served_routes() -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                methods = set(route.methods or ())
                if "GET" in methods:
                    methods.discard("HEAD")  # HEAD runs the GET's endpoint with its dependencies: GET's row holds
                routes |= {(method, route.path) for method in methods}
            elif isinstance(route, APIWebSocketRoute):
                routes.add((WS, route.path))
    return routes


def test_every_route_is_in_the_matrix() -> None:
    served = served_routes()
    assert sorted(served - ROUTES.keys()) == [], "routes without a row in ROUTES: add them to the matrix"
    assert sorted(ROUTES.keys() - served) == [], "ROUTES names routes that no longer exist"


@pytest.mark.parametrize(
    ("need", "who", "status"),
    [
        (Need.PUBLIC, "anonymous", 200),
        (Need.PUBLIC, "expired", 200),
        (Need.PUBLIC, "runner", 200),
        (Need.SIGNED_IN, "other", 200),
        (Need.VIEW, "other", 404),
        (Need.EDIT, "view", 403),
        (Need.EDIT, "edit", 200),
        (Need.ADMIN, "edit", 403),
        (Need.ADMIN, "platform", 200),
        (Need.PLATFORM, "admin", 403),
        (Need.RUNNER, "platform", 403),
        (Need.RUNNER, "own-runner", 200),
        (Need.RUNNER_OR_VIEW, "own-runner", 200),
        (Need.VIEW, "own-runner", 403),
    ],
)
def test_expected_follows_the_rules(need: Need, who: str, status: int) -> None:
    assert expected(need, 200, who) == status


# The world: one server, its fake GitLab, project A and B, their people and sessions.


def _link_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def _person(api: httpx.Client, http: httpx.Client, name: str) -> str:
    """A user, signed in as `vteam login` does: their login link traded for an API token."""
    response = api.post("/api/users", json={"name": name})
    assert response.status_code == 201, response.text
    login = http.post("/api/login", json={"token": _link_token(response.json()["loginLink"])})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path_factory.mktemp("gitlab")) as fake:
        yield fake


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, gitlab: FakeGitLab) -> Iterator[World]:
    home = tmp_path_factory.mktemp("authz") / "home"
    env = {
        # Runners that only sleep: sessions stay live until stopped, and cost next to nothing.
        "VTEAM_RUNNER_COMMAND": '["sleep", "600"]',
        "VTEAM_MAX_RUNNING_SESSIONS": "1000",
        "VTEAM_GITLAB_URL": gitlab.url,
    }
    server = Server(home, env=env).start()
    try:
        with server.client() as api, httpx.Client(base_url=server.url, timeout=30) as http:
            yield _build(server, api, http, gitlab)
    finally:
        server.close()


def _build(server: Server, api: httpx.Client, http: httpx.Client, gitlab: FakeGitLab) -> World:
    project, other_project = "authz-a", "authz-b"
    users = {who: f"authz-{who}" for who in PEOPLE}
    tokens = {who: _person(api, http, users[who]) for who in PEOPLE} | {"platform": server.token}
    assert api.post("/api/projects", json={"name": project}).status_code == 201
    for role in ("view", "edit", "admin"):
        body = {"subjectType": "user", "subjectName": users[role], "role": role}
        assert api.post(f"/api/projects/{project}/permissions", json=body).status_code == 201
    other = {"Authorization": f"Bearer {tokens['other']}"}
    assert http.post("/api/projects", json={"name": other_project}, headers=other).status_code == 201

    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    revoked = http.post("/api/tokens", json={"name": "revoked"}, headers=admin).json()
    expired = http.post("/api/tokens", json={"name": "expired"}, headers=admin).json()
    for token in (revoked, expired):
        assert http.get(f"/api/projects/{project}", headers={"Authorization": f"Bearer {token['token']}"}).is_success
    assert http.delete(f"/api/tokens/{revoked['id']}", headers=admin).status_code == 204
    with contextlib.closing(sqlite3.connect(server.home / "vteam.db")) as db, db:
        db.execute("UPDATE tokens SET expires = ? WHERE id = ?", ("2001-01-01T00:00:00+00:00", expired["id"]))
    tokens |= {"revoked": revoked["token"], "expired": expired["token"]}

    gitlab_token = gitlab.add_user("authz")
    gitlab.create_project("authz", "browsed", files={"README.md": "hello\n"})
    world = World(
        server=server,
        api=api,
        http=http,
        project=project,
        other_project=other_project,
        users=users,
        tokens=tokens,
        live="",
        chat="",
        stopped="",
        gitlab_repo=f"{gitlab.url}/authz/browsed",
        gitlab_token=gitlab_token,
        runner_tokens=RunnerTokens(bytes.fromhex((server.home / "secret.key").read_text())),
    )
    world.live = world.new_session()
    world.chat = world.new_session(interactive=True)
    world.stopped = world.new_session()
    bystander = world.new_session()
    tokens["runner"] = world.runner_tokens.mint(project, bystander, world.uids[bystander])
    assert api.post(sessions_path(project, world.stopped) + "/stop").status_code == 202
    wait_phase(api, project, world.stopped, "Stopped")
    for name in (world.live, world.chat, bystander):
        wait_phase(api, project, name, "Creating")
    return world


# The matrix.


def _fill(value: Any, fields: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(fields)
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    return value


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


CELLS = [
    pytest.param(who, method, path, id=f"{who}-{method}-{path}") for (method, path) in ROUTES for who in IDENTITIES
]


@pytest.mark.parametrize(("who", "method", "route"), CELLS)
def test_cell(world: World, who: str, method: str, route: str) -> None:
    case = ROUTES[(method, route)]
    fields = world.fields() | {"gitlab_token": world.gitlab_token}
    if case.setup is not None:
        fields |= case.setup(world, who)
    path = (case.path or route).format_map(fields)
    token = fields.get("_token") or world.token(who, path)
    want = expected(case.need, case.ok, who)
    if method == WS:
        _check_socket(world, who, path, token, want)
        return
    world.http.cookies.clear()  # a login link's cookie must not sign in the next cell
    body = _fill(case.body, fields)
    response = world.http.request(method, path, json=body, headers=_auth(token))
    assert response.status_code == want, f"{who} {method} {path}: {response.status_code} {response.text[:500]}"
    if want == case.ok:
        if case.detail is not None:
            assert case.detail in response.json()["detail"]
        return
    _check_denial(response, want)
    if want == 404:
        # The other project's admin hears about project A exactly what they hear about no project at all.
        project = fields["project"]
        missing = world.http.request(method, path.replace(project, MISSING), json=body, headers=_auth(token))
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"] == response.headers["content-type"]
        assert json.loads(missing.text.replace(MISSING, project)) == response.json()


def _check_denial(response: httpx.Response, status: int) -> None:
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]


def _check_socket(world: World, who: str, path: str, token: str | None, want: int) -> None:
    """An allowed caller's socket opens. A refused one is answered in the handshake with the same status
    and problem details an HTTP route would give."""
    url = world.server.url.replace("http", "ws", 1) + path
    if want != 101:
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=_auth(token), open_timeout=10)
        answer = refused.value.response
        assert answer.status_code == want
        assert answer.headers["content-type"] == PROBLEM
        assert json.loads(answer.body)["status"] == want
        if who == "other":
            with pytest.raises(InvalidStatus) as missing:
                connect(url.replace(world.project, MISSING), additional_headers=_auth(token), open_timeout=10)
            assert missing.value.response.status_code == want
            other = json.loads(missing.value.response.body)["detail"].replace(MISSING, "X")
            assert json.loads(answer.body)["detail"].replace(world.project, "X") == other
        return
    with connect(url, additional_headers=_auth(token), open_timeout=10) as ws:
        if path.endswith("/runner/ws"):
            assert "lastSeq" in json.loads(ws.recv(timeout=10))
            return
        frames = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames.append(json.loads(ws.recv(timeout=10)))
    assert ws.close_code == 1000, "the reader replays a finished session's events, then closes"
    assert frames[-1]["type"] == "vteam.phase"
    assert frames[-1]["data"]["value"]["phase"] == "Stopped"


# Scopes the matrix's one call per route does not show.

AUDIT_SCOPES = [
    # (who, query, status): the whole log is the platform admins'; a project's log its admins'.
    ("platform", "", 200),
    ("admin", "", 403),
    ("other", "", 403),
    ("view", "", 403),
    ("other", "?project=authz-b", 200),
    ("admin", "?project=authz-b", 404),
    ("edit", "?project=authz-a", 403),
    ("other", f"?project={MISSING}", 404),
    ("platform", f"?project={MISSING}", 200),
]


@pytest.mark.parametrize("endpoint", ["/api/audit", "/api/audit/export"])
@pytest.mark.parametrize(("who", "query", "status"), AUDIT_SCOPES)
def test_audit_scope(world: World, endpoint: str, who: str, query: str, status: int) -> None:
    response = world.http.get(endpoint + query, headers=_auth(world.tokens[who]))
    assert response.status_code == status, response.text
    if status != 200:
        _check_denial(response, status)


def test_people_revoke_only_their_own_tokens(world: World) -> None:
    """A token id someone else owns is answered like one that does not exist; the platform admin may revoke it."""
    victim = _own_token_id(world, "admin")["token_id"]
    for who in ("view", "edit", "other"):
        response = world.http.delete(f"/api/tokens/{victim}", headers=_auth(world.tokens[who]))
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"no token {victim!r}"
    assert world.http.delete(f"/api/tokens/{victim}", headers=_auth(world.tokens["platform"])).status_code == 204


def test_keys_cannot_outrank_their_maker(world: World) -> None:
    """A key's role is at most its maker's; editors revoke only the keys they made, admins any."""
    path = f"/api/projects/{world.project}/keys"
    for who, role, status in (
        ("edit", "admin", 403),
        ("edit", "edit", 201),
        ("admin", "admin", 201),
        ("view", "view", 403),
        ("other", "view", 404),
    ):
        response = world.http.post(path, json={"name": "k", "role": role}, headers=_auth(world.tokens[who]))
        assert response.status_code == status, f"{who} making a {role} key: {response.text}"
    admins = _key(world, "admin")["key"]
    response = world.http.delete(f"{path}/{admins}", headers=_auth(world.tokens["edit"]))
    assert response.status_code == 403, response.text
    _check_denial(response, 403)
    editors = _key(world, "edit")["key"]
    assert world.http.delete(f"{path}/{editors}", headers=_auth(world.tokens["admin"])).status_code == 204
