"""The session page against a real server: rendered conversation, live stream, controls and their roles."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, read_events, wait_phase
from tests.support.browser import Browser
from tests.support.server import Server

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def browser(server: Server, token: str) -> Iterator[httpx.Client]:
    """A client that signs in like a browser does: the form, then a session cookie."""
    with Browser(server.url, timeout=30) as client:
        response = client.post("/signin", data={"token": token})
        assert response.status_code == 303, response.text
        yield client


@pytest.fixture
def web(server: Server, api: httpx.Client) -> Iterator[httpx.Client]:
    """The admin in a browser, signed in with an API token of their own (the bootstrap token is not one)."""
    response = api.post("/api/tokens", json={"name": f"web-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    with browser(server, response.json()["token"]) as client:
        yield client


def page_url(project: str, name: str) -> str:
    return f"/projects/{project}/sessions/{name}"


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def after_of(html: str) -> int:
    match = re.search(r'data-after="(\d+)"', html)
    assert match, html
    return int(match[1])


def stream(web: httpx.Client, project: str, name: str, after: int) -> list[tuple[str, str]]:
    """The (event, data) pairs of the page's stream until it ends."""
    out: list[tuple[str, str]] = []
    event, data = "message", []
    with web.stream("GET", page_url(project, name) + "/stream", params={"after": after}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                out.append((event, "\n".join(data)))
                event, data = "message", []
    return out


def script_session(api: httpx.Client, project: str, repo: Path, prompt: str, **extra: Any) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    repos = [{"input": {"url": str(repo)}, "output": {"url": str(repo)}}]
    create_session(api, project, name=name, prompt=prompt, repos=repos, **extra)
    return name


def test_finished_session_page(api: httpx.Client, web: httpx.Client, project: str, repo: Path) -> None:
    name = script_session(api, project, repo, "printf 'hello **world**' && echo more >> README.md")
    wait_phase(api, project, name, "Completed")
    html = web.get(page_url(project, name)).text
    assert f"<h1>{name}</h1>" in html
    assert '<span class="badge phase phase-Completed" data-phase="Completed" id="phase">' in html
    assert '<div id="conversation" role="log" aria-live="polite"' in html
    assert "hello <strong>world</strong>" in html
    assert "sse-connect" not in html, "an ended session's page has nothing to wait for"
    assert "Repositories" in html
    assert '<span class="add">+1</span>' in html
    assert "1 file" in html
    assert '<details class="diff">' in html
    assert '<span class="add">+more</span>' in html
    assert "Interrupt" not in html
    assert "Continue…" in html
    assert "Delete…" in html
    events = read_events(api, project, name)
    assert any(e["type"] == "vteam.diff" for e in events)
    assert sorted(seqs(html)) == [e["seq"] for e in events]


def test_stream_sends_only_events_after_n_and_ends(
    api: httpx.Client, web: httpx.Client, project: str, repo: Path
) -> None:
    name = script_session(api, project, repo, "echo one; echo two")
    wait_phase(api, project, name)
    events = read_events(api, project, name)
    cut = events[len(events) // 2]["seq"]
    got = stream(web, project, name, cut)
    assert got[-1][0] == "end"
    streamed = [s for kind, data in got if kind == "message" for s in seqs(data)]
    assert streamed == [e["seq"] for e in events if e["seq"] > cut]
    assert stream(web, project, name, events[-1]["seq"]) == [("end", "end")]


def test_reload_mid_session_shows_each_event_once(
    api: httpx.Client, web: httpx.Client, project: str, repo: Path
) -> None:
    name = script_session(api, project, repo, "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.3; done")
    deadline = time.monotonic() + 30
    while not read_events(api, project, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    html = web.get(page_url(project, name)).text
    after = after_of(html)
    got = stream(web, project, name, after)
    wait_phase(api, project, name)
    on_page = seqs(html)
    streamed = [s for kind, data in got if kind == "message" for s in seqs(data)]
    assert all(s <= after for s in on_page)
    assert all(s > after for s in streamed)
    assert sorted(on_page + streamed) == [e["seq"] for e in read_events(api, project, name)]


def test_interactive_message_interrupt_and_stop(api: httpx.Client, web: httpx.Client, project: str) -> None:
    name = f"chat-{uuid.uuid4().hex[:8]}"
    create_session(api, project, name=name, prompt="echo hi", interactive=True)
    wait_phase(api, project, name, "Running")
    html = web.get(page_url(project, name)).text
    assert 'for="message-text">Message</label>' in html
    assert ">Send</button>" in html
    assert ">Interrupt</button>" in html
    assert ">Stop</button>" in html
    assert "sse-connect=" in html
    assert 'sse-swap="message"' in html
    sent = web.post(
        page_url(project, name) + "/message", data={"text": "echo reply-from-agent"}, headers={"HX-Request": "true"}
    )
    assert sent.status_code == 200
    assert 'id="message-form"' in sent.text
    deadline = time.monotonic() + 30
    while "<p>reply-from-agent</p>" not in web.get(page_url(project, name)).text and time.monotonic() < deadline:
        time.sleep(0.2)
    html = web.get(page_url(project, name)).text
    assert 'class="event user"' in html
    assert "echo reply-from-agent" in html
    assert "<p>reply-from-agent</p>" in html
    interrupted = web.post(page_url(project, name) + "/interrupt", headers={"HX-Request": "true"})
    assert interrupted.status_code == 204
    stopped = web.post(page_url(project, name) + "/stop")
    assert stopped.status_code == 303
    assert stopped.headers["location"] == page_url(project, name)
    assert wait_phase(api, project, name)["status"]["phase"] == "Stopped"
    audit = api.get("/api/audit", params={"project": project, "action": "session."}).json()["items"]
    assert {"session.interrupt", "session.stop"} <= {r["action"] for r in audit}
    html = web.get(page_url(project, name)).text
    assert 'data-phase="Stopped"' in html
    assert ">Stop</button>" not in html


def test_continue_and_delete(api: httpx.Client, web: httpx.Client, project: str, repo: Path) -> None:
    name = script_session(api, project, repo, "echo first >> README.md")
    wait_phase(api, project, name, "Completed")
    response = web.post(page_url(project, name) + "/continue", data={"prompt": "echo second >> README.md"})
    assert response.status_code == 303
    child = response.headers["location"].rsplit("/", 1)[1]
    assert child != name
    assert response.headers["location"] == page_url(project, child)
    wait_phase(api, project, child, "Completed")
    assert f"/sessions/{name}" in web.get(page_url(project, child)).text
    deleted = web.post(page_url(project, child) + "/delete")
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"/projects/{project}"
    assert api.get(f"/api/projects/{project}/agentic-sessions/{child}").status_code == 404


def test_viewer_sees_no_controls_and_cannot_post(server: Server, api: httpx.Client, project: str) -> None:
    name = f"view-{uuid.uuid4().hex[:8]}"
    create_session(api, project, name=name, prompt="sleep 30", interactive=True)
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    link = api.post("/api/users", json={"name": user}).json()["loginLink"]
    binding = {"subjectType": "user", "subjectName": user, "role": "view"}
    assert api.post(f"/api/projects/{project}/permissions", json=binding).status_code == 201
    with browser(server, link) as viewer:
        html = viewer.get(page_url(project, name)).text
        assert 'id="phase"' in html
        for label in ("Send", "Interrupt", "Stop", "Continue", "Delete session"):
            assert f">{label}</button>" not in html
        for action in ("message", "interrupt", "stop", "continue", "delete"):
            response = viewer.post(page_url(project, name) + f"/{action}", data={"text": "x", "prompt": "x"})
            assert response.status_code == 403, action
            assert "<h1>" in response.text
            assert "text/html" in response.headers["content-type"]
    outsider = f"out-{uuid.uuid4().hex[:6]}"
    link = api.post("/api/users", json={"name": outsider}).json()["loginLink"]
    with browser(server, link) as stranger:
        response = stranger.get(page_url(project, name))
        assert response.status_code == 404
        assert "text/html" in response.headers["content-type"]
        assert stranger.get(page_url(project, name) + "/stream").status_code == 404
    api.post(f"/api/projects/{project}/agentic-sessions/{name}/stop")


def test_signed_out_is_sent_to_signin(server: Server, project: str) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.get(page_url(project, "x"))
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin?next=")
