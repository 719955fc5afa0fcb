"""After the agent's turn the runner commits and pushes from repositories the agent controlled: their config,
gitfiles and nested repositories could make git run a command, and their alternates could make git read
another repository's objects. That git runs in a sandbox like the agent's, so neither reaches the host."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import create_session, wait_phase
from tests.support.git import bare_repo, show
from tests.support.server import Server

pytestmark = pytest.mark.integration

ATTACK = """
evil='touch {outside}; cat'
git config filter.x.clean "$evil"
git config diff.x.textconv "sh -c 'touch {outside}; cat \\"$1\\"' -"
printf '* filter=x diff=x\\n' > .gitattributes
git init -q nested && git -C nested config filter.x.clean "$evil"
printf '* filter=x\\n' > nested/.gitattributes
echo nested > nested/file
git -C nested add -A 2>/dev/null; git -C nested -c user.name=a -c user.email=a@a commit -qm nested
echo changed > CHANGED.md
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("vteam") / "home").start()
    yield srv
    srv.close()


def _run(server: Server, tmp_path: Path, project: str) -> tuple[dict[str, object], Path]:
    repo = bare_repo(tmp_path, files={"README.md": "hello\n"})
    outside = tmp_path / "escaped"
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": project})
        create_session(
            api,
            project,
            name="filters",
            prompt=ATTACK.format(outside=outside),
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        done = wait_phase(api, project, "filters", timeout=60)
    assert not outside.exists(), "a command from the agent's git config ran on the host"
    return done, repo


def test_git_config_written_by_the_agent_runs_nothing_on_the_host(server: Server, tmp_path: Path) -> None:
    done, repo = _run(server, tmp_path, "gitcfg")
    status = done["status"]
    assert isinstance(status, dict)
    assert status["phase"] == "Completed", status.get("message")
    assert show(repo, "vteam/filters", "CHANGED.md") == "changed\n", "the session still pushed its work"


def test_without_the_sandbox_the_same_config_would_run_on_the_host(tmp_path: Path) -> None:
    """The attack is real: with isolation off on purpose, the runner's git runs the agent's filter."""
    server = Server(tmp_path / "home", env={"VTEAM_ISOLATION": "none"}).start()
    try:
        with pytest.raises(AssertionError, match="ran on the host"):
            _run(server, tmp_path, "unconfined")
    finally:
        server.close()


BORROW = """
echo {victim}/objects >> .git/objects/info/alternates
echo changed > CHANGED.md && git add -A
tree=$(git write-tree)
commit=$(printf 'tree %s\\nparent %s\\nauthor a <a@a> 0 +0000\\ncommitter a <a@a> 0 +0000\\n\\nborrowed\\n' \\
  "$tree" {sha} | git hash-object -t commit -w --stdin --literally)
git update-ref HEAD "$commit"
"""


def _borrow(server: Server, tmp_path: Path, project: str) -> tuple[Path, str]:
    """An agent names another repository's object store as its own and points its branch past that history."""
    (tmp_path / "elsewhere").mkdir()
    victim = bare_repo(tmp_path / "elsewhere", "victim", files={"SECRET.md": "another tenant's code\n"})
    sha = subprocess.run(
        ["git", "--git-dir", str(victim), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    repo = bare_repo(tmp_path, files={"README.md": "hello\n"})
    with server.client(timeout=30) as api:
        api.post("/api/projects", json={"name": project})
        create_session(
            api,
            project,
            name="borrow",
            prompt=BORROW.format(victim=victim, sha=sha),
            repos=[{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
        )
        wait_phase(api, project, "borrow", timeout=60)
    return repo, sha


def _has(repo: Path, sha: str) -> bool:
    return subprocess.run(["git", "--git-dir", str(repo), "cat-file", "-e", sha], check=False).returncode == 0


def test_a_push_never_carries_another_repositorys_objects(server: Server, tmp_path: Path) -> None:
    repo, sha = _borrow(server, tmp_path, "borrow")
    assert not _has(repo, sha), "another repository's commit reached the session's output"


def test_without_the_sandbox_the_push_would_carry_them(tmp_path: Path) -> None:
    """The attack is real: unconfined, git follows the agent's alternates to any object store on the host."""
    server = Server(tmp_path / "home", env={"VTEAM_ISOLATION": "none"}).start()
    try:
        repo, sha = _borrow(server, tmp_path, "borrow-unconfined")
    finally:
        server.close()
    assert _has(repo, sha)
