"""Secrets at rest: encrypted with a key derived from the platform key, never readable over the API.

Scopes name the owner: `user:<name>` for a person's forge tokens and links, `project:<name>` for a
project's tokens. Values are Fernet tokens (AES-128-CBC with HMAC-SHA256) under the vault's own key
(`$VTEAM_HOME/vault.key`, 0600). Rotation makes a new key, keeps the old ones readable while every
value is re-encrypted, then forgets them; decryption tries every key the vault is given.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet as _Fernet
from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.sqlite import insert

from vteam.db import Database
from vteam.db.schema import secrets
from vteam.errors import NotFound, VteamError


class SecretUnreadable(VteamError):
    """A stored secret does not decrypt with any known key (the key file changed)."""


@dataclass(frozen=True)
class SecretInfo:
    scope: str
    name: str
    updated: str


def fernet_key(platform_key: bytes) -> bytes:
    """A Fernet key derived from the platform key, so one key file protects everything."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"vteam-vault\0" + platform_key).digest())


class Vault:
    def __init__(self, db: Database, keys: list[bytes]) -> None:
        self._db = db
        self._keys = list(keys)
        self._fernet = MultiFernet([_Fernet(fernet_key(k)) for k in keys])

    async def rotate(self, new_key: bytes) -> int:
        """Re-encrypt every value under `new_key` (old keys still read meanwhile); the number re-encrypted."""
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

    async def put(self, scope: str, name: str, value: str) -> SecretInfo:
        updated = datetime.now(UTC).isoformat()
        row = {"scope": scope, "name": name, "value": self._fernet.encrypt(value.encode()), "updated": updated}
        stmt = insert(secrets).values(row)
        stmt = stmt.on_conflict_do_update(index_elements=["scope", "name"], set_=row)
        async with self._db.begin() as conn:
            await conn.execute(stmt)
        return SecretInfo(scope, name, updated)

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
                    select(secrets.c.name, secrets.c.updated)
                    .where(secrets.c.scope == scope, secrets.c.name.startswith(prefix, autoescape=True))
                    .order_by(secrets.c.name)
                )
            ).all()
        return [SecretInfo(scope, name, updated) for name, updated in rows]

    async def delete(self, scope: str, name: str) -> None:
        async with self._db.begin() as conn:
            result = await conn.execute(delete(secrets).where(secrets.c.scope == scope, secrets.c.name == name))
        if not result.rowcount:
            raise NotFound(f"no secret {name!r} in {scope}")

    async def delete_scope(self, scope: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(delete(secrets).where(secrets.c.scope == scope))
