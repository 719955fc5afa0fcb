"""Event ids and WebSocket frames from outside are bounded and parsed in one place (issue 24).

`Last-Event-ID: ²` or 5,000 digits was a 500; `after=` at or over 2^63 was a 500 or a stream cut mid-body
(SQLite's OverflowError); a WebSocket frame that was not JSON dropped the connection with a traceback where
docs/api.md promises an `{"error": ...}` frame; a bad WebSocket query was a bare 403.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.api import create_session, sessions_path, start_live, wait_phase
from tests.support.server import Server

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BIG = str(2**63)
HUGE = "9" * 5000


@pytest.fixture(scope="module")
def done(server: Server) -> tuple[str, str]:
    """A finished session with a few events: a project and its name."""
    with server.client() as api:
        project = f"p-{uuid.uuid4().hex[:10]}"
        assert api.post("/api/projects", json={"name": project}).status_code == 201
        name = create_session(api, project, prompt="echo one; echo two")["metadata"]["name"]
        wait_phase(api, project, name)
    return project, name


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def sse_ids(response: httpx.Response) -> list[int]:
    return [int(line[3:].strip()) for line in response.iter_lines() if line.startswith("id:")]


def assert_problem(response: httpx.Response, status: int, needle: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert needle in body["detail"]
    return body


@pytest.mark.parametrize("value", ["²", "¹³", HUGE, BIG, "18446744073709551616"])
def test_a_malformed_last_event_id_is_ignored_and_the_whole_stream_arrives(
    api: httpx.Client, done: tuple[str, str], value: str
) -> None:
    project, name = done
    path = sessions_path(project, name) + "/events"
    with api.stream("GET", path, params={"follow": "false"}) as plain:
        everything = sse_ids(plain)
    assert everything
    headers = {"Last-Event-ID": value.encode("latin-1")}  # how a header carries '²': one latin-1 byte
    with api.stream("GET", path, params={"follow": "false"}, headers=headers) as response:
        assert response.status_code == 200
        assert sse_ids(response) == everything, "the stream replays from the start, complete"
    with api.stream("GET", path, params={"follow": "false"}, headers={"Last-Event-ID": "2"}) as response:
        assert sse_ids(response) == everything[2:], "a valid one still resumes"


@pytest.mark.parametrize("after", [BIG, HUGE, "-1"])
def test_after_out_of_range_on_session_events_is_a_422_problem(
    api: httpx.Client, done: tuple[str, str], after: str
) -> None:
    project, name = done
    response = api.get(sessions_path(project, name) + "/events", params={"after": after, "follow": "false"})
    assert_problem(response, 422, "after")
    path = sessions_path(project, name) + "/events"
    with api.stream("GET", path, params={"after": str(2**63 - 1), "follow": "false"}) as response:
        assert response.status_code == 200
        assert sse_ids(response) == [], "the largest seq is still a valid, empty, resume point"


def test_the_web_uis_stream_bounds_after_and_ignores_a_bad_last_event_id(
    api: httpx.Client, done: tuple[str, str]
) -> None:
    project, name = done
    page = f"/projects/{project}/sessions/{name}/stream"
    assert api.get(page, params={"after": BIG}).status_code == 422
    for value in ("²", HUGE, BIG):
        with api.stream("GET", page, headers={"Last-Event-ID": value.encode("latin-1")}) as response:
            assert response.status_code == 200
            body = response.read().decode()
        assert "event: end" in body, "the stream ran to its end"
        assert "id: 1" in body.replace("\r", ""), "and replayed from the start"


def ws_url(server: Server, project: str, name: str, query: str = "") -> str:
    return server.url.replace("http", "ws", 1) + sessions_path(project, name) + "/ws" + query


@pytest.mark.parametrize("after", [BIG, "-1", "x"])
def test_a_bad_websocket_query_is_refused_as_a_problem(server: Server, done: tuple[str, str], after: str) -> None:
    project, name = done
    with pytest.raises(InvalidStatus) as denied:
        connect(ws_url(server, project, name, f"?after={after}"), additional_headers=server.headers)
    response = denied.value.response
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = json.loads(response.body)
    assert problem["status"] == 422
    assert "after" in problem["detail"]


@pytest.fixture
def live(api: httpx.Client, done: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """An interactive `script` session waiting for input; ended afterwards."""
    project, _ = done
    name = start_live(api, project)
    yield project, name
    api.post(sessions_path(project, name) + "/end")
    wait_phase(api, project, name)


def next_error(ws: ClientConnection) -> str:
    """The next `{"error": ...}` frame, skipping the session's events."""
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if "error" in frame:
            return str(frame["error"])


@pytest.mark.parametrize(
    "frame", ["not json", "{", "[" * 50_000, b"\xff\xfe\x00", b'{"type": "message", "text": "\xe9"}']
)
def test_a_frame_that_is_not_a_json_message_gets_an_error_frame_and_the_socket_stays(
    server: Server, api: httpx.Client, live: tuple[str, str], frame: str | bytes
) -> None:
    project, name = live
    with connect(ws_url(server, project, name), additional_headers=server.headers, max_size=None) as ws:
        ws.send(frame)
        assert next_error(ws)
        ws.send("still here?")
        assert next_error(ws), "the connection survived the bad frame"
    assert "Traceback" not in server.log()
