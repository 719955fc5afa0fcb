"""After the agent's turn the runner commits in repositories the agent controlled: their config, gitfiles and
nested repositories could make git run a command. That git runs in a sandbox like the agent's, so the
command stays inside it: it cannot write on the host, and the session still commits and pushes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import create_session, wait_phase
from tests.support.git import bare_repo, show
from tests.support.server import Server

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
