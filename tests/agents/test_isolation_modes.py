"""The isolation in force, as an operator and the platform's users meet it on a real `vteam up`: where no sandbox
can be made the server says so in one line at start and runs only platform admins' `script` sessions (every
other session is refused with a 403 that says why and what to do, through the API and the web form alike);
`VTEAM_ISOLATION=none` lets everyone run, on purpose; by default runners are told to sandbox their agents."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, get_session, phases_of, read_events, sessions_path, text_of, wait_phase
from tests.support.browser import signed_in
from tests.support.server import Server

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
NO_BWRAP = "bubblewrap is not installed (apt-get install bubblewrap)"
REFUSED = (
    f"this vTeam cannot sandbox agents here ({NO_BWRAP}); only platform admins may run the script framework "
    "until bubblewrap works, or an operator sets VTEAM_ISOLATION=none"
)


def path_without_bwrap(folder: Path) -> str:
    """A PATH holding every program of this machine's PATH but `bwrap`: a machine without bubblewrap."""
    folder.mkdir()
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if entry.name != "bwrap" and not link.exists() and not link.is_symlink():
                link.symlink_to(entry.path)
    assert not (folder / "bwrap").exists()
    return str(folder)


Start = Callable[[dict[str, str]], Server]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start a server with `env`; every one started is closed (with its runners) after the test."""
    started: list[Server] = []

    def _start(env: dict[str, str]) -> Server:
        server = Server(tmp_path / f"home-{len(started)}", env=env).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.close()


def isolation_lines(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if line.startswith("isolation:")]


def new_project(api: httpx.Client) -> str:
    name = f"iso-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/projects", json={"name": name}).status_code == 201
    return name


def editor_key(api: httpx.Client, project: str) -> str:
    made = api.post(f"/api/projects/{project}/keys", json={"name": "editor", "role": "edit"})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def footer(browser: httpx.Client) -> str:
    """The isolation a signed-in person sees at the foot of a page, as text."""
    page = browser.get("/projects")
    assert page.status_code == 200
    found = re.search(r'<footer class="platform-status">(.*?)</footer>', page.text, re.S)
    assert found is not None, "no isolation footer"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["title"] == "Isolation unavailable"
    assert problem["detail"] == REFUSED


def test_without_bubblewrap_only_platform_admins_script_sessions_run(start: Start, tmp_path: Path) -> None:
    server = start({"PATH": path_without_bwrap(tmp_path / "bin")})
    assert isolation_lines(server) == [
        f"isolation: unavailable ({NO_BWRAP}); only platform admins may run the script framework; "
        "set VTEAM_ISOLATION=none to run agents unconfined on purpose"
    ]
    with server.client() as admin:
        project = new_project(admin)
        create_session(admin, project, name="admin-script", prompt="echo admin ran")
        done = wait_phase(admin, project, "admin-script", timeout=60)
        assert done["status"]["phase"] == "Completed", done["status"]
        assert "admin ran" in text_of(read_events(admin, project, "admin-script"))

        refused(admin.post(sessions_path(project), json={"framework": "codex", "prompt": "hello"}))
        with server.client(token=editor_key(admin, project)) as editor:
            refused(editor.post(sessions_path(project), json={"framework": "script", "prompt": "cat /etc/hostname"}))
            refused(editor.post(sessions_path(project, "admin-script") + "/continue", json={"prompt": "echo again"}))
        again = admin.post(sessions_path(project, "admin-script") + "/continue", json={"prompt": "echo again"})
        assert again.status_code == 201, again.text
        names = [s["metadata"]["name"] for s in admin.get(sessions_path(project)).json()["items"]]
        assert sorted(names) == sorted(["admin-script", again.json()["metadata"]["name"]])

    with signed_in(server.url, server.token, timeout=30) as browser:
        assert footer(browser) == f"Isolation: unavailable {NO_BWRAP}"
        form = browser.get(f"/projects/{project}/sessions/new")
        assert "only platform admins may run the script framework" in unescape(form.text)
        web = browser.post(f"/projects/{project}/sessions", data={"prompt": "hello", "framework": "codex"})
        assert web.status_code == 403
        error = re.search(r'<p id="form-error" class="error" role="alert">([^<]+)</p>', web.text)
        assert error is not None
        assert unescape(error.group(1)) == REFUSED
        assert ">hello</textarea>" in web.text, "the refused form keeps what was typed"


def test_isolation_none_lets_editors_run_agents_unconfined_on_purpose(start: Start, tmp_path: Path) -> None:
    server = start({"VTEAM_ISOLATION": "none", "PATH": path_without_bwrap(tmp_path / "bin")})
    assert isolation_lines(server) == [
        "isolation: none (VTEAM_ISOLATION=none: agents run unconfined as the runner's user)"
    ]
    with server.client() as admin:
        project = new_project(admin)
        with server.client(token=editor_key(admin, project)) as editor:
            create_session(editor, project, name="by-editor", prompt="echo editor ran")
            done = wait_phase(editor, project, "by-editor", timeout=60)
            assert done["status"]["phase"] == "Completed", done["status"]
            assert "editor ran" in text_of(read_events(editor, project, "by-editor"))
    with signed_in(server.url, server.token, timeout=30) as browser:
        assert footer(browser) == "Isolation: none VTEAM_ISOLATION=none: agents run unconfined as the runner's user"


def test_by_default_runners_are_told_to_sandbox_their_agents(start: Start, tmp_path: Path) -> None:
    """A stand-in runner records the environment the controller gives it: the mode, what to hide, what to allow."""
    dump = tmp_path / "runner-env.json"
    record = (
        "import json, os, sys, time; open(sys.argv[1] + '.part', 'w').write(json.dumps(dict(os.environ))); "
        "os.replace(sys.argv[1] + '.part', sys.argv[1]); time.sleep(600)"
    )
    runner = [sys.executable, "-c", record, str(dump)]
    server = start({"VTEAM_RUNNER_COMMAND": json.dumps(runner), "VTEAM_SANDBOX_ALLOW_HOSTS": "gateway.lan:8443"})
    lines = isolation_lines(server)
    assert len(lines) == 1
    sandbox = re.fullmatch(
        r"isolation: sandbox \((bubblewrap \S+: user, pid, mount, network and IPC namespaces per agent)\)", lines[0]
    )
    assert sandbox is not None, lines
    with server.client() as admin:
        project = new_project(admin)
        with server.client(token=editor_key(admin, project)) as editor:
            create_session(editor, project, name="by-editor", prompt="echo hi")
    deadline = time.monotonic() + 30
    while not dump.exists():
        assert time.monotonic() < deadline, "the runner never started"
        time.sleep(0.05)
    env = json.loads(dump.read_text())
    assert env["VTEAM_ISOLATION"] == "sandbox"
    assert json.loads(env["VTEAM_SANDBOX_HIDE"]) == [str(server.home.resolve())]
    assert env["VTEAM_SANDBOX_ALLOW_HOSTS"] == "gateway.lan:8443"
    with signed_in(server.url, server.token, timeout=30) as browser:
        assert footer(browser) == f"Isolation: sandbox {sandbox.group(1)}"


def test_sessions_queued_while_a_sandbox_worked_are_checked_again_when_they_start(start: Start, tmp_path: Path) -> None:
    """Sessions created while bubblewrap worked, still Pending when the server restarts without it: the
    controller refuses an editor's as creation would now, before any runner starts, and runs an admin's script."""
    server = start({"VTEAM_MAX_RUNNING_SESSIONS": "1", "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": "1"})
    assert isolation_lines(server)[0].startswith("isolation: sandbox ")
    with server.client() as admin:
        project = new_project(admin)
        create_session(admin, project, name="long", prompt="sleep 600")
        wait_phase(admin, project, "long", "Running")
        with server.client(token=editor_key(admin, project)) as editor:
            create_session(editor, project, name="by-editor", prompt="echo editor ran")
        create_session(admin, project, name="by-admin", prompt="echo admin ran")
        time.sleep(0.3)
        for name in ("by-editor", "by-admin"):
            assert get_session(admin, project, name)["status"]["phase"] == "Pending"
        long_runner = server.runner_pid(project, "long")
    server.stop()
    os.killpg(long_runner, signal.SIGKILL)  # its slot frees at the restart

    server.env["PATH"] = path_without_bwrap(tmp_path / "bin")
    server.start()
    assert isolation_lines(server)[-1].startswith(f"isolation: unavailable ({NO_BWRAP})")
    with server.client() as admin:
        failed = wait_phase(admin, project, "by-editor", timeout=30)
        assert failed["status"]["phase"] == "Failed", failed["status"]
        assert failed["status"]["message"] == REFUSED
        events = read_events(admin, project, "by-editor")
        assert [e["type"] for e in events] == ["vteam.phase"], "the refused session never ran"
        assert phases_of(events) == ["Failed"]
        assert not list((server.home / "workspaces" / project).glob("by-editor-*")), "no runner was started"

        ran = wait_phase(admin, project, "by-admin", timeout=30)
        assert ran["status"]["phase"] == "Completed", ran["status"]
        assert text_of(read_events(admin, project, "by-admin")) == "admin ran\n"
