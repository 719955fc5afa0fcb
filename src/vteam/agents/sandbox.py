"""The per-session sandbox: every agent process runs in bubblewrap namespaces that see only its session.

bubblewrap (Debian's `bwrap`) is a small, maintained, audited setup tool used by Flatpak; it makes the
user, pid, mount, network, IPC and UTS namespaces without a daemon and without privileges. The pid
namespace bounds lifetimes: when an agent's main process ends, or its bwrap is killed, the kernel kills
every process inside, whatever it did to detach.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ISOLATIONS = ("sandbox", "none", "pod")
"""What `VTEAM_ISOLATION` may tell a runner: bubblewrap per agent, none by an operator's choice, or a pod."""


@dataclass(frozen=True)
class SandboxSupport:
    """Whether this machine can make a sandbox, and what `vteam up` says about it in one line."""

    available: bool
    detail: str


@functools.cache
def probe() -> SandboxSupport:
    """Try the sandbox once (a few milliseconds): bwrap present, and user namespaces allowed here."""
    if not sys.platform.startswith("linux"):
        return SandboxSupport(False, f"agents cannot be sandboxed on {sys.platform} (bubblewrap needs Linux)")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return SandboxSupport(False, "bubblewrap is not installed (apt-get install bubblewrap)")
    try:
        done = subprocess.run(
            [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return SandboxSupport(False, f"bubblewrap cannot run here: {exc}")
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        return SandboxSupport(False, f"bubblewrap cannot make namespaces here: {reason}")
    version = subprocess.run([bwrap, "--version"], capture_output=True, check=False).stdout.decode().strip()
    return SandboxSupport(True, f"{version or 'bubblewrap'}: user, pid, mount, network and IPC namespaces per agent")


SANDBOX_UID = 1000
"""The agent's uid inside its user namespace; outside, it is the runner's own user, confined by the namespaces."""
PROXY_PORT = 3128
RUN = Path("/run/vteam")
"""Where the sandbox finds the bridge and the egress socket; a tmpfs of its own, read-only binds only."""
BRIDGE = Path(__file__).with_name("sandbox_bridge.py")
MEMORY_LIMIT = 64 << 20
"""Bytes an in-memory folder of a sandbox (/dev/shm, and /tmp where the session has no temp folder) may hold:
an agent's temp files go to the session's folder on disk, so no sandbox can fill the machine's memory."""
ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "terminfo",
    "timezone",
)
"""What of /etc an agent's tools need; the rest (shadow, the host's keys and configuration) stays out of view."""
IDENTITY = ("passwd", "group")
"""Written by `identity` into the private folder: inside, the agent is `agent`, not a user of the host."""
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class Sandbox:
    """How one session's agent processes are confined: what they see, where they write, how they reach out.

    Paths keep their outside names inside, so what an adapter computes (workdir, HOME, a transcript's
    folder) means the same on both sides.
    """

    writable: tuple[Path, ...]
    """The session's repos, HOME and temp folder: the only places an agent can write."""
    readonly: tuple[Path, ...] = ()
    """Installs an agent runs from: the Python installation, the frameworks' folder."""
    hide: tuple[Path, ...] = ()
    """Folders covered with an empty read-only tmpfs (VTEAM_HOME): inside, only the session's own binds show."""
    tmpdir: Path | None = None
    egress: Path | None = None
    """The folder (outside) holding the runner's egress socket; None leaves the sandbox no network at all."""
    mirror_ports: tuple[int, ...] = ()
    """Loopback ports (a model gateway's) relayed to the same port outside, through the egress policy."""
    private: Path | None = None
    """A runner-owned folder outside the sandbox, for launch scripts (a framework SDK that starts its CLI itself)."""
    python: str = field(default_factory=lambda: sys.executable)

    def wrap(self, argv: list[str], cwd: Path, *, readonly: tuple[Path, ...] = ()) -> list[str]:
        """The command that runs `argv` in this sandbox; its environment is what the caller passes bwrap."""
        args = [
            "bwrap",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "vteam-sandbox",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--disable-userns",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in ROOT_LINKS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        if self.private is not None:
            for name in IDENTITY:
                args += ["--ro-bind-try", str(self.private / name), f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(MEMORY_LIMIT), "--tmpfs", "/dev/shm"]  # noqa: S108
        if self.tmpdir is not None:
            args += ["--bind", str(self.tmpdir), "/tmp"]  # noqa: S108
        else:
            args += ["--size", str(MEMORY_LIMIT), "--tmpfs", "/tmp"]  # noqa: S108
        for path in dict.fromkeys((*self.readonly, *readonly)):
            args += ["--ro-bind-try", str(path), str(path)]
        for path in self.hide:
            args += ["--tmpfs", str(path)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        args += ["--tmpfs", str(RUN.parent)]
        if self.egress is not None:
            args += ["--ro-bind", str(BRIDGE), str(RUN / "bridge.py"), "--ro-bind", str(self.egress), str(RUN / "net")]
            bridge = [self.python, "-I", "-S", str(RUN / "bridge.py"), "--socket", str(RUN / "net" / EGRESS_SOCKET)]
            bridge += ["--proxy-port", str(self._proxy_port)]
            for port in self.mirror_ports:
                bridge += ["--mirror", str(port)]
            argv = [*bridge, "--", *argv]
        for path in (RUN.parent, *self.hide, Path("/dev"), Path("/")):
            args += ["--remount-ro", str(path)]
        args += ["--chdir", str(cwd), "--"]
        return [*args, *argv]

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The agent's environment with the sandbox's own: the proxy, and temp files in the session's folder."""
        env = {k: v for k, v in env.items() if not k.startswith("VTEAM_")}
        if self.egress is not None:
            proxy = f"http://127.0.0.1:{self._proxy_port}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = proxy
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        if self.tmpdir is not None:
            env["TMPDIR"] = str(self.tmpdir)
        return env

    def launcher(self, binary: str, cwd: Path) -> Path:
        """A script that runs `binary` with its arguments in this sandbox, for an SDK that starts the CLI itself.

        The SDK passes the runner's own environment on; the script drops vTeam's variables from it."""
        assert self.private is not None, "a sandbox for an SDK-started CLI needs a private folder"
        # Unset before bwrap starts: bwrap's own /proc/<pid>/environ is readable inside as the sandbox's pid 1.
        unset = [arg for key in os.environ if key.startswith("VTEAM_") for arg in ("-u", key)]
        command = ["env", *unset, *self.wrap([binary], cwd)]
        script = self.private / f"launch-{Path(binary).name}"
        script.write_text("#!/bin/sh\nexec " + shlex.join(command) + ' "$@"\n')
        script.chmod(0o700)
        return script

    @property
    def _proxy_port(self) -> int:
        port = PROXY_PORT
        while port in self.mirror_ports:
            port += 1
        return port


EGRESS_SOCKET = "egress.sock"


def python_installs() -> tuple[Path, ...]:
    """The folders this Python runs from (its installation and virtual environment), for a read-only bind."""
    return tuple(dict.fromkeys(Path(p) for p in (sys.base_prefix, sys.prefix, str(Path(sys.executable).parent))))


def framework_installs() -> tuple[Path, ...]:
    """The folder `make setup` installs the frameworks' CLIs into, where it exists."""
    installed = Path(__file__).resolve().parents[3] / ".agents"
    return (installed,) if installed.is_dir() else ()


def identity(private: Path, home: Path) -> None:
    """The sandbox's own passwd and group files: its agent, root and nobody, and no user of the host."""
    (private / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\nagent:x:{SANDBOX_UID}:{SANDBOX_UID}:vTeam agent:{home}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (private / "group").write_text(f"root:x:0:\nagent:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")


def widened(sandbox: Sandbox | None, *folders: Path) -> Sandbox | None:
    """The same confinement, writing to more folders (a runner's mirror beside the repositories it fetches)."""
    return None if sandbox is None else dataclasses.replace(sandbox, writable=(*sandbox.writable, *folders))
