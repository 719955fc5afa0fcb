"""Secrets at rest: encrypted with a key derived from the platform key, never readable over the API.

Scopes name the owner: `user:<name>` for a person's forge tokens and links, `project:<name>` for a
project's tokens. Values are Fernet tokens (AES-128-CBC with HMAC-SHA256) under the vault's own key
(`$VTEAM_HOME/vault.key`, 0600). Rotation makes a new key, keeps the old ones readable while every
value is re-encrypted, then forgets them; decryption tries every key the vault is given. Rotations
run one at a time under `rotation` (a second one waits), and a value is encrypted inside its write
transaction, so no value is ever written under a key that a finishing rotation is about to forget.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet as _Fernet
from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.sqlite import insert

from vteam.db import Database
from vteam.db.schema import secrets
from vteam.errors import InvalidInput, NotFound, VteamError


class SecretUnreadable(VteamError):
    """A stored secret does not decrypt with any known key (the key file changed)."""


class SecretsFull(InvalidInput):
    """A write would take a scope past its `Room`: too many secrets, or too many bytes of them together."""

    def __init__(self, detail: str, *, limit: str) -> None:
        super().__init__(detail, errors=[{"loc": ["value"] if limit == "bytes" else [], "msg": detail}])


@dataclass(frozen=True)
class Room:
    """How many secrets a scope may hold, and how many bytes of values together."""

    max_count: int
    max_bytes: int


def _owner(scope: str) -> str:
    kind, _, owner = scope.partition(":")
    return f"{kind} {owner!r}" if owner else scope


FERNET_OVERHEAD = 1 + 8 + 16 + 32
"""A Fernet token's version byte, timestamp, IV and HMAC around the (padded) ciphertext."""


@dataclass(frozen=True)
class SecretInfo:
    scope: str
    name: str
    updated: str
    frameworks: tuple[str, ...] | None = None
    """The frameworks whose agents get a project secret; None for all of them (see `registry.reaches`)."""


def fernet_key(platform_key: bytes) -> bytes:
    """A Fernet key derived from the platform key, so one key file protects everything."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"vteam-vault\0" + platform_key).digest())


class Vault:
    def __init__(self, db: Database, keys: list[bytes]) -> None:
        self._db = db
        self._keys = list(keys)
        self._fernet = MultiFernet([_Fernet(fernet_key(k)) for k in keys])
        self.rotation = asyncio.Lock()
        """Held for a whole rotation (key files included), so two rotations never drop each other's keys."""

    async def rotate(self, new_key: bytes) -> int:
        """Re-encrypt every value under `new_key` (old keys still read meanwhile); the number re-encrypted.
        The caller holds `rotation`. On failure nothing is re-encrypted and every key is kept."""
        assert self.rotation.locked(), "rotate under Vault.rotation"
        self._keys = [new_key, *self._keys]
        self._fernet = MultiFernet([_Fernet(fernet_key(k)) for k in self._keys])
        async with self._db.begin() as conn:
            rows = (await conn.execute(select(secrets.c.scope, secrets.c.name, secrets.c.value))).all()
            for scope, name, value in rows:
                try:
                    fresh = self._fernet.rotate(value)
                except InvalidToken as exc:
                    raise SecretUnreadable(f"secret {name!r} of {scope} cannot be decrypted to rotate it") from exc
                await conn.execute(
                    update(secrets).where(secrets.c.scope == scope, secrets.c.name == name).values(value=fresh)
                )
        self._keys = [new_key]
        self._fernet = MultiFernet([_Fernet(fernet_key(new_key))])
        return len(rows)

    async def put(
        self,
        scope: str,
        name: str,
        value: str,
        *,
        room: Room | None = None,
        frameworks: Sequence[str] | None = None,
    ) -> SecretInfo:
        """Write a secret and its frameworks (None: all), replacing both; with `room`, refused (`SecretsFull`)
        inside the write's transaction when the scope would then hold more secrets, or more bytes of values,
        than it allows."""
        updated = datetime.now(UTC).isoformat()
        kept = tuple(frameworks) if frameworks is not None else None
        async with self._db.begin() as conn:
            if room is not None:
                await self._check_room(conn, scope, name, len(value.encode()), room)
            row = {
                "scope": scope,
                "name": name,
                "value": self._fernet.encrypt(value.encode()),
                "updated": updated,
                "frameworks": list(kept) if kept is not None else None,
            }
            stmt = insert(secrets).values(row)
            stmt = stmt.on_conflict_do_update(index_elements=["scope", "name"], set_=row)
            await conn.execute(stmt)
        return SecretInfo(scope, name, updated, kept)

    async def _check_room(self, conn: Any, scope: str, name: str, size: int, room: Room) -> None:
        others = (
            await conn.execute(select(secrets.c.value).where(secrets.c.scope == scope, secrets.c.name != name))
        ).all()
        if len(others) + 1 > room.max_count:
            raise SecretsFull(
                f"{_owner(scope)} already holds {len(others)} secrets, its limit; delete one before adding {name!r}",
                limit="count",
            )
        total = size + sum(self._size(row[0]) for row in others)
        if total > room.max_bytes:
            raise SecretsFull(
                f"the secrets of {_owner(scope)} would hold {total:,} bytes with {name!r}, over its limit of "
                f"{room.max_bytes:,} bytes (every secret reaches its agents' environment); the secrets it has "
                "are unchanged",
                limit="bytes",
            )

    def _size(self, token: bytes) -> int:
        """A stored value's size in bytes; for one no key decrypts, the most it can be (its padded length)."""
        try:
            return len(self._fernet.decrypt(token))
        except InvalidToken:
            return max(0, len(base64.urlsafe_b64decode(token)) - FERNET_OVERHEAD)

    async def get(self, scope: str, name: str) -> str | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(secrets.c.value).where(secrets.c.scope == scope, secrets.c.name == name))
            ).first()
        if row is None:
            return None
        try:
            return self._fernet.decrypt(row[0]).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(f"secret {name!r} of {scope} cannot be decrypted with the current key") from exc

    async def list(self, scope: str, prefix: str = "") -> list[SecretInfo]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(secrets.c.name, secrets.c.updated, secrets.c.frameworks)
                    .where(secrets.c.scope == scope, secrets.c.name.startswith(prefix, autoescape=True))
                    .order_by(secrets.c.name)
                )
            ).all()
        return [
            SecretInfo(scope, name, updated, tuple(frameworks) if frameworks is not None else None)
            for name, updated, frameworks in rows
        ]

    async def delete(self, scope: str, name: str) -> None:
        async with self._db.begin() as conn:
            result = await conn.execute(delete(secrets).where(secrets.c.scope == scope, secrets.c.name == name))
        if not result.rowcount:
            raise NotFound(f"no secret {name!r} in {scope}")

    async def delete_scope(self, scope: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(delete(secrets).where(secrets.c.scope == scope))
