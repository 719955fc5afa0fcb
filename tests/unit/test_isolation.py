"""Which isolation is in force, and whom it lets run what: one decision at start, one rule at creation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vteam.agents.sandbox import SandboxSupport
from vteam.api.isolation import Isolation, Mode, decide
from vteam.auth import Identity
from vteam.errors import IsolationRefused
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
