"""Invariants the store holds under concurrent requests: vault rotations never lose a key, a project always
keeps an admin, a key never outlives its project into a new one of the same name, a new project does not read
the old one's audit trail, a second revoke records nothing, and a failed rotation is audited."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, read_events, text_of, wait_phase
from tests.support.server import Server

pytestmark = pytest.mark.integration

VALUE = "rotate-me-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("integrity-store") / "home").start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


def _project(api: httpx.Client, name: str | None = None) -> str:
    name = name or f"p-{uuid.uuid4().hex[:8]}"
    created = api.post("/api/projects", json={"name": name})
    assert created.status_code == 201, created.text
    return name


def _at_once(server: Server, calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Every call on its own connection, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        with server.client(timeout=60) as client:
            client.get("/api/me")
            barrier.wait()
            return call(client)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _person(server: Server, api: httpx.Client) -> tuple[str, str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    created = api.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    link = httpx.URL(created.json()["loginLink"])
    traded = httpx.post(f"{server.url}/api/login", json={"token": link.params["token"]})
    assert traded.status_code == 200, traded.text
    return name, traded.json()["token"]


def _audit(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    listed = api.get("/api/audit", params={"limit": 1000, **params})
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def test_concurrent_vault_rotations_keep_every_secret_readable(server: Server, api: httpx.Client) -> None:
    project = _project(api)
    assert api.put(f"/api/projects/{project}/secrets/S0", json={"value": VALUE}).status_code == 200
    for width in (2, 3, 5, 2, 4):
        answers = _at_once(server, [lambda c: c.post("/api/admin/vault/rotate")] * width)
        assert [a.status_code for a in answers] == [200] * width, [a.text for a in answers]
    assert api.post("/api/admin/vault/rotate").status_code == 200
    create_session(api, project, name="reads", prompt="echo got=$S0", framework="script")
    done = wait_phase(api, project, "reads", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "got=***" in text_of(read_events(api, project, "reads")), "the agent read the secret's value"


def test_a_failed_rotation_keeps_every_secret_and_is_audited(server: Server, api: httpx.Client) -> None:
    project = _project(api)
    assert api.put(f"/api/projects/{project}/secrets/GOOD", json={"value": VALUE}).status_code == 200
    with closing(sqlite3.connect(server.home / "vteam.db", timeout=30)) as db, db:
        db.execute(
            "INSERT INTO secrets (scope, name, value, updated) VALUES (?, 'BROKEN', ?, '2026-01-01')",
            (f"project:{project}", b"not a fernet token"),
        )
    failed = api.post("/api/admin/vault/rotate")
    assert failed.status_code >= 400, failed.text
    records = [r for r in _audit(api, action="vault.rotate") if r["outcome"] == "failure"]
    assert len(records) == 1
    assert "BROKEN" in records[0]["details"]["error"], "the failure names the secret (never its value)"
    assert VALUE not in str(records)
    assert api.delete(f"/api/projects/{project}/secrets/BROKEN").status_code == 204
    assert api.post("/api/admin/vault/rotate").status_code == 200
    create_session(api, project, name="still", prompt="echo got=$GOOD", framework="script")
    done = wait_phase(api, project, "still", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "got=***" in text_of(read_events(api, project, "still"))


def _two_admins(api: httpx.Client) -> str:
    project = _project(api)
    for who in ("a", "b"):
        bound = api.post(
            f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": who, "role": "admin"}
        )
        assert bound.status_code == 201, bound.text
    assert api.delete(f"/api/projects/{project}/permissions/user/admin").status_code == 204
    return project


def _admins(api: httpx.Client, project: str) -> list[str]:
    listed = api.get(f"/api/projects/{project}/permissions").json()["items"]
    return [b["subjectName"] for b in listed if b["role"] == "admin"]


def _remover(path: str, who: str, demote: bool) -> Callable[[httpx.Client], httpx.Response]:
    if demote:
        body = {"subjectType": "user", "subjectName": who, "role": "edit"}
        return lambda c: c.post(path, json=body)
    return lambda c: c.delete(f"{path}/user/{who}")


@pytest.mark.parametrize("demote", [False, True], ids=["revoke", "demote"])
def test_two_concurrent_removals_always_leave_an_admin(server: Server, api: httpx.Client, demote: bool) -> None:
    for _ in range(12):
        project = _two_admins(api)
        path = f"/api/projects/{project}/permissions"

        answers = _at_once(server, [_remover(path, "a", demote), _remover(path, "b", demote)])
        assert sorted(a.status_code for a in answers) == [201 if demote else 204, 409], [a.text for a in answers]
        assert len(_admins(api, project)) == 1


def _key_maker(path: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda c: c.post(f"{path}/keys", json={"name": "k", "role": "admin"})


def test_a_key_made_while_its_project_is_deleted_never_works_on_a_new_one(server: Server, api: httpx.Client) -> None:
    for _ in range(10):
        project = _project(api)
        path = f"/api/projects/{project}"
        answers = _at_once(server, [_key_maker(path), lambda c, path=path: c.delete(path)])
        assert answers[1].status_code == 204, answers[1].text
        _project(api, project)
        if answers[0].status_code == 201:
            with server.client(token=answers[0].json()["token"]) as key:
                assert key.get(f"/api/projects/{project}").status_code == 401
        assert api.get(f"/api/projects/{project}/keys").json()["items"] == []


def test_a_new_project_of_a_deleted_ones_name_starts_clean(server: Server, api: httpx.Client) -> None:
    """Its admin sees none of the old keys (revoked or not), secrets, members or audit records."""
    user, token = _person(server, api)
    project = _project(api)
    api.post(f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": "old", "role": "edit"})
    api.put(f"/api/projects/{project}/secrets/OLD_SECRET", json={"value": VALUE})
    revoked = api.post(f"/api/projects/{project}/keys", json={"name": "old-key"}).json()
    assert api.delete(f"/api/projects/{project}/keys/{revoked['id']}").status_code == 204
    assert api.delete(f"/api/projects/{project}").status_code == 204
    with server.client(token=token) as mine:
        assert mine.post("/api/projects", json={"name": project}).status_code == 201
        assert mine.get(f"/api/projects/{project}/keys").json()["items"] == []
        assert mine.get(f"/api/projects/{project}/secrets").json()["items"] == []
        members = [b["subjectName"] for b in mine.get(f"/api/projects/{project}/permissions").json()["items"]]
        assert members == [user]
        trail = _audit(mine, project=project)
        exported = mine.get("/api/audit/export", params={"project": project})
    assert [r["action"] for r in trail] == ["project.create"]
    assert [r["actor"] for r in trail] == [user]
    assert exported.status_code == 200
    assert "OLD_SECRET" not in exported.text
    assert "old-key" not in exported.text
    assert "secret.write" in str(_audit(api, project=project)), "platform admins still read every incarnation"


def test_a_second_revoke_is_a_no_op_without_an_audit_record(server: Server, api: httpx.Client) -> None:
    project = _project(api)
    key = api.post(f"/api/projects/{project}/keys", json={"name": "twice"}).json()
    token = api.post("/api/tokens", json={"name": "twice"})
    assert token.status_code == 201, token.text
    for _ in range(3):
        assert api.delete(f"/api/projects/{project}/keys/{key['id']}").status_code == 204
        assert api.delete(f"/api/tokens/{token.json()['id']}").status_code == 204
    assert len(_audit(api, action="key.revoke", project=project)) == 1
    assert [r["target"] for r in _audit(api, action="token.revoke")].count(f"token/{token.json()['id']}") == 1


@pytest.mark.parametrize("path", ["/api/audit", "/api/audit/export"])
def test_an_audit_after_beyond_sqlites_integers_is_a_422_problem(api: httpx.Client, path: str) -> None:
    assert api.get(path, params={"after": 2**63 - 1}).status_code == 200
    answer = api.get(path, params={"after": 2**63})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_refused_and_failed_admin_actions_are_audited(server: Server, api: httpx.Client) -> None:
    user, token = _person(server, api)
    project = _project(api)
    with server.client(token=token) as person:
        assert person.post("/api/admin/vault/rotate").status_code == 403
        policy = f"/api/admin/projects/{project}/repository-policy"
        assert person.put(policy, json={"localRoots": ["/"]}).status_code == 403
    refused = api.put(policy, json={"localRoots": [str(server.home)]})
    assert refused.status_code == 422, refused.text
    denied = [(r["actor"], r["action"]) for r in _audit(api, actor=user) if r["outcome"] == "denied"]
    assert denied == [(user, "vault.rotate"), (user, "project.repository-policy")]
    trail = _audit(api, project=project, action="project.repository-policy")
    assert [(r["actor"], r["outcome"]) for r in trail] == [(user, "denied"), ("admin", "failure")]
    assert "vTeam's own data folder" in trail[1]["details"]["error"]
