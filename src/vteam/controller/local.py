"""LocalExecutor: one `vteam runner` process group and one workspace folder per session.

Runners are forked from a warm zygote when possible (see `vteam.runner.zygote`), else started
as a fresh process. Runners outlive a restart of `vteam up`: each has a pid file, and a new
server adopts a runner whose pid still names the same process, instead of declaring it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vteam.controller.executor import NO_RUNNER, Key, OnExit, RunnerState
from vteam.controller.prefork import Prefork, PreforkError
from vteam.resources import AgenticSession

log = logging.getLogger(__name__)

PIDFILE = "runner.pid"
EXITFILE = "runner.exit"
LOGFILE = "runner.log"
SECRET_ENV = ("VTEAM_RUNNER_TOKEN", "VTEAM_GIT_TOKEN")
"""Handed to a new runner process over a pipe, never in its exec environment (readable in /proc)."""
PASS_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


@dataclass
class _Runner:
    pid: int
    workspace: Path
    proc: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    exited: bool = False
    waiter: asyncio.Task[None] | None = None
    killer: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


def workspace_for(root: Path, session: AgenticSession) -> Path:
    project, name = session.key
    return root / project / f"{name}-{(session.metadata.uid or '')[:8]}"


class LocalExecutor:
    def __init__(
        self, root: Path, *, grace: float, on_exit: OnExit, command: list[str] | None = None, prefork: bool = True
    ) -> None:
        self._root = root
        self._grace = grace
        self._on_exit = on_exit
        self._command = command or [sys.executable, "-m", "vteam.runner"]
        self._runners: dict[Key, _Runner] = {}
        base_env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        self._prefork = Prefork(base_env) if prefork and command is None else None

    async def prepare(self) -> None:
        if self._prefork is not None:
            try:
                await self._prefork.warm()
            except PreforkError as exc:
                log.warning("%s; runners will start as new processes until it does", exc)

    async def sweep(self, sessions: list[AgenticSession]) -> None:
        keep = {workspace_for(self._root, s) for s in sessions}
        for pidfile in self._root.glob(f"*/*/{PIDFILE}"):
            if pidfile.parent not in keep:
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(pidfile.read_text())
                    if _start_ticks(int(info["pid"])) == info.get("start"):
                        _signal_session(int(info["pid"]), signal.SIGKILL)
        for workspace in self._root.glob("*/*"):
            if workspace.is_dir() and workspace not in keep:
                log.info("removing the workspace of a deleted session: %s", workspace)
                await asyncio.to_thread(shutil.rmtree, workspace, True)

    def agent_home(self, session: AgenticSession) -> str | None:
        home = workspace_for(self._root, session) / "home"
        return str(home) if home.is_dir() else None

    def active(self) -> int:
        return sum(1 for r in self._runners.values() if not r.exited)

    def observe(self, session: AgenticSession) -> RunnerState:
        runner = self._runners.get(session.key) or self._adopt(session)
        if runner is None:
            return NO_RUNNER
        if not runner.exited:
            return RunnerState("running")
        return RunnerState(
            "exited", exit_code=runner.exit_code, reason=_reason(runner.exit_code), log_tail=_tail(runner.workspace)
        )

    async def start(self, session: AgenticSession, env: dict[str, str]) -> None:
        workspace = workspace_for(self._root, session)
        (workspace / "home").mkdir(parents=True, exist_ok=True)
        for stale in (PIDFILE, EXITFILE):
            (workspace / stale).unlink(missing_ok=True)
        full_env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        full_env.update(env)
        full_env.update({"HOME": str(workspace / "home"), "VTEAM_WORKSPACE": str(workspace), "PYTHONUNBUFFERED": "1"})
        if self._prefork is not None:
            try:
                pid = await self._prefork.spawn(env=full_env, cwd=workspace, log_path=workspace / LOGFILE)
            except PreforkError as exc:
                log.warning("%s; starting the runner as a new process", exc)
            else:
                runner = _Runner(pid=pid, workspace=workspace)
                _write_pidfile(workspace, pid)
                runner.waiter = asyncio.create_task(self._poll(session.key, runner), name=f"runner-watch-{pid}")
                self._runners[session.key] = runner
                log.info("forked runner pid %d for %s/%s", pid, *session.key)
                return
        secrets = {k: full_env.pop(k) for k in list(full_env) if k in SECRET_ENV or k.startswith("VTEAM_SECRET_")}
        read_end, write_end = os.pipe()
        os.write(write_end, json.dumps(secrets).encode())
        os.close(write_end)
        full_env["VTEAM_SECRETS_FD"] = str(read_end)
        try:
            with (workspace / LOGFILE).open("ab") as logfile:
                proc = await asyncio.create_subprocess_exec(
                    *self._command,
                    cwd=workspace,
                    env=full_env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(read_end,),
                )
        finally:
            os.close(read_end)
        runner = _Runner(pid=proc.pid, workspace=workspace, proc=proc)
        _write_pidfile(workspace, proc.pid)
        runner.waiter = asyncio.create_task(self._wait(session.key, runner), name=f"runner-wait-{proc.pid}")
        self._runners[session.key] = runner
        log.info("started runner pid %d for %s/%s", proc.pid, *session.key)

    def _adopt(self, session: AgenticSession) -> _Runner | None:
        workspace = workspace_for(self._root, session)
        try:
            info = json.loads((workspace / PIDFILE).read_text())
        except (OSError, ValueError):
            return None
        pid = int(info.get("pid", 0))
        if not pid:
            return None
        if _start_ticks(pid) is None or not _alive(pid):
            # The runner died while nobody watched; what it started may live on in its session.
            _signal_session(pid, signal.SIGKILL)
            return None
        if _start_ticks(pid) != info.get("start"):
            return None
        runner = _Runner(pid=pid, workspace=workspace)
        runner.waiter = asyncio.create_task(self._poll(session.key, runner), name=f"runner-poll-{pid}")
        self._runners[session.key] = runner
        log.info("adopted running runner pid %d for %s/%s", pid, *session.key)
        return runner

    async def _wait(self, key: Key, runner: _Runner) -> None:
        assert runner.proc is not None
        code = await runner.proc.wait()
        self._finish(key, runner, code)

    async def _poll(self, key: Key, runner: _Runner) -> None:
        """Wait for a runner that is not our child; its exit status comes from its exit file."""
        await _wait_for_exit(runner.pid)
        code: int | None = None
        for _ in range(50):
            with contextlib.suppress(OSError, ValueError):
                code = int((runner.workspace / EXITFILE).read_text().strip())
                break
            await asyncio.sleep(0.01)
        self._finish(key, runner, code)

    def _finish(self, key: Key, runner: _Runner, code: int | None) -> None:
        runner.exit_code = code
        runner.exited = True
        runner.done.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            _signal_session(runner.pid, signal.SIGKILL)
        (runner.workspace / PIDFILE).unlink(missing_ok=True)
        log.info("runner pid %d for %s/%s %s", runner.pid, *key, _reason(code))
        self._on_exit(key)

    def terminate(self, key: Key) -> None:
        runner = self._runners.get(key)
        if runner is None or runner.exited or runner.killer is not None:
            return
        runner.killer = asyncio.create_task(self._kill(runner), name=f"runner-kill-{runner.pid}")

    async def _kill(self, runner: _Runner) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            _signal_session(runner.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.done.wait(), self._grace)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            _signal_session(runner.pid, signal.SIGKILL)

    def release(self, key: Key) -> None:
        runner = self._runners.get(key)
        if runner is not None and runner.exited:
            del self._runners[key]

    async def remove(self, session: AgenticSession) -> None:
        runner = self._runners.get(session.key)
        if runner is not None and not runner.exited:
            self.terminate(session.key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.done.wait(), self._grace + 5)
        self._runners.pop(session.key, None)
        workspace = workspace_for(self._root, session)
        await asyncio.to_thread(shutil.rmtree, workspace, True)

    async def close(self) -> None:
        """Leave runners running (a restarted server adopts them); stop watching them."""
        tasks = [t for r in self._runners.values() for t in (r.waiter, r.killer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runners.clear()
        if self._prefork is not None:
            await self._prefork.close()


def _reason(code: int | None) -> str:
    if code is None:
        return "exited without reporting an exit status"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _tail(workspace: Path, lines: int = 20, limit: int = 4000) -> str:
    try:
        with open(workspace / LOGFILE, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def _wait_for_exit(pid: int) -> None:
    """A pidfd becomes readable when the process ends; poll where the kernel has none."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        while _alive(pid):  # noqa: ASYNC110 - no pidfd here, and nothing else signals a non-child's end
            await asyncio.sleep(0.1)
        return
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def _readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, _readable)
    try:
        if _alive(pid):
            await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _signal_session(sid: int, sig: int) -> None:
    """Signal every process of the runner's session: it, its agent's process group, their children."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(stat.parent.name), sig)


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if state.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _write_pidfile(workspace: Path, pid: int) -> None:
    tmp = workspace / (PIDFILE + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, "start": _start_ticks(pid)}))
    tmp.replace(workspace / PIDFILE)
