"""The platform's signing key: created once with mode 0600, read on every start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(path: Path) -> bytes:
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def replace(path: Path, *keys: bytes) -> None:
    """Write a key file anew (one key a line), atomically, mode 0600."""
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(k.hex() for k in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_all(path: Path) -> list[bytes]:
    """Keys kept one per line (the vault's previous keys during a rotation); none when the file is absent."""
    if not path.exists():
        return []
    return [bytes.fromhex(line) for line in path.read_text().split() if line]
