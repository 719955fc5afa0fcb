"""Small gaps in who may do what: logging out revokes the credential used, whatever its kind (or says why it
cannot), and the OpenAPI description and explorer answer signed-in callers only, as docs/api.md says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("gaps") / "home").start()
    yield srv
    srv.close()


@pytest.fixture
def project(server: Server) -> str:
    name = f"gaps-{uuid.uuid4().hex[:8]}"
    with server.client() as admin:
        assert admin.post("/api/projects", json={"name": name}).status_code == 201
    return name


def test_logout_with_an_access_key_revokes_the_key_and_audits_it(server: Server, project: str) -> None:
    with server.client() as admin:
        made = admin.post(f"/api/projects/{project}/keys", json={"name": "ci", "role": "edit"})
        assert made.status_code == 201, made.text
        key, key_id = made.json()["token"], made.json()["id"]
        with server.client(token=key) as as_key:
            assert as_key.get(f"/api/projects/{project}").status_code == 200
            assert as_key.post("/api/logout").status_code == 204
            assert as_key.get(f"/api/projects/{project}").status_code == 401, "the key no longer works"
        listed = {k["id"]: k for k in admin.get(f"/api/projects/{project}/keys").json()["items"]}
        assert listed[key_id].get("revoked"), listed[key_id]
        records = admin.get("/api/audit", params={"project": project, "action": "key.revoke"}).json()["items"]
        assert [r["target"] for r in records] == [f"key/{key_id}"]


def test_logout_with_the_admin_token_says_how_to_revoke_it(server: Server) -> None:
    with server.client() as admin:
        answer = admin.post("/api/logout")
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "VTEAM_ADMIN_TOKEN" in answer.json()["detail"]
        assert server.token not in answer.text
        assert admin.get("/api/me").status_code == 200


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs"])
def test_the_api_description_needs_a_signed_in_caller(server: Server, path: str) -> None:
    anonymous = httpx.get(server.url + path, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    assert "paths" not in anonymous.text
    with server.client() as admin:
        signed_in = admin.get(path)
    assert signed_in.status_code == 200
    if path.endswith(".json"):
        assert "/api/projects/{project}/agentic-sessions" in signed_in.json()["paths"]
