"""The `vteam` CLI against a real server: the quickstart path, JSON output, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.cli import vteam
from tests.support.git import show
from tests.support.server import Server

pytestmark = pytest.mark.integration


def test_quickstart_flow(server: Server, repo: Path) -> None:
    assert vteam(server, "project", "create", "cli-demo").returncode == 0
    listed = vteam(server, "project", "list", "--json")
    assert "cli-demo" in [p["metadata"]["name"] for p in json.loads(listed.stdout)]
    run = vteam(
        server,
        "session",
        "create",
        "--project",
        "cli-demo",
        "--name",
        "first",
        "--repo",
        f"{repo}@main",
        "--output",
        f"{repo}@vteam/first",
        "--prompt",
        "echo 'hello from vteam' >> README.md && cat README.md",
        "--wait",
    )
    assert run.returncode == 0, run.stderr
    assert "hello from vteam" in run.stdout
    assert "── pushed vteam/first" in run.stdout
    assert "── phase Completed" in run.stdout
    assert "session first: Completed" in run.stderr
    assert show(repo, "vteam/first", "README.md") == "hello\nhello from vteam\n"

    logs = vteam(server, "session", "logs", "first", "-p", "cli-demo")
    assert logs.returncode == 0
    assert logs.stdout == run.stdout, "replayed logs read as the live ones did"
    as_json = vteam(server, "session", "logs", "first", "-p", "cli-demo", "--json")
    envelopes = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["seq"] for e in envelopes] == list(range(1, len(envelopes) + 1))

    table = vteam(server, "session", "list", "-p", "cli-demo")
    assert table.stdout.splitlines()[0].split() == ["NAME", "PHASE", "FRAMEWORK", "CREATED", "MESSAGE"]
    assert "Completed" in table.stdout
    got = json.loads(vteam(server, "session", "get", "first", "-p", "cli-demo", "--json").stdout)
    assert got["status"]["repos"][0]["pushed"] is True
    assert vteam(server, "session", "delete", "first", "-p", "cli-demo").returncode == 0
    assert vteam(server, "project", "delete", "cli-demo").returncode == 0


def test_failed_session_exits_non_zero(server: Server) -> None:
    vteam(server, "project", "create", "cli-fail")
    run = vteam(server, "session", "create", "-p", "cli-fail", "--prompt", "echo nope; exit 4", "--wait")
    assert run.returncode == 1
    assert "script exited with status 4" in run.stderr


def test_follow_and_stop(server: Server) -> None:
    vteam(server, "project", "create", "cli-stop")
    vteam(server, "session", "create", "-p", "cli-stop", "--name", "long", "--prompt", "echo up; sleep 600")
    follower = subprocess.Popen(
        [sys.executable, "-m", "vteam", "session", "logs", "long", "-p", "cli-stop", "-f", "--server", server.url],
        env={**os.environ, "VTEAM_TOKEN": server.token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = vteam(server, "session", "stop", "long", "-p", "cli-stop")
    assert stopped.returncode == 0
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 1, "following a stopped session ends non-zero"
    assert "── phase Stopped" in out
    assert "session long: Stopped" in err


def test_errors_are_one_line_with_non_zero_exit(server: Server, tmp_path: Path) -> None:
    missing = vteam(server, "session", "get", "ghost", "-p", "no-such-project")
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("error: ")
    assert "not found" in missing.stderr

    bad = vteam(server, "session", "create", "-p", "x", "--repo", "ftp://h/r", "--prompt", "true")
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1

    unreachable = vteam("http://127.0.0.1:9", "project", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach vTeam at http://127.0.0.1:9")
    assert "Traceback" not in unreachable.stderr

    labels = vteam(server, "session", "create", "-p", "x", "--prompt", "true", "--label", "novalue")
    assert labels.returncode == 1
    assert "key=value" in labels.stderr


def test_a_second_up_on_the_same_home_is_refused(server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    result = subprocess.run(
        [sys.executable, "-m", "vteam", "up", "--port", "0", "--home", str(server.home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: another vteam up is already using {server.home}"
    assert "Traceback" not in result.stderr


def test_up_reports_a_busy_port(server: Server, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    result = subprocess.run(
        [sys.executable, "-m", "vteam", "up", "--port", str(server.port), "--home", str(tmp_path / "h")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{server.port}" in result.stderr


def test_a_conversation_from_the_terminal(server: Server) -> None:
    vteam(server, "project", "create", "cli-chat")
    created = vteam(
        server, "session", "create", "-p", "cli-chat", "--name", "c", "--prompt", "echo hi", "--interactive"
    )
    assert created.returncode == 0, created.stderr
    assert vteam(server, "session", "send", "c", "echo again", "-p", "cli-chat").stdout == "message sent to c\n"
    assert vteam(server, "session", "end", "c", "-p", "cli-chat").returncode == 0
    follow = vteam(server, "session", "logs", "c", "-p", "cli-chat", "-f")
    assert follow.returncode == 0, follow.stderr
    assert "── admin: echo again" in follow.stdout
    assert "again\n" in follow.stdout
    assert "── ended by admin" in follow.stdout
    refused = vteam(server, "session", "send", "c", "late", "-p", "cli-chat")
    assert refused.returncode == 1
    assert "already ended" in refused.stderr
    more = vteam(server, "session", "continue", "c", "-p", "cli-chat", "--prompt", "echo later", "--name", "c2")
    assert more.stdout == "session c2 continues c\n"


def _login_link(server: Server, name: str) -> str:
    with server.client() as admin:
        created = admin.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["loginLink"])


def test_login_remembers_the_server_until_logout(server: Server, tmp_path: Path) -> None:
    name = f"ctx-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "cli"
    signed = vteam(server, "login", _login_link(server, name), config_dir=config, remembered=True)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.startswith(f"signed in to {server.url} as {name}")
    saved = config / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text())["current"] == server.url

    who = vteam(server, "whoami", config_dir=config, remembered=True)
    assert who.returncode == 0, who.stderr
    assert who.stdout == f"{name}\n", "with no --server nor VTEAM_SERVER, the CLI talks to the server it signed in to"

    flag = vteam(server, "whoami", "--server", "http://127.0.0.1:9", config_dir=config, remembered=True)
    assert flag.returncode == 1
    assert flag.stderr.startswith("error: cannot reach vTeam at http://127.0.0.1:9"), "--server wins"
    env = vteam("http://127.0.0.1:9", "whoami", config_dir=config)
    assert env.returncode == 1
    assert env.stderr.startswith("error: cannot reach vTeam at http://127.0.0.1:9"), "VTEAM_SERVER wins"

    out = vteam(server, "logout", config_dir=config, remembered=True)
    assert out.stdout == f"signed out of {server.url}\n"
    assert json.loads(saved.read_text()) == {"current": None, "servers": {}}
    assert saved.stat().st_mode & 0o777 == 0o600
    after = vteam(server, "whoami", config_dir=config, remembered=True)
    assert after.returncode == 1
    assert name not in after.stdout
    assert server.url not in after.stderr, "signed out, the CLI no longer talks to that server by default"


def test_a_token_saved_before_servers_were_remembered_still_signs_in(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "cli"
    config.mkdir()
    (config / "credentials.json").write_text(json.dumps({server.url: server.token}))
    (config / "credentials.json").chmod(0o600)
    who = vteam(server, "whoami", config_dir=config)
    assert who.returncode == 0, who.stderr
    assert who.stdout.startswith("admin")
    relogged = vteam(server, "login", "--server", server.url, stdin=server.token + "\n", config_dir=config)
    assert relogged.returncode == 0, relogged.stderr
    assert json.loads((config / "credentials.json").read_text()) == {
        "current": server.url,
        "servers": {server.url: server.token},
    }


def test_two_failing_calls_print_two_whole_lines(server: Server, tmp_path: Path) -> None:
    shell = f"{sys.executable} -m vteam project get ghost-a; {sys.executable} -m vteam project grant demo team:x view"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env |= {"VTEAM_SERVER": server.url, "VTEAM_TOKEN": server.token, "VTEAM_CONFIG_DIR": str(tmp_path)}
    both = subprocess.run(["sh", "-c", shell], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert both.returncode == 1
    assert both.stderr.endswith("\n")
    lines = both.stderr.splitlines()
    assert len(lines) == 2, both.stderr
    assert lines[0] == "error: Project 'ghost-a' not found"
    assert lines[1].startswith("error: subject 'team:x' must be")


def test_grant_takes_a_bare_user_name(server: Server) -> None:
    project, bob = f"grant-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    assert vteam(server, "project", "create", project).returncode == 0
    assert vteam(server, "user", "create", bob).returncode == 0

    bare = vteam(server, "project", "grant", project, bob, "view")
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == f"user:{bob} is view in {project}\n"
    roles = {(m["subjectType"], m["subjectName"]): m["role"] for m in _members(server, project)}
    assert roles[("user", bob)] == "view"

    assert vteam(server, "project", "grant", project, f"user:{bob}", "edit").returncode == 0
    assert vteam(server, "project", "grant", project, "group:devs", "view").returncode == 0
    roles = {(m["subjectType"], m["subjectName"]): m["role"] for m in _members(server, project)}
    assert roles[("user", bob)] == "edit"
    assert roles[("group", "devs")] == "view"

    revoked = vteam(server, "project", "revoke", project, bob)
    assert revoked.stdout == f"user:{bob} no longer has a role in {project}\n"
    assert ("user", bob) not in {(m["subjectType"], m["subjectName"]) for m in _members(server, project)}

    for bad in ("team:x", "user:", "group:", ""):
        refused = vteam(server, "project", "grant", project, bad, "view")
        assert refused.returncode == 1
        assert refused.stderr == f"error: subject {bad!r} must be NAME or user:NAME (a user), or group:NAME\n"
    unknown = vteam(server, "project", "grant", project, "Bob Smith", "view")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: ")
    assert unknown.stderr.count("\n") == 1


def _members(server: Server, project: str) -> list[dict[str, str]]:
    listed = vteam(server, "project", "members", project, "--json")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))
