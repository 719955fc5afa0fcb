"""Run git as an asyncio subprocess, with credentials only where and when they are needed.

Git runs with no system or global config, never prompts, and never runs hooks or an fsmonitor.
Inside the agent's repositories it runs with no credentials at all: the agent controls their
config. Credentials exist only inside `remote_access`, in a private folder made for one
clone or push, after the agent's processes are gone, and removed right after.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vteam.runner.redact import Redactor

# Answers git's prompts: the user name, and the token only for the allowed hosts (any host when
# VTEAM_GIT_TOKEN_HOSTS is empty). git's prompt looks like: Password for 'https://user@host:port':
ASKPASS = """#!/bin/sh
url=${1#*\\'}; url=${url%\\'*}; rest=${url#*://}; rest=${rest#*@}; host=${rest%%[:/]*}
if [ -n "$VTEAM_GIT_TOKEN_HOSTS" ]; then
  case " $VTEAM_GIT_TOKEN_HOSTS " in *" $host "*) ;; *) exit 1 ;; esac
fi
case "$1" in
  Username*) printf '%s\\n' "${VTEAM_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "${VTEAM_GIT_TOKEN}" ;;
esac
"""

SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "commit.gpgSign=false")


class GitError(Exception):
    """A git command failed; the message holds its (redacted) stderr."""


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    username: str = "x-access-token"
    ssh_key: str | None = None
    token_hosts: tuple[str, ...] = ()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTEAM_", "GIT_", "SSH_"))}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        }
    )
    return env


class Git:
    def __init__(self, env: dict[str, str], redactor: Redactor) -> None:
        self._env = env
        self._redactor = redactor

    @classmethod
    def plain(cls, redactor: Redactor) -> Git:
        """Git with no credentials: for everything inside the agent's repositories."""
        return cls(_base_env(), redactor)

    async def __call__(self, *args: str, cwd: Path | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *SAFE_CONFIG,
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


@asynccontextmanager
async def remote_access(credentials: Credentials, redactor: Redactor) -> AsyncIterator[tuple[Git, Path]]:
    """A git that can reach remotes, and a private folder (mode 0700) that is removed afterwards."""
    private = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="vteam-git-"))
    try:
        askpass = private / "askpass.sh"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o700)
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
        # A stalled remote must not hold the session until its timeout: give up after a minute of silence.
        ssh += ["-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        ssh += ["-o", f"UserKnownHostsFile={private / 'known_hosts'}"]
        if credentials.ssh_key:
            ssh += ["-i", credentials.ssh_key, "-o", "IdentitiesOnly=yes"]
        env = _base_env()
        env.update(
            {
                "GIT_ASKPASS": str(askpass),
                "GIT_SSH_COMMAND": shlex.join(ssh),
                "VTEAM_GIT_USERNAME": credentials.username,
                "VTEAM_GIT_TOKEN_HOSTS": " ".join(credentials.token_hosts),
                "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
                "GIT_HTTP_LOW_SPEED_TIME": "60",
            }
        )
        if credentials.token:
            env["VTEAM_GIT_TOKEN"] = credentials.token
        yield Git(env, redactor), private
    finally:
        await asyncio.to_thread(shutil.rmtree, private, True)
