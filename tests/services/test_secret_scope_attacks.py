"""A secret's framework scope, the one new field of the secrets form and route: a cookie cannot set it from
another origin or without the CSRF token, a hostile value is refused and never echoed unescaped, its size is
bounded, and an editor cannot widen or narrow which agents get a secret."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import signed_in
from tests.support.server import Server

pytestmark = pytest.mark.integration

PAYLOAD = "<img src=x onerror=alert(1)>"
HOSTILE = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("secret-scope") / "home").start()
    yield srv
    srv.close()


@pytest.fixture
def project(server: Server) -> Iterator[tuple[httpx.Client, str]]:
    with server.client() as admin:
        name = f"s-{uuid.uuid4().hex[:8]}"
        assert admin.post("/api/projects", json={"name": name}).status_code == 201
        yield admin, name


def _names(admin: httpx.Client, project: str) -> set[str]:
    return {item["name"] for item in admin.get(f"/api/projects/{project}/secrets").json()["items"]}


def test_a_cookie_from_another_origin_or_without_the_token_sets_no_scope(
    server: Server, project: tuple[httpx.Client, str]
) -> None:
    admin, name = project
    form = {"name": "SCOPED", "value": "v-1234", "frameworks": ["codex"]}
    with signed_in(server.url, server.token) as browser:
        other = browser.post(f"/projects/{name}/settings/secrets", data=form, headers={"Origin": HOSTILE})
        bare = browser.post(f"/projects/{name}/settings/secrets", data=form, headers={"X-CSRF-Token": "forged"})
    assert other.status_code == 403
    assert bare.status_code == 403
    assert "SCOPED" not in _names(admin, name)


def test_a_hostile_framework_name_is_refused_and_never_echoed(
    server: Server, project: tuple[httpx.Client, str]
) -> None:
    admin, name = project
    with signed_in(server.url, server.token) as browser:
        page = browser.post(
            f"/projects/{name}/settings/secrets", data={"name": "HOSTILE", "value": "v-1234", "frameworks": [PAYLOAD]}
        )
    assert page.status_code == 422
    assert PAYLOAD not in page.text
    api = admin.put(f"/api/projects/{name}/secrets/HOSTILE", json={"value": "v-1234", "frameworks": [PAYLOAD]})
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/problem+json")
    assert "HOSTILE" not in _names(admin, name)


@pytest.mark.parametrize(
    "frameworks",
    [["codex"] * 10_000, ["x" * 100_000], "codex", [], [None]],
    ids=["ten-thousand", "one-huge", "not-a-list", "empty", "null"],
)
def test_a_scope_out_of_bounds_is_refused(project: tuple[httpx.Client, str], frameworks: object) -> None:
    admin, name = project
    answer = admin.put(f"/api/projects/{name}/secrets/BOUNDED", json={"value": "v-1234", "frameworks": frameworks})
    assert answer.status_code in (413, 422), answer.text
    assert "BOUNDED" not in _names(admin, name)


def test_an_editor_cannot_change_which_agents_get_a_secret(server: Server, project: tuple[httpx.Client, str]) -> None:
    admin, name = project
    assert admin.put(f"/api/projects/{name}/secrets/KEPT", json={"value": "v-1234"}).status_code == 200
    made = admin.post(f"/api/projects/{name}/keys", json={"name": "editor", "role": "edit"})
    assert made.status_code == 201, made.text
    with server.client(token=made.json()["token"]) as editor:
        answer = editor.put(f"/api/projects/{name}/secrets/KEPT", json={"value": "v-5678", "frameworks": ["script"]})
    assert answer.status_code == 403, answer.text
    [kept] = [i for i in admin.get(f"/api/projects/{name}/secrets").json()["items"] if i["name"] == "KEPT"]
    assert kept["frameworks"] is None, "the secret still reaches every framework"
