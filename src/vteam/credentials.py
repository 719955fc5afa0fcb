"""The CLI's saved sign-ins: one API token per server, in a file only its owner can read.

`VTEAM_TOKEN` in the environment wins over the file, for scripts and CI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def path() -> Path:
    base = os.environ.get("VTEAM_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "vteam"
    )
    return Path(base) / "credentials.json"


def _load() -> dict[str, str]:
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def token_for(server: str) -> str | None:
    return os.environ.get("VTEAM_TOKEN") or _load().get(server.rstrip("/"))


def save(server: str, token: str) -> Path:
    saved = _load()
    saved[server.rstrip("/")] = token
    return _write(saved)


def forget(server: str) -> str | None:
    saved = _load()
    token = saved.pop(server.rstrip("/"), None)
    _write(saved)
    return token


def _write(saved: dict[str, str]) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(saved, handle, indent=2)
    os.replace(temporary, target)
    return target
