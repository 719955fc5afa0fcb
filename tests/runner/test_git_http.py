"""Clone and push over git's smart HTTP with a token: it works, and the token never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api import create_session, read_events, wait_phase
from tests.support.git import bare_repo, show
from tests.support.githttp import GitHttpServer
from tests.support.server import Server

pytestmark = pytest.mark.integration

TOKEN = "ghp_TESTtoken_9f8e7d6c5b4a"


def test_http_clone_and_push_through_askpass_without_leaking_the_token(tmp_path: Path) -> None:
    repos = tmp_path / "served"
    repos.mkdir()
    bare = bare_repo(repos, "app")
    home = tmp_path / "home"
    server = Server(home, env={"VTEAM_GIT_TOKEN": TOKEN, "VTEAM_GIT_USERNAME": "bot"})
    with GitHttpServer(repos, username="bot", password=TOKEN) as git_http:
        server.start()
        try:
            url = f"{git_http.url}/app.git"
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "h"})
                created = create_session(
                    api,
                    "h",
                    name="viahttp",
                    prompt='echo "token=[$VTEAM_GIT_TOKEN] askpass=[$GIT_ASKPASS]"; echo pushed > PUSHED',
                    repos=[{"input": {"url": url}, "output": {"url": url}}],
                )
                done = wait_phase(api, "h", "viahttp", timeout=30)
                assert done["status"]["phase"] == "Completed", done["status"]
                events = read_events(api, "h", "viahttp")
                responses = [api.get("/api/projects/h/agentic-sessions/viahttp").text, str(created), str(events)]
        finally:
            server.close()
        assert show(bare, "vteam/viahttp", "PUSHED") == "pushed\n"
        assert any("git-receive-pack" in r for r in git_http.requests), "the push went over HTTP"
    assert "token=[]" in str(events), "the agent's environment does not hold the git token"
    workspace_files = [p for p in (home / "workspaces").rglob("*") if p.is_file() and ".git/objects" not in str(p)]
    leaks = [str(p) for p in workspace_files if TOKEN.encode() in p.read_bytes()]
    assert leaks == [], "the token is in no file of the workspace (git config, logs, askpass)"
    for text in [*responses, server.log()]:
        assert TOKEN not in text
    assert TOKEN.encode() not in (home / "vteam.db").read_bytes()


def test_bad_token_fails_with_a_readable_message(tmp_path: Path) -> None:
    repos = tmp_path / "served"
    repos.mkdir()
    bare_repo(repos, "app")
    server = Server(tmp_path / "home", env={"VTEAM_GIT_TOKEN": "wrong-token-value"})
    with GitHttpServer(repos, username="x-access-token", password=TOKEN) as git_http:
        server.start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "h"})
                create_session(
                    api, "h", name="denied", prompt="true", repos=[{"input": {"url": f"{git_http.url}/app.git"}}]
                )
                done = wait_phase(api, "h", "denied", timeout=30)
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    assert "repos[0]" in done["status"]["message"]
    assert "cloning repos[0] from" in done["status"]["message"]
    assert "repository not found or access denied" in done["status"]["message"]
    assert "wrong-token-value" not in done["status"]["message"]
    assert git_http.auth_failures >= 1


STEAL = r"""
loot=$PWD/LOOT.txt
mkdir -p .git/hooks
printf '#!/bin/sh\nenv >> %s\ncat /tmp/vteam-git-*/askpass.sh >> %s 2>/dev/null\n' "$loot" "$loot" > .git/hooks/pre-push
printf '#!/bin/sh\nenv >> %s\n' "$loot" > .git/hooks/pre-commit
chmod +x .git/hooks/pre-push .git/hooks/pre-commit
git config core.fsmonitor "env >> $loot; false"
git config core.sshCommand "env >> $loot; ssh"
git config credential.helper "!env >> $loot; true"
printf '[core]\n\tfsmonitor = "env >> %s; false"\n' "$loot" > "$HOME/.gitconfig"
cat /proc/$PPID/environ >> $loot 2>/dev/null
(for i in $(seq 1 100); do
  cat /tmp/vteam-git-*/askpass.sh /proc/$PPID/environ >> $loot 2>/dev/null; sleep 0.05
done) &
echo stolen? > STOLEN.md
"""


def _run_thief(tmp_path: Path, prefork: bool) -> tuple[dict[str, object], Path, str]:
    """An agent that tries every way to the token; what it found is in LOOT.txt, committed and pushed with its work."""
    repos = tmp_path / "served"
    repos.mkdir()
    bare = bare_repo(repos, "app")
    env = {"VTEAM_GIT_TOKEN": TOKEN, "VTEAM_RUNNER_PREFORK": str(prefork).lower()}
    server = Server(tmp_path / "home", env=env)
    with GitHttpServer(repos, username="x-access-token", password=TOKEN) as git_http:
        server.start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "t"})
                url = f"{git_http.url}/app.git"
                create_session(
                    api,
                    "t",
                    name="thief",
                    prompt=STEAL,
                    repos=[{"input": {"url": url}, "output": {"url": url}}],
                )
                done = wait_phase(api, "t", "thief", timeout=30)
        finally:
            server.close()
    return done, bare, show(bare, "vteam/thief", "LOOT.txt")


def test_an_agent_cannot_steal_the_git_token_through_git(tmp_path: Path) -> None:
    """Hooks, fsmonitor, config, ~/.gitconfig and a lingering process never see the token at push time."""
    done, bare, stolen = _run_thief(tmp_path, prefork=True)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(bare, "vteam/thief", "STOLEN.md") == "stolen?\n", "the push still happened"
    assert "PATH=" in stolen, "the script ran its attempts"
    assert TOKEN not in stolen


def test_a_new_process_runner_keeps_its_secrets_out_of_its_environment(tmp_path: Path) -> None:
    done, _, stolen = _run_thief(tmp_path, prefork=False)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "PATH=" in stolen, "the script read its parent's environment"
    assert "VTEAM_" not in stolen, "the runner's environment is out of the sandbox's reach"
    assert TOKEN not in stolen
    assert "vtr." not in stolen, "nor the runner token"


def test_token_is_offered_only_to_its_hosts(tmp_path: Path) -> None:
    repos = tmp_path / "served"
    repos.mkdir()
    bare_repo(repos, "app")
    env = {"VTEAM_GIT_TOKEN": TOKEN, "VTEAM_GIT_TOKEN_HOSTS": "git.example.com"}
    server = Server(tmp_path / "home", env=env)
    with GitHttpServer(repos, username="x-access-token", password=TOKEN) as git_http:
        server.start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "t"})
                create_session(
                    api, "t", name="elsewhere", prompt="true", repos=[{"input": {"url": f"{git_http.url}/app.git"}}]
                )
                done = wait_phase(api, "t", "elsewhere", timeout=30)
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    assert "cloning repos[0] from" in done["status"]["message"]
    assert git_http.auth_failures >= 1
