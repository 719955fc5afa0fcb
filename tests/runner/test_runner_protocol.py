"""The runner's WebSocket: acks only after storage, resends deduplicated, partials joined, tokens scoped."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from vteam.auth import RunnerTokens
from vteam.events import Envelope, split
from vteam.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, REFUSED_CLOSE_CODE, mismatch
from vteam.runner.redact import Redactor
from vteam.runner.stream import EventStream, StreamClosed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server whose 'runner' is `sleep`, so the test itself can speak the runner's protocol."""
    from tests.support.server import Server

    home = tmp_path_factory.mktemp("proto") / "home"
    server = Server(home, env={"VTEAM_RUNNER_COMMAND": '["sleep", "600"]'}).start()
    yield server
    server.close()


@pytest.fixture
def session(idle_server: Any) -> Iterator[tuple[httpx.Client, str, str, str]]:
    with idle_server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "proto"})
        created = create_session(api, "proto", prompt="unused")
        name = created["metadata"]["name"]
        wait_phase(api, "proto", name, "Creating")
        key = bytes.fromhex((idle_server.home / "secret.key").read_text())
        token = RunnerTokens(key).mint("proto", name, created["metadata"]["uid"])
        yield api, name, token, idle_server.url
        api.delete(sessions_path("proto", name))


def _ws_url(url: str, name: str) -> str:
    return "ws" + url.removeprefix("http") + sessions_path("proto", name) + "/runner/ws"


def _ws(url: str, name: str, token: str, **headers: str) -> ClientConnection:
    return connect(
        _ws_url(url, name), additional_headers={"Authorization": f"Bearer {token}", **headers}, max_size=None
    )


def _event(seq: int, text: str) -> Envelope:
    data = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": text}
    return Envelope(seq=seq, ts="2026-01-01T00:00:00.000000Z", type="TEXT_MESSAGE_CONTENT", data=data)


def _send(ws: ClientConnection, envelopes: list[Envelope]) -> list[int]:
    acks = []
    for env in envelopes:
        for frame in split(env):
            ws.send(json.dumps(frame))
        acks.append(json.loads(ws.recv(timeout=10))["ack"])
    return acks


def test_resend_after_reconnect_stores_each_event_once(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, url = session
    with _ws(url, name, token) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"protocol": PROTOCOL_VERSION, "lastSeq": 0}
        assert _send(ws, [_event(i, f"e{i} ") for i in range(1, 6)]) == [1, 2, 3, 4, 5]
    with _ws(url, name, token) as ws:
        assert json.loads(ws.recv(timeout=10))["lastSeq"] == 5, "the server says what it holds"
        _send(ws, [_event(i, f"e{i} ") for i in range(3, 9)])
    texts = [e["data"]["delta"] for e in read_events(api, "proto", name) if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert texts == [f"e{i} " for i in range(1, 9)]


def test_large_event_travels_as_partials_and_is_joined(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, url = session
    big = "ä" * 100_000 + "end"
    envelope = _event(1, big)
    assert len(split(envelope)) > 1
    with _ws(url, name, token) as ws:
        ws.recv(timeout=10)
        assert _send(ws, [envelope]) == [1]
    [stored] = [e for e in read_events(api, "proto", name) if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert stored["data"]["delta"] == big


def test_runner_token_only_opens_its_own_session(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, url = session
    other = create_session(api, "proto", prompt="unused")["metadata"]["name"]
    with pytest.raises(InvalidStatus) as refused:
        _ws(url, other, token)
    assert refused.value.response.status_code == 403
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get(sessions_path("proto", name), headers=auth).status_code == 200
    assert api.get(sessions_path("proto", other), headers=auth).status_code == 403
    assert api.get(sessions_path("proto"), headers=auth).status_code == 403
    assert api.post("/api/projects", json={"name": "evil"}, headers=auth).status_code == 403
    assert api.delete(sessions_path("proto", name), headers=auth).status_code == 403


def test_runner_token_dies_with_the_session(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, url = session
    api.post(sessions_path("proto", name) + "/stop")
    wait_phase(api, "proto", name, "Stopped")
    response = api.get(sessions_path("proto", name), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    with pytest.raises(InvalidStatus):
        _ws(url, name, token)


def test_forged_token_is_refused(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, _ = session
    forged = RunnerTokens(b"x" * 32).mint("proto", name, "whatever")
    response = api.get(sessions_path("proto", name), headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert token not in response.text


def test_status_report_moves_creating_to_running(session: tuple[httpx.Client, str, str, str]) -> None:
    api, name, token, _ = session
    auth = {"Authorization": f"Bearer {token}"}
    response = api.post(
        sessions_path("proto", name) + "/runner/status",
        json={"phase": "Running", "agentStatus": "working"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"]["phase"] == "Running"
    assert response.json()["status"]["agentStatus"] == "working"
    bad = api.post(sessions_path("proto", name) + "/runner/status", json={"phase": "Completed"}, headers=auth)
    assert bad.status_code == 422, "a runner cannot declare its session finished"


OTHER = PROTOCOL_VERSION + 1


def test_a_runner_naming_another_protocol_is_refused_in_the_handshake(
    session: tuple[httpx.Client, str, str, str],
) -> None:
    _, name, token, url = session
    with pytest.raises(InvalidStatus) as refused:
        _ws(url, name, token, **{PROTOCOL_HEADER: str(OTHER)})
    assert refused.value.response.status_code == 409
    assert json.loads(refused.value.response.body)["detail"] == mismatch(OTHER, PROTOCOL_VERSION)
    with _ws(url, name, token, **{PROTOCOL_HEADER: str(PROTOCOL_VERSION)}) as ws:
        assert json.loads(ws.recv(timeout=10))["protocol"] == PROTOCOL_VERSION, "its own protocol is let in"


def test_a_runner_whose_first_frame_speaks_another_protocol_is_closed_with_the_reason(
    session: tuple[httpx.Client, str, str, str],
) -> None:
    _, name, token, url = session
    with _ws(url, name, token) as ws:
        ws.recv(timeout=10)
        ws.send(json.dumps({"protocol": OTHER, "controlAfter": 0}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == REFUSED_CLOSE_CODE
    assert closed.value.rcvd.reason == mismatch(OTHER, PROTOCOL_VERSION)


async def test_the_runners_stream_reports_the_backends_refusal(session: tuple[httpx.Client, str, str, str]) -> None:
    """The runner's own client, speaking another protocol, learns why it cannot go on (and fails with it)."""
    _, name, token, url = session
    stream = EventStream(_ws_url(url, name), token, Redactor([]), reconnect_seconds=5, protocol=OTHER)
    stream.start()
    try:
        with pytest.raises(StreamClosed, match=re.escape(mismatch(OTHER, PROTOCOL_VERSION))):
            await asyncio.wait_for(stream.ready(), 20)
    finally:
        await stream.close()
