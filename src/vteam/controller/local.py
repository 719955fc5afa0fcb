"""LocalExecutor: one `vteam runner` process group and one workspace folder per session.

Runners are forked from a warm zygote when possible (see `vteam.runner.zygote`), else started
as a fresh process. Runners outlive a restart of `vteam up`: each has a pid file, and a new
server adopts a runner whose pid still names the same process, instead of declaring it lost.

With a runner user (`VTEAM_RUNNER_USER`), `vteam up` runs as root and each runner as that
unprivileged user, which owns the session's workspace. The platform then treats every file in a
workspace as written by an adversary: it opens none through a symlink, reads no FIFO or hard link,
and trusts a pid file only if it wrote it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from stat import S_IMODE, S_ISREG, S_IXGRP, S_IXOTH, S_IXUSR

from vteam.agents import registry
from vteam.controller.executor import NO_RUNNER, Key, OnExit, RunnerState
from vteam.controller.prefork import Prefork, PreforkError, RunnerUser
from vteam.controller.session_home import scrub
from vteam.errors import InvalidInput, VteamError
from vteam.protocol import Env
from vteam.resources import AgenticSession

log = logging.getLogger(__name__)

PIDFILE = "runner.pid"
EXITFILE = "runner.exit"
LOGFILE = "runner.log"
SECRET_ENV = Env.SECRETS
"""Handed to a new runner process over a pipe, never in its exec environment (readable in /proc)."""
PASS_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
TRAVERSE_ONLY = 0o711
"""Mode of the folders above a runner user's workspace: it reaches its own by path and lists nothing."""


class RunnerUserError(VteamError):
    """`VTEAM_RUNNER_USER` names a user runners cannot run as; `vteam up` refuses to start."""


def resolve_runner_user(name: str | None) -> RunnerUser | None:
    """The unprivileged user runners run as, or None to run them as the platform's own user."""
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RunnerUserError(
            f"VTEAM_RUNNER_USER={name}: no such user here; create it (useradd --system {name}) or unset the setting"
        ) from None
    if os.geteuid() != 0:
        raise RunnerUserError(
            f"VTEAM_RUNNER_USER={name} needs vteam up to run as root, and it runs as uid {os.geteuid()}; "
            "start it as root or unset the setting"
        )
    if entry.pw_uid == 0:
        raise RunnerUserError(f"VTEAM_RUNNER_USER={name} is root; name an unprivileged user")
    return RunnerUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def check_runner_user(user: RunnerUser, home: Path) -> None:
    """Fail at start, in one line, where the runner user could not reach its workspace or run Python.

    Every folder above `$VTEAM_HOME` must let the user through; the interpreter and its packages
    must be readable by it (a runner started as a new process, and lazy imports, load them).
    """
    for folder in reversed(home.resolve().parents):
        info = folder.stat()
        if info.st_uid == user.uid:
            allowed = bool(info.st_mode & S_IXUSR)
        elif info.st_gid == user.gid:
            allowed = bool(info.st_mode & S_IXGRP)
        else:
            allowed = bool(info.st_mode & S_IXOTH)
        if not allowed:
            raise RunnerUserError(
                f"VTEAM_RUNNER_USER={user.name} cannot reach {home}: {folder} (mode {S_IMODE(info.st_mode):o}) "
                "does not let it through; chmod o+x it or move VTEAM_HOME"
            )
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import vteam.runner.main"],
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            cwd="/",
            env={k: os.environ[k] for k in PASS_ENV if k in os.environ},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        problem, failed = str(exc), True
    else:
        lines = probe.stderr.decode(errors="replace").strip().splitlines()
        problem, failed = (lines[-1] if lines else f"exit status {probe.returncode}"), probe.returncode != 0
    if failed:
        raise RunnerUserError(
            f"VTEAM_RUNNER_USER={user.name} cannot run {sys.executable} with vteam installed ({problem}); "
            "make the installation readable by that user"
        )


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
    keep: tuple[str, ...] = ()
    """What of the agent's HOME outlives the runner (its framework's `FrameworkInfo.keep`)."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The secret values the runner was given, redacted from what is kept; unknown for an adopted runner."""


def _hand_secrets(fd: int, payload: bytes) -> None:
    """Write a new runner's secrets to its pipe and close it; a runner that died first just never reads them."""
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(payload)
    except BrokenPipeError:
        pass


async def _remove_tree(path: Path, attempts: int = 50) -> None:
    """Remove a workspace for good; the zygote may still be writing a just-reaped runner's exit file into it."""
    for _ in range(attempts):
        await asyncio.to_thread(shutil.rmtree, path, True)
        if not await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.1)
    log.warning("could not remove %s entirely", path)


def workspace_for(root: Path, session: AgenticSession) -> Path:
    project, name = session.key
    return root / project / f"{name}-{(session.metadata.uid or '')[:8]}"


class LocalExecutor:
    creating_first = True

    def __init__(
        self,
        root: Path,
        *,
        grace: float,
        on_exit: OnExit,
        command: list[str] | None = None,
        prefork: bool = True,
        user: RunnerUser | None = None,
    ) -> None:
        self._root = root
        self._grace = grace
        self._on_exit = on_exit
        self._command = command or [sys.executable, "-m", "vteam.runner"]
        self._user = user
        self._runners: dict[Key, _Runner] = {}
        self._wipes: dict[Path, asyncio.Task[None]] = {}
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
                    info = json.loads(_read_file(pidfile, owner=os.geteuid()))
                    if _start_ticks(int(info["pid"])) == info.get("start"):
                        _signal_session(int(info["pid"]), signal.SIGKILL)
        for workspace in self._root.glob("*/*"):
            if workspace.is_dir() and workspace not in keep:
                log.info("removing the workspace of a deleted session: %s", workspace)
                await _remove_tree(workspace)

    async def refresh(self, session: AgenticSession) -> None:
        """Nothing to read: the runner's exit is seen as it happens."""

    async def refresh_active(self) -> None:
        """Nothing to read: the runners are this process's own."""

    def decision_time(self, session: AgenticSession, now: datetime) -> datetime:
        return now

    def started_at(self, session: AgenticSession) -> datetime | None:
        """Never: Creating is written before a local runner starts."""
        return None

    async def kill(self, session: AgenticSession) -> None:
        self.terminate(session.key)

    async def cleanup(self, session: AgenticSession) -> None:
        self.release(session.key)

    def agent_home(self, session: AgenticSession) -> str | None:
        home = workspace_for(self._root, session) / "home"
        return str(home) if home.is_dir() else None

    def active(self, project: str | None = None) -> int:
        """Runners holding a place: an exited one holds it until its session's end is recorded (`release`), so
        the store never shows more sessions starting or running than the limit allows."""
        return sum(1 for key in self._runners if project in (None, key[0]))

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
        # A restarted runner, or a continue reading its parent's HOME, comes after that HOME's wipe.
        resumed = env.get(Env.RESUME_HOME)
        await self._wiped(workspace, *([Path(resumed).parent] if resumed else []))
        self._make_workspace(workspace)
        keep = _keep(session.spec.framework)
        given = tuple(v for k, v in env.items() if Env.is_secret(k))
        for stale in (PIDFILE, EXITFILE):
            (workspace / stale).unlink(missing_ok=True)
        full_env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        full_env.update(env)
        full_env.update({"HOME": str(workspace / "home"), Env.WORKSPACE: str(workspace), "PYTHONUNBUFFERED": "1"})
        if self._prefork is not None:
            try:
                pid = await self._prefork.spawn(
                    env=full_env, cwd=workspace, log_path=workspace / LOGFILE, user=self._user
                )
            except PreforkError as exc:
                log.warning("%s; starting the runner as a new process", exc)
            else:
                runner = _Runner(pid=pid, workspace=workspace, keep=keep, secrets=given)
                _write_pidfile(workspace, pid)
                runner.waiter = asyncio.create_task(self._poll(session.key, runner), name=f"runner-watch-{pid}")
                self._runners[session.key] = runner
                log.info("forked runner pid %d for %s/%s", pid, *session.key)
                return
        secrets = {k: full_env.pop(k) for k in list(full_env) if Env.is_secret(k)}
        payload = json.dumps(secrets).encode()
        read_end, write_end = os.pipe()
        full_env[Env.SECRETS_FD] = str(read_end)
        user = self._user
        try:
            with os.fdopen(self._open_log(workspace), "ab") as logfile:
                proc = await asyncio.create_subprocess_exec(
                    *self._command,
                    cwd=workspace,
                    env=full_env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(read_end,),
                    user=user.uid if user else None,
                    group=user.gid if user else None,
                    extra_groups=[] if user else None,
                )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        # Written once the runner exists to read it: a pipe holds 64 KiB, and a project's secrets may be more.
        await asyncio.to_thread(_hand_secrets, write_end, payload)
        runner = _Runner(pid=proc.pid, workspace=workspace, proc=proc, keep=keep, secrets=given)
        _write_pidfile(workspace, proc.pid)
        runner.waiter = asyncio.create_task(self._wait(session.key, runner), name=f"runner-wait-{proc.pid}")
        self._runners[session.key] = runner
        log.info("started runner pid %d for %s/%s", proc.pid, *session.key)

    def _make_workspace(self, workspace: Path) -> None:
        """The workspace and the agent's HOME; with a runner user, owned by it below folders it can only cross."""
        (workspace / "home").mkdir(parents=True, exist_ok=True)
        if self._user is None:
            return
        for folder in (self._root, workspace.parent):
            folder.chmod(TRAVERSE_ONLY)
        for path in (workspace, workspace / "home"):
            # Never through a link: a workspace reused by a runner user may hold one pointing anywhere.
            os.chown(path, self._user.uid, self._user.gid, follow_symlinks=False)

    def _open_log(self, workspace: Path) -> int:
        """The runner's log, opened here (no symlink followed) and handed to the runner user when there is one."""
        fd = os.open(workspace / LOGFILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            if not S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{workspace / LOGFILE} is not a regular file")
            if self._user is not None:
                os.fchown(fd, self._user.uid, self._user.gid)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _adopt(self, session: AgenticSession) -> _Runner | None:
        workspace = workspace_for(self._root, session)
        try:
            info = json.loads(_read_file(workspace / PIDFILE, owner=os.geteuid()))
        except (OSError, ValueError):
            return None
        pid = int(info.get("pid", 0))
        if not pid:
            return None
        if _start_ticks(pid) is None or not _alive(pid):
            # The runner died while nobody watched; what it started may live on in its session.
            _signal_session(pid, signal.SIGKILL)
            (workspace / PIDFILE).unlink(missing_ok=True)
            self._wipe(workspace, (), ())
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
                code = int(_read_file(runner.workspace / EXITFILE).strip())
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
        self._wipe(runner.workspace, runner.keep, runner.secrets)
        self._on_exit(key)

    def _wipe(self, workspace: Path, keep: tuple[str, ...], secrets: tuple[str, ...]) -> None:
        """Wipe the agent's HOME and temp in a thread; `remove` and a later `start` wait for it."""

        async def wipe(previous: asyncio.Task[None] | None) -> None:
            if previous is not None:
                await asyncio.wait({previous})
            try:
                await asyncio.to_thread(scrub, workspace, keep, secrets)
            except Exception:
                log.exception("wiping the agent's home in %s failed", workspace)
            finally:
                if self._wipes.get(workspace) is task:
                    del self._wipes[workspace]

        task = asyncio.create_task(wipe(self._wipes.get(workspace)), name=f"wipe-{workspace.name}")
        self._wipes[workspace] = task

    async def _wiped(self, *workspaces: Path) -> None:
        """Wait, without cancelling them, for the wipes under way in these workspaces."""
        pending = {task for path in workspaces if (task := self._wipes.get(path)) is not None}
        if pending:
            await asyncio.wait(pending)

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
        # The wipe runs in a thread and cannot be cancelled: it ends, then the whole workspace goes.
        await self._wiped(workspace)
        await _remove_tree(workspace)

    async def close(self) -> None:
        """Leave runners running (a restarted server adopts them); stop watching them."""
        tasks = [t for r in self._runners.values() for t in (r.waiter, r.killer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runners.clear()
        await self._wiped(*self._wipes)
        if self._prefork is not None:
            await self._prefork.close()


def _keep(framework: str) -> tuple[str, ...]:
    try:
        return registry.get(framework).info.keep
    except InvalidInput:
        return ()


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
        text = _read_file(workspace / LOGFILE, limit=limit)
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _read_file(path: Path, *, owner: int | None = None, limit: int = 64 * 1024) -> str:
    """The last `limit` bytes of a file in a workspace, read as if its owner were hostile.

    No symlink is followed, a FIFO or device is refused (it could block or reach anything), and
    so is a hard link (another name for a file the runner could not read itself). `owner` further
    requires the file to be the platform's own, for a pid file the platform wrote.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{path} is not a plain file")
        if owner is not None and info.st_uid != owner:
            raise OSError(f"{path} was not written by the platform")
        handle.seek(max(0, info.st_size - limit))
        return handle.read(limit).decode("utf-8", "replace")


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
    """Written to a new file (never through a link a runner user left there), then renamed into place."""
    tmp = workspace / (PIDFILE + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps({"pid": pid, "start": _start_ticks(pid)}))
    tmp.replace(workspace / PIDFILE)
