"""Which isolation is in force, and whom it lets run what: one decision at start, one rule at creation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vteam.agents.sandbox import SandboxSupport
from vteam.auth import Accounts, Identity
from vteam.db import open_database
from vteam.errors import IsolationRefused
from vteam.resources import CREATED_BY, AgenticSession, ObjectMeta, SessionSpec
from vteam.services.isolation import Isolation, Mode, decide
from vteam.services.platform import _isolation_refuses
from vteam.settings import Settings

MISSING = SandboxSupport(False, "bubblewrap is not installed (apt-get install bubblewrap)")
WORKS = SandboxSupport(True, "bubblewrap 0.8.0: user, pid, mount, network and IPC namespaces per agent")
ADMIN = Identity("admin", admin=True)
EDITOR = Identity("key-1", kind="key", project="p")


def never() -> SandboxSupport:
    raise AssertionError("the sandbox was probed although the mode did not depend on it")


def test_the_mode_follows_the_machine_unless_the_operator_or_cluster_mode_decides(tmp_path: Path) -> None:
    assert decide(Settings(home=tmp_path), lambda: WORKS) == Isolation("sandbox", WORKS.detail)
    assert decide(Settings(home=tmp_path), lambda: MISSING) == Isolation("unavailable", MISSING.detail)
    assert decide(Settings(home=tmp_path, isolation="none"), never).mode == "none"
    assert decide(Settings(home=tmp_path, mode="cluster"), never).mode == "pod"


def test_without_a_sandbox_only_an_admins_script_session_is_admitted() -> None:
    unavailable = Isolation("unavailable", MISSING.detail)
    unavailable.admit(ADMIN, "script")
    for caller, framework in ((ADMIN, "codex"), (EDITOR, "script"), (EDITOR, "claude-code")):
        with pytest.raises(IsolationRefused, match=r"cannot sandbox agents here \(bubblewrap is not installed"):
            unavailable.admit(caller, framework)
    confined: tuple[Mode, ...] = ("sandbox", "none", "pod")
    for mode in confined:
        Isolation(mode, "").admit(EDITOR, "codex")


def test_runners_hear_none_where_no_sandbox_can_be_made_and_what_to_hide_and_allow(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", sandbox_allow_hosts="gateway.lan:8443")
    env = Isolation("unavailable", MISSING.detail).runner_env(settings)
    assert env == {
        "VTEAM_ISOLATION": "none",
        "VTEAM_SANDBOX_HIDE": json.dumps([str((tmp_path / "home").resolve())]),
        "VTEAM_SANDBOX_ALLOW_HOSTS": "gateway.lan:8443",
    }
    assert Isolation("sandbox", WORKS.detail).runner_env(settings)["VTEAM_ISOLATION"] == "sandbox"
    assert Isolation("pod", "cluster mode").line() == "isolation: pod (cluster mode)"


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    database = await open_database(tmp_path / "vteam.db")
    yield Accounts(database)
    await database.close()


def created_by(creator: str, framework: str) -> AgenticSession:
    return AgenticSession(
        metadata=ObjectMeta(name="s", namespace="p", annotations={CREATED_BY: creator}),
        spec=SessionSpec(prompt="echo hi", framework=framework),
    )


async def test_at_start_the_creators_session_is_refused_as_creation_would_refuse_it_now(
    accounts: Accounts, tmp_path: Path
) -> None:
    """The controller's check when a runner is about to start: the 403's words, judged by who created it."""
    await accounts.create_user("ada", admin=True)
    await accounts.create_user("bob")
    settings = Settings(home=tmp_path)
    unavailable = Isolation("unavailable", MISSING.detail)
    with pytest.raises(IsolationRefused) as refused:
        unavailable.admit(EDITOR, "script")
    assert await _isolation_refuses(settings, unavailable, accounts, created_by("ada", "script")) is None
    for creator, framework in (("ada", "codex"), ("bob", "script"), ("key:p/editor", "script"), ("", "script")):
        why = await _isolation_refuses(settings, unavailable, accounts, created_by(creator, framework))
        assert why == refused.value.detail, (creator, framework)
    # The admin token's sessions are created by `admin`, a platform admin whether or not that user exists.
    assert await _isolation_refuses(settings, unavailable, accounts, created_by("admin", "script")) is not None
    with_token = Settings(home=tmp_path, admin_token="t0ken")
    assert await _isolation_refuses(with_token, unavailable, accounts, created_by("admin", "script")) is None
    for mode in ("sandbox", "none", "pod"):
        confined = Isolation(mode, "")
        assert await _isolation_refuses(settings, confined, accounts, created_by("bob", "codex")) is None
