"""Who may do what: sign-in, tokens, project roles, access keys and a trusted proxy, against a real server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.browser import Browser
from tests.support.cli import vteam
from tests.support.server import Server

pytestmark = pytest.mark.integration

LINK = re.compile(r"(http://\S+/login\?token=vt_login_\S+)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("vteam") / "home", env={"VTEAM_MAX_RUNNING_SESSIONS": "8"}).start()
    yield srv
    srv.close()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _person(server: Server, name: str | None = None) -> tuple[str, str]:
    """A new user and an API token of theirs, made the way an admin hands one over: a one-time link."""
    name = name or _unique("u")
    with server.client() as admin:
        created = admin.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    token = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"][0]
    with httpx.Client(base_url=server.url) as anyone:
        answer = anyone.post("/api/login", json={"token": token})
    assert answer.status_code == 200, answer.text
    return name, str(answer.json()["token"])


def _project(client: httpx.Client) -> str:
    name = _unique("p")
    response = client.post("/api/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return name


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_the_first_start_prints_a_one_time_link_that_signs_a_browser_in(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", env={"VTEAM_ADMIN_TOKEN": ""})
    server.token = ""
    server.start()
    try:
        match = LINK.search(server.log())
        assert match, "the first start prints a login link"
        link = match.group(1)
        with Browser(server.url) as browser:
            page = browser.get(link, follow_redirects=False)
            assert page.status_code == 200, "opening the link shows a page; only its button signs in"
            assert "set-cookie" not in page.headers
            assert "Sign in as admin" in page.text
            token = parse_qs(urlsplit(link).query)["token"][0]
            signed_in = browser.post("/login", data={"token": token})
            assert signed_in.status_code == 303
            cookie = signed_in.headers["set-cookie"]
            assert "vteam_session=" in cookie
            assert "HttpOnly" in cookie
            assert "SameSite=strict" in cookie
            me = browser.get(f"{server.url}/api/me")
            assert me.json() == {"name": "admin", "kind": "user", "admin": True, "groups": []}
            again = browser.get(link, follow_redirects=False)
            assert again.status_code == 401
            assert "already been used" in again.text
            assert browser.post(f"{server.url}/api/logout").status_code == 204
            browser.cookies.clear()
            _problem(browser.get(f"{server.url}/api/me"), 401)
        server.stop()
        server.start()
        assert server.log().count("First start") == 1, "only the first start creates an admin and a link"
    finally:
        server.close()


def test_anonymous_callers_get_401_and_probes_stay_open(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anyone:
        assert "vteam login" in _problem(anyone.get("/api/projects"), 401)["detail"]
        _problem(anyone.get("/api/projects", headers={"Authorization": "Bearer vt_api_0000000000000000_nope"}), 401)
        assert anyone.get("/healthz").status_code == 200
        assert anyone.get("/readyz").status_code == 200
    assert server.token not in server.log(), "VTEAM_ADMIN_TOKEN is never logged"


def test_roles_decide_and_a_project_without_access_looks_missing(server: Server) -> None:
    bob, bob_token = _person(server)
    carol, carol_token = _person(server)
    with server.client(token=bob_token) as as_bob, server.client(token=carol_token) as as_carol:
        project = _project(as_bob)
        assert as_bob.get(f"/api/projects/{project}/access").json()["role"] == "admin"
        assert [p["metadata"]["name"] for p in as_carol.get("/api/projects").json()["items"]] == []

        hidden = _problem(as_carol.get(f"/api/projects/{project}"), 404)
        missing = _problem(as_carol.get("/api/projects/no-such-project-here"), 404)
        assert hidden["detail"].replace(project, "X") == missing["detail"].replace("no-such-project-here", "X")
        _problem(as_carol.get(sessions_path(project)), 404)

        grant = {"subjectType": "user", "subjectName": carol, "role": "view"}
        assert as_bob.post(f"/api/projects/{project}/permissions", json=grant).status_code == 201
        assert as_carol.get(sessions_path(project)).status_code == 200
        assert [p["metadata"]["name"] for p in as_carol.get("/api/projects").json()["items"]] == [project]
        denied = _problem(as_carol.post(sessions_path(project), json={"prompt": "true"}), 403)
        assert "view" in denied["detail"]
        assert "edit" in denied["detail"]
        _problem(as_carol.post(f"/api/projects/{project}/permissions", json=grant), 403)

        grant["role"] = "edit"
        as_bob.post(f"/api/projects/{project}/permissions", json=grant)
        create_session(as_carol, project, name="by-carol", prompt="true")
        assert wait_phase(as_carol, project, "by-carol")["metadata"]["annotations"][
            "vteam.ambient-code/created-by"
        ] == (carol)
        _problem(as_carol.delete(f"/api/projects/{project}"), 403)

        last = _problem(as_bob.delete(f"/api/projects/{project}/permissions/user/{bob}"), 409)
        assert "last admin" in last["detail"]
        members = as_bob.get(f"/api/projects/{project}/permissions").json()["items"]
        assert {(m["subjectName"], m["role"]) for m in members} == {(bob, "admin"), (carol, "edit")}
        assert as_bob.delete(f"/api/projects/{project}/permissions/user/{carol}").status_code == 204
        _problem(as_carol.get(sessions_path(project)), 404)


def test_tokens_are_shown_once_listed_without_secrets_and_revocable(server: Server) -> None:
    _, token = _person(server)
    with server.client(token=token) as me:
        created = me.post("/api/tokens", json={"name": "ci", "expiresInDays": 7})
        assert created.status_code == 201, created.text
        secret = created.json()["token"]
        listed = me.get("/api/tokens")
        assert secret not in listed.text
        assert sorted(t["name"] for t in listed.json()["items"]) == ["ci", "vteam login"]
        with server.client(token=secret) as other:
            assert other.get("/api/me").status_code == 200
            assert me.delete(f"/api/tokens/{created.json()['id']}").status_code == 204
            assert "revoked" in _problem(other.get("/api/me"), 401)["detail"]
        _, stranger = _person(server)
        with server.client(token=stranger) as them:
            mine = me.get("/api/tokens").json()["items"][0]["id"]
            _problem(them.delete(f"/api/tokens/{mine}"), 404)


def test_access_keys_act_in_their_project_only_and_never_above_their_maker(server: Server) -> None:
    _, owner_token = _person(server)
    editor, editor_token = _person(server)
    with server.client(token=owner_token) as as_owner, server.client(token=editor_token) as as_editor:
        project, other = _project(as_owner), _project(as_owner)
        as_owner.post(
            f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": editor, "role": "edit"}
        )
        too_high = as_editor.post(f"/api/projects/{project}/keys", json={"name": "deploy", "role": "admin"})
        assert "may not exceed" in _problem(too_high, 403)["detail"]
        made = as_editor.post(f"/api/projects/{project}/keys", json={"name": "ci", "role": "edit"})
        assert made.status_code == 201, made.text
        key = made.json()["token"]
        listed = as_owner.get(f"/api/projects/{project}/keys").json()["items"]
        assert [(k["name"], k["role"], k["createdBy"]) for k in listed] == [("ci", "edit", editor)]
        assert key not in str(listed)
    with server.client(token=key) as as_key:
        create_session(as_key, project, name="by-key", prompt="true")
        assert as_key.get("/api/me").json()["project"] == project
        _problem(as_key.get(sessions_path(other)), 404)
        _problem(as_key.post("/api/projects", json={"name": _unique("p")}), 403)
        successor = as_key.post(f"/api/projects/{project}/keys", json={"name": "heir", "expiresInDays": None})
        assert "only people" in _problem(successor, 403)["detail"], "a leaked key cannot mint keys that outlive it"
        _problem(as_key.put("/api/user/forges/github/token", json={"token": "ghp_whatever1234"}), 403)
        _problem(as_key.delete(f"/api/projects/{project}"), 403)
        assert [p["metadata"]["name"] for p in as_key.get("/api/projects").json()["items"]] == [project]
        with server.client(token=owner_token) as as_owner:
            assert as_owner.get(f"/api/projects/{project}/keys").json()["items"][0]["lastUsed"]
            key_id = as_owner.get(f"/api/projects/{project}/keys").json()["items"][0]["id"]
            assert as_owner.delete(f"/api/projects/{project}/keys/{key_id}").status_code == 204
        _problem(as_key.get(sessions_path(project)), 401)


def test_deleting_a_project_drops_its_bindings_and_keys(server: Server) -> None:
    _, token = _person(server)
    with server.client(token=token) as me:
        project = _project(me)
        key = me.post(f"/api/projects/{project}/keys", json={"name": "k", "role": "view"}).json()["token"]
        assert me.delete(f"/api/projects/{project}").status_code == 204
        recreated = me.post("/api/projects", json={"name": project})
        assert recreated.status_code == 201
    with server.client(token=key) as as_key:
        _problem(as_key.get(sessions_path(project)), 401)


def test_a_trusted_proxy_names_the_user_and_groups(tmp_path: Path) -> None:
    env = {"VTEAM_TRUST_PROXY_HEADERS": "true", "VTEAM_ADMIN_GROUPS": "ops", "VTEAM_PROXY_SECRET": "s3cret-proxy"}
    server = Server(tmp_path / "home", env=env)
    server.start()
    try:
        with server.client() as admin:
            project = _project(admin)
            admin.post(
                f"/api/projects/{project}/permissions",
                json={"subjectType": "group", "subjectName": "team-x", "role": "edit"},
            )
        with httpx.Client(base_url=server.url, headers={"X-Vteam-Proxy-Secret": "s3cret-proxy"}) as proxied:
            alice = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "team-x, staff"}
            assert proxied.get(f"/api/projects/{project}/access", headers=alice).json()["role"] == "edit"
            outsider = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "staff"}
            _problem(proxied.get(f"/api/projects/{project}", headers=outsider), 404)
            ops = {"X-Forwarded-User": "olga", "X-Forwarded-Groups": "ops"}
            assert proxied.get("/api/me", headers=ops).json()["admin"] is True
    finally:
        server.close()


def test_forwarded_headers_count_only_from_the_proxys_own_address(tmp_path: Path) -> None:
    """A runner pod or anything else that reaches the backend directly cannot claim to be someone."""
    env = {
        "VTEAM_TRUST_PROXY_HEADERS": "true",
        "VTEAM_ADMIN_GROUPS": "ops",
        "VTEAM_TRUSTED_PROXIES": "10.1.2.3",
        "VTEAM_PROXY_SECRET": "s3cret-proxy",
    }
    server = Server(tmp_path / "home", env=env)
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"X-Vteam-Proxy-Secret": "s3cret-proxy"}) as direct:
            spoof = {"X-Forwarded-User": "olga", "X-Forwarded-Groups": "ops", "X-Forwarded-Access-Token": "t"}
            _problem(direct.get("/api/me", headers=spoof), 401)
    finally:
        server.close()


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(server: Server) -> None:
    with httpx.Client(base_url=server.url) as spoofing:
        _problem(spoofing.get("/api/me", headers={"X-Forwarded-User": "admin", "X-Forwarded-Groups": "ops"}), 401)


def test_the_cli_signs_in_with_a_link_and_manages_tokens_keys_and_members(server: Server, tmp_path: Path) -> None:
    name = _unique("dana")
    with server.client() as admin:
        link = admin.post("/api/users", json={"name": name}).json()["loginLink"]
    config = tmp_path / "cli"
    signed = vteam(server.url, "login", link, config_dir=config)
    assert signed.returncode == 0, signed.stderr
    assert f"as {name}" in signed.stdout
    assert (config / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert vteam(server.url, "whoami", config_dir=config).stdout.strip() == name
    project = _unique("p")
    assert vteam(server.url, "project", "create", project, config_dir=config).returncode == 0
    token = vteam(server.url, "token", "create", "laptop", config_dir=config)
    assert token.stdout.startswith("vt_api_")
    listed = vteam(server.url, "token", "list", config_dir=config)
    assert "laptop" in listed.stdout
    assert token.stdout.strip() not in listed.stdout
    key = vteam(server.url, "key", "create", "bot", "--project", project, "--role", "edit", config_dir=config)
    assert key.stdout.startswith("vt_key_")
    other, _ = _person(server)
    granted = vteam(server.url, "project", "grant", project, f"user:{other}", "view", config_dir=config)
    assert granted.returncode == 0, granted.stderr
    members = vteam(server.url, "project", "members", project, config_dir=config)
    assert other in members.stdout
    assert vteam(server.url, "logout", config_dir=config).returncode == 0
    after = vteam(server.url, "whoami", config_dir=config)
    assert after.returncode == 1
    assert after.stderr.startswith("error: sign in")
