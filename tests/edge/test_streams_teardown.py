"""A stream whose client leaves is torn down completely: no error in the server's log, and nothing (a reader task,
its hub subscription) left behind waiting for the session's next event. Otherwise a view key could open and
drop streams of an idle session in a loop and make the server hold ever more, whatever its stream allowance."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from tests.support.api import sessions_path, start_live, wait_phase
from tests.support.server import Server
from tests.support.tasks import no_leftover_tasks  # noqa: F401 - autouse fixture
from vteam.auth import ADMIN_USER, Identity
from vteam.edge.stream_access import StreamGuard
from vteam.events import follow
from vteam.services.platform import Platform
from vteam.settings import Settings

pytestmark = pytest.mark.integration

DROPS = 6
BROKEN = ("already running", "Exception in ASGI application", "Traceback")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("vteam-teardown") / "home"
    srv = Server(home, env={"VTEAM_MAX_STREAMS_PER_CALLER": "2"}).start()
    yield srv
    srv.close()


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def idle(admin: httpx.Client) -> Iterator[tuple[str, str]]:
    """An interactive session waiting for its next message: its streams have nothing more to send."""
    project = f"p-{uuid.uuid4().hex[:10]}"
    assert admin.post("/api/projects", json={"name": project}).status_code == 201
    name = start_live(admin, project)
    yield project, name
    admin.post(sessions_path(project, name) + "/end")
    wait_phase(admin, project, name)


def open_and_drop(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> None:
    """Read a stream's first bytes, give the server time to send what is stored and wait on the hub, hang up."""
    with client.stream("GET", path, params=params) as response:
        assert response.status_code == 200, response.read()
        next(response.iter_bytes())
        time.sleep(0.3)


@pytest.mark.parametrize("page", [False, True], ids=["api", "web"])
def test_dropped_streams_of_an_idle_session_leave_nothing_behind(
    server: Server, admin: httpx.Client, idle: tuple[str, str], page: bool
) -> None:
    project, name = idle
    key = admin.post(f"/api/projects/{project}/keys", json={"name": "reader", "role": "view"})
    assert key.status_code == 201, key.text
    start = len(server.log())
    if page:
        path, params = f"/projects/{project}/sessions/{name}/stream", None
    else:
        path, params = sessions_path(project, name) + "/events", {"follow": "true"}
    with server.client(token=key.json()["token"]) as client:
        for _ in range(DROPS):
            open_and_drop(client, path, params)
    time.sleep(1.0)
    logged = server.log()[start:]
    assert not [line for line in logged.splitlines() if any(b in line for b in BROKEN)], logged
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200


# The same, in-process: the real hub and guard, cancelled the way sse_starlette cancels its consumer


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(home=tmp_path / "home", runner_user="none", stream_recheck_seconds=3600)
    opened = await Platform.open(settings)
    yield opened
    await opened.close()


async def never_finished() -> bool:
    return False


async def test_a_cancelled_reader_unsubscribes_and_ends_at_once(platform: Platform) -> None:
    """Cancelling the reader while it waits for live events ends it with CancelledError, its hub queue gone."""
    uid = uuid.uuid4().hex
    caller = Identity(name=ADMIN_USER, admin=True)
    guard = StreamGuard(Request({"type": "http", "headers": []}), platform, caller, "demo")
    source = follow(platform.events, platform.hub, uid, finished=never_finished, idle_check=3600)

    async def consume() -> None:
        async for _ in guard.bounded(source):
            pass

    reader = asyncio.create_task(consume())
    deadline = time.monotonic() + 5
    while platform.hub.readers(uid) == 0:
        assert time.monotonic() < deadline, "the reader never subscribed"
        await asyncio.sleep(0.01)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(reader, timeout=5)
    assert reader.cancelled(), reader.exception()
    assert platform.hub.readers(uid) == 0
    assert len(platform.accounts.changes) == 0
