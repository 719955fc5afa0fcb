"""The runner's events in batches: one frame, one append, one ack with the highest seq; older peers on
either side still get single frames; quotas apply per event; a batch is bounded like any frame."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.server import Server
from vteam.auth import RunnerTokens
from vteam.events import Envelope, split
from vteam.events.agui import custom
from vteam.protocol import BATCH, FEATURES_HEADER, PROTOCOL_VERSION
from vteam.runner.redact import Redactor
from vteam.runner.stream import EventStream

pytestmark = pytest.mark.integration

EVENT_CAP = 4096
SESSION_CAP = 65_536
TS = "2026-01-01T00:00:00.000000Z"
LIMITS = {"maxEvents": 1000, "maxBytes": 1024 * 1024}
"""What this module's server says a batch may hold: its message limit (2 MiB here) is above the batch limit."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose 'runner' is `sleep`, so the tests speak the runner's side; small caps to see quotas."""
    home = tmp_path_factory.mktemp("batches") / "home"
    env = {
        "VTEAM_RUNNER_COMMAND": '["sleep", "600"]',
        "VTEAM_MAX_EVENT_BYTES": str(EVENT_CAP),
        "VTEAM_MAX_SESSION_EVENT_BYTES": str(SESSION_CAP),
        "VTEAM_MAX_WS_FRAME_BYTES": str(2 * 1024 * 1024),
    }
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


@pytest.fixture
def session(server: Server) -> Iterator[tuple[httpx.Client, str, str]]:
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": "batches"})
        created = create_session(api, "batches", prompt="unused")
        name = created["metadata"]["name"]
        wait_phase(api, "batches", name, "Creating")
        key = bytes.fromhex((server.home / "secret.key").read_text())
        yield api, name, RunnerTokens(key).mint("batches", name, created["metadata"]["uid"])
        api.delete(sessions_path("batches", name))


def _url(server: Server, name: str) -> str:
    return "ws" + server.url.removeprefix("http") + sessions_path("batches", name) + "/runner/ws"


def _ws(server: Server, name: str, token: str, *, batches: bool = True) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"}
    if batches:
        headers[FEATURES_HEADER] = BATCH
    return connect(_url(server, name), additional_headers=headers, max_size=None)


def _event(seq: int, text: str) -> Envelope:
    data = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": text}
    return Envelope(seq=seq, ts=TS, type="TEXT_MESSAGE_CONTENT", data=data)


def _batch(envelopes: list[Envelope]) -> str:
    return json.dumps({"events": [env.frame() for env in envelopes]})


def _texts(api: httpx.Client, name: str) -> list[str]:
    return [e["data"]["delta"] for e in read_events(api, "batches", name) if e["type"] == "TEXT_MESSAGE_CONTENT"]


def test_a_batch_is_stored_in_order_and_acknowledged_once_with_its_highest_seq(
    server: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    with _ws(server, name, token) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"protocol": PROTOCOL_VERSION, "lastSeq": 0, "batch": LIMITS}
        ws.send(_batch([_event(i, f"e{i} ") for i in range(1, 201)]))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 200}
        ws.send(json.dumps(_event(201, "e201 ").frame()))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 201}, "the batch had one ack, the single event its own"
    assert _texts(api, name) == [f"e{i} " for i in range(1, 202)]


def test_a_resent_batch_stores_only_the_events_not_held(server: Server, session: tuple[httpx.Client, str, str]) -> None:
    api, name, token = session
    with _ws(server, name, token) as ws:
        ws.recv(timeout=10)
        ws.send(_batch([_event(i, f"e{i} ") for i in range(1, 6)]))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 5}
    with _ws(server, name, token) as ws:
        assert json.loads(ws.recv(timeout=10))["lastSeq"] == 5
        ws.send(_batch([_event(i, f"e{i} ") for i in range(3, 9)]))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 8}
        ws.send(_batch([_event(i, f"again{i} ") for i in range(1, 9)]))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 8}, "a batch of stored events only is acknowledged"
    assert _texts(api, name) == [f"e{i} " for i in range(1, 9)]


def test_an_older_runners_single_frames_still_work(server: Server, session: tuple[httpx.Client, str, str]) -> None:
    """A runner that offers no features gets the Hello it always got and sends one event (or partial) a frame."""
    api, name, token = session
    big = _event(2, "ä" * 80_000)
    assert len(split(big)) > 1
    with _ws(server, name, token, batches=False) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"protocol": PROTOCOL_VERSION, "lastSeq": 0}
        for env in [_event(1, "e1 "), big, _event(3, "e3 ")]:
            for frame in split(env):
                ws.send(json.dumps(frame))
            assert json.loads(ws.recv(timeout=10)) == {"ack": env.seq}
    texts = _texts(api, name)
    assert texts[0] == "e1 "
    assert texts[1].startswith("ä" * 1000), "the large event is cut to the event cap, as before"
    assert texts[2] == "e3 "


def test_quotas_apply_to_each_event_of_a_batch(server: Server, session: tuple[httpx.Client, str, str]) -> None:
    api, name, token = session
    large = _event(1, "x" * (2 * EVENT_CAP))
    many = [_event(seq, f"{seq:04d}" + "y" * 1000) for seq in range(2, 120)]
    with _ws(server, name, token) as ws:
        ws.recv(timeout=10)
        ws.send(_batch([large, *many]))
        assert json.loads(ws.recv(timeout=10)) == {"ack": 119}
    events = read_events(api, "batches", name)
    texts = [e["data"]["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert "[vTeam cut this output" in texts[0]
    assert len(texts[0]) < EVENT_CAP
    assert 20 < len(texts) < len(many), "the session cap dropped the rest"
    assert [t[:4] for t in texts[1:]] == [f"{seq:04d}" for seq in range(2, len(texts) + 1)]
    markers = [e for e in events if e["type"] == "vteam.truncated"]
    assert [m["data"]["value"]["reason"] for m in markers] == ["session"]


@pytest.mark.parametrize("size", [1024 * 1024 + 1000, 3 * 1024 * 1024])
def test_an_oversize_batch_closes_the_socket_with_1009_unstored(
    server: Server, session: tuple[httpx.Client, str, str], size: int
) -> None:
    """Over the batch limit the route refuses it; over what the server reads at all, the server does."""
    api, name, token = session
    count = 64
    envelopes = [_event(i, "z" * (size // count)) for i in range(1, count + 1)]
    with _ws(server, name, token) as ws:
        ws.recv(timeout=10)
        ws.send(_batch(envelopes))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009, closed.value
    assert _texts(api, name) == []
    with _ws(server, name, token) as ws:
        assert json.loads(ws.recv(timeout=10))["lastSeq"] == 0, "the server still serves the runner"


def test_a_batch_over_the_event_count_or_out_of_order_is_a_bad_frame(
    server: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    too_many = [_event(i, "") for i in range(1, LIMITS["maxEvents"] + 2)]
    for frame in [_batch(too_many), _batch([_event(2, "b"), _event(1, "a")]), json.dumps({"events": []})]:
        with _ws(server, name, token) as ws:
            ws.recv(timeout=10)
            ws.send(frame)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
    assert _texts(api, name) == []


async def test_the_runner_delivers_a_burst_in_order_and_a_lone_event_without_waiting(
    server: Server, session: tuple[httpx.Client, str, str]
) -> None:
    api, name, token = session
    stream = EventStream(_url(server, name), token, Redactor([]), reconnect_seconds=10)
    stream.start()
    try:
        await asyncio.wait_for(stream.ready(), 20)
        for i in range(1, 301):
            await stream.emit(custom("burst", i=i))
        assert await stream.flush(timeout=30)
        await stream.emit(custom("lone", i=0))
        assert await stream.flush(timeout=30), "a lone event is acknowledged with nothing after it"
    finally:
        await stream.close()
    events = await asyncio.to_thread(read_events, api, "batches", name)
    values = [(e["type"], e["data"]["value"]["i"]) for e in events if e["type"] in ("burst", "lone")]
    assert values == [("burst", i) for i in range(1, 301)] + [("lone", 0)]


# The runner against a backend it cannot see into: a peer on a socket that plays one, recording the frames.


@asynccontextmanager
async def _backend(hello: dict[str, Any], frames: list[dict[str, Any]], offers: list[str]) -> AsyncIterator[str]:
    """A backend that greets with `hello`, acks each event it gets, and keeps every frame after the cursor."""

    async def handle(ws: ServerConnection) -> None:
        offers.append(ws.request.headers.get(FEATURES_HEADER, "") if ws.request else "")
        await ws.send(json.dumps(hello))
        assert "controlAfter" in json.loads(await ws.recv())
        async for raw in ws:
            frame = json.loads(raw)
            frames.append(frame)
            last = frame["events"][-1] if "events" in frame else frame
            partial = last.get("partial")
            if partial is None or partial["index"] == partial["total"] - 1:
                await ws.send(json.dumps({"ack": last["seq"]}))

    async with serve(handle, "127.0.0.1", 0, max_size=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def _deliver(hello: dict[str, Any], texts: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Queue `texts` before the runner connects, so that all of them wait together; the frames that carried them."""
    frames: list[dict[str, Any]] = []
    offers: list[str] = []
    async with _backend(hello, frames, offers) as url:
        stream = EventStream(url, "token", Redactor([]), reconnect_seconds=10)
        for i, text in enumerate(texts, start=1):
            await stream.emit(custom("t", i=i, text=text))
        stream.start()
        try:
            assert await stream.flush(timeout=30)
        finally:
            await stream.close()
    return frames, offers


def _seqs(frame: dict[str, Any]) -> list[int]:
    return [env["seq"] for env in frame["events"]] if "events" in frame else [frame["seq"]]


async def test_a_runner_sends_single_frames_to_a_backend_without_batches() -> None:
    frames, offers = await _deliver({"protocol": 1, "lastSeq": 0}, ["a"] * 20)
    assert offers == [BATCH], "the runner offered batches"
    assert all("events" not in frame for frame in frames)
    assert [frame["seq"] for frame in frames] == list(range(1, 21))


async def test_a_runner_batches_what_is_queued_within_the_backends_limits() -> None:
    hello = {"protocol": 1, "lastSeq": 0, "batch": {"maxEvents": 5, "maxBytes": 1024 * 1024}}
    texts = ["a"] * 12 + ["é" * 70_000] + ["b"] * 3
    frames, _ = await _deliver(hello, texts)
    carried = [_seqs(frame) for frame in frames if "partial" not in frame]
    assert carried[:3] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert [frame["seq"] for frame in frames if "partial" in frame] == [13, 13, 13], "a large event goes on its own"
    assert carried[3:] == [[14, 15, 16]]


async def test_a_batch_never_passes_the_backends_byte_limit() -> None:
    hello = {"protocol": 1, "lastSeq": 0, "batch": {"maxEvents": 1000, "maxBytes": 200_000}}
    frames, _ = await _deliver(hello, ["q" * 30_000] * 20)
    assert all(len(json.dumps(f, separators=(",", ":")).encode()) <= 200_000 for f in frames)
    assert [len(_seqs(f)) for f in frames] == [6, 6, 6, 2]
