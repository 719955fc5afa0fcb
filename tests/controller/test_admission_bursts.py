"""Issue 15: admission under bursts. A hundred sessions created at once with four running places queue with a
message, start oldest first as places free and all end; with the limit raised, all hundred run at once.

Timestamps on a session have a second's resolution; its `vteam.phase` events carry microseconds, and the
embedded controller writes every Creating and final phase from one worker, so their order is the true order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import FINAL, create_session, read_events, sessions_path
from tests.support.server import Server
from vteam.controller.reconcile import QUEUED

pytestmark = pytest.mark.integration

BURST = 100
PLACES = 4
PROJECT = "burst"
STARTED = {"Creating", "Running"}
GO = "go"
"""The file the test drops into each held session's HOME to let it end."""


def _server(home: Path, places: int) -> Server:
    # One project may use every place: the per-project share would otherwise be half of them.
    env = {"VTEAM_MAX_RUNNING_SESSIONS": str(places), "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": str(places)}
    return Server(home, env=env)


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _server(tmp_path_factory.mktemp("vteam") / "home", PLACES).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = _server(tmp_path_factory.mktemp("vteam") / "home", BURST).start()
    yield server
    server.close()


def _burst(server: Server, prompt: str) -> list[dict[str, Any]]:
    """Create BURST sessions from many threads at once; what each create answered."""
    with server.client(timeout=60) as api:
        assert api.post("/api/projects", json={"name": PROJECT}).status_code == 201
    local = threading.local()
    clients: list[httpx.Client] = []

    def create(i: int) -> dict[str, Any]:
        if not hasattr(local, "api"):
            local.api = server.client(timeout=60)
            clients.append(local.api)
        return create_session(local.api, PROJECT, name=f"s{i:03d}", prompt=prompt)

    try:
        with ThreadPoolExecutor(max_workers=25) as pool:
            return list(pool.map(create, range(BURST)))
    finally:
        for client in clients:
            client.close()


def _listing(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get(sessions_path(PROJECT))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _watch(api: httpx.Client, until: float, seen: Any) -> list[dict[str, Any]]:
    """Poll the listing until every session has ended, calling `seen` with each snapshot; the last snapshot."""
    while True:
        items = _listing(api)
        seen(items)
        if all(s["status"]["phase"] in FINAL for s in items):
            return items
        assert time.monotonic() < until, {s["metadata"]["name"]: s["status"]["phase"] for s in items}
        time.sleep(0.1)


def _phase_times(api: httpx.Client, name: str) -> dict[str, str]:
    """When each phase of a session was announced (the first time), as event timestamps with microseconds."""
    times: dict[str, str] = {}
    for event in read_events(api, PROJECT, name):
        if event["type"] == "vteam.phase":
            times.setdefault(event["data"]["value"]["phase"], event["ts"])
    return times


def _creation_order(created: list[dict[str, Any]]) -> list[str]:
    """Sessions as the server ordered them: by creation time, and within a second by the order of the writes."""
    ordered = sorted(created, key=lambda s: (s["metadata"]["creationTimestamp"], int(s["metadata"]["resourceVersion"])))
    return [s["metadata"]["name"] for s in ordered]


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _errors(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if " ERROR " in line or "Traceback" in line]


def test_a_burst_queues_behind_the_limit_starts_in_order_and_all_end(four: Server) -> None:
    created = _burst(four, "sleep 0.2")
    most = 0
    queued: set[str] = set()

    def seen(items: list[dict[str, Any]]) -> None:
        nonlocal most
        most = max(most, sum(s["status"]["phase"] in STARTED for s in items))
        for s in items:
            if s["status"]["phase"] == "Pending" and s["status"].get("message") == QUEUED:
                queued.add(s["metadata"]["name"])

    with four.client(timeout=60) as api:
        final = _watch(api, time.monotonic() + 180, seen)
        assert {s["status"]["phase"] for s in final} == {"Completed"}, "none stalls, none fails"
        assert most <= PLACES
        order = _creation_order(created)
        assert set(order[BURST // 2 :]) <= queued, "the later half waited, and said why"
        times = {name: _phase_times(api, name) for name in order}
    intervals = [(t["Creating"], t["Completed"]) for t in times.values()]
    assert _most_at_once(intervals) == PLACES
    starts = [times[name]["Creating"] for name in order]
    assert starts == sorted(starts), "sessions start in the order they were created"
    assert _errors(four) == []


def test_with_the_limit_raised_a_burst_all_runs_at_once(hundred: Server) -> None:
    created = _burst(hundred, f'until [ -e "$HOME/{GO}" ]; do sleep 1; done')
    names = [s["metadata"]["name"] for s in created]
    with hundred.client(timeout=60) as api:
        until = time.monotonic() + 120
        while (phases := {s["status"]["phase"] for s in _listing(api)}) != {"Running"}:
            assert phases <= {"Pending", "Creating", "Running"}, phases
            assert time.monotonic() < until, phases
            time.sleep(0.2)
        for name in names:
            home = hundred.session_file(PROJECT, name, "home")
            assert home is not None, name
            (home / GO).touch()
        final = _watch(api, time.monotonic() + 120, lambda _: None)
        assert {s["status"]["phase"] for s in final} == {"Completed"}
    assert _errors(hundred) == []
