"""A warm parent for runners: imports everything once, then forks a runner per request.

A fresh `python -m vteam.runner` spends most of a session's start in interpreter start-up
and imports; a fork of this process starts in milliseconds and shares its memory copy-on-write.
The zygote is single-threaded and runs no event loop, so forking it is safe.

Protocol on its Unix socket, one JSON line each way:
  → {"env": {...}, "cwd": "/workspace", "log": "/workspace/runner.log", "user": [uid, gid]}
  ← {"pid": 1234}
With "user" (the zygote then runs as root), the child drops to that uid and gid, with no
supplementary groups, right after the fork and before it opens anything in the workspace.
The zygote writes each child's exit status to `runner.exit` in its cwd (the runner writes it
too, but cannot when it dies from a signal or fails early), so the executor learns how every
runner ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

import httpx
from websockets.asyncio.client import connect

from vteam.runner import main as runner
from vteam.runner.client import TLS

EXIT_FILE = runner.EXIT_FILE

_children: dict[int, Path] = {}


def _reap(_signum: int, _frame: FrameType | None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        cwd = _children.pop(pid, None)
        if cwd is None:
            continue
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with contextlib.suppress(OSError):
            exit_file = cwd / EXIT_FILE
            if os.WIFSIGNALED(status):
                exit_file.unlink(missing_ok=True)
            _create(exit_file, str(code))


def _create(path: Path, text: str) -> None:
    """Write a new file, never an existing one: the workspace may belong to a runner user that left a link there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _drop_privileges(uid: int, gid: int) -> None:
    """Become the runner user for good: no supplementary groups, then the group, then the user."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        raise OSError("could not become the runner user")


def _spawn(request: dict[str, object], listener: socket.socket, conn: socket.socket) -> int:
    env = {str(k): str(v) for k, v in dict(request["env"]).items()}  # type: ignore[call-overload]
    cwd = Path(str(request["cwd"]))
    log_path = str(request["log"])
    user = request.get("user")
    ids = (int(user[0]), int(user[1])) if isinstance(user, list) else None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    pid = os.fork()
    if pid:
        _children[pid] = cwd
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        return pid
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        listener.close()
        conn.close()
        if ids is not None:
            _drop_privileges(*ids)
        os.chdir(cwd)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        os.environ.clear()
        os.environ.update(env)
        runner.main()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    os._exit(70)


PRELOAD = ("vteam.agents.claude_sdk",)
"""Adapter implementations that are slow to import and loaded on first use elsewhere."""


def _warm() -> None:
    """Load what httpx, websockets and the adapters import lazily on first use, so forked runners need not."""
    for module in PRELOAD:
        importlib.import_module(module)

    async def attempt() -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            async with httpx.AsyncClient(verify=TLS, timeout=2) as client:
                with contextlib.suppress(httpx.TransportError):
                    await client.get(f"http://127.0.0.1:{port}/")
            with contextlib.suppress(OSError, TimeoutError):
                async with connect(f"ws://127.0.0.1:{port}/", open_timeout=2):
                    pass

    asyncio.run(attempt())
    if threading.active_count() != 1:
        raise RuntimeError("the runner zygote must be single-threaded before it forks")


def serve(path: str) -> None:
    # Copy-on-write shares the warm-up's pages with every runner only while nothing writes to them: no
    # collection leaves holes in them here, and a runner's collections never traverse frozen objects (a
    # full one would otherwise copy about 30 MiB of them into each runner).
    gc.disable()
    _warm()
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    parent = os.getppid()
    listener.settimeout(1.0)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:
                return
            continue
        except InterruptedError:
            continue
        with conn:
            conn.settimeout(10)
            try:
                line = conn.makefile("rb").readline()
                pid = _spawn(json.loads(line), listener, conn)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")


if __name__ == "__main__":
    serve(sys.argv[1])
