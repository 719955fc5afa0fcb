"""The API's contract at its edges (issue 24): 405 says what is allowed, HEAD works where GET does, every
malformed body gets the same 422 problem, a merge PATCH without a precondition never answers 409, and a
list filtered by phase pages correctly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.server import Server

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def project(api: httpx.Client) -> str:
    name = f"p-{uuid.uuid4().hex[:10]}"
    assert api.post("/api/projects", json={"name": name}).status_code == 201
    return name


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/projects", {"GET", "HEAD", "POST"}),
        ("PUT", "/healthz", {"GET", "HEAD"}),
        ("POST", "/api/projects/{project}", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("PUT", "/static/app.css", {"GET", "HEAD"}),
    ],
)
def test_a_405_says_which_methods_are_allowed(
    api: httpx.Client, project: str, method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path.format(project=project))
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/healthz", "/api/projects", "/api/projects/{project}", "/projects"])
def test_head_answers_wherever_get_does_with_the_same_headers_and_no_body(
    api: httpx.Client, project: str, path: str
) -> None:
    path = path.format(project=project)
    got = api.get(path)
    head = api.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_on_a_missing_resource_is_its_404(api: httpx.Client) -> None:
    response = api.head("/api/projects/no-such-project-here")
    assert response.status_code == 404
    assert response.content == b""


def test_every_malformed_body_is_the_same_422_problem(api: httpx.Client) -> None:
    """Before, a body that was not UTF-8 (or nested too deep) was 400 while one that was not JSON was 422."""
    bodies = {
        "not JSON": b"{",
        "not UTF-8": b'{"name": "\xff\xfe"}',
        "nested past the parser's depth": b"[" * 100_000,
        "the wrong shape": b'{"name": 5}',
    }
    for kind, body in bodies.items():
        response = api.post("/api/projects", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, f"a body that is {kind}: {response.text}"
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == "Invalid input"


def test_concurrent_merge_patches_without_a_resource_version_all_land(
    server: Server, api: httpx.Client, project: str
) -> None:
    """Twelve at once, three rounds: before, 8-9 of 12 answered 409 'resourceVersion N is stale'."""

    def patch(text: str) -> httpx.Response:
        with server.client() as own:
            return own.patch(f"/api/projects/{project}", json={"description": text})

    for round_ in range(3):
        texts = [f"round {round_} writer {i}" for i in range(12)]
        with ThreadPoolExecutor(len(texts)) as pool:
            answers = list(pool.map(patch, texts))
        assert [a.status_code for a in answers] == [200] * len(texts), [a.text for a in answers if a.is_error]
        assert api.get(f"/api/projects/{project}").json()["spec"]["description"] in texts


def test_a_patch_naming_a_stale_resource_version_is_still_a_409(api: httpx.Client, project: str) -> None:
    path = f"/api/projects/{project}"
    version = api.get(path).json()["metadata"]["resourceVersion"]
    fresh = api.patch(path, json={"description": "first", "resourceVersion": version})
    assert fresh.status_code == 200, fresh.text
    stale = api.patch(path, json={"description": "second", "resourceVersion": version})
    assert stale.status_code == 409
    assert stale.headers["content-type"] == PROBLEM
    assert api.get(path).json()["spec"]["description"] == "first"


def names(page: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in page["items"]]


def test_a_phase_filtered_list_with_a_limit_pages_through_exactly_the_matches(api: httpx.Client, project: str) -> None:
    failing = set()
    for index in range(6):
        name = f"s{index}"
        create_session(api, project, name=name, prompt="exit 3" if index % 2 else "true")
        if index % 2:
            failing.add(name)
    for index in range(6):
        wait_phase(api, project, f"s{index}")
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        params = {"phase": "Failed", "limit": "1"} | ({"continue": token} if token else {})
        page = api.get(sessions_path(project), params=params)
        assert page.status_code == 200, page.text
        got = names(page.json())
        assert len(got) <= 1
        seen += got
        token = page.json()["metadata"]["continue"]
        if token is None:
            break
    assert seen == sorted(failing)
    every = api.get(sessions_path(project), params={"phase": "Completed", "limit": "2"}).json()
    assert names(every) == ["s0", "s2"]
    assert every["metadata"]["continue"]
    rest = api.get(
        sessions_path(project), params={"phase": "Completed", "limit": "2", "continue": every["metadata"]["continue"]}
    ).json()
    assert names(rest) == ["s4"]
    assert rest["metadata"]["continue"] is None
