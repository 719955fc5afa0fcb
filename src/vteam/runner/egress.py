"""The sandbox's only way out: serves one session's bridge socket and lets through what the policy allows.

In its own network namespace an agent has only loopback; `vteam/agents/sandbox_bridge.py` carries each of its
connections here. Mirrored loopback ports reach model servers on this machine the platform configured; the
HTTP proxy reaches public addresses and allow-listed hosts only, never the platform itself, and connects to
the very address it checked, so a name cannot be re-pointed after the check (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vteam.policy.repos import RepoPolicy, split_list

log = logging.getLogger("vteam.runner.egress")

HEAD_LIMIT = 16 * 1024
"""The most a request head (and the reader's buffer, which bounds memory per relay) may hold."""
HEAD_TIMEOUT = 10.0
RESOLVE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
IDLE_TIMEOUT = 600.0
MAX_RELAYS = 256
CHUNK = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
HOP_BY_HOP = frozenset(
    {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te", "upgrade"}
)
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
PUBLIC_ONLY = RepoPolicy()

Entry = tuple[str, int | None]
"""An allow-list entry: a host (lower case, or an address in canonical form) and a port, or None for any port."""


def normalize_host(host: str) -> str:
    """A host as the policy compares it: an address in canonical form, a name in lower case without a final dot."""
    host = host.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not HOST_NAME.match(name):
        raise ValueError(f"not a host: {host!r}")
    return name


def split_host_port(text: str, *, port_required: bool = False) -> Entry:
    """`host`, `host:port`, `[v6]` or `[v6]:port` (a bare IPv6 address has no port); ValueError when malformed."""
    text = text.strip()
    port: str | None = None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"not a host or host:port: {text!r}")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host = text
    if port is None:
        if port_required:
            raise ValueError(f"{text!r} has no port")
        return normalize_host(host), None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a port: {port!r}")
    return normalize_host(host), int(port)


def shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _loopback_host(host: str, *, or_unspecified: bool = False) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return any(
        form.is_loopback or (or_unspecified and form.is_unspecified) for form in (address, mapped) if form is not None
    )


def _url_target(value: str) -> tuple[str, int] | None:
    """The host and port a setting's value points at, when it is a URL."""
    if "://" not in value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        host = normalize_host(parts.hostname or "")
    except ValueError:
        return None
    return (host, port) if port else None


def _entries(allow_hosts: str) -> list[Entry]:
    found = []
    for text in split_list(allow_hosts):
        try:
            found.append(split_host_port(text))
        except ValueError:
            log.warning("ignoring %r in VTEAM_SANDBOX_ALLOW_HOSTS: not a host or host:port", text)
    return found


def mirror_ports(settings: Mapping[str, str], allow_hosts: str, server_url: str) -> frozenset[int]:
    """The loopback ports to mirror into the sandbox: those of URL settings (a model server on this machine)
    and loopback `host:port` entries of VTEAM_SANDBOX_ALLOW_HOSTS; never the platform's own port."""
    ports: set[int] = set()
    for value in settings.values():
        target = _url_target(value)
        if target and _loopback_host(target[0]):
            ports.add(target[1])
    ports.update(port for host, port in _entries(allow_hosts) if port and _loopback_host(host))
    server = _url_target(server_url)
    if server and _loopback_host(server[0], or_unspecified=True):
        ports.discard(server[1])
    return frozenset(ports)


def allow_list(settings: Mapping[str, str], allow_hosts: str) -> frozenset[str]:
    """What the proxy lets through although not public: each URL setting's host:port (a model gateway on the
    LAN) and the entries of VTEAM_SANDBOX_ALLOW_HOSTS."""
    found = {shown(*target) for value in settings.values() if (target := _url_target(value))}
    found.update(split_list(allow_hosts))
    return frozenset(found)


@dataclass(frozen=True)
class Policy:
    """Where the proxy may connect: pure, so each rule can be checked without a network."""

    allow: frozenset[Entry] = frozenset()
    platform_port: int | None = None
    platform_hosts: frozenset[str] = frozenset()
    """Names and addresses the platform answers on (with this machine's own addresses); loopback always counts."""

    def allowed_by_name(self, host: str, port: int) -> bool:
        return (host, None) in self.allow or (host, port) in self.allow

    def refusal(self, host: str, port: int, addresses: Sequence[str]) -> str | None:
        """Why connecting to `host`:`port` (resolved to `addresses`, all of which will be tried) is refused,
        or None when it is allowed."""
        found = [ipaddress.ip_address(text.split("%", 1)[0]) for text in addresses]
        if not found:
            return "a name that does not resolve"
        if port == self.platform_port and (host in self.platform_hosts or any(map(self._platform, found))):
            return "the vTeam platform's own address"
        if self.allowed_by_name(host, port):
            return None
        for address in found:
            if (reason := PUBLIC_ONLY.address_refusal(address)) is not None:
                reason = reason.removeprefix("is ")
                return reason if host.strip("[]") in (str(address), address.exploded) else f"{address}, {reason}"
        return None

    def _platform(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(
            form.is_loopback or form.is_unspecified or str(form) in self.platform_hosts
            for form in (address, mapped)
            if form is not None
        )


@dataclass(frozen=True)
class Request:
    """A proxy request head taken apart: where to connect, and for plain HTTP what to send there."""

    host: str
    port: int
    upstream_head: bytes | None
    """The origin-form head for plain HTTP (with `Connection: close`); None for CONNECT."""


def parse_request(head: bytes) -> Request:
    """A CONNECT or absolute-form plain HTTP request head (ending in an empty line); ValueError saying why not."""
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) < 3 or lines[-2:] != ["", ""]:
        raise ValueError("the request head is incomplete")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]) or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError("the request line is not 'METHOD target HTTP/1.x'")
    method, target, version = parts
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in target):
        raise ValueError("the request target has spaces or control characters")
    headers: list[tuple[str, str]] = []
    for line in lines[1:-2]:
        name, colon, value = line.partition(":")
        if not colon or not TOKEN.match(name):
            raise ValueError("a header line is malformed")
        headers.append((name, value.strip()))
    if method == "CONNECT":
        host, connect_port = split_host_port(target, port_required=True)
        return Request(host, connect_port or 443, None)
    if not target.lower().startswith("http://"):
        if target.lower().startswith("https://"):
            raise ValueError("https:// goes through CONNECT")
        raise ValueError("a proxy request needs an absolute http:// URL or CONNECT host:port")
    url = urlsplit(target)
    port = 80 if url.port is None else url.port
    if port == 0:
        raise ValueError("port 0 cannot be reached")
    host = normalize_host(url.hostname or "")
    dropped = HOP_BY_HOP | {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    authority = (f"[{host}]" if ":" in host else host) + (f":{port}" if port != 80 else "")
    kept = [f"{name}: {value}" for name, value in headers if name.lower() not in dropped | {"host"}]
    lines = [f"{method} {path} {version}", f"Host: {authority}", *kept, "Connection: close", "", ""]
    return Request(host, port, "\r\n".join(lines).encode("latin-1"))


def local_addresses() -> frozenset[str]:
    """This machine's own addresses (Linux /proc), where a platform listening on every interface also answers."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        last = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith("|-- "):
                last = text[4:]
            elif text == "/32 host LOCAL" and last:
                found.add(last)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            if line.split():
                found.add(str(ipaddress.IPv6Address(int(line.split()[0], 16))))
    return frozenset(found)


async def resolve(host: str, port: int) -> list[str]:
    """Every address of `host`, without blocking the loop; [] when it does not resolve."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _response(status: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class _Activity:
    __slots__ = ("last",)

    def __init__(self, now: float) -> None:
        self.last = now


class Egress:
    """One session's egress: the server side of the sandbox bridge's Unix socket."""

    def __init__(
        self,
        mirrors: frozenset[int],
        allow: Iterable[str],
        platform: tuple[str, int] | None,
        *,
        max_relays: int = MAX_RELAYS,
        idle_timeout: float = IDLE_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        entries: set[Entry] = set()
        for text in allow:
            try:
                entries.add(split_host_port(text))
            except ValueError:
                log.warning("ignoring sandbox allow-list entry %r: not a host or host:port", text)
        self._allow = frozenset(entries)
        self._platform = platform
        self._mirrors = mirrors - {platform[1]} if platform else mirrors
        self._policy = Policy(self._allow)
        self._max_relays = max_relays
        self._idle_timeout = idle_timeout
        self._head_timeout = head_timeout
        self._server: asyncio.Server | None = None
        self._path: Path | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def policy(self) -> Policy:
        return self._policy

    async def start(self, path: Path) -> None:
        """Learn where the platform answers, then listen on `path` (only its owner may connect)."""
        hosts: set[str] = set()
        if self._platform:
            host = normalize_host(self._platform[0])
            hosts.add(host)
            hosts.update(await resolve(host, self._platform[1]))
            hosts.update(await asyncio.to_thread(local_addresses))
        self._policy = Policy(self._allow, self._platform[1] if self._platform else None, frozenset(hosts))
        self._server = await asyncio.start_unix_server(self._accept, path=str(path), limit=HEAD_LIMIT)
        self._path = path
        os.chmod(path, 0o600)

    async def close(self) -> None:
        """Stop listening and end every live relay."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            self._path = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one bridged connection in a task of its own, which `close` may cancel (asyncio reports a
        cancelled connection callback as an error)."""
        if len(self._tasks) >= self._max_relays:
            log.info("refused a sandboxed agent's connection: %d relays are live already", len(self._tasks))
            writer.close()
            return
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        try:
            await asyncio.wait({task})
            if not task.cancelled() and (error := task.exception()) is not None:
                log.warning("a sandboxed agent's connection failed: %r", error)
        finally:
            task.cancel()
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), self._head_timeout)
            if line == b"PROXY\n":
                await self._proxy(reader, writer)
            elif line.startswith(b"MIRROR ") and line.endswith(b"\n") and line[7:-1].isdigit():
                await self._mirror(int(line[7:-1]), reader, writer)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass

    async def _mirror(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if port not in self._mirrors:
            log.info("refused a sandboxed agent's connection to loopback port %d: not a mirrored port", port)
            return
        upstream = await self._open(["127.0.0.1", "::1"], port)
        if upstream is not None:
            await self._relay((reader, writer), upstream)

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._head_timeout)
        except asyncio.LimitOverrunError:
            await self._answer(writer, "400 Bad Request", f"the request head is longer than {HEAD_LIMIT} bytes")
            return
        try:
            request = parse_request(head)
        except ValueError as exc:
            await self._answer(writer, "400 Bad Request", f"vTeam's sandbox proxy cannot serve this request: {exc}")
            return
        target = shown(request.host, request.port)
        addresses = await resolve(request.host, request.port)
        if not addresses:
            await self._answer(writer, "502 Bad Gateway", f"{target} does not resolve")
            return
        if (reason := self._policy.refusal(request.host, request.port, addresses)) is not None:
            log.info("refused a sandboxed agent's connection to %s (%s)", target, reason)
            await self._answer(
                writer, "403 Forbidden", f"vTeam's sandbox does not let agents reach {target} ({reason})"
            )
            return
        upstream = await self._open(addresses, request.port)
        if upstream is None:
            await self._answer(writer, "502 Bad Gateway", f"{target} cannot be reached")
            return
        if request.upstream_head is None:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream[1].write(request.upstream_head)
        await self._relay((reader, writer), upstream)

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: str, text: str) -> None:
        writer.write(_response(status, text))
        with contextlib.suppress(OSError):
            await writer.drain()

    async def _open(
        self, addresses: Sequence[str], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the first of the vetted addresses that answers."""
        for address in addresses:
            with contextlib.suppress(OSError, TimeoutError):
                return await asyncio.wait_for(asyncio.open_connection(address, port, limit=HEAD_LIMIT), CONNECT_TIMEOUT)
        return None

    async def _relay(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        """Bytes both ways, each direction half-closed on its own, until both end, one fails or both idle."""
        loop = asyncio.get_running_loop()
        activity = _Activity(loop.time())
        pumps = {
            asyncio.create_task(self._pump(client[0], upstream[1], activity)),
            asyncio.create_task(self._pump(upstream[0], client[1], activity)),
        }
        try:
            while pumps:
                remaining = activity.last + self._idle_timeout - loop.time()
                if remaining <= 0:
                    break
                done, pumps = await asyncio.wait(pumps, timeout=remaining)
                if any(not task.cancelled() and task.exception() is not None for task in done):
                    break
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            upstream[1].close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, activity: _Activity) -> None:
        loop = asyncio.get_running_loop()
        while data := await source.read(CHUNK):
            activity.last = loop.time()
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof() and not sink.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                sink.write_eof()
