"""Issue 24: the page of a session with large output shows its tail, pages the rest on demand, and does
not hold the server while it renders.

The output (about 24 MB) is seeded through the runner's WebSocket, as a runner printing it would send it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.browser import Browser
from tests.support.server import Server
from vteam.auth import RunnerTokens
from vteam.events import Envelope, split

pytestmark = pytest.mark.integration

MESSAGES = 80
DELTAS = 10
FILL = "z" * 30_000
TS = "2026-01-01T00:00:00.000000Z"


def _mark(message: int, delta: int) -> str:
    return f"mark-{message}-{delta}-"


def _events() -> Iterator[Envelope]:
    seq = 0
    for m in range(MESSAGES):
        kinds: list[dict[str, str]] = [{"type": "TEXT_MESSAGE_START", "messageId": f"m{m}", "role": "assistant"}]
        kinds += [
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"m{m}", "delta": _mark(m, d) + FILL + "\n"}
            for d in range(DELTAS)
        ]
        kinds.append({"type": "TEXT_MESSAGE_END", "messageId": f"m{m}"})
        for data in kinds:
            seq += 1
            yield Envelope(seq=seq, ts=TS, type=data["type"], data=data)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client, str, str]]:
    """A server holding one session with about 24 MB of agent text; and a signed-in browser."""
    home = tmp_path_factory.mktemp("bigpage") / "home"
    server = Server(home, env={"VTEAM_RUNNER_COMMAND": '["sleep", "600"]'}).start()
    try:
        with server.client(timeout=60) as api:
            api.post("/api/projects", json={"name": "big"})
            created = create_session(api, "big", prompt="unused")
            name = created["metadata"]["name"]
            wait_phase(api, "big", name, "Creating")
            key = bytes.fromhex((server.home / "secret.key").read_text())
            token = RunnerTokens(key).mint("big", name, created["metadata"]["uid"])
            url = "ws" + server.url.removeprefix("http") + sessions_path("big", name) + "/runner/ws"
            with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
                ws.recv(timeout=10)
                for env in _events():
                    for frame in split(env):
                        ws.send(json.dumps(frame))
                    assert json.loads(ws.recv(timeout=30)) == {"ack": env.seq}
            web_token = api.post("/api/tokens", json={"name": "big-web"}).json()["token"]
        with Browser(server.url, timeout=60) as web:
            assert web.post("/signin", data={"token": web_token}).status_code == 303
            yield server, web, name, web_token
    finally:
        server.close()


def test_the_page_shows_the_tail_and_a_control_for_the_rest(big: tuple[Server, httpx.Client, str, str]) -> None:
    _, web, name, _ = big
    page = web.get(f"/projects/big/sessions/{name}")
    assert page.status_code == 200
    assert _mark(MESSAGES - 1, DELTAS - 1) in page.text, "the newest output is shown"
    assert _mark(0, 0) not in page.text, "the oldest is not rendered with the page"
    assert "Show earlier output" in page.text
    assert len(page.content) < 4_000_000


def test_earlier_output_comes_a_page_at_a_time(big: tuple[Server, httpx.Client, str, str]) -> None:
    _, web, name, _ = big
    page = web.get(f"/projects/big/sessions/{name}").text
    seen = set(re.findall(r"mark-\d+-\d+-", page))
    pages = 0
    link = re.search(r'hx-get="([^"]+/earlier\?before=\d+)"', page)
    while link:
        part = web.get(link[1].replace("&amp;", "&"), headers={"HX-Request": "true"})
        assert part.status_code == 200
        marks = set(re.findall(r"mark-\d+-\d+-", part.text))
        assert marks
        assert not marks & seen, "each earlier page brings output not shown yet"
        seen |= marks
        pages += 1
        link = re.search(r'hx-get="([^"]+/earlier\?before=\d+)"', part.text)
    assert pages > 1
    assert seen == {_mark(m, d) for m in range(MESSAGES) for d in range(DELTAS)}, "every output is reachable"


def test_readyz_answers_while_large_pages_render(big: tuple[Server, httpx.Client, str, str]) -> None:
    server, web, name, _ = big
    done = threading.Event()
    statuses: list[int] = []

    def load_pages() -> None:
        try:
            for _ in range(4):
                statuses.append(web.get(f"/projects/big/sessions/{name}").status_code)
        finally:
            done.set()

    loader = threading.Thread(target=load_pages)
    loader.start()
    answers = []
    with httpx.Client(base_url=server.url, timeout=10) as probe:
        while not done.is_set():
            answers.append(probe.get("/readyz").status_code)
    loader.join()
    assert statuses == [200] * 4
    assert answers
    assert set(answers) == {200}


def test_a_browser_shows_earlier_output_in_place(big: tuple[Server, httpx.Client, str, str]) -> None:
    """The control works in a real browser: htmx fetches the earlier page and puts it above the tail."""
    from playwright.sync_api import sync_playwright

    from tests.support.ui import CHROMIUM, CHROMIUM_ARGS, sign_in

    server, _, name, token = big
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(base_url=server.url)
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, token)
            page.goto(f"/projects/big/sessions/{name}")
            shown = page.locator("#conversation [data-seq]").count()
            page.get_by_role("link", name="Show earlier output").click()
            page.wait_for_function("n => document.querySelectorAll('#conversation [data-seq]').length > n", arg=shown)
            assert page.url.endswith(f"/projects/big/sessions/{name}"), "the page stays; the output comes in place"
            assert page.locator("#conversation .earlier").count() == 1
        finally:
            browser.close()
    assert errors == []
