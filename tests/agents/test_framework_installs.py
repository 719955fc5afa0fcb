"""Framework readiness: a framework is ready once the CLI its adapter runs is installed, "installing" while the
background `make frameworks` holds the install lock, and a session of a framework that is not ready is refused."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vteam.agents import codex, gemini, mini_swe, registry
from vteam.agents.installs import LOCK, LOG, Installs
from vteam.errors import InvalidInput

INSTALLED = ("codex", "gemini", "mini-swe-agent")


def empty(tmp_path: Path) -> Installs:
    """An `.agents` with nothing in it, and a PATH with no CLI on it."""
    (tmp_path / "bin").mkdir()
    return Installs(root=tmp_path / ".agents", path=str(tmp_path / "bin"))


def install(root: Path, framework: str, *, stamp: bool = True) -> None:
    """Lay out what `make frameworks` leaves for one framework."""
    if framework == "mini-swe-agent":
        python = root / "mini-swe-agent" / "bin" / "python"
        python.parent.mkdir(parents=True, exist_ok=True)
        python.write_text("")
        name = f".mini-swe-agent-{mini_swe.VERSION}"
    else:
        cli = root / "node_modules" / ".bin" / framework
        cli.parent.mkdir(parents=True, exist_ok=True)
        cli.write_text("#!/bin/sh\n")
        cli.chmod(0o755)
        name = f".codex-{codex.VERSION}" if framework == "codex" else f".gemini-cli-{gemini.VERSION}"
    if stamp:
        (root / name).write_text("")


@contextmanager
def installing(root: Path) -> Iterator[None]:
    """Hold the install lock the way `flock` in the Makefile does."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_nothing_installed_says_what_to_run(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    for framework in INSTALLED:
        state = installs.readiness(framework)
        assert not state.ready
        assert state.status == "not installed: run `make frameworks`"


def test_platform_frameworks_are_always_ready(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    assert installs.readiness("script").ready
    assert installs.readiness("claude-code").ready


@pytest.mark.parametrize("framework", INSTALLED)
def test_installed_framework_is_ready(tmp_path: Path, framework: str) -> None:
    installs = empty(tmp_path)
    install(installs.root, framework)
    assert installs.readiness(framework).ready
    assert installs.readiness(framework).status == "ready"
    others = [name for name in INSTALLED if name != framework]
    assert not any(installs.readiness(name).ready for name in others)


def test_a_cli_on_path_counts_as_the_adapters_find_it_there(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    on_path = tmp_path / "bin" / "codex"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert installs.readiness("codex").ready
    assert not installs.readiness("gemini").ready


def test_installing_while_the_lock_is_held(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    install(installs.root, "codex")
    install(installs.root, "gemini", stamp=False)  # npm is still filling it in
    with installing(installs.root):
        assert installs.installing()
        assert installs.readiness("codex").ready
        for framework in ("gemini", "mini-swe-agent"):
            state = installs.readiness(framework)
            assert not state.ready
            assert state.status.startswith("installing"), state.status
            assert str(installs.root / LOG) in state.status
    assert not installs.installing()
    assert installs.readiness("gemini").ready  # the lock is gone: the install ended


def test_a_failed_install_points_at_its_log(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    installs.root.mkdir()
    (installs.root / LOG).write_text("npm ERR! network\n")
    (installs.root / LOCK).write_text("")  # left by the install, held by no one
    state = installs.readiness("codex")
    assert not state.ready
    assert state.status.startswith("not installed: run `make frameworks`")
    assert str(installs.root / LOG) in state.status


async def test_a_session_of_a_framework_not_ready_is_refused(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    with pytest.raises(InvalidInput) as refused:
        await registry.check_ready("gemini", installs)
    assert "'gemini'" in refused.value.detail
    assert "make frameworks" in refused.value.detail
    assert refused.value.errors[0]["loc"] == ["framework"]
    install(installs.root, "gemini")
    await registry.check_ready("gemini", installs)
    await registry.check_ready("script", installs)


async def test_readiness_lists_every_framework(tmp_path: Path) -> None:
    installs = empty(tmp_path)
    install(installs.root, "mini-swe-agent")
    states = await registry.readiness(installs)
    assert set(states) == set(registry.ADAPTERS)
    assert {name for name, state in states.items() if state.ready} == {"script", "claude-code", "mini-swe-agent"}
