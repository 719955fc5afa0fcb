"""The CLI's saved sign-ins: one API token per server and the server last signed in to, in one file only its
owner can read.

`VTEAM_TOKEN` in the environment wins over the file, for scripts and CI. The current server is what commands
talk to when neither `--server` nor `VTEAM_SERVER` names one, as `gh` and `kubectl` keep a current context.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Saved:
    """What the file holds: the current server (if any) and each server's token."""

    current: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)


def path() -> Path:
    base = os.environ.get("VTEAM_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "vteam"
    )
    return Path(base) / "credentials.json"


def _key(server: str) -> str:
    return server.rstrip("/")


def _load() -> Saved:
    """The saved sign-ins; a file written before the current server was kept (a flat server→token map) reads
    as tokens with no current server, and an unreadable one as nothing saved."""
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return Saved()
    if not isinstance(data, dict):
        return Saved()
    servers = data.get("servers")
    if not isinstance(servers, dict):
        return Saved(tokens={str(k): str(v) for k, v in data.items()})
    current = data.get("current")
    return Saved(
        current=current if isinstance(current, str) and current else None,
        tokens={str(k): str(v) for k, v in servers.items()},
    )


def token_for(server: str) -> str | None:
    return os.environ.get("VTEAM_TOKEN") or _load().tokens.get(_key(server))


def current_server() -> str | None:
    """The server `vteam login` last signed in to, until `vteam logout` signs out of it."""
    return _load().current


def save(server: str, token: str) -> Path:
    """Keep the server's token and make it the current server."""
    saved = _load()
    saved.tokens[_key(server)] = token
    saved.current = _key(server)
    return _write(saved)


def forget(server: str) -> str | None:
    """Drop the server's token, and stop using it by default if it is the current server."""
    saved = _load()
    token = saved.tokens.pop(_key(server), None)
    if saved.current == _key(server):
        saved.current = None
    _write(saved)
    return token


def _write(saved: Saved) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"current": saved.current, "servers": saved.tokens}, handle, indent=2)
    os.replace(temporary, target)
    return target
