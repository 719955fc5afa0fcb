"""The platform reads and writes a workspace as if its owner (a runner user) were hostile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from vteam.controller.controller import Controller, ProjectSecret
from vteam.controller.local import PIDFILE, RunnerUserError, _read_file, _write_pidfile, resolve_runner_user
from vteam.resources import AgenticSession
from vteam.runner.zygote import _create


def test_reading_refuses_links_fifos_and_files_of_others(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.write_text("platform secret")
    plain = tmp_path / "plain"
    plain.write_text("12")
    assert _read_file(plain) == "12"
    (tmp_path / "symlink").symlink_to(private)
    os.link(private, tmp_path / "hardlink")
    os.mkfifo(tmp_path / "fifo")
    for name in ("symlink", "hardlink", "fifo"):
        with pytest.raises(OSError, match=r"symbolic links|not a plain file"):
            _read_file(tmp_path / name)
    with pytest.raises(OSError, match="not written by the platform"):
        _read_file(plain, owner=os.geteuid() + 1)


def test_the_pid_file_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / (PIDFILE + ".tmp")).symlink_to(target)
    _write_pidfile(workspace, os.getpid())
    assert target.read_text() == "untouched"
    assert '"pid"' in _read_file(workspace / PIDFILE, owner=os.geteuid())


def test_the_zygote_never_writes_an_exit_file_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("untouched")
    (tmp_path / "runner.exit").symlink_to(target)
    with pytest.raises(FileExistsError):
        _create(tmp_path / "runner.exit", "0")
    assert target.read_text() == "untouched"


def test_an_unknown_runner_user_is_refused_in_one_line() -> None:
    assert resolve_runner_user(None) is None
    with pytest.raises(RunnerUserError, match="VTEAM_RUNNER_USER=no-such-vteam-user: no such user"):
        resolve_runner_user("no-such-vteam-user")


def test_project_secrets_win_over_the_platform_and_all_reach_the_agent() -> None:
    async def project_secrets(project: str) -> dict[str, ProjectSecret]:
        return {"ANTHROPIC_API_KEY": ProjectSecret(f"{project}-key"), "DEMO_API_KEY": ProjectSecret("demo")}

    none: Any = None
    controller = Controller(
        store=none,
        events=none,
        hub=none,
        tokens=none,
        executor_factory=lambda _on_exit: none,
        server_url=lambda: "",
        runner_env={},
        agent_environ={"ANTHROPIC_API_KEY": "platform-key", "UNRELATED": "x"},
        max_running=1,
        resync_seconds=1,
        project_secrets=project_secrets,
    )
    session = AgenticSession.model_validate(
        {"metadata": {"name": "s", "namespace": "p"}, "spec": {"prompt": "x", "framework": "claude-code"}}
    )
    secrets, _ = asyncio.run(controller._agent_environment(session))
    assert secrets == {"ANTHROPIC_API_KEY": "p-key", "DEMO_API_KEY": "demo"}
