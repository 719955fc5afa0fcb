"""A real `vteam up` in a subprocess on a free port, with its own home, for integration tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

FOREIGN = ("VTEAM_", "ANTHROPIC_", "CLAUDE_", "OPENAI_", "GEMINI_", "GOOGLE_")
"""A developer's own settings and model keys never reach a test server."""
UP_LINE = re.compile(r"vTeam is up on (http://\S+)")


class Server:
    def __init__(self, home: Path, *, env: dict[str, str] | None = None, port: int = 0) -> None:
        self.home = home
        self.env = env or {}
        self.token = self.env.get("VTEAM_ADMIN_TOKEN") or "vt-test-admin-" + secrets.token_urlsafe(16)
        """A platform admin's token (VTEAM_ADMIN_TOKEN), which the tests' clients send."""
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home.parent / f"{home.name}-server.log"

    def start(self, timeout: float = 30.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env.update(
            {
                "VTEAM_HOME": str(self.home),
                "VTEAM_RESYNC_SECONDS": "2",
                "VTEAM_ADMIN_TOKEN": self.token,
                # Tests write far faster than people; the limit has its own test.
                "VTEAM_WRITE_RATE_PER_MINUTE": "0",
                # The tests' own git and forge servers listen on loopback; the repository policy refuses it
                # unless allowed. the attack tests pass "" here to see the refusals.
                "VTEAM_REPO_ALLOW_HOSTS": "127.0.0.1,::1",
                # Most tests run all their sessions in one project; the per-project share has its own tests
                # (test_integrity_tenant_fairshare), which pass "" here for the default.
                "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": "10000",
                **self.env,
            }
        )
        log = self.log_path.open("ab")
        start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vteam", "up", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[start:].decode(errors="replace")
            if (match := UP_LINE.search(text)) and "Application startup complete" in text:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"vteam up exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("vteam up did not start in time:\n" + self.log_path.read_text(errors="replace"))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        """Stop the server and the runners it leaves behind (they outlive it by design)."""
        self.stop()
        for pidfile in self.home.glob("workspaces/*/*/runner.pid"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(json.loads(pidfile.read_text())["pid"]), signal.SIGKILL)

    def runner_pid(self, project: str, name: str, timeout: float = 10.0) -> int:
        """The pid of a session's runner, from the pid file in its workspace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pidfile in (self.home / "workspaces" / project).glob(f"{name}-*/runner.pid"):
                with contextlib.suppress(OSError, ValueError):
                    return int(json.loads(pidfile.read_text())["pid"])
            time.sleep(0.05)
        raise AssertionError(f"no runner pid file for {project}/{name}")

    def session_file(self, project: str, name: str, path: str) -> Path | None:
        """A file an agent wrote into its own workspace (`home/x`, `tmp/x`), where it exists: a sandboxed agent
        can write nowhere else."""
        return next((self.home / "workspaces" / project).glob(f"{name}-*/{path}"), None)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, *, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """An HTTP client for the API, signed in as the admin (or with `token`)."""
        return httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token or self.token}"}
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
