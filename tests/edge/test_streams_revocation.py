"""Open streams answer to access control while they last: a revoked key, a removed member or a lowered role
loses its WebSocket and server-sent events within seconds, and a message sent through a socket afterwards never
reaches the session (an interactive `script` session runs whatever it is sent, with the project's secrets)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.api import read_events, sessions_path, start_live, wait_phase
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]

CLOSE_WITHIN = 4.0
"""Seconds a revocation published in this process may take to close a stream (the notice is immediate)."""
RECHECK = 1.0
"""The server's idle re-check, for changes it is not told about (another replica, the database directly)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-streams") / "home"
    srv = Server(home, env={"VTEAM_STREAM_RECHECK_SECONDS": str(RECHECK)}).start()
    yield srv
    srv.close()


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def project(admin: httpx.Client) -> str:
    name = f"p-{uuid.uuid4().hex[:10]}"
    assert admin.post("/api/projects", json={"name": name}).status_code == 201
    return name


@pytest.fixture
def live(admin: httpx.Client, project: str) -> Iterator[str]:
    """An interactive `script` session waiting for its next message (a shell command), ended afterwards."""
    name = start_live(admin, project)
    yield name
    admin.post(sessions_path(project, name) + "/end")
    wait_phase(admin, project, name)


def new_key(admin: httpx.Client, project: str, role: str) -> tuple[str, str]:
    response = admin.post(f"/api/projects/{project}/keys", json={"name": f"k-{role}", "role": role})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def new_member(server: Server, admin: httpx.Client, project: str, role: str) -> str:
    """A user bound to `role` in the project, and an API token of theirs."""
    user = f"u{uuid.uuid4().hex[:8]}"
    created = admin.post("/api/users", json={"name": user})
    assert created.status_code == 201, created.text
    link = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"][0]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        login = anonymous.post("/api/login", json={"token": link})
    assert login.status_code == 200, login.text
    bound = admin.post(
        f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": user, "role": role}
    )
    assert bound.status_code == 201, bound.text
    token: str = login.json()["token"]
    return token


def ws_url(server: Server, project: str, name: str) -> str:
    return server.url.replace("http", "ws", 1) + sessions_path(project, name) + "/ws"


def closed_within(ws: ClientConnection, seconds: float) -> tuple[int | None, str]:
    """Read frames until the server closes the socket; its close code and reason."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
    raise AssertionError(f"the socket was still open {seconds} s later")


def user_messages(admin: httpx.Client, project: str, name: str) -> list[str]:
    return [e["data"]["value"]["text"] for e in read_events(admin, project, name) if e["type"] == "vteam.user_message"]


def wait_ready(ws: ClientConnection) -> None:
    """Until the replay of stored events has reached the end of the first turn."""
    while json.loads(ws.recv(timeout=10)).get("type") != "RUN_FINISHED":
        pass


class Reader(threading.Thread):
    """Reads a server-sent event stream to its end in the background, noting when it ended."""

    def __init__(self, client: httpx.Client, path: str, **params: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.path, self.params = client, path, params
        self.status: int | None = None
        self.lines: list[str] = []
        self.opened = threading.Event()
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            with self.client.stream("GET", self.path, params=self.params) as response:
                self.status = response.status_code
                self.opened.set()
                for line in response.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended_at = time.monotonic()


def test_a_revoked_key_loses_its_websocket_and_cannot_send_through_it(
    server: Server, admin: httpx.Client, project: str, live: str
) -> None:
    name = live
    key_id, key = new_key(admin, project, "edit")
    with connect(ws_url(server, project, name), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        wait_ready(ws)
        revoked_at = time.monotonic()
        assert admin.delete(f"/api/projects/{project}/keys/{key_id}").status_code == 204
        with contextlib.suppress(ConnectionClosed):
            ws.send(json.dumps({"type": "message", "text": "echo leaked-after-revoke"}))
        code, reason = closed_within(ws, CLOSE_WITHIN)
        assert time.monotonic() - revoked_at < CLOSE_WITHIN
    assert code == 4401, (code, reason)
    assert "revoked" in reason
    time.sleep(0.5)
    assert user_messages(admin, project, name) == [], "a revoked key's message reached the session"


def test_a_revoked_key_loses_its_event_stream(server: Server, admin: httpx.Client, project: str, live: str) -> None:
    name = live
    key_id, key = new_key(admin, project, "view")
    with server.client(token=key) as client:
        reader = Reader(client, sessions_path(project, name) + "/events", follow="true")
        reader.start()
        assert reader.opened.wait(10)
        assert reader.status == 200
        time.sleep(0.3)
        assert reader.is_alive(), "a live session's stream stays open"
        revoked_at = time.monotonic()
        assert admin.delete(f"/api/projects/{project}/keys/{key_id}").status_code == 204
        reader.join(CLOSE_WITHIN)
        assert not reader.is_alive(), "the revoked key's stream was still open"
        assert reader.ended_at is not None
        assert reader.ended_at - revoked_at < CLOSE_WITHIN
        assert any("RUN_FINISHED" in line for line in reader.lines), "it did stream before"
        assert client.get(sessions_path(project, name) + "/events", params={"follow": "false"}).status_code == 401


def test_a_member_lowered_to_view_can_no_longer_send(
    server: Server, admin: httpx.Client, project: str, live: str
) -> None:
    name = live
    token = new_member(server, admin, project, "edit")
    user = httpx.get(server.url + "/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"]
    with connect(ws_url(server, project, name), additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        wait_ready(ws)
        lowered = admin.post(
            f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": user, "role": "view"}
        )
        assert lowered.status_code == 201, lowered.text
        ws.send(json.dumps({"type": "message", "text": "echo sent-as-viewer"}))
        while "error" not in (reply := json.loads(ws.recv(timeout=10))):
            pass
        assert "view" in reply["error"]
        assert "needs edit" in reply["error"]
    time.sleep(0.5)
    assert user_messages(admin, project, name) == []


def test_a_removed_member_loses_websocket_api_and_page_streams(
    server: Server, admin: httpx.Client, project: str, live: str
) -> None:
    name = live
    token = new_member(server, admin, project, "edit")
    user = httpx.get(server.url + "/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"]
    bearer = {"Authorization": f"Bearer {token}"}
    with server.client(token=token) as client, connect(ws_url(server, project, name), additional_headers=bearer) as ws:
        api_stream = Reader(client, sessions_path(project, name) + "/events", follow="true")
        page_stream = Reader(client, f"/projects/{project}/sessions/{name}/stream", after="0")
        api_stream.start()
        page_stream.start()
        assert api_stream.opened.wait(10)
        assert page_stream.opened.wait(10)
        assert (api_stream.status, page_stream.status) == (200, 200)
        wait_ready(ws)
        assert admin.delete(f"/api/projects/{project}/permissions/user/{user}").status_code == 204
        code, reason = closed_within(ws, CLOSE_WITHIN)
        api_stream.join(CLOSE_WITHIN)
        page_stream.join(CLOSE_WITHIN)
        assert not api_stream.is_alive(), "a removed member's API stream stayed open"
        assert not page_stream.is_alive(), "a removed member's page stream stayed open"
    assert code == 4404, (code, reason)
    assert "not found" in reason


def test_a_key_revoked_in_the_database_is_caught_on_the_idle_tick(
    server: Server, admin: httpx.Client, project: str, live: str
) -> None:
    """Another replica, or an operator's SQL, revokes without telling this process: the re-check catches it."""
    name = live
    key_id, key = new_key(admin, project, "edit")
    with connect(ws_url(server, project, name), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        wait_ready(ws)
        with sqlite3.connect(server.home / "vteam.db", timeout=10) as db:
            db.execute("UPDATE tokens SET revoked = ? WHERE id = ?", (datetime.now(UTC).isoformat(), key_id))
        code, _ = closed_within(ws, RECHECK + CLOSE_WITHIN)
    assert code == 4401
