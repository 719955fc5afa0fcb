"""What the executor hands a runner, read from its environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vteam.agents import Resume
from vteam.policy.repos import RepoPolicy, split_list
from vteam.protocol import Env
from vteam.runner.git import Credentials


@dataclass(frozen=True)
class RunnerConfig:
    server: str
    project: str
    session: str
    token: str
    workspace: Path
    git_token: str | None
    git_username: str
    git_ssh_key_file: str | None
    git_token_hosts: tuple[str, ...]
    author_name: str
    author_email: str
    reconnect_seconds: float
    idle_timeout: float
    stall_timeout: float
    resume: Resume | None
    agent_secrets: dict[str, str]
    agent_settings: dict[str, str]
    repo_policy: RepoPolicy = field(default_factory=RepoPolicy)
    """The repository policy the controller decided for this session, applied again before git runs."""
    isolation: str = "sandbox"
    """`sandbox` (bubblewrap per agent process), `none` (an operator's choice) or `pod` (cluster mode)."""
    sandbox_hide: tuple[str, ...] = ()
    """Folders no sandbox may show (the platform's VTEAM_HOME)."""
    sandbox_allow_hosts: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RunnerConfig:
        env = dict(os.environ if env is None else env)
        if fd := env.pop(Env.SECRETS_FD, None):
            env.update(_read_secrets(int(fd)))
            os.environ.pop(Env.SECRETS_FD, None)
        missing = [k for k in Env.REQUIRED if not env.get(k)]
        if missing:
            raise SystemExit(f"vteam runner: missing environment: {', '.join(missing)} (the executor sets these)")
        return cls(
            server=env[Env.SERVER].rstrip("/"),
            project=env[Env.PROJECT],
            session=env[Env.SESSION],
            token=env[Env.RUNNER_TOKEN],
            workspace=Path(env.get(Env.WORKSPACE) or os.getcwd()),
            git_token=env.get(Env.GIT_TOKEN) or None,
            git_username=env.get(Env.GIT_USERNAME) or "x-access-token",
            git_ssh_key_file=env.get(Env.GIT_SSH_KEY_FILE) or None,
            git_token_hosts=tuple(env.get(Env.GIT_TOKEN_HOSTS, "").replace(",", " ").split()),
            author_name=env.get(Env.GIT_AUTHOR_NAME) or "vTeam",
            author_email=env.get(Env.GIT_AUTHOR_EMAIL) or "vteam@localhost",
            reconnect_seconds=float(env.get(Env.RECONNECT_SECONDS) or 300),
            idle_timeout=float(env.get(Env.IDLE_TIMEOUT_SECONDS) or 1800),
            stall_timeout=float(env.get(Env.STALL_TIMEOUT_SECONDS) or 900),
            resume=Resume(env[Env.RESUME_CONVERSATION], Path(env[Env.RESUME_HOME]))
            if env.get(Env.RESUME_CONVERSATION) and env.get(Env.RESUME_HOME)
            else None,
            agent_secrets=_prefixed(env, Env.SECRET_PREFIX),
            agent_settings=_prefixed(env, Env.AGENT_ENV_PREFIX),
            isolation=env.get(Env.ISOLATION) or "sandbox",
            sandbox_hide=_paths(env.get(Env.SANDBOX_HIDE)),
            sandbox_allow_hosts=env.get(Env.SANDBOX_ALLOW_HOSTS, ""),
            repo_policy=RepoPolicy(
                local_roots=_paths(env.get(Env.REPO_LOCAL_ROOTS)),
                any_local=env.get(Env.REPO_ANY_LOCAL) == "1",
                forbidden_roots=_paths(env.get(Env.REPO_FORBIDDEN_ROOTS)),
                allow_hosts=split_list(env.get(Env.REPO_ALLOW_HOSTS, "")),
                service_ranges=split_list(env.get(Env.REPO_SERVICE_RANGES, "10.96.0.0/12")),
            ),
        )

    @property
    def session_path(self) -> str:
        return f"/api/projects/{self.project}/agentic-sessions/{self.session}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(
            token=self.git_token,
            username=self.git_username,
            ssh_key=self.git_ssh_key_file,
            token_hosts=self.git_token_hosts,
        )

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.git_token, *self.agent_secrets.values()) if s]


def _read_secrets(fd: int) -> dict[str, str]:
    """Secrets the executor wrote to a pipe: read once, then the pipe is gone."""
    with os.fdopen(fd, "rb") as pipe:
        data = json.loads(pipe.read() or b"{}")
    return {str(k): str(v) for k, v in data.items()}


def _paths(raw: str | None) -> tuple[str, ...]:
    """A JSON list of absolute paths, as the controller writes it; nothing when it is missing."""
    if not raw:
        return ()
    value = json.loads(raw)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _prefixed(env: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix) and v}


def scrub_environment() -> None:
    """Drop everything the executor handed over from the runner's own environment once it is read, so no
    process it starts (an SDK passes the whole environment on to its CLI) inherits a secret or a path."""
    for key in list(os.environ):
        if key.startswith(Env.PREFIX):
            del os.environ[key]
