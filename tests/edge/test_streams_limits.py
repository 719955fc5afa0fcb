"""What one caller can make the server hold: WebSocket frames (1 MiB for users, checked before anything parses
them, while a runner's partial frames still get through), open streams per user or key, and writes per user
however many tokens they hold."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.api import create_session, read_events, sessions_path, start_live, text_of, wait_phase
from tests.support.server import Server
from vteam.events.envelope import MAX_FRAME_BYTES, Envelope, now_ts, split

pytestmark = [pytest.mark.integration, pytest.mark.alone]

CAP = 3
USER_FRAME = 65_536
"""The limits server's VTEAM_MAX_WS_FRAME_BYTES: below what a runner's frames need, so the app checks it."""
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-limits") / "home"
    env = {"VTEAM_MAX_STREAMS_PER_CALLER": str(CAP), "VTEAM_MAX_WS_FRAME_BYTES": str(USER_FRAME)}
    srv = Server(home, env=env).start()
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


def view_key(admin: httpx.Client, project: str) -> str:
    response = admin.post(f"/api/projects/{project}/keys", json={"name": "reader", "role": "view"})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def ws_url(server: Server, project: str, name: str) -> str:
    return server.url.replace("http", "ws", 1) + sessions_path(project, name) + "/ws"


def assert_ready(server: Server) -> None:
    started = time.monotonic()
    response = httpx.get(server.url + "/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2.0, "the server was slow to answer after the frame"


@pytest.mark.parametrize("size", [2 * 1024 * 1024, USER_FRAME + 1])
def test_an_oversize_frame_closes_the_socket_with_1009_unparsed(
    server: Server, admin: httpx.Client, project: str, live: str, size: int
) -> None:
    """2 MiB is over what the server reads at all; just over the user limit is refused by the route itself."""
    name = live
    frame = json.dumps({"type": "message", "text": "x" * size})
    auth = {"Authorization": admin.headers["Authorization"]}
    replies = []
    with connect(ws_url(server, project, name), additional_headers=auth, max_size=None) as ws:
        ws.send(frame)
        try:
            while True:
                replies.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed as exc:
            closed = exc
    assert not [r for r in replies if "error" in r], "the frame was parsed"
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1009, closed
    assert_ready(server)
    assert not [e for e in read_events(admin, project, name) if e["type"] == "vteam.user_message"]


@pytest.mark.parametrize("text", ['"' * 200_000, "\\" * 200_000, "\x01" * 200_000, "é" * 200_000, "😀" * 100_000])
def test_the_runners_largest_frames_fit_what_the_server_reads(text: str) -> None:
    """Whatever an event holds, `split` makes frames no larger than the server's WebSocket limit allows for."""
    env = Envelope(seq=2**40, ts=now_ts(), type="x" * 100, data={"delta": text})
    frames = split(env)
    largest = max(len(json.dumps(f, separators=(",", ":"), ensure_ascii=False).encode()) for f in frames)
    assert len(frames) > 1
    assert largest <= MAX_FRAME_BYTES < 1024 * 1024


def test_a_sessions_large_output_still_arrives(admin: httpx.Client, project: str) -> None:
    """The runner's socket is not held to the users' (here, 64 KiB) frame limit."""
    session = create_session(admin, project, prompt="head -c 300000 /dev/zero | tr '\\0' '\"'")
    done = wait_phase(admin, project, session["metadata"]["name"], timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert text_of(read_events(admin, project, session["metadata"]["name"])) == '"' * 300_000


def test_one_key_may_hold_only_so_many_streams(server: Server, admin: httpx.Client, project: str, live: str) -> None:
    name = live
    key = view_key(admin, project)
    path = sessions_path(project, name) + "/events"
    with server.client(token=key) as client, ExitStack() as streams:
        for _ in range(CAP):
            response = streams.enter_context(client.stream("GET", path, params={"follow": "true"}))
            assert response.status_code == 200
        with client.stream("GET", path, params={"follow": "true"}) as refused:
            assert refused.status_code == 429
            assert refused.headers["content-type"] == PROBLEM
            assert "VTEAM_MAX_STREAMS_PER_CALLER" in json.loads(refused.read())["detail"]
            assert int(refused.headers["retry-after"]) >= 1
        with pytest.raises(InvalidStatus) as denied:
            connect(ws_url(server, project, name), additional_headers={"Authorization": f"Bearer {key}"})
        assert denied.value.response.status_code == 429
        assert b"VTEAM_MAX_STREAMS_PER_CALLER" in denied.value.response.body
        with client.stream("GET", f"/projects/{project}/sessions/{name}/stream") as page:
            assert page.status_code == 429, "the web UI's stream counts too"
        with admin.stream("GET", path, params={"follow": "true"}) as other:
            assert other.status_code == 200, "another caller has their own allowance"
    deadline = time.monotonic() + 10
    with server.client(token=key) as client:
        while True:  # the closed streams give their slots back
            with client.stream("GET", path, params={"follow": "false"}) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "closed streams never gave their slots back"
            time.sleep(0.2)


# One user, many tokens, one allowance


RATE = 5


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-rate") / "home"
    srv = Server(home, env={"VTEAM_WRITE_RATE_PER_MINUTE": str(RATE)}).start()
    yield srv
    srv.close()


def test_a_users_tokens_share_one_write_allowance(limited: Server) -> None:
    tokens = []
    with limited.client() as admin, httpx.Client(base_url=limited.url, timeout=30) as anonymous:
        created = admin.post("/api/users", json={"name": "mallory"})
        assert created.status_code == 201, created.text
        links = [created.json()["loginLink"]]
        for _ in range(2):
            again = admin.post("/api/users/mallory/login-link")
            assert again.status_code == 201, again.text
            links.append(again.json()["loginLink"])
        for link in links:
            login = anonymous.post("/api/login", json={"token": parse_qs(urlsplit(link).query)["token"][0]})
            assert login.status_code == 200, login.text
            tokens.append(login.json()["token"])
    clients = [limited.client(token=token) for token in tokens]
    try:
        answers = [clients[i % len(clients)].post("/api/projects", json={"name": f"m{i}"}) for i in range(RATE + 1)]
    finally:
        for client in clients:
            client.close()
    assert [a.status_code for a in answers] == [201] * RATE + [429], [a.text for a in answers]
    assert int(answers[-1].headers["retry-after"]) >= 1
