"""The local executor's client of the runner zygote (`vteam.runner.zygote`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerUser:
    """The unprivileged OS user runners run as (`VTEAM_RUNNER_USER`), resolved once at start."""

    name: str
    uid: int
    gid: int


class PreforkError(Exception):
    """The zygote could not be started or did not fork a runner."""


class Prefork:
    """Starts the zygote on first use and restarts it if it died; callers fall back on errors."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._dir = Path(tempfile.mkdtemp(prefix="vteam-zygote-"))
        self._socket = self._dir / "zygote.sock"
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            return
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vteam.runner.zygote",
            str(self._socket),
            env={**self._env, "PYTHONUNBUFFERED": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        try:
            ready = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        except TimeoutError:
            ready = b""
        if ready.strip() != b"ready":
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            raise PreforkError("the runner zygote did not start")
        log.info("runner zygote ready (pid %d)", self._proc.pid)

    async def warm(self) -> None:
        async with self._lock:
            await self._ensure()

    async def spawn(self, *, env: dict[str, str], cwd: Path, log_path: Path, user: RunnerUser | None = None) -> int:
        """Fork a runner; with `user`, the child drops to that user before it touches the workspace."""
        async with self._lock:
            await self._ensure()
        body: dict[str, object] = {"env": env, "cwd": str(cwd), "log": str(log_path)}
        if user is not None:
            body["user"] = [user.uid, user.gid]
        request = json.dumps(body).encode() + b"\n"
        try:
            reader, writer = await asyncio.open_unix_connection(str(self._socket))
            try:
                writer.write(request)
                await writer.drain()
                answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
            finally:
                writer.close()
        except (OSError, ValueError, TimeoutError) as exc:
            raise PreforkError(f"the runner zygote did not answer: {type(exc).__name__}") from exc
        if "pid" not in answer:
            raise PreforkError(str(answer.get("error", "the runner zygote refused")))
        return int(answer["pid"])

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5)
        with contextlib.suppress(OSError):
            os.unlink(self._socket)
        shutil.rmtree(self._dir, ignore_errors=True)
