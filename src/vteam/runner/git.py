"""Run git as an asyncio subprocess, with credentials through GIT_ASKPASS and never in argv or URLs."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

from vteam.runner.redact import Redactor

ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${VTEAM_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "${VTEAM_GIT_TOKEN}" ;;
esac
"""


def _ssh_command(helper_dir: Path, key: str | None) -> str:
    """Never prompt; trust a host on first use, remembered per workspace; with a key, only that key."""
    args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
    args += ["-o", f"UserKnownHostsFile={helper_dir / 'known_hosts'}"]
    if key:
        args += ["-i", key, "-o", "IdentitiesOnly=yes"]
    return shlex.join(args)


class GitError(Exception):
    """A git command failed; the message holds its (redacted) stderr."""


class Git:
    def __init__(self, env: dict[str, str], redactor: Redactor) -> None:
        self._env = env
        self._redactor = redactor

    @classmethod
    def for_workspace(
        cls, workspace: Path, *, token: str | None, username: str, ssh_key: str | None, redactor: Redactor
    ) -> Git:
        helper_dir = workspace / ".vteam"
        helper_dir.mkdir(parents=True, exist_ok=True)
        askpass = helper_dir / "askpass.sh"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_") and not k.startswith("GIT_")}
        env.update(
            {
                "GIT_ASKPASS": str(askpass),
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_SSH_COMMAND": _ssh_command(helper_dir, ssh_key),
                "GIT_CONFIG_NOSYSTEM": "1",
                "VTEAM_GIT_USERNAME": username,
            }
        )
        if token:
            env["VTEAM_GIT_TOKEN"] = token
        return cls(env, redactor)

    async def __call__(self, *args: str, cwd: Path | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise GitError(self._redactor.text(f"git {args[0]} failed: " + " | ".join(detail)))
        return out.decode("utf-8", "replace")
