"""Restarting `vteam up` mid-session: queued sessions start, lost runners fail, live runners are adopted."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.api import create_session, get_session, phases_of, read_events, text_of, wait_phase
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_restart_fails_lost_runners_and_starts_queued_sessions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = Server(home, env={"VTEAM_MAX_RUNNING_SESSIONS": "1"}).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "r"})
            create_session(api, "r", name="long", prompt="echo started; sleep 600")
            wait_phase(api, "r", "long", "Running")
            create_session(api, "r", name="queued", prompt="echo queued-ran")
            time.sleep(0.3)
            assert get_session(api, "r", "queued")["status"]["phase"] == "Pending"
            pid = server.runner_pid("r", "long")
        server.stop(signal.SIGKILL)
        os.killpg(pid, signal.SIGKILL)
        server.start()
        with server.client(timeout=30) as api:
            lost = wait_phase(api, "r", "long", timeout=15)
            assert lost["status"]["phase"] == "Failed"
            assert "restarted" in lost["status"]["message"]
            assert "runner is gone" in lost["status"]["message"]
            [lost_workspace] = (home / "workspaces" / "r").glob("long-*")
            assert not _runs_in(lost_workspace), "what the lost runner started was killed too"
            ran = wait_phase(api, "r", "queued", timeout=20)
            assert ran["status"]["phase"] == "Completed"
            assert text_of(read_events(api, "r", "queued")) == "queued-ran\n"
            assert phases_of(read_events(api, "r", "long"))[-1] == "Failed"
    finally:
        server.close()


def test_runner_survives_restart_and_is_adopted(tmp_path: Path) -> None:
    """The runner keeps working while the server is down, reconnects, and resends what was not acked."""
    home = tmp_path / "home"
    server = Server(home, port=_free_port()).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "a"})
            create_session(api, "a", name="survivor", prompt="echo before; sleep 3; echo after")
            wait_phase(api, "a", "survivor", "Running")
            time.sleep(0.5)
        server.stop(signal.SIGKILL)
        time.sleep(1)
        server.start()
        with server.client(timeout=30) as api:
            done = wait_phase(api, "a", "survivor", timeout=30)
            assert done["status"]["phase"] == "Completed", done["status"]
            events = read_events(api, "a", "survivor")
            assert text_of(events) == "before\nafter\n"
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert phases_of(events) == ["Creating", "Running", "Completed"]
    finally:
        server.close()


def test_restart_cleans_up_after_a_session_deleted_while_down(tmp_path: Path) -> None:
    """A crash between deleting a session's record and cleaning up after it leaves nothing behind."""
    import sqlite3

    home = tmp_path / "home"
    server = Server(home).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "d"})
            create_session(api, "d", name="orphan", prompt="echo orphaned; sleep 600")
            wait_phase(api, "d", "orphan", "Running")
            pid = server.runner_pid("d", "orphan")
            assert read_events(api, "d", "orphan")
        server.stop(signal.SIGKILL)
        with sqlite3.connect(home / "vteam.db") as db:
            db.execute("DELETE FROM resources WHERE kind = 'AgenticSession' AND name = 'orphan'")
        server.start()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the orphaned runner was killed"
        assert not list((home / "workspaces" / "d").glob("orphan-*")), "its workspace was removed"
        with sqlite3.connect(home / "vteam.db") as db:
            assert db.execute("SELECT count(*) FROM events").fetchone() == (0,), "its events were removed"
    finally:
        server.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _runs_in(folder: Path) -> list[int]:
    """Live processes whose working directory is inside `folder`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cwd.startswith(str(folder)):
            found.append(int(proc.name))
    return found
