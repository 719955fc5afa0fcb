"""Issue 24: what one session may store is capped where the backend appends a runner's events.

The test speaks the runner's WebSocket itself (the runner is `sleep`), as a hostile runner could.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.browser import Browser
from tests.support.server import Server
from vteam.auth import RunnerTokens
from vteam.events import Envelope, split

pytestmark = pytest.mark.integration

EVENT_CAP = 65_536
SESSION_CAP = 1_048_576
TS = "2026-01-01T00:00:00.000000Z"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("caps") / "home"
    env = {
        "VTEAM_RUNNER_COMMAND": '["sleep", "600"]',
        "VTEAM_MAX_EVENT_BYTES": str(EVENT_CAP),
        "VTEAM_MAX_SESSION_EVENT_BYTES": str(SESSION_CAP),
    }
    server = Server(home, env=env).start()
    yield server
    server.close()


@pytest.fixture
def session(capped: Server) -> Iterator[tuple[httpx.Client, str, str]]:
    with capped.client(timeout=60) as api:
        api.post("/api/projects", json={"name": "caps"})
        created = create_session(api, "caps", prompt="unused")
        name = created["metadata"]["name"]
        wait_phase(api, "caps", name, "Creating")
        key = bytes.fromhex((capped.home / "secret.key").read_text())
        yield api, name, RunnerTokens(key).mint("caps", name, created["metadata"]["uid"])


@contextlib.contextmanager
def _ws(server: Server, name: str, token: str) -> Iterator[ClientConnection]:
    url = "ws" + server.url.removeprefix("http") + sessions_path("caps", name) + "/runner/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        yield ws


def _text(seq: int, text: str) -> Envelope:
    data = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": text}
    return Envelope(seq=seq, ts=TS, type="TEXT_MESSAGE_CONTENT", data=data)


def _send(ws: ClientConnection, env: Envelope) -> int:
    for frame in split(env):
        ws.send(json.dumps(frame))
    return int(json.loads(ws.recv(timeout=30))["ack"])


def _stored(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    return read_events(api, "caps", name)


def test_an_event_over_the_cap_is_cut_with_a_note_and_acknowledged(
    capped: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    with _ws(capped, name, token) as ws:
        assert _send(ws, _text(1, "x" * 300_000)) == 1
        assert _send(ws, _text(2, "small")) == 2
    texts = [e["data"]["delta"] for e in _stored(api, name) if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert len(texts) == 2
    assert len(texts[0].encode()) < EVENT_CAP
    assert texts[0].startswith("xxxx")
    assert "vTeam cut this output" in texts[0]
    assert "300,0" in texts[0]
    assert texts[1] == "small"
    with Browser(capped.url, timeout=30) as web:
        token_for_web = api.post("/api/tokens", json={"name": "caps-web"}).json()["token"]
        assert web.post("/signin", data={"token": token_for_web}).status_code == 303
        page = web.get(f"/projects/caps/sessions/{name}")
    assert "vTeam cut this output" in page.text


def test_past_the_session_cap_output_is_dropped_with_one_marker(
    capped: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    chunk = "y" * 30_000
    sent = 3 * SESSION_CAP // len(chunk)
    with _ws(capped, name, token) as ws:
        acks = [_send(ws, _text(seq, chunk)) for seq in range(1, sent + 1)]
        end = Envelope(
            seq=sent + 1, ts=TS, type="TEXT_MESSAGE_END", data={"type": "TEXT_MESSAGE_END", "messageId": "m1"}
        )
        assert _send(ws, end) == sent + 1
    assert acks == list(range(1, sent + 1)), "every event is acknowledged, stored or not"
    # A runner that reconnects and sends it all again gets its acks and stores nothing more.
    with _ws(capped, name, token) as ws:
        assert [_send(ws, _text(seq, chunk)) for seq in range(sent - 2, sent + 1)] == [sent - 2, sent - 1, sent]

    events = _stored(api, name)
    output = [e for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert 0 < len(output) * len(chunk) <= SESSION_CAP
    markers = [e for e in events if e["type"] == "vteam.truncated"]
    assert len(markers) == 1
    assert markers[0]["data"]["value"] == {"reason": "session", "limit": SESSION_CAP}
    assert events[-1]["type"] == "TEXT_MESSAGE_END", "the runner's lifecycle events are still kept"
    stored = sum(len(json.dumps(e["data"])) for e in events)
    assert stored < SESSION_CAP + EVENT_CAP


def test_parallel_connections_of_one_runner_share_the_session_cap(
    capped: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    chunk = "w" * 30_000
    sent = 3 * SESSION_CAP // len(chunk)
    with _ws(capped, name, token) as one, _ws(capped, name, token) as two:
        for seq in range(1, sent + 1):
            assert _send(one if seq % 2 else two, _text(seq, chunk)) == seq
    events = _stored(api, name)
    output = [e for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert len(output) * len(chunk) <= SESSION_CAP
    assert [e["type"] for e in events].count("vteam.truncated") == 1
