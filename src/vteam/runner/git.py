"""Run git as an asyncio subprocess, with credentials only where and when they are needed.

Git runs with no system or global config, never prompts, and never runs hooks or an fsmonitor.
Inside the agent's repositories it runs with no credentials at all: the agent controls their
config. Credentials exist only inside `remote_access`, in a private folder made for one
clone or push, after the agent's processes are gone, and removed right after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from vteam.agents.sandbox import Sandbox
from vteam.policy.repos import GIT_PROTOCOLS, RepoPolicy, Vetted
from vteam.protocol import Env
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

SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "protocol.ext.allow=never",
)

log = logging.getLogger("vteam.runner.git")

# What a failed remote operation is reported as: git's own words, matched here, never the remote's answer.
FAILURES = (
    (
        re.compile(
            r"could not resolve|connection refused|failed to connect|couldn't connect|connection timed out|"
            r"ssh: connect to host|unable to connect|no route to host|network is unreachable|"
            r"operation timed out|connection reset|host key verification failed",
            re.IGNORECASE,
        ),
        "could not connect",
    ),
    (re.compile(r"remote branch .* not found|couldn't find remote ref", re.IGNORECASE), "branch not found"),
    (
        re.compile(r"stale info", re.IGNORECASE),
        "the push was rejected: the branch changed at the remote while vTeam was updating it; run it again",
    ),
    (
        re.compile(r"\[rejected\]|\[remote rejected\]|non-fast-forward|failed to push some refs", re.IGNORECASE),
        "the push was rejected (the branch moved on, is protected, or the remote does not allow it)",
    ),
    (
        re.compile(
            r"not found|does not exist|does not appear to be a git repository|authentication failed|"
            r"permission denied|access denied|could not read from remote|403|401|terminal prompts disabled|"
            r"could not read username|not a git repository",
            re.IGNORECASE,
        ),
        "repository not found or access denied",
    ),
)


class GitError(Exception):
    """A git command failed; the message holds its (redacted) stderr, or for a remote operation only
    what failed, so nothing the remote answered reaches events, status or errors."""


def remote_failure(stderr: str) -> str:
    """What went wrong with a remote, in vTeam's words."""
    for pattern, reason in FAILURES:
        if pattern.search(stderr):
            return reason
    return "git failed"


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    username: str = "x-access-token"
    ssh_key: str | None = None
    token_hosts: tuple[str, ...] = ()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith((Env.PREFIX, "GIT_", "SSH_"))}
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
    def __init__(
        self,
        env: dict[str, str],
        redactor: Redactor,
        *,
        config: tuple[str, ...] = (),
        remote: bool = False,
        confine: Sandbox | None = None,
    ) -> None:
        self._env = env
        self._redactor = redactor
        self._config = config
        self._remote = remote
        self._confine = confine

    @classmethod
    def plain(cls, redactor: Redactor, *, confine: Sandbox | None = None) -> Git:
        """Git with no credentials: for everything inside the agent's repositories.

        After the agent ran, its repositories' config, gitfiles and nested repositories are its own: with
        `confine`, git runs in a sandbox like the agent's, so what they make git run stays inside too."""
        return cls(_base_env(), redactor, confine=confine)

    async def __call__(self, *args: str, cwd: Path | None = None) -> str:
        argv = ["git", *SAFE_CONFIG, *self._config, *args]
        if self._confine is not None:
            assert cwd is not None, "confined git runs in a repository"
            argv = self._confine.wrap(argv, cwd)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").strip()
            if self._remote:
                log.debug("git %s failed: %s", args[0], self._redactor.text(text))
                raise GitError(remote_failure(text))
            detail = text.splitlines()[-5:]
            raise GitError(self._redactor.text(f"git {args[0]} failed: " + " | ".join(detail)))
        return out.decode("utf-8", "replace")


@asynccontextmanager
async def remote_access(
    credentials: Credentials,
    redactor: Redactor,
    *,
    policy: RepoPolicy | None = None,
    target: Vetted | None = None,
) -> AsyncIterator[tuple[Git, Path]]:
    """A git that can reach remotes, and a private folder (mode 0700) that is removed afterwards.

    Only the transports the repository policy needs are on (`file` only where it allows a local path),
    and a `target` the policy vetted is pinned: git connects to the address that was checked."""
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
        if target is not None:
            ssh += target.ssh_options()
        env = _base_env()
        env.update(
            {
                "GIT_ASKPASS": str(askpass),
                "GIT_SSH_COMMAND": shlex.join(ssh),
                Env.GIT_USERNAME: credentials.username,
                Env.GIT_TOKEN_HOSTS: " ".join(credentials.token_hosts),
                "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
                "GIT_HTTP_LOW_SPEED_TIME": "60",
                "GIT_ALLOW_PROTOCOL": policy.git_protocols if policy is not None else GIT_PROTOCOLS,
            }
        )
        if credentials.token:
            env[Env.GIT_TOKEN] = credentials.token
        config = tuple(target.git_config()) if target is not None else ()
        yield Git(env, redactor, config=config, remote=True), private
    finally:
        await asyncio.to_thread(shutil.rmtree, private, True)
