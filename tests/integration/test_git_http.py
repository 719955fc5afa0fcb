"""Clone and push over git's smart HTTP with a token: it works, and the token never shows."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.api import create_session, read_events, wait_phase
from tests.support.git import bare_repo, show
from tests.support.githttp import GitHttpServer
from tests.support.server import Server

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
            with httpx.Client(base_url=server.url, timeout=30) as api:
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
            with httpx.Client(base_url=server.url, timeout=30) as api:
                api.post("/api/projects", json={"name": "h"})
                create_session(
                    api, "h", name="denied", prompt="true", repos=[{"input": {"url": f"{git_http.url}/app.git"}}]
                )
                done = wait_phase(api, "h", "denied", timeout=30)
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    assert "repos[0]" in done["status"]["message"]
    assert "git clone failed" in done["status"]["message"]
    assert "wrong-token-value" not in done["status"]["message"]
    assert git_http.auth_failures >= 1
