"""The sandbox's network, for real: bubblewrap with its own network namespace, the bridge inside, the egress
outside, and real servers on this machine's loopback that an agent may or may not reach."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import vteam.agents.sandbox_bridge as bridge_module
from vteam.runner.egress import Egress

pytestmark = [
    pytest.mark.integration,
    pytest.mark.alone,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
]

BRIDGE = Path(bridge_module.__file__).resolve()
PROXY_PORT = 3128
INSIDE_SOCKET = "/run/vteam/egress.sock"


@dataclass
class HttpServer:
    """A real HTTP server on 127.0.0.1 that answers every GET with its body and remembers what it was sent."""

    body: bytes
    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def model_server() -> Iterator[HttpServer]:
    yield from _serve(HttpServer(b"hello from the model server"))


@pytest.fixture
def platform_server() -> Iterator[HttpServer]:
    yield from _serve(HttpServer(b"the vTeam API"))


def _serve(record: HttpServer) -> Iterator[HttpServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Length", str(len(record.body)))
            self.end_headers()
            self.wfile.write(record.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP server that answers only after the client half-closes: `echo:` and all it was sent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """Short, since a Unix socket's path is limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vt-egress-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def egress_factory(socket_dir: Path) -> AsyncIterator[list[Egress]]:
    started: list[Egress] = []
    yield started
    for egress in started:
        await egress.close()


async def start_egress(
    started: list[Egress],
    socket_dir: Path,
    *,
    mirrors: frozenset[int] = frozenset(),
    allow: tuple[str, ...] = (),
    platform: tuple[str, int] | None = None,
) -> Egress:
    egress = Egress(mirrors, allow, platform)
    await egress.start(socket_dir / "egress.sock")
    started.append(egress)
    return egress


def sandboxed(socket_dir: Path, code: str, *args: object, mirrors: tuple[int, ...] = ()) -> list[str]:
    """bwrap with every namespace (its own network: only loopback), the bridge inside, the client code as agent."""
    return [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/", "/",
        "--tmpfs", "/run",
        "--bind", str(socket_dir), "/run/vteam",
        "--proc", "/proc",
        "--dev", "/dev",
        "--uid", "1000",
        "--gid", "1000",
        "--",
        sys.executable, "-I", "-S", str(BRIDGE),
        "--socket", INSIDE_SOCKET,
        "--proxy-port", str(PROXY_PORT),
        *(arg for port in mirrors for arg in ("--mirror", str(port))),
        "--",
        sys.executable, "-I", "-S", "-c", code, *(str(a) for a in args),
    ]  # fmt: skip


async def run(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_json(argv: list[str]) -> dict[str, str]:
    code, out, err = await run(argv)
    assert code == 0, f"exit {code}\n{out}\n{err}"
    result: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return result


CLIENT_PRELUDE = """
import json, socket, sys, urllib.error, urllib.request
PROXY = ("127.0.0.1", 3128)

def fetch(url, proxy=False):
    handler = urllib.request.ProxyHandler({"http": "http://127.0.0.1:3128"} if proxy else {})
    try:
        with urllib.request.build_opener(handler).open(url, timeout=15) as response:
            return f"{response.status} {response.read().decode()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read().decode().strip()}"

def connect_status(target):
    s = socket.create_connection(PROXY, timeout=15)
    s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
    head = b""
    while b"\\r\\n\\r\\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head.split(b"\\r\\n")[0].decode()

def read_all(s):
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data.decode()

def dial(port, host="127.0.0.1"):
    try:
        s = socket.create_connection((host, port), timeout=10)
    except ConnectionRefusedError:
        return "refused"
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    s.shutdown(socket.SHUT_WR)
    try:
        return "closed" if not read_all(s) else "answered"
    except ConnectionResetError:
        return "closed"
"""


async def test_only_mirrored_loopback_ports_answer_inside(
    egress_factory: list[Egress],
    socket_dir: Path,
    model_server: HttpServer,
    platform_server: HttpServer,
    echo_port: int,
) -> None:
    await start_egress(
        egress_factory, socket_dir, mirrors=frozenset({model_server.port}), platform=("127.0.0.1", platform_server.port)
    )
    code = (
        CLIENT_PRELUDE
        + """
model, echo, platform = map(int, sys.argv[1:])
print(json.dumps({
    "model": fetch(f"http://127.0.0.1:{model}/v1/messages"),
    "model_v6": fetch(f"http://[::1]:{model}/"),
    "echo": dial(echo),
    "platform": dial(platform),
}))
"""
    )
    # The bridge listens on the echo port too, but the egress does not mirror it: the egress decides.
    argv = sandboxed(
        socket_dir, code, model_server.port, echo_port, platform_server.port, mirrors=(model_server.port, echo_port)
    )
    result = await run_json(argv)
    assert result == {
        "model": "200 hello from the model server",
        "model_v6": "200 hello from the model server",
        "echo": "closed",
        "platform": "refused",
    }
    assert [path for path, _ in model_server.requests] == ["/v1/messages", "/"]
    assert platform_server.requests == []


async def test_the_proxy_refuses_loopback_the_platform_and_metadata_with_a_reason(
    egress_factory: list[Egress],
    socket_dir: Path,
    model_server: HttpServer,
    platform_server: HttpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vteam.runner.egress")
    await start_egress(egress_factory, socket_dir, allow=("localhost",), platform=("127.0.0.1", platform_server.port))
    code = (
        CLIENT_PRELUDE
        + """
model, platform = map(int, sys.argv[1:])
s = socket.create_connection(PROXY, timeout=15)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
malformed = read_all(s).split("\\r\\n")[0]
print(json.dumps({
    "loopback": fetch(f"http://127.0.0.1:{model}/", proxy=True),
    "metadata": connect_status("169.254.169.254:80")[1],
    "platform_by_allowed_name": connect_status(f"localhost:{platform}")[1],
    "platform_plain": fetch(f"http://localhost:{platform}/", proxy=True),
    "model_by_allowed_name": fetch(f"http://localhost:{model}/", proxy=True),
    "malformed": malformed,
}))
"""
    )
    result = await run_json(sandboxed(socket_dir, code, model_server.port, platform_server.port))
    assert result == {
        "loopback": f"403 vTeam's sandbox does not let agents reach 127.0.0.1:{model_server.port} (a loopback address)",
        "metadata": "HTTP/1.1 403 Forbidden",
        "platform_by_allowed_name": "HTTP/1.1 403 Forbidden",
        "platform_plain": (
            f"403 vTeam's sandbox does not let agents reach localhost:{platform_server.port} "
            "(the vTeam platform's own address)"
        ),
        "model_by_allowed_name": "200 hello from the model server",
        "malformed": "HTTP/1.1 400 Bad Request",
    }
    assert platform_server.requests == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "vteam.runner.egress"]
    assert f"refused a sandboxed agent's connection to 127.0.0.1:{model_server.port} (a loopback address)" in refusals
    assert "refused a sandboxed agent's connection to 169.254.169.254:80 (a link-local address)" in refusals


async def test_an_allow_listed_loopback_port_is_relayed_both_ways_with_half_close(
    egress_factory: list[Egress], socket_dir: Path, model_server: HttpServer, echo_port: int
) -> None:
    await start_egress(egress_factory, socket_dir, allow=(f"127.0.0.1:{echo_port}", f"127.0.0.1:{model_server.port}"))
    code = (
        CLIENT_PRELUDE
        + """
echo, model, other = map(int, sys.argv[1:])
s, status = connect_status(f"127.0.0.1:{echo}")
s.sendall(b"ping " * 50000)
s.shutdown(socket.SHUT_WR)
reply = read_all(s)
print(json.dumps({
    "status": status,
    "reply_start": reply[:15],
    "reply_length": str(len(reply)),
    "plain": fetch(f"http://127.0.0.1:{model}/v1/models?x=1", proxy=True),
    "other_port": connect_status(f"127.0.0.1:{other}")[1],
}))
"""
    )
    result = await run_json(sandboxed(socket_dir, code, echo_port, model_server.port, model_server.port + 1))
    assert result == {
        "status": "HTTP/1.1 200 Connection established",
        "reply_start": "echo:ping ping ",
        "reply_length": str(len("echo:") + 5 * 50000),
        "plain": "200 hello from the model server",
        "other_port": "HTTP/1.1 403 Forbidden",
    }
    path, headers = model_server.requests[-1]
    assert path == "/v1/models?x=1"
    assert headers["connection"] == "close"
    assert headers["host"] == f"127.0.0.1:{model_server.port}"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("raise SystemExit(7)", 7),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + signal.SIGKILL),
        ("pass", 0),
    ],
)
async def test_the_agents_exit_status_is_the_sandboxes(
    egress_factory: list[Egress], socket_dir: Path, code: str, expected: int
) -> None:
    await start_egress(egress_factory, socket_dir)
    status, _, err = await run(sandboxed(socket_dir, code))
    assert status == expected, err


async def test_a_missing_agent_program_fails_with_127(egress_factory: list[Egress], socket_dir: Path) -> None:
    await start_egress(egress_factory, socket_dir)
    argv = sandboxed(socket_dir, "")
    argv[argv.index(sys.executable, argv.index(str(BRIDGE))) :] = ["/nonexistent/agent"]
    status, _, err = await run(argv)
    assert status == 127
    assert "cannot start /nonexistent/agent" in err


async def test_sigterm_to_the_bridge_reaches_the_agent(egress_factory: list[Egress], socket_dir: Path) -> None:
    await start_egress(egress_factory, socket_dir)
    code = """
import signal, sys, time
def stop(signum, frame):
    print("agent got SIGTERM", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""
    process = await asyncio.create_subprocess_exec(
        *sandboxed(socket_dir, code), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        bridge = _descendant_running(process.pid, [sys.executable, "-I", "-S", str(BRIDGE)])
        os.kill(bridge, signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert rest == b"agent got SIGTERM\n"
    assert process.returncode == 3


def _descendant_running(root: int, command: list[str]) -> int:
    """The pid (as seen here) of the process under `root` whose command line starts with `command`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != root:
            ancestor = parents.get(ancestor)
        if ancestor == root and Path(f"/proc/{pid}/cmdline").read_text().split("\0")[: len(command)] == command:
            return pid
    raise AssertionError(f"no process under {root} runs {command}")


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts and never says anything until its client goes away."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _mirror_connection(path: Path, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"MIRROR %d\n" % port)
    await writer.drain()
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_idle_relays_are_ended_and_live_relays_are_bounded(socket_dir: Path, silent_port: int) -> None:
    egress = Egress(frozenset({silent_port}), (), None, max_relays=1, idle_timeout=0.5)
    await egress.start(socket_dir / "egress.sock")
    try:
        first_reader, first = await _mirror_connection(socket_dir / "egress.sock", silent_port)
        await asyncio.sleep(0.1)
        second_reader, second = await _mirror_connection(socket_dir / "egress.sock", silent_port)
        assert await _closed_within(second_reader, 0.3), "a relay beyond the bound was served"
        assert not await _closed_within(first_reader, 0.2), "a relay was ended before it was idle"
        assert await _closed_within(first_reader, 1.5), "an idle relay was not ended"
        for writer in (first, second):
            writer.close()
            with contextlib.suppress(ConnectionResetError):
                await writer.wait_closed()
    finally:
        await egress.close()
    assert not (socket_dir / "egress.sock").exists()


async def test_close_ends_every_live_relay(socket_dir: Path, silent_port: int) -> None:
    egress = Egress(frozenset({silent_port}), (), None)
    await egress.start(socket_dir / "egress.sock")
    reader, writer = await _mirror_connection(socket_dir / "egress.sock", silent_port)
    await asyncio.sleep(0.1)
    assert not await _closed_within(reader, 0.2)
    await egress.close()
    assert await _closed_within(reader, 2)
    writer.close()
    await writer.wait_closed()
