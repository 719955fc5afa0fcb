"""A session's life against a real server and real git: edit, commit, push, stop, time out, fail."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import (
    create_session,
    get_session,
    phases_of,
    read_events,
    sessions_path,
    text_of,
    wait_phase,
)
from tests.support.git import bare_repo, branches, rev, show
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]


def test_script_session_edits_commits_and_pushes(api: httpx.Client, project: str, repo: Path) -> None:
    created = create_session(
        api,
        project,
        name="edit",
        prompt="sed -i s/v1/v2/ src/app.py && echo new > NOTES.md && echo edited",
        repos=[{"input": {"url": str(repo), "branch": "main"}, "output": {"url": str(repo)}}],
    )
    assert created["status"]["phase"] == "Pending"
    done = wait_phase(api, project, "edit")
    assert done["status"]["phase"] == "Completed", done["status"]
    repo_status = done["status"]["repos"][0]
    assert repo_status["pushed"] is True
    assert repo_status["branch"] == "vteam/edit"
    assert "vteam/edit" in branches(repo)
    assert show(repo, "vteam/edit", "src/app.py") == "print('v2')\n"
    assert show(repo, "vteam/edit", "NOTES.md") == "new\n"
    assert show(repo, "main", "src/app.py") == "print('v1')\n", "the input branch must be untouched"
    assert repo_status["commitSha"] == rev(repo, "vteam/edit")
    stat = repo_status["diffstat"]
    assert stat["filesChanged"] == 2
    assert stat["insertions"] == 2
    assert stat["deletions"] == 1
    assert {f["path"] for f in stat["files"]} == {"src/app.py", "NOTES.md"}
    message = subprocess.run(
        ["git", "--git-dir", str(repo), "log", "-1", "--format=%an <%ae>%n%B", "vteam/edit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert message.startswith("vTeam <vteam@localhost>\nvteam: ")
    assert f"Session: {project}/edit" in message
    assert done["status"]["startTime"]
    assert done["status"]["completionTime"]
    assert "edited" in done["status"]["result"]["text"]


def test_named_target_branch_and_input_branch(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(
        api,
        project,
        name="target",
        prompt="echo more >> README.md",
        repos=[{"input": {"url": f"file://{repo}"}, "output": {"url": str(repo), "targetBranch": "feature/more"}}],
    )
    done = wait_phase(api, project, "target")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "feature/more", "README.md") == "hello\nmore\n"


def test_no_changes_pushes_nothing(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(
        api, project, name="noop", prompt="true", repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}]
    )
    done = wait_phase(api, project, "noop")
    assert done["status"]["phase"] == "Completed"
    assert done["status"]["repos"][0]["pushed"] is False
    assert "vteam/noop" not in branches(repo)


def test_events_replay_complete_and_in_order(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(
        api,
        project,
        name="events",
        prompt="for i in 1 2 3; do echo line-$i; done; echo x >> README.md",
        repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
    )
    wait_phase(api, project, "events")
    events = read_events(api, project, "events")
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), "replay from 0 must be gapless and ordered"
    types = [e["type"] for e in events]
    for expected in ("vteam.clone", "vteam.branch", "RUN_STARTED", "TEXT_MESSAGE_START", "vteam.commit", "vteam.push"):
        assert expected in types
    assert types.index("vteam.clone") < types.index("RUN_STARTED") < types.index("TEXT_MESSAGE_START")
    assert types.index("RUN_FINISHED") < types.index("vteam.commit") < types.index("vteam.push")
    [run] = [e["data"] for e in events if e["type"] == "RUN_STARTED"]
    assert [e["data"]["runId"] for e in events if e["type"] == "RUN_FINISHED"] == [run["runId"]]
    assert phases_of(events) == ["Creating", "Running", "Completed"]
    assert events[-1]["data"]["value"]["final"] is True
    assert text_of(events) == "line-1\nline-2\nline-3\n"
    for event in events:
        assert event["ts"].endswith("Z")
        assert set(event) == {"seq", "ts", "type", "data"}

    later = read_events(api, project, "events", after=3)
    assert [e["seq"] for e in later] == seqs[3:]
    resumed = read_events(api, project, "events", **{"Last-Event-ID": "5"})
    assert [e["seq"] for e in resumed] == seqs[5:]
    reconnected = read_events(api, project, "events", after=0, **{"Last-Event-ID": "7"})
    assert [e["seq"] for e in reconnected] == seqs[7:], "a reconnecting EventSource resumes, not restarts"


def test_live_reader_sees_events_as_they_happen(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="live", prompt="echo first; sleep 1; echo second")
    events = read_events(api, project, "live", follow=True)
    assert text_of(events) == "first\nsecond\n"
    assert phases_of(events)[-1] == "Completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_failing_script_fails_the_session_and_pushes_nothing(api: httpx.Client, project: str, repo: Path) -> None:
    create_session(
        api,
        project,
        name="boom",
        prompt="echo change >> README.md; echo about to fail; exit 3",
        repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
    )
    done = wait_phase(api, project, "boom")
    assert done["status"]["phase"] == "Failed"
    assert "script exited with status 3" in done["status"]["message"]
    assert "vteam/boom" not in branches(repo)
    events = read_events(api, project, "boom")
    assert any(e["type"] == "RUN_ERROR" for e in events)


def _group_alive(sid: int) -> bool:
    """True while any process of the runner's session still runs; zombies awaiting a reaper do not count."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            return True
    return False


def test_stop_kills_the_process_tree_within_five_seconds(api: httpx.Client, project: str, server: Server) -> None:
    create_session(api, project, name="sleepy", prompt="sleep 600 & sleep 600")
    wait_phase(api, project, "sleepy", "Running")
    time.sleep(0.5)
    pid = server.runner_pid(project, "sleepy")
    assert _group_alive(pid)
    started = time.monotonic()
    response = api.post(sessions_path(project, "sleepy") + "/stop")
    assert response.status_code == 202
    assert response.json()["status"]["phase"] in ("Stopping", "Stopped")
    done = wait_phase(api, project, "sleepy", "Stopped", "Failed", timeout=10)
    elapsed = time.monotonic() - started
    assert done["status"]["phase"] == "Stopped"
    assert elapsed < 5, f"stop took {elapsed:.1f} s"
    deadline = time.monotonic() + 1
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(pid), "every process of the runner's group is gone"
    again = api.post(sessions_path(project, "sleepy") + "/stop")
    assert again.status_code == 202, "stopping a stopped session is harmless"


def test_stop_a_finished_session_is_a_conflict(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="quick", prompt="true")
    wait_phase(api, project, "quick")
    response = api.post(sessions_path(project, "quick") + "/stop")
    assert response.status_code == 409
    assert "already ended" in response.json()["detail"]


def test_timeout_ends_timed_out(api: httpx.Client, project: str, server: Server) -> None:
    create_session(api, project, name="slow", prompt="sleep 600", timeout=2)
    wait_phase(api, project, "slow", "Running")
    pid = server.runner_pid(project, "slow")
    done = wait_phase(api, project, "slow", timeout=15)
    assert done["status"]["phase"] == "TimedOut"
    assert "timed out after 2 s" in done["status"]["message"]
    assert not _group_alive(pid)


def test_runner_killed_with_sigkill_fails_with_reason(api: httpx.Client, project: str, server: Server) -> None:
    create_session(api, project, name="victim", prompt="echo working; sleep 600")
    wait_phase(api, project, "victim", "Running")
    pid = server.runner_pid(project, "victim")
    os.kill(pid, signal.SIGKILL)
    done = wait_phase(api, project, "victim", timeout=10)
    assert done["status"]["phase"] == "Failed"
    assert "killed by signal SIGKILL" in done["status"]["message"]
    assert not _group_alive(pid), "the orphaned script is killed with its runner"


def test_delete_session_removes_it_and_its_workspace(api: httpx.Client, project: str, server: Server) -> None:
    create_session(api, project, name="doomed", prompt="sleep 600")
    wait_phase(api, project, "doomed", "Running")
    pid = server.runner_pid(project, "doomed")
    assert api.delete(sessions_path(project, "doomed")).status_code == 204
    assert api.get(sessions_path(project, "doomed")).status_code == 404
    deadline = time.monotonic() + 10
    while (_group_alive(pid) or list((server.home / "workspaces" / project).glob("doomed-*"))) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not _group_alive(pid)
    assert not list((server.home / "workspaces" / project).glob("doomed-*"))


def test_queue_holds_sessions_beyond_the_limit(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", env={"VTEAM_MAX_RUNNING_SESSIONS": "1"}).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "q"})
            create_session(api, "q", name="first", prompt="sleep 2")
            wait_phase(api, "q", "first", "Running")
            create_session(api, "q", name="second", prompt="true")
            time.sleep(0.5)
            queued = get_session(api, "q", "second")
            assert queued["status"]["phase"] == "Pending"
            assert "queued" in queued["status"]["message"]
            assert wait_phase(api, "q", "second", timeout=20)["status"]["phase"] == "Completed"
            assert get_session(api, "q", "first")["status"]["phase"] == "Completed"
    finally:
        server.close()


def test_runners_started_as_new_processes_work_the_same(tmp_path: Path) -> None:
    """With prefork off each runner is a fresh process: it still completes, and still reports a SIGKILL."""
    repo = bare_repo(tmp_path)
    server = Server(tmp_path / "home", env={"VTEAM_RUNNER_PREFORK": "false"}).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "exec"})
            body = {
                "prompt": "echo exec >> README.md",
                "repos": [{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
            }
            create_session(api, "exec", name="fresh", **body)
            assert wait_phase(api, "exec", "fresh")["status"]["phase"] == "Completed"
            assert show(repo, "vteam/fresh", "README.md") == "hello\nexec\n"
            create_session(api, "exec", name="killed", prompt="sleep 600")
            wait_phase(api, "exec", "killed", "Running")
            pid = server.runner_pid("exec", "killed")
            os.kill(pid, signal.SIGKILL)
            done = wait_phase(api, "exec", "killed", timeout=10)
            assert "killed by signal SIGKILL" in done["status"]["message"]
        assert "forked runner" not in server.log()
        assert "started runner" in server.log()
    finally:
        server.close()


def test_a_flood_of_output_arrives_whole(api: httpx.Client, project: str) -> None:
    """More output than the runner may hold unacknowledged: the agent is slowed, nothing is lost."""
    create_session(api, project, name="flood", prompt="head -c 12000000 /dev/zero | tr '\\0' x; echo; echo end")
    done = wait_phase(api, project, "flood", timeout=120)
    assert done["status"]["phase"] == "Completed", done["status"]
    text = text_of(read_events(api, project, "flood"))
    assert len(text) == 12_000_000 + len("\nend\n")
    assert text.endswith("x\nend\n")


def test_a_silent_agent_fails_as_stalled_with_its_last_output(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", env={"VTEAM_STALL_TIMEOUT_SECONDS": "2"}).start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "s"})
            create_session(api, "s", name="quiet", prompt="echo before-the-silence; sleep 600")
            wait_phase(api, "s", "quiet", "Running")
            pid = server.runner_pid("s", "quiet")
            done = wait_phase(api, "s", "quiet", timeout=30)
            events = read_events(api, "s", "quiet")
    finally:
        server.close()
    assert done["status"]["phase"] == "Failed"
    assert "the agent stalled: no output for 2 s" in done["status"]["message"]
    assert "before-the-silence" in done["status"]["message"]
    assert [e["data"]["code"] for e in events if e["type"] == "RUN_ERROR"] == ["STALLED"]
    assert not _group_alive(pid), "the stalled command was killed"


def test_continue_builds_on_the_parents_pushed_branch(api: httpx.Client, project: str, repo: Path) -> None:
    body = {"prompt": "echo first > WORK.md", "repos": [{"input": {"url": str(repo)}, "output": {"url": str(repo)}}]}
    create_session(api, project, name="parent", labels={"team": "a"}, **body)
    assert wait_phase(api, project, "parent")["status"]["phase"] == "Completed"
    response = api.post(
        sessions_path(project, "parent") + "/continue", json={"prompt": "echo second >> WORK.md", "name": "child"}
    )
    assert response.status_code == 201, response.text
    child = response.json()
    assert child["spec"]["parentSession"] == "parent"
    assert child["metadata"]["labels"] == {"team": "a", "vteam.ambient-code/parent": "parent"}
    assert child["spec"]["repos"][0]["input"] == {"url": str(repo), "branch": "vteam/parent"}
    done = wait_phase(api, project, "child")
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(repo, "vteam/parent", "WORK.md") == "first\nsecond\n", "the child pushed onto the same branch"


def test_only_a_finished_session_can_be_continued(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="busy", prompt="sleep 600")
    wait_phase(api, project, "busy", "Running")
    response = api.post(sessions_path(project, "busy") + "/continue", json={"prompt": "more"})
    assert response.status_code == 409
    assert "end or stop it before continuing" in response.json()["detail"]
    api.post(sessions_path(project, "busy") + "/stop")
