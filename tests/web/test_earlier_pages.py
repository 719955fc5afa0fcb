"""The session page's `/earlier` route (the pages of a long conversation before its tail) goes through the same
guards as the page itself: the caller's role in the project, a bounded `before`, and escaped output."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, wait_phase
from tests.support.server import Server

pytestmark = pytest.mark.integration

PAYLOAD = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
# About 30 reads of 30 KB each: more than a page's tail holds (about 512 KiB), so earlier pages exist.
PROMPT = f"for i in $(seq 30); do yes '{PAYLOAD}' | head -c 30000; echo; sleep 0.05; done"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-earlier") / "home"
    srv = Server(home).start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def long_session(admin: httpx.Client) -> tuple[str, str]:
    project = f"p-{uuid.uuid4().hex[:10]}"
    assert admin.post("/api/projects", json={"name": project}).status_code == 201
    name = create_session(admin, project, prompt=PROMPT)["metadata"]["name"]
    assert wait_phase(admin, project, name, timeout=60)["status"]["phase"] == "Completed"
    return project, name


def _earlier_link(page: str) -> str:
    found = re.search(r'href="(/projects/[^"]+/earlier\?before=\d+)"', page)
    assert found, "a long conversation's page offers its earlier output"
    return found.group(1)


def test_earlier_output_is_escaped_like_the_page(admin: httpx.Client, long_session: tuple[str, str]) -> None:
    project, name = long_session
    page = admin.get(f"/projects/{project}/sessions/{name}")
    assert page.status_code == 200, page.text
    earlier = admin.get(_earlier_link(page.text))
    assert earlier.status_code == 200, earlier.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in earlier.text
    assert "<script>window.__pwned" not in earlier.text
    assert "<img src=x" not in earlier.text
    assert earlier.headers["content-security-policy"].startswith("default-src 'self'")


def test_earlier_output_is_not_for_other_projects(
    server: Server, admin: httpx.Client, long_session: tuple[str, str]
) -> None:
    project, name = long_session
    other = f"p-{uuid.uuid4().hex[:10]}"
    assert admin.post("/api/projects", json={"name": other}).status_code == 201
    key = admin.post(f"/api/projects/{other}/keys", json={"name": "outsider", "role": "admin"})
    assert key.status_code == 201, key.text
    page = admin.get(f"/projects/{project}/sessions/{name}")
    link = _earlier_link(page.text)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key.json()['token']}"}) as outsider:
        refused = outsider.get(link)
        assert refused.status_code == 404, refused.text
        assert "__pwned" not in refused.text
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get(link).status_code == 303, "no one signed in is sent to sign in, nothing shown"


@pytest.mark.parametrize("before", ["0", "-1", str(2**63), "x", "²"])
def test_a_bad_before_is_refused_with_a_clear_answer(
    admin: httpx.Client, long_session: tuple[str, str], before: str
) -> None:
    project, name = long_session
    answer = admin.get(f"/projects/{project}/sessions/{name}/earlier", params={"before": before})
    assert answer.status_code == 422, answer.text
    assert "__pwned" not in answer.text
