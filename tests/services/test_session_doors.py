"""Every door that creates a session goes through one `Sessions.create`: an admission check added there once is
honoured by the API's create, the web form and the API's continue alike.

The platform runs in this process (the same `Platform.open` and `create_app` as `vteam up`, on a real socket,
with real runner processes), so the test can add its check to the list the composition root assembled."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support.api import sessions_path, wait_phase
from tests.support.browser import signed_in
from vteam.api import Platform
from vteam.auth import Identity
from vteam.errors import InvalidInput
from vteam.resources import AgenticSession
from vteam.server import create_app
from vteam.settings import Settings

pytestmark = pytest.mark.integration

MARKER = "refuse-me-7f3a"
REFUSAL = "the test check refuses this prompt"


async def refuse_marker(_caller: Identity, session: AgenticSession) -> None:
    if MARKER in session.spec.prompt:
        raise InvalidInput(REFUSAL)


class InProcess:
    """`vteam up`'s platform and app, served from a thread of this process, with one extra session check."""

    def __init__(self, home: Path) -> None:
        self.token = "vt-test-admin-" + secrets.token_urlsafe(16)
        self.settings = Settings(
            home=home,
            admin_token=self.token,
            resync_seconds=2,
            write_rate_per_minute=0,
            repo_allow_hosts="127.0.0.1,::1",
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        platform = await Platform.open(self.settings)
        platform.sessions.checks.append(refuse_marker)
        app = create_app(self.settings, server_url=self.url, platform=platform)
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
        await self.server.serve(sockets=[self.sock])

    def __enter__(self) -> InProcess:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server is not None and self.server.started):
            assert self.thread.is_alive(), "the in-process platform did not start"
            assert time.monotonic() < deadline, "the in-process platform did not start in time"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[InProcess]:
    with InProcess(tmp_path / "home") as running:
        yield running


def test_one_check_is_honoured_by_api_create_web_form_and_continue(platform: InProcess) -> None:
    with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.token}"}, timeout=30) as api:
        assert api.post("/api/projects", json={"name": "doors"}).status_code == 201

        refused = api.post(sessions_path("doors"), json={"prompt": f"echo {MARKER}", "framework": "script"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == REFUSAL

        parent = api.post(sessions_path("doors"), json={"prompt": "true", "framework": "script"})
        assert parent.status_code == 201, parent.text
        name = parent.json()["metadata"]["name"]
        wait_phase(api, "doors", name)

        continued = api.post(sessions_path("doors", name) + "/continue", json={"prompt": f"echo {MARKER}"})
        assert continued.status_code == 422, continued.text
        assert continued.json()["detail"] == REFUSAL

        with signed_in(platform.url, platform.token, timeout=30) as browser:
            form = browser.post(
                "/projects/doors/sessions", data={"prompt": f"echo {MARKER}", "framework": "script", "timeout": "60"}
            )
        assert form.status_code == 422, form.text
        assert REFUSAL in form.text

        stored = api.get(sessions_path("doors")).json()["items"]
        assert [s["metadata"]["name"] for s in stored] == [name]
