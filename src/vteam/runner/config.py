"""What the executor hands a runner, read from its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
    author_name: str
    author_email: str
    reconnect_seconds: float

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RunnerConfig:
        env = dict(os.environ if env is None else env)
        missing = [
            k for k in ("VTEAM_SERVER", "VTEAM_PROJECT", "VTEAM_SESSION", "VTEAM_RUNNER_TOKEN") if not env.get(k)
        ]
        if missing:
            raise SystemExit(f"vteam runner: missing environment: {', '.join(missing)} (the executor sets these)")
        return cls(
            server=env["VTEAM_SERVER"].rstrip("/"),
            project=env["VTEAM_PROJECT"],
            session=env["VTEAM_SESSION"],
            token=env["VTEAM_RUNNER_TOKEN"],
            workspace=Path(env.get("VTEAM_WORKSPACE") or os.getcwd()),
            git_token=env.get("VTEAM_GIT_TOKEN") or None,
            git_username=env.get("VTEAM_GIT_USERNAME") or "x-access-token",
            git_ssh_key_file=env.get("VTEAM_GIT_SSH_KEY_FILE") or None,
            author_name=env.get("VTEAM_GIT_AUTHOR_NAME") or "vTeam",
            author_email=env.get("VTEAM_GIT_AUTHOR_EMAIL") or "vteam@localhost",
            reconnect_seconds=float(env.get("VTEAM_RUNNER_RECONNECT_SECONDS") or 300),
        )

    @property
    def session_path(self) -> str:
        return f"/api/projects/{self.project}/agentic-sessions/{self.session}"

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.git_token) if s]
