"""The isolation in force: decided once at start, shown by `vteam up` and the web UI, told to every runner,
and checked when a session is created and again when its runner starts (a session may have been created while
a sandbox could still be made), so that where none can be made agents do not run unconfined unless an operator
said so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vteam.agents.sandbox import SandboxSupport, probe
from vteam.auth import Identity
from vteam.errors import IsolationRefused
from vteam.protocol import Env
from vteam.settings import Settings

Mode = Literal["sandbox", "none", "pod", "unavailable"]

ADMIN_FRAMEWORK = "script"
"""The one framework platform admins may still run where no sandbox can be made: it runs what they typed."""


@dataclass(frozen=True)
class Isolation:
    """How this vTeam confines agents, and why, in words a person can act on."""

    mode: Mode
    detail: str

    @property
    def runner_mode(self) -> str:
        """What a runner is told: where no sandbox can be made only admins' `script` sessions run, unconfined."""
        return "none" if self.mode == "unavailable" else self.mode

    def line(self) -> str:
        """The one line `vteam up` prints at start."""
        if self.mode == "unavailable":
            return (
                f"isolation: unavailable ({self.detail}); only platform admins may run the {ADMIN_FRAMEWORK} "
                "framework; set VTEAM_ISOLATION=none to run agents unconfined on purpose"
            )
        return f"isolation: {self.mode} ({self.detail})"

    def wire(self) -> dict[str, str]:
        return {"mode": self.mode, "detail": self.detail}

    def refusal(self, *, admin: bool, framework: str) -> str | None:
        """Why a session of this framework, created by a platform admin or not, may not run here (it would run
        unconfined although no operator chose that), or None where it may."""
        if self.mode != "unavailable" or (admin and framework == ADMIN_FRAMEWORK):
            return None
        return (
            f"this vTeam cannot sandbox agents here ({self.detail}); only platform admins may run the "
            f"{ADMIN_FRAMEWORK} framework until bubblewrap works, or an operator sets VTEAM_ISOLATION=none"
        )

    def admit(self, caller: Identity, framework: str) -> None:
        """Refuse (403) a session that would run unconfined although no operator chose that."""
        if (why := self.refusal(admin=caller.admin, framework=framework)) is not None:
            raise IsolationRefused(why)

    def runner_env(self, settings: Settings) -> dict[str, str]:
        """The runner's part: the mode, what the sandbox masks (vTeam's home) and the hosts it may reach."""
        return {
            Env.ISOLATION: self.runner_mode,
            Env.SANDBOX_HIDE: json.dumps([str(settings.home.resolve())]),
            Env.SANDBOX_ALLOW_HOSTS: settings.sandbox_allow_hosts,
        }


def decide(settings: Settings, support: Callable[[], SandboxSupport] = probe) -> Isolation:
    """The isolation in force: pods in cluster mode, the operator's `none`, else a sandbox where one can be made.

    Blocking (the probe runs bwrap once): call it off the event loop, as `decide_isolation` does."""
    if settings.mode == "cluster":
        return Isolation("pod", "cluster mode: each session's runner runs in a pod of its own")
    if settings.isolation == "none":
        return Isolation("none", "VTEAM_ISOLATION=none: agents run unconfined as the runner's user")
    found = support()
    return Isolation("sandbox" if found.available else "unavailable", found.detail)


async def decide_isolation(settings: Settings) -> Isolation:
    return await asyncio.to_thread(decide, settings)
