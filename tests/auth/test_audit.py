"""The audit log over the API and the CLI: what people do is recorded with who, where and how it ended;
project admins read their own project's records only; export is JSON Lines; `vteam audit verify`
catches a record changed in the database file behind the server's back; secret values never appear."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.cli import vteam
from tests.support.fake_gitlab import FakeGitLab
from tests.support.server import Server

pytestmark = pytest.mark.integration

SECRET_VALUE = "audit-must-never-see-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path_factory.mktemp("gitlab")) as fake:
        yield fake
        fake.check()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gitlab: FakeGitLab) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("vteam-audit") / "home"
    # No model is reachable: the one agent session here is created to pass its secret check, then deleted.
    env = {"VTEAM_GITLAB_URL": gitlab.url, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _project(api: httpx.Client) -> str:
    name = _name("p")
    response = api.post("/api/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return name


@pytest.fixture
def project(api: httpx.Client) -> str:
    return _project(api)


def _person(server: Server, api: httpx.Client) -> tuple[str, str]:
    """A new user and an API token for them, by the same path a person takes: login link, then `vteam login`."""
    name = _name("u")
    created = api.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    link = httpx.URL(created.json()["loginLink"])
    traded = httpx.post(f"{server.url}/api/login", json={"token": link.params["token"]})
    assert traded.status_code == 200, traded.text
    return name, traded.json()["token"]


def _records(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _one(api: httpx.Client, project: str, action: str, target: str) -> dict[str, Any]:
    found = [r for r in _records(api, project=project, action=action) if r["target"] == target]
    assert len(found) == 1, found
    return found[0]


def _same_request(record: dict[str, Any], response: httpx.Response) -> None:
    """The record carries the request's id, where the server answers with one."""
    sent = response.headers.get("X-Request-Id")
    if sent is not None:
        assert record["requestId"] == sent


def test_session_actions_are_recorded(api: httpx.Client, project: str) -> None:
    created = api.post(sessions_path(project), json={"name": "s1", "framework": "script", "prompt": "sleep 600"})
    assert created.status_code == 201, created.text
    record = _one(api, project, "session.create", "session/s1")
    assert (record["actor"], record["project"], record["outcome"]) == ("admin", project, "success")
    assert record["details"] == {"framework": "script"}
    _same_request(record, created)

    wait_phase(api, project, "s1", "Running")
    stopped = api.post(sessions_path(project, "s1") + "/stop")
    assert stopped.status_code == 202, stopped.text
    _same_request(_one(api, project, "session.stop", "session/s1"), stopped)
    wait_phase(api, project, "s1")

    continued = api.post(sessions_path(project, "s1") + "/continue", json={"prompt": "true", "name": "s2"})
    assert continued.status_code == 201, continued.text
    record = _one(api, project, "session.create", "session/s2")
    assert record["details"] == {"framework": "script", "parent": "s1"}
    _same_request(record, continued)
    wait_phase(api, project, "s2")

    deleted = api.delete(sessions_path(project, "s2"))
    assert deleted.status_code == 204, deleted.text
    _same_request(_one(api, project, "session.delete", "session/s2"), deleted)
    actions = [r["action"] for r in _records(api, project=project, action="session.")]
    assert actions == ["session.create", "session.stop", "session.create", "session.delete"]


def test_secret_writes_are_recorded_without_their_value(api: httpx.Client, project: str) -> None:
    put = api.put(f"/api/projects/{project}/secrets/GIT_TOKEN", json={"value": SECRET_VALUE})
    assert put.status_code == 200, put.text
    record = _one(api, project, "secret.write", "secret/GIT_TOKEN")
    assert (record["actor"], record["outcome"], record["details"]) == ("admin", "success", None)
    _same_request(record, put)
    gone = api.delete(f"/api/projects/{project}/secrets/GIT_TOKEN")
    assert gone.status_code == 204
    _same_request(_one(api, project, "secret.delete", "secret/GIT_TOKEN"), gone)
    exported = api.get("/api/audit/export")
    assert exported.status_code == 200
    assert SECRET_VALUE not in exported.text
    assert SECRET_VALUE not in json.dumps(_records(api))


def test_a_project_secret_satisfies_a_frameworks_secret_check(api: httpx.Client, project: str) -> None:
    body = {"name": "agent", "framework": "claude-code", "prompt": "hello"}
    refused = api.post(sessions_path(project), json=body)
    assert refused.status_code == 422, refused.text
    assert "ANTHROPIC_API_KEY" in refused.json()["detail"]
    put = api.put(f"/api/projects/{project}/secrets/ANTHROPIC_API_KEY", json={"value": SECRET_VALUE})
    assert put.status_code == 200, put.text
    created = api.post(sessions_path(project), json=body)
    assert created.status_code == 201, created.text
    assert api.delete(sessions_path(project, "agent")).status_code == 204
    assert _one(api, project, "session.create", "session/agent")["details"] == {"framework": "claude-code"}
    other = _project(api)
    assert api.post(sessions_path(other), json=body).status_code == 422, "another project's secret does not count"


def test_forge_tokens_are_recorded_without_their_value(api: httpx.Client, gitlab: FakeGitLab) -> None:
    user = _name("dev")
    token = gitlab.add_user(user)
    put = api.put("/api/user/forges/gitlab/token", json={"token": token})
    assert put.status_code == 200, put.text
    (written,) = _records(api, action="forge_token.write")
    assert (written["actor"], written["project"], written["target"]) == ("admin", None, "forge_token/gitlab")
    assert written["details"] == {"login": user}
    _same_request(written, put)
    gone = api.delete("/api/user/forges/gitlab/token")
    assert gone.status_code == 204
    (deleted,) = _records(api, action="forge_token.delete")
    assert (deleted["target"], deleted["outcome"]) == ("forge_token/gitlab", "success")
    _same_request(deleted, gone)
    assert api.delete("/api/user/forges/gitlab/token").status_code == 404
    assert len(_records(api, action="forge_token.")) == 2, "nothing is recorded for a token that was not there"
    assert token not in api.get("/api/audit/export").text


def test_a_project_admin_reads_their_own_projects_records(server: Server, api: httpx.Client) -> None:
    alice, token = _person(server, api)
    with server.client(token=token) as as_alice:
        mine = as_alice.post("/api/projects", json={"name": _name("alice")})
        assert mine.status_code == 201, mine.text
        project = mine.json()["metadata"]["name"]
        create_session(as_alice, project, name="hers", prompt="true")
        wait_phase(as_alice, project, "hers")

        listed = as_alice.get("/api/audit", params={"project": project})
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["next"] is None
        assert {r["project"] for r in page["items"]} == {project}
        hers = [(r["action"], r["target"]) for r in page["items"] if r["actor"] == alice]
        assert hers == [("project.create", f"project/{project}"), ("session.create", "session/hers")]
        exported = as_alice.get("/api/audit/export", params={"project": project})
        assert exported.status_code == 200
        assert [json.loads(line) for line in exported.text.splitlines()] == page["items"]

        whole = as_alice.get("/api/audit")
        assert whole.status_code == 403
        assert "platform admins" in whole.json()["detail"]
        assert as_alice.get("/api/audit/export").status_code == 403
        assert as_alice.get("/api/audit/verify").status_code == 403
        other = _project(api)
        assert as_alice.get("/api/audit", params={"project": other}).status_code == 404
        assert as_alice.get("/api/audit/export", params={"project": other}).status_code == 404

    bob, bob_token = _person(server, api)
    bound = api.post(
        f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": bob, "role": "edit"}
    )
    assert bound.status_code == 201, bound.text
    with server.client(token=bob_token) as as_bob:
        lower = as_bob.get("/api/audit", params={"project": project})
        assert lower.status_code == 403
        assert "edit" in lower.json()["detail"]


def test_listing_pages_and_filters(api: httpx.Client, project: str) -> None:
    for name in ("A", "B", "C"):
        assert api.put(f"/api/projects/{project}/secrets/{name}", json={"value": "v"}).status_code == 200
    first = api.get("/api/audit", params={"project": project, "action": "secret.", "limit": 2}).json()
    assert [r["target"] for r in first["items"]] == ["secret/A", "secret/B"]
    assert first["next"] == first["items"][-1]["seq"]
    rest = api.get(
        "/api/audit", params={"project": project, "action": "secret.", "limit": 2, "after": first["next"]}
    ).json()
    assert ([r["target"] for r in rest["items"]], rest["next"]) == (["secret/C"], None)
    every = [*first["items"], *rest["items"]]
    since = every[1]["ts"]
    later = _records(api, project=project, action="secret.", since=since)
    assert later == [r for r in every if r["ts"] >= since]
    assert [r["target"] for r in later][-2:] == ["secret/B", "secret/C"]
    assert _records(api, project=project, action="secret.", until=first["items"][0]["ts"]) == []
    assert _records(api, project=project, actor="nobody") == []
    assert api.get("/api/audit", params={"since": "yesterday"}).status_code == 422
    assert api.get("/api/audit", params={"limit": 1001}).status_code == 422


def test_export_is_json_lines(api: httpx.Client, project: str) -> None:
    assert api.put(f"/api/projects/{project}/secrets/X", json={"value": "v"}).status_code == 200
    response = api.get("/api/audit/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records == _records(api)[: len(records)]
    only = [json.loads(line) for line in api.get("/api/audit/export", params={"project": project}).text.splitlines()]
    assert [(r["action"], r["target"]) for r in only] == [
        ("project.create", f"project/{project}"),
        ("secret.write", "secret/X"),
    ]


def test_the_cli_lists_exports_and_verifies(server: Server, api: httpx.Client, project: str) -> None:
    assert api.put(f"/api/projects/{project}/secrets/CLI", json={"value": "v"}).status_code == 200
    listed = vteam(server, "audit", "list", "--project", project, "--action", "secret.")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["SEQ", "TIME", "ACTOR", "PROJECT", "ACTION", "TARGET", "OUTCOME"]
    assert row.split()[2:] == ["admin", project, "secret.write", "secret/CLI", "success"]
    as_json = vteam(server, "audit", "list", "--project", project, "--action", "secret.", "--json")
    assert [r["target"] for r in json.loads(as_json.stdout)["items"]] == ["secret/CLI"]
    exported = vteam(server, "audit", "export", "--project", project)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == _records(api, project=project)
    verified = vteam(server, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit log verified: ")


def test_verify_names_a_record_changed_in_the_database_file(server: Server, api: httpx.Client, project: str) -> None:
    assert api.put(f"/api/projects/{project}/secrets/TAMPER", json={"value": "v"}).status_code == 200
    record = _one(api, project, "secret.write", "secret/TAMPER")
    with closing(sqlite3.connect(server.home / "vteam.db", timeout=10)) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET target = 'secret/OTHER' WHERE seq = ?", (record["seq"],))
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET target = 'secret/OTHER' WHERE seq = ?", (record["seq"],))
        db.commit()
        try:
            failed = vteam(server, "audit", "verify")
            assert failed.returncode == 1
            assert failed.stderr.strip() == f"error: audit record {record['seq']}: it was changed after it was written"
            answer = api.get("/api/audit/verify").json()
            assert (answer["ok"], answer["seq"]) == (False, record["seq"])
        finally:
            db.execute("UPDATE audit SET target = 'secret/TAMPER' WHERE seq = ?", (record["seq"],))
            db.execute(
                "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
            db.commit()
    restored = vteam(server, "audit", "verify")
    assert restored.returncode == 0, restored.stderr
