"""The API's limits and request ids, through a real server: X-Request-Id, the body size limit, the per-caller
write rate limit, and that none of it gets in the way of server-sent events or the runners' reports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase
from tests.support.server import Server
from vteam.api import middleware, problems
from vteam.api.middleware import WriteRateLimit
from vteam.settings import Settings

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MAX_BODY = 2_097_152  # the default VTEAM_MAX_BODY_BYTES


def new_name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


# Request ids


def test_every_response_gets_a_generated_request_id(api: httpx.Client) -> None:
    first = api.get("/api/projects")
    second = api.get("/api/no-such-route")
    assert first.status_code == 200
    assert second.status_code == 404
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids), ids
    assert ids[0] != ids[1]


def test_a_well_formed_client_request_id_is_echoed(api: httpx.Client) -> None:
    response = api.get("/api/projects", headers={"X-Request-Id": "trace-42.a_b"})
    assert response.headers["x-request-id"] == "trace-42.a_b"


@pytest.mark.parametrize("sent", ["x" * 65, "has space", "semi;colon", "ümlaut"])
def test_a_malformed_client_request_id_is_replaced(api: httpx.Client, sent: str) -> None:
    response = api.get("/api/projects", headers={b"X-Request-Id": sent.encode()})
    got = response.headers["x-request-id"]
    assert got != sent
    assert len(got) == 32


# Body size


def test_an_oversize_json_body_is_refused_and_nothing_is_created(api: httpx.Client) -> None:
    name = new_name()
    body = json.dumps({"name": name, "displayName": "x" * (MAX_BODY + 1)})
    response = api.post(
        "/api/projects",
        content=body,
        headers={"Content-Type": "application/json", "X-Request-Id": "big-1"},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "big-1"
    problem = response.json()
    assert problem["title"] == "Content too large"
    assert problem["status"] == 413
    assert str(MAX_BODY) in problem["detail"]
    assert api.get(f"/api/projects/{name}").status_code == 404


def test_an_oversize_chunked_body_is_cut_off(api: httpx.Client) -> None:
    name = new_name()
    chunk = b"x" * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "' + name.encode() + b'", "displayName": "'
        for _ in range(MAX_BODY // len(chunk) + 2):
            yield chunk
        yield b'"}'

    try:
        response: httpx.Response | None = api.post(
            "/api/projects", content=chunks(), headers={"Content-Type": "application/json"}
        )
    except httpx.WriteError:
        response = None  # the server closed the connection while the client still sent: also a refusal
    if response is not None:
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == "Content too large"
    assert api.get(f"/api/projects/{name}").status_code == 404, "the oversize body created nothing"


def test_a_body_under_the_limit_is_accepted(api: httpx.Client) -> None:
    name = new_name()
    response = api.post("/api/projects", json={"name": name, "displayName": "y" * 100})
    assert response.status_code == 201, response.text


# Server-sent events through the middleware


def test_events_stream_through_the_middleware(api: httpx.Client, project: str) -> None:
    session = create_session(api, project, prompt="echo hi", framework="script")
    name = session["metadata"]["name"]
    assert wait_phase(api, project, name)["status"]["phase"] == "Completed"
    with api.stream("GET", sessions_path(project, name) + "/events", params={"follow": "false"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert len(response.headers["x-request-id"]) == 32
    assert "hi" in text_of(read_events(api, project, name))


# Write rate limit


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-limited") / "home"
    srv = Server(home, env={"VTEAM_WRITE_RATE_PER_MINUTE": "3"}).start()
    yield srv
    srv.close()


def test_writes_are_limited_per_caller(limited: Server) -> None:
    with limited.client() as admin, httpx.Client(base_url=limited.url, timeout=30) as anonymous:
        created = admin.post("/api/users", json={"name": "bob"})  # admin's write 1
        assert created.status_code == 201, created.text
        login_token = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"][0]
        login = anonymous.post("/api/login", json={"token": login_token})  # the anonymous caller's write 1
        assert login.status_code == 200, login.text
        bob_token = login.json()["token"]

        for _ in range(2):  # admin's writes 2 and 3
            response = admin.post("/api/projects", json={"name": new_name()})
            assert response.status_code == 201, response.text
        refused_name = new_name()
        refused = admin.post("/api/projects", json={"name": refused_name})
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["title"] == "Too many requests"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-request-id"]

        # Reads are not limited, and the refused write did nothing.
        for _ in range(10):
            assert admin.get("/api/projects").status_code == 200
        assert admin.get(f"/api/projects/{refused_name}").status_code == 404

        with limited.client(token=bob_token) as bob:
            project = new_name()
            assert bob.post("/api/projects", json={"name": project}).status_code == 201  # bob's write 1
            session = create_session(bob, project, prompt="echo hi", framework="script")  # bob's write 2
            name = session["metadata"]["name"]
            # The runner reports its status many times; its own endpoints are never limited.
            assert wait_phase(bob, project, name)["status"]["phase"] == "Completed"
            assert "hi" in text_of(read_events(bob, project, name))
            assert bob.post("/api/tokens", json={"name": "third"}).status_code == 201  # bob's write 3
            fourth = bob.post("/api/tokens", json={"name": "fourth"})
            assert fourth.status_code == 429, fourth.text
            assert int(fourth.headers["retry-after"]) >= 1

        assert admin.post("/api/projects", json={"name": new_name()}).status_code == 429  # still limited


# The rate limiter's bookkeeping and the request id on unexpected errors, in process


def test_buckets_refill_and_idle_ones_are_forgotten() -> None:
    limiter = WriteRateLimit(_never_called, per_minute=60)
    assert [limiter.take("a", 0.0) for _ in range(60)] == [None] * 60
    wait = limiter.take("a", 0.0)
    assert wait == pytest.approx(1.0)
    assert limiter.take("a", 1.0) is None  # one a second comes back
    assert limiter.take("b", 1.0) is None  # another caller has their own bucket
    assert set(limiter.buckets) == {"a", "b"}
    assert limiter.take("c", 61.5) is None  # a and b have been idle long enough to be full again
    assert set(limiter.buckets) == {"c"}


def test_the_number_of_buckets_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware, "MAX_BUCKETS", 5)
    limiter = WriteRateLimit(_never_called, per_minute=60)
    for i in range(20):
        limiter.take(f"caller-{i}", 0.0)
    assert len(limiter.buckets) == 5
    assert list(limiter.buckets) == [f"caller-{i}" for i in range(15, 20)]


def test_an_unexpected_error_still_carries_the_request_id() -> None:
    app = FastAPI()
    problems.install(app)
    middleware.install(app, Settings(write_rate_per_minute=0))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-Id": "err-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "err-1"
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Internal error"


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not reached")
