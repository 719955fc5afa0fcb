"""Script payloads in every field a user, a tenant or a runner controls, and every page loaded in the real
Chromium: no script runs, no dialog opens, no payload becomes an element or a link, and each payload shows as text.

The server's runner is `sleep`, so the test speaks the runner's protocol itself (status reports and the event
WebSocket) and can put payloads where a hostile runner or agent would: agent text, reasoning, tool calls and
results, run errors, vTeam's own custom events, the final report's message, result and repos.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.server import Server
from vteam.auth import RunnerTokens
from vteam.events import Envelope, split

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("browser tests need Debian's chromium (/usr/bin/chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Dialog, Page, Playwright, sync_playwright  # noqa: E402

from tests.support.browser import COOKIE, signed_in  # noqa: E402
from tests.support.ui import CHROMIUM_ARGS, DESKTOP  # noqa: E402

pytestmark = pytest.mark.integration

PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror=window.__pwned=1>',
    "'><svg/onload=window.__pwned=1>",
    "javascript:window.__pwned=1",
    "{{7*7}}",
    "</textarea><svg onload=window.__pwned=1>",
    "<img src=x onerror=alert(1)>",
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    '<a href="javascript:window.__pwned=1">link</a>',
    "[click me](javascript:window.__pwned=1)",
    "<details open ontoggle=window.__pwned=1>",
    "${7*7}<style>body{display:none}</style>",
]
SCRIPT_URL = "javascript:window.__pwned=1"
BRANCH = '"><svg/onload=window.__pwned=1>'
REPO_URL = "https://example.com/acme/<svg/onload=window.__pwned=1>.git"
TEXT_PAYLOAD = PAYLOADS[0]
"""One payload every text the page renders as markdown shows literally."""

INJECTED = """() => {
  const bad = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase(), value = attr.value.toLowerCase();
      if (name.startsWith("on") && value.includes("pwned") || value.includes("alert(1)") && name.startsWith("on")) {
        bad.push(el.tagName + "[" + name + "]");
      }
      if (["href", "src", "action", "formaction", "srcdoc", "data"].includes(name)
          && (value.trim().startsWith("javascript:") || value.includes("__pwned"))) {
        bad.push(el.tagName + "[" + name + "=" + attr.value + "]");
      }
    }
    if (el.tagName === "SCRIPT" && el.textContent.includes("__pwned")) bad.push("SCRIPT " + el.textContent);
    if (el.tagName === "STYLE" && el.textContent.includes("display:none")) bad.push("STYLE " + el.textContent);
  }
  return {pwned: window.__pwned === undefined ? null : String(window.__pwned), bad};
}"""


@dataclass
class World:
    server: Server
    admin: httpx.Client
    token: str
    project: str
    projects: list[str]
    forged: str
    chat: str
    runner_tokens: RunnerTokens
    uids: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("payloads") / "home"
    env = {"VTEAM_RUNNER_COMMAND": '["sleep", "600"]', "VTEAM_MAX_RUNNING_SESSIONS": "20"}
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


def _accepted(response: httpx.Response) -> bool:
    """The field took the payload; a refusal (422) is fine too: then the payload never reaches a page."""
    assert response.status_code in (200, 201, 422), response.text
    return response.status_code in (200, 201)


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    with server.client() as admin:
        made = admin.post("/api/tokens", json={"name": "payloads"})
        assert made.status_code == 201, made.text
        projects = []
        for index, payload in enumerate(PAYLOADS):
            name = f"xss-{index}-{uuid.uuid4().hex[:6]}"
            answer = admin.post("/api/projects", json={"name": name, "displayName": payload, "description": payload})
            assert answer.status_code == 201, answer.text
            projects.append(name)
        project = projects[0]
        world = World(
            server,
            admin,
            made.json()["token"],
            project,
            projects,
            "",
            "",
            RunnerTokens(bytes.fromhex((server.home / "secret.key").read_text())),
        )
        accepted = world.accepted
        for payload in PAYLOADS:
            body: dict[str, Any] = {"prompt": payload, "displayName": payload, "framework": "script"}
            created = create_session(admin, project, **body)
            world.uids[created["metadata"]["name"]] = created["metadata"]["uid"]
        with_repo = {
            "prompt": "\n".join(PAYLOADS),
            "displayName": "forged runner",
            "framework": "script",
            "repos": [{"input": {"url": REPO_URL, "branch": BRANCH}}],
        }
        answer = admin.post(sessions_path(project), json=with_repo)
        if not _accepted(answer):
            with_repo.pop("repos")
            answer = admin.post(sessions_path(project), json=with_repo)
        assert answer.status_code == 201, answer.text
        world.forged = answer.json()["metadata"]["name"]
        world.uids[world.forged] = answer.json()["metadata"]["uid"]
        chat = admin.post(
            sessions_path(project), json={"prompt": "chat", "framework": "script", "interactive": True}
        ).json()
        world.chat = chat["metadata"]["name"]
        world.uids[world.chat] = chat["metadata"]["uid"]
        for payload in PAYLOADS:
            member = {"subjectType": "user", "subjectName": payload, "role": "view"}
            if _accepted(admin.post(f"/api/projects/{project}/permissions", json=member)):
                accepted.setdefault("member", []).append(payload)
            if _accepted(admin.post(f"/api/projects/{project}/keys", json={"name": payload, "role": "view"})):
                accepted.setdefault("key", []).append(payload)
        for name in ("XSS_<svg/onload=window.__pwned=1>", "XSS_{{7*7}}"):
            answer = admin.put(f"/api/projects/{project}/secrets/{name}", json={"value": "<script>x</script>"})
            assert answer.status_code in (200, 404, 422), answer.text
            if answer.status_code == 200:
                accepted.setdefault("secret", []).append(name)
        admin.put(f"/api/projects/{project}/secrets/PLAIN_SECRET", json={"value": PAYLOADS[1]})
        yield world


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, world: World) -> Iterator[Page]:
    """A signed-in page that records every dialog (and dismisses it); the test fails if one opened."""
    context = browser.new_context(base_url=world.server.url, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message} at {opened.url}")
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    with signed_in(world.server.url, world.token) as client:
        cookie = client.cookies[COOKIE]
    context.add_cookies([{"name": COOKIE, "value": cookie, "url": world.server.url}])
    yield opened
    context.close()
    assert dialogs == [], "a payload opened a dialog:\n" + "\n".join(dialogs)


def assert_inert(page: Page) -> None:
    """Nothing a payload carries ran or became an element, attribute or link on the page now shown."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # onerror and onload handlers fire after the load
    found = page.evaluate(INJECTED)
    assert found == {"pwned": None, "bad": []}, f"a payload ran or was injected on {page.url}: {found}"


def text(page: Page) -> str:
    return page.locator("body").inner_text()


def _runner(world: World, name: str) -> httpx.Client:
    token = world.runner_tokens.mint(world.project, name, world.uids[name])
    return world.server.client(token=token)


def _envelopes() -> list[Envelope]:
    """Agent and vTeam events, each with payloads where the event carries text."""
    joined = "\n\n".join(PAYLOADS)
    raw: list[tuple[str, dict[str, Any]]] = [
        ("RUN_STARTED", {"threadId": "t", "runId": "r"}),
        ("TEXT_MESSAGE_START", {"messageId": "m1", "role": "assistant"}),
        ("TEXT_MESSAGE_CONTENT", {"messageId": "m1", "delta": joined}),
        ("TEXT_MESSAGE_END", {"messageId": "m1"}),
        ("REASONING_MESSAGE_START", {"messageId": "r1", "role": "assistant"}),
        ("REASONING_MESSAGE_CONTENT", {"messageId": "r1", "delta": joined}),
        ("REASONING_MESSAGE_END", {"messageId": "r1"}),
        ("TOOL_CALL_START", {"toolCallId": '"><svg onload=1>', "toolCallName": PAYLOADS[1]}),
        ("TOOL_CALL_ARGS", {"toolCallId": '"><svg onload=1>', "delta": json.dumps({"cmd": PAYLOADS[5]})}),
        ("TOOL_CALL_END", {"toolCallId": '"><svg onload=1>'}),
        ("TOOL_CALL_RESULT", {"toolCallId": '"><svg onload=1>', "messageId": "m2", "content": joined}),
        ("STEP_STARTED", {"stepName": PAYLOADS[2]}),
    ]
    customs: list[tuple[str, dict[str, Any]]] = [
        ("vteam.pull_request", {"url": SCRIPT_URL, "number": 7, "title": PAYLOADS[0], "state": PAYLOADS[1]}),
        ("vteam.commit", {"commit": PAYLOADS[2], "branch": BRANCH, "message": PAYLOADS[0]}),
        ("vteam.push", {"branch": BRANCH, "url": SCRIPT_URL}),
        ("vteam.branch", {"branch": BRANCH, "base": PAYLOADS[0]}),
        ("vteam.clone", {"url": PAYLOADS[1], "branch": BRANCH}),
        ("vteam.diff", {"repo": 0, "diff": "\n".join(f"+{p}" for p in PAYLOADS), "truncated": False}),
        ("vteam.made-up", {"anything": PAYLOADS[0]}),
    ]
    for name, value in customs:
        raw.append((name, {"type": "CUSTOM", "name": name if name != "vteam.made-up" else PAYLOADS[1], "value": value}))
    raw.append(("RUN_ERROR", {"message": PAYLOADS[6], "code": PAYLOADS[3]}))
    return [
        Envelope(seq=i, ts="2026-01-01T00:00:00.000000Z", type=kind, data={"type": kind, **data})
        for i, (kind, data) in enumerate(raw, start=1)
    ]


def _speak_as_runner(world: World, name: str) -> None:
    """The runner's event WebSocket: every envelope acknowledged, so stored."""
    token = world.runner_tokens.mint(world.project, name, world.uids[name])
    url = "ws" + world.server.url.removeprefix("http") + sessions_path(world.project, name) + "/runner/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as ws:
        json.loads(ws.recv(timeout=10))
        for env in _envelopes():
            for frame in split(env):
                ws.send(json.dumps(frame))
            assert json.loads(ws.recv(timeout=10)) == {"ack": env.seq}


def _final_report(world: World, name: str) -> None:
    repo = {
        "url": REPO_URL,
        "branch": BRANCH,
        "baseBranch": PAYLOADS[0],
        "pushed": True,
        "pushedUrl": PAYLOADS[1],
        "commitSha": PAYLOADS[2],
        "pullRequestUrl": SCRIPT_URL,
        "note": PAYLOADS[0],
        "error": PAYLOADS[6],
        "diffstat": {
            "filesChanged": 1,
            "insertions": 1,
            "deletions": 0,
            "files": [{"path": PAYLOADS[5], "insertions": 1, "deletions": 0}],
        },
    }
    report = {
        "final": True,
        "message": PAYLOADS[1],
        "result": {"text": "\n".join(PAYLOADS)},
        "repos": [repo],
        "conditions": [{"type": "RunnerReported", "status": "False", "reason": "x", "message": PAYLOADS[0]}],
    }
    with _runner(world, name) as runner:
        answer = runner.post(sessions_path(world.project, name) + "/runner/status", json=report)
        assert answer.status_code == 200, answer.text


def _running(world: World, name: str) -> None:
    wait_phase(world.admin, world.project, name, "Creating", "Running")
    with _runner(world, name) as runner:
        path = sessions_path(world.project, name) + "/runner/status"
        assert runner.post(path, json={"phase": "Running", "agentStatus": "waiting_input"}).status_code == 200


def _project_list(page: Page, world: World) -> None:
    page.goto("/projects")
    assert_inert(page)
    shown = text(page)
    for payload in PAYLOADS:
        assert payload in shown, f"{payload!r} is not shown as text on /projects"


def _project_page(page: Page, world: World) -> None:
    page.goto(f"/projects/{world.project}")
    assert_inert(page)
    shown = text(page)
    assert PAYLOADS[0] in shown
    for payload in PAYLOADS:
        if "\n" not in payload:
            assert payload in shown, f"session display name {payload!r} is not shown as text"


def _session_pages(page: Page, world: World) -> None:
    for name in list(world.uids)[: len(PAYLOADS)]:
        page.goto(f"/projects/{world.project}/sessions/{name}")
        assert_inert(page)


def _hostile_runner(page: Page, world: World) -> None:
    name = world.forged
    _running(world, name)
    page.goto(f"/projects/{world.project}/sessions/{name}")
    assert_inert(page)
    _speak_as_runner(world, name)
    page.locator("#conversation").get_by_text(PAYLOADS[6]).first.wait_for()
    assert_inert(page)
    conversation = page.locator("#conversation").inner_text()
    assert TEXT_PAYLOAD in conversation, "agent text is shown as text"
    _final_report(world, name)
    # The 'runner' is `sleep`, which never exits by itself: the session ends when stopped.
    assert world.admin.post(sessions_path(world.project, name) + "/stop").status_code == 202
    wait_phase(world.admin, world.project, name, "Completed", "Failed", "Stopped")
    page.wait_for_timeout(1000)
    assert_inert(page)
    page.reload()
    assert_inert(page)
    repos = page.locator("#repos").inner_text()
    assert "Pull request" not in repos, "a runner's pull-request URL is not shown, as a link or otherwise"
    assert PAYLOADS[5] in repos, "a changed file's path is shown as text"
    page.goto(f"/projects/{world.project}")
    assert_inert(page)


def _user_message(page: Page, world: World) -> None:
    name = world.chat
    _running(world, name)
    page.goto(f"/projects/{world.project}/sessions/{name}")
    assert_inert(page)
    for payload in PAYLOADS[:4]:
        sent = world.admin.post(sessions_path(world.project, name) + "/messages", json={"text": payload})
        assert sent.status_code == 202, sent.text
    page.locator("#conversation").get_by_text(PAYLOADS[3]).first.wait_for()
    assert_inert(page)
    assert PAYLOADS[0] in page.locator("#conversation").inner_text()
    page.reload()
    assert_inert(page)


def _settings_page(page: Page, world: World) -> None:
    page.goto(f"/projects/{world.project}/settings")
    assert_inert(page)
    shown = text(page)
    for kind in ("member", "key", "secret"):
        for payload in world.accepted.get(kind, []):
            assert payload in shown, f"{kind} {payload!r} is not shown as text"
    assert "<script>x</script>" not in shown, "a secret's value is never shown"


def _new_session_form(page: Page, world: World) -> None:
    page.goto(f"/projects/{world.project}/sessions/new")
    assert_inert(page)
    page.get_by_label("Prompt").fill(PAYLOADS[5])
    page.get_by_label("Repository URL").first.fill(SCRIPT_URL)
    page.get_by_label("Branch").first.fill(PAYLOADS[1])
    page.get_by_label("Display name").fill(PAYLOADS[0] * 20)
    page.get_by_label("Name", exact=True).fill(PAYLOADS[2])
    page.get_by_role("button", name="Start session").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("[role=alert]").count() > 0, "the form came back with its errors"
    assert_inert(page)
    assert page.get_by_label("Prompt").input_value() == PAYLOADS[5]
    assert page.get_by_label("Repository URL").first.input_value() == SCRIPT_URL
    assert re.search(r"/sessions/?(new)?$", page.url) or "/sessions" in page.url


VISITS = (
    _project_list,
    _hostile_runner,
    _user_message,
    _session_pages,
    _project_page,
    _settings_page,
    _new_session_form,
)
"""Every page, in an order where each shows what the earlier visits made: the runner's report before the
sessions table, say."""


def test_no_payload_runs_or_renders_as_markup_on_any_page(page: Page, world: World) -> None:
    """Each page in turn; a page that fails does not hide what the next ones do."""
    problems = []
    for visit in VISITS:
        try:
            visit(page, world)
        except AssertionError as exc:
            problems.append(f"{visit.__name__}: {exc}")
    assert problems == [], "\n\n".join(problems)
