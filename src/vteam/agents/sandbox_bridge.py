"""Runs inside the sandbox: the agent's only network, carried over one Unix socket to the runner's egress.

Stdlib only and started with `python -I -S`, so nothing in the session can change what it imports, and it
starts in milliseconds. It listens on loopback before starting the agent (so the agent never races it),
relays every connection to the runner (which decides what it may reach), forwards stop signals to the
agent and exits with its status.

    python -I -S sandbox_bridge.py --socket PATH --proxy-port N [--mirror PORT]... -- argv...
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

CHUNK = 64 * 1024
MAX_CONNECTIONS = 512
STACK_SIZE = 512 * 1024
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
BRIDGE_FAILED = 125
USAGE = "usage: sandbox_bridge.py --socket PATH --proxy-port N [--mirror PORT]... -- argv..."


def parse(args: list[str]) -> tuple[str, int, list[int], list[str]]:
    """The socket path, the proxy port, the mirrored ports and the agent's argv; ValueError when malformed."""
    path = ""
    proxy = 0
    mirrors: list[int] = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag == "--":
            argv = args[i + 1 :]
            if not path or not proxy or not argv:
                raise ValueError(USAGE)
            if proxy in mirrors or len(set(mirrors)) != len(mirrors):
                raise ValueError("each port may be listened on once")
            return path, proxy, mirrors, argv
        if i + 1 >= len(args):
            raise ValueError(USAGE)
        value = args[i + 1]
        if flag == "--socket":
            path = value
        elif flag == "--proxy-port":
            proxy = port(value)
        elif flag == "--mirror":
            mirrors.append(port(value))
        else:
            raise ValueError(USAGE)
        i += 2
    raise ValueError(USAGE)


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"not a port: {text!r}")
    return int(text)


def listen(number: int) -> list[socket.socket]:
    """Listeners on 127.0.0.1 (required) and ::1 (where the namespace has IPv6)."""
    listeners = []
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v4.bind(("127.0.0.1", number))
    v4.listen(128)
    listeners.append(v4)
    try:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return listeners
    try:
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        v6.bind(("::1", number))
        v6.listen(128)
    except OSError:
        v6.close()
    else:
        listeners.append(v6)
    return listeners


def serve(listener: socket.socket, header: bytes, path: str, slots: threading.BoundedSemaphore) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            time.sleep(0.05)
            continue
        if not slots.acquire(blocking=False):
            conn.close()
            continue
        try:
            threading.Thread(target=relay, args=(conn, header, path, slots), daemon=True).start()
        except RuntimeError:
            conn.close()
            slots.release()


def relay(conn: socket.socket, header: bytes, path: str, slots: threading.BoundedSemaphore) -> None:
    """One connection: the header line to the runner, then bytes both ways until both sides are done."""
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
        upstream.sendall(header)
        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join()
    except (OSError, RuntimeError):
        pass
    finally:
        conn.close()
        upstream.close()
        slots.release()


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until end of file, then half-close the sink; on an error, tear both down."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def main(args: list[str]) -> int:
    try:
        path, proxy, mirrors, argv = parse(args)
    except ValueError as exc:
        print(f"sandbox_bridge: {exc}", file=sys.stderr)
        return BRIDGE_FAILED
    try:
        listeners = [(sock, b"PROXY\n") for sock in listen(proxy)]
        for number in mirrors:
            listeners += [(sock, b"MIRROR %d\n" % number) for sock in listen(number)]
    except OSError as exc:
        print(f"sandbox_bridge: cannot listen on loopback: {exc}", file=sys.stderr)
        return BRIDGE_FAILED
    threading.stack_size(STACK_SIZE)
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    for sock, header in listeners:
        threading.Thread(target=serve, args=(sock, header, path, slots), daemon=True).start()

    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child[0], signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        pid = os.posix_spawnp(
            argv[0], argv, os.environ, setsigdef=(*FORWARDED, signal.SIGPIPE, signal.SIGXFSZ), setsigmask=()
        )
    except OSError as exc:
        print(f"sandbox_bridge: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    child.append(pid)
    for waiting in pending:
        forward(waiting, None)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return BRIDGE_FAILED
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
