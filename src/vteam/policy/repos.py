"""The one repository policy: which URLs and local paths a session may clone from or push to.

The API applies it when a session is created, and the runner applies it again right before git runs,
on the address it is about to connect to, which it then pins for git. Three layers:

- syntax (`parse`): only http, https, ssh, git and file URLs, scp-like `host:path` and absolute paths;
  no user name or password in a URL (ssh's user name, which is not a secret, excepted); nothing git
  could take for an option; no `transport::address` remote helpers (`ext::`, `fd::`);
- local paths and `file://` (`check_local`): resolved with realpath first; never under a forbidden
  root (vTeam's home, with its database, keys and every project's workspace); otherwise only under
  the roots a platform admin allowed for the project, or anywhere for a platform admin's own session;
- network hosts (`check_addresses`): every address a name resolves to must be public (not loopback,
  link-local, private, CGNAT, unspecified, multicast, reserved, nor in the cluster's service network),
  unless an operator allowed the host by name, or its address or a range holding it.

Refusals raise `RepositoryRefused`, naming the field and the reason, never echoing a secret.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from vteam.errors import RepositoryRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https", "ssh", "git", "file")
DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
GIT_PROTOCOLS = "http:https:ssh:git"
"""What `GIT_ALLOW_PROTOCOL` names for a session; `:file` is added only where the policy allows a local path."""

REMOTE_HELPER = re.compile(r"^[A-Za-z0-9+.-]*::")
SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.+)$")
HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
RESOLVE_TIMEOUT = 10.0

LOCAL_ROOTS_ANNOTATION = "vteam.ambient-code/repo-local-roots"
"""On a Project: the JSON list of folders its sessions may use as local repositories (platform admins set it)."""
ANY_LOCAL_ANNOTATION = "vteam.ambient-code/repo-local-any"
"""On a session: set by the server when a platform admin created it, so any local path (but vTeam's own) is fine."""

Kind = Literal["local", "http", "https", "ssh", "git"]


@dataclass(frozen=True)
class Target:
    """A repository URL taken apart: a local path, or a host, port and path on the network."""

    kind: Kind
    path: str
    host: str = ""
    port: int | None = None
    user: str | None = None
    scp: bool = False

    @property
    def network(self) -> bool:
        return self.kind != "local"

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS.get(self.kind, 0)


@dataclass(frozen=True)
class RepoPolicy:
    """What one session may reach: the effective policy the controller hands the runner."""

    local_roots: tuple[str, ...] = ()
    """Folders (and what is under them) a session may use as local repositories."""
    any_local: bool = False
    """A platform admin's session: any local path but the forbidden roots."""
    forbidden_roots: tuple[str, ...] = ()
    """Never a repository, whoever asks: vTeam's home (database, keys, every project's workspace)."""
    allow_hosts: tuple[str, ...] = ()
    """Host names, addresses or CIDR ranges an operator allows although they are not public."""
    service_ranges: tuple[str, ...] = ()
    """The cluster's service network: refused even when a broader allowed range holds it."""
    _names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _exact: frozenset[IPAddress] = field(default=frozenset(), init=False, repr=False, compare=False)
    _ranges: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)
    _service: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        exact: set[IPAddress] = set()
        ranges: list[IPNetwork] = []
        for entry in self.allow_hosts:
            entry = entry.strip().strip("[]")
            if not entry:
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                names.add(entry.lower().rstrip("."))
                continue
            if network.num_addresses == 1:
                exact.add(network.network_address)
            else:
                ranges.append(network)
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_ranges", tuple(ranges))
        object.__setattr__(self, "_service", tuple(parse_ranges(self.service_ranges)))

    @property
    def allows_local(self) -> bool:
        return self.any_local or bool(self.local_roots)

    @property
    def git_protocols(self) -> str:
        return GIT_PROTOCOLS + (":file" if self.allows_local else "")

    def name_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._names

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why connecting to `address` is refused, or None when it is allowed."""
        forms = _forms(address)
        if any(form in self._exact for form in forms):
            return None
        if any(form in net for form in forms for net in self._service if form.version == net.version):
            return "is in the cluster's service network"
        if any(form in net for form in forms for net in self._ranges if form.version == net.version):
            return None
        for form in forms:
            if (reason := _non_public(form)) is not None:
                return reason
        return None


def local_roots(annotations: dict[str, str]) -> tuple[str, ...]:
    """A project's allowed local roots from its annotation; none when it is missing or unreadable."""
    raw = annotations.get(LOCAL_ROOTS_ANNOTATION)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v.startswith("/")) if isinstance(value, list) else ()


def check_root(root: str, forbidden: tuple[str, ...]) -> str:
    """A root a platform admin wants to allow: absolute, and neither inside nor holding vTeam's own folder
    (a root such as `/` would make every path a tenant can name look allowed but vTeam's)."""
    if not root.startswith("/") or any(ord(c) < 0x20 for c in root):
        raise ValueError(f"local root {root!r} must be an absolute path")
    real = os.path.realpath(root)
    for bad in forbidden:
        bad_real = os.path.realpath(bad)
        if _under(real, bad_real):
            raise ValueError(f"local root {root!r} is inside vTeam's own data folder, which no session may use")
        if _under(bad_real, real):
            raise ValueError(
                f"local root {root!r} holds vTeam's own data folder; "
                "allow the folders that hold the repositories instead"
            )
    return root.rstrip("/") or "/"


def parse_ranges(entries: tuple[str, ...] | list[str]) -> list[IPNetwork]:
    networks = []
    for entry in entries:
        if entry.strip():
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
    return networks


def split_list(value: str) -> tuple[str, ...]:
    """A setting's comma- or space-separated list."""
    return tuple(part for part in value.replace(",", " ").split() if part)


def _forms(address: IPAddress) -> list[IPAddress]:
    """Every IPv4 address the address carries (mapped, compatible, 6to4, Teredo, NAT64), then itself."""
    forms: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            forms.append(address.sixtofour)
        if address.teredo is not None:
            forms.extend(address.teredo)
        if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [*forms, address]


def _non_public(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_multicast:
        return "is a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "is a shared (CGNAT) address"
    if address.is_private:
        return "is a private address"
    if address.is_reserved or not address.is_global:
        return "is a reserved address"
    return None


def display(url: str) -> str:
    """The URL as it may be shown and logged: without any user part, query or fragment."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def parse(url: str) -> Target:
    """Take a repository URL apart, or raise ValueError saying why vTeam will not hand it to git."""
    if not url or url != url.strip():
        raise ValueError("repository URL must not be empty or have surrounding spaces")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise ValueError("repository URL must not contain control characters")
    if url.startswith("-"):
        raise ValueError("repository URL must not start with '-' (git would read it as an option)")
    if REMOTE_HELPER.match(url):
        raise ValueError("repository URL names a git remote helper ('transport::address'), which is not allowed")
    if url.startswith("/"):
        _check_path(url)
        return Target("local", url)
    if "://" in url:
        return _parse_url(url)
    if match := SCP_LIKE.match(url):
        user, host, path = match["user"], match["host"], match["path"]
        if user is not None and not SSH_USER.match(user):
            raise ValueError("the ssh user name of a repository URL must be letters, digits, '.', '_' or '-'")
        _check_path(path)
        return Target("ssh", path, host=_check_host(host), user=user, scp=True)
    raise ValueError(
        f"repository URL {url!r} is not a URL vTeam can clone: use an absolute path, "
        "file://, http(s)://, ssh://, git:// or user@host:path"
    )


def _parse_url(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"repository URL uses scheme {scheme!r}; use one of {', '.join(SCHEMES)}, "
            "an absolute path or user@host:path"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError("repository URL must not carry a query or fragment")
    if scheme == "file":
        if "@" in parts.netloc or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError("a file URL needs an absolute path and no host (file:///path/to/repo)")
        if "%" in parts.path:
            raise ValueError("a file URL must not carry percent-escapes; write the path as it is")
        _check_path(parts.path)
        return Target("local", parts.path)
    user: str | None = None
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        if scheme != "ssh" or ":" in userinfo or not SSH_USER.match(userinfo):
            raise ValueError(
                "repository URL must not carry a user name, password or token; "
                "give credentials as a secret instead (an ssh:// URL may name the ssh user)"
            )
        user = userinfo
    if not parts.hostname:
        raise ValueError("repository URL has no host")
    bracketed = "[" in parts.netloc
    host = _check_host(f"[{parts.hostname}]" if bracketed else parts.hostname)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("repository URL has an invalid port") from None
    if parts.path in ("", "/"):
        raise ValueError("repository URL has no repository path")
    _check_path(parts.path)
    return Target(scheme, parts.path, host=host, port=port, user=user)  # type: ignore[arg-type]


def _check_host(host: str) -> str:
    """The host in lower case without brackets; ValueError for one git or curl could misread."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError("repository URL has an invalid IPv6 address") from None
    if host.startswith("-"):
        raise ValueError("repository URL has a host starting with '-' (git would read it as an option)")
    if not HOST_NAME.match(host):
        raise ValueError("repository URL's host must be a name of letters, digits, '.', '_' and '-', or an address")
    if NUMERIC_HOST.match(host):
        try:
            return str(ipaddress.IPv4Address(host.rstrip(".")))
        except ValueError:
            raise ValueError(
                "repository URL's host is a number in a form other than dotted decimal (a.b.c.d), "
                "which tools read differently"
            ) from None
    return host.lower()


def _check_path(path: str) -> None:
    if any(part.startswith("-") for part in path.split("/")):
        raise ValueError("repository URL has a path component starting with '-' (git could read it as an option)")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_local(path: str, policy: RepoPolicy, *, field: str | None = None) -> str:
    """The real path (symlinks resolved) of a local repository the policy allows; refused otherwise.

    Touches the file system (realpath): call it from a thread where blocking matters."""
    real = os.path.realpath(path)
    for root in policy.forbidden_roots:
        if _under(real, os.path.realpath(root)):
            raise RepositoryRefused(
                "the path is inside vTeam's own data folder (its database, keys and every session's workspace), "
                "which no session may use",
                field=field,
            )
    if policy.any_local:
        return real
    if not any(_under(real, os.path.realpath(root)) for root in policy.local_roots):
        raise RepositoryRefused(
            "local paths and file:// URLs are allowed only under the folders a platform admin allows "
            "for this project (PUT /api/admin/projects/{project}/repository-policy)",
            field=field,
        )
    return real


def check_addresses(host: str, addresses: list[str], policy: RepoPolicy, *, field: str | None = None) -> None:
    """Refuse a host unless the operator allows it by name or every address it has is allowed."""
    if policy.name_allowed(host):
        return
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if (reason := policy.address_refusal(address)) is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise RepositoryRefused(
                f"host {shown} {reason}; an operator can allow it with VTEAM_REPO_ALLOW_HOSTS", field=field
            )


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, without blocking the event loop; [] when it does not resolve."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True)
class Vetted:
    """A repository the policy allowed, with what git must be told so it goes exactly there."""

    url: str
    """What to give git: the real path for a local repository, the address for git://, else the URL."""
    target: Target
    address: str | None = None
    """The address checked, for git to connect to (None for a local path or a name that did not resolve)."""
    addresses: tuple[str, ...] = ()
    """Every address the name had, all checked: curl may try each of them, and nothing else."""
    real: str | None = None
    """For a local repository: the real path checked, which git is given."""

    def git_config(self) -> list[str]:
        """`-c` options that pin an http(s) host to the checked address and keep redirects from leaving it."""
        if self.target.kind not in ("http", "https"):
            return []
        options = ["-c", "http.followRedirects=false"]
        pinned = [a for a in (self.addresses or ((self.address,) if self.address else ())) if a != self.target.host]
        if pinned:
            shown = ",".join(f"[{a}]" if ":" in a else a for a in pinned)
            options += ["-c", f"http.curloptResolve={self.target.host}:{self.target.effective_port}:{shown}"]
        return options

    def ssh_options(self) -> list[str]:
        """ssh options that connect to the checked address while checking the host key of the name."""
        if self.target.kind != "ssh" or not self.address:
            return []
        return ["-o", f"HostName={self.address}", "-o", f"HostKeyAlias={self.target.host}"]


async def vet(url: str, policy: RepoPolicy, *, field: str, resolved_only: bool = True) -> Vetted:
    """Apply the whole policy to one URL: syntax, local roots, and the addresses its host has now.

    `resolved_only=False` lets a name that does not resolve through (the API's check: the runner,
    which may see other DNS, checks it again and refuses it there)."""
    try:
        target = parse(url)
    except ValueError as exc:
        raise RepositoryRefused(str(exc), field=field) from None
    if target.kind == "local":
        if not policy.allows_local:
            raise RepositoryRefused(
                "local paths and file:// URLs are allowed only under the folders a platform admin allows "
                "for this project (PUT /api/admin/projects/{project}/repository-policy)",
                field=field,
            )
        real = await asyncio.to_thread(check_local, target.path, policy, field=field)
        return Vetted(f"file://{real}" if url.startswith("file:") else real, target, real=real)
    addresses = await resolve(target.host, target.effective_port)
    if not addresses:
        if policy.name_allowed(target.host) or not resolved_only:
            return Vetted(url, target)
        raise RepositoryRefused(f"host {target.host} could not be resolved", field=field)
    check_addresses(target.host, addresses, policy, field=field)
    address = addresses[0]
    if target.kind == "git" and address != target.host:
        shown = f"[{address}]" if ":" in address else address
        port = f":{target.port}" if target.port else ""
        return Vetted(f"git://{shown}{port}{target.path}", target, address, tuple(addresses))
    return Vetted(url, target, address, tuple(addresses))


async def recheck(vetted: Vetted, policy: RepoPolicy, *, field: str) -> None:
    """Check a local repository again right after or before git uses it: git opens the path by name, so a
    folder on it swapped for a symlink after `vet` would take git elsewhere. RepositoryRefused when the
    path no longer resolves to itself or is no longer allowed; nothing to do for a network repository."""
    if vetted.real is None:
        return
    real = await asyncio.to_thread(check_local, vetted.real, policy, field=field)
    if real != vetted.real:
        raise RepositoryRefused(
            "the local path changed (a folder on it became a symlink) between the policy's check and git's use",
            field=field,
        )
