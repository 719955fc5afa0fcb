"""The embedded mode's authenticator: vTeam's own tokens, browser sessions, runner tokens, and, where an
OAuth proxy in front is trusted, its forwarded identity (as OpenShift deployments do)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from vteam.auth.accounts import Accounts
from vteam.auth.identity import NOBODY, Identity
from vteam.auth.runner_tokens import RunnerTokens
from vteam.errors import Unauthorized

ADMIN_USER = "admin"
SESSION_COOKIE = "vteam_session"
ADMIN_TOKEN_ID = "admin-token"  # noqa: S105 - the id audit records name, not a secret


class EmbeddedAuthenticator:
    def __init__(
        self,
        runner_tokens: RunnerTokens,
        accounts: Accounts,
        *,
        admin_token: str | None = None,
        trust_proxy: bool = False,
        admin_groups: tuple[str, ...] = (),
    ) -> None:
        self._runner_tokens = runner_tokens
        self._accounts = accounts
        self._admin_hash = hashlib.sha256(admin_token.encode()).digest() if admin_token else None
        self._trust_proxy = trust_proxy
        self._admin_groups = set(admin_groups)

    async def authenticate(self, headers: Mapping[str, str], session_cookie: str | None) -> Identity:
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("the Authorization header must be 'Bearer <token>'")
            return await self._bearer(token.strip())
        if self._trust_proxy and headers.get("x-forwarded-user"):
            return self._forwarded(headers)
        if session_cookie:
            record = await self._accounts.verify(session_cookie, kind="session")
            return await self._person(record.user or "", record.id, via="cookie")
        return NOBODY

    async def _bearer(self, token: str) -> Identity:
        if RunnerTokens.looks_like(token):
            claim = self._runner_tokens.verify(token)
            return Identity(
                name=f"runner:{claim.project}/{claim.session}",
                kind="runner",
                project=claim.project,
                session=claim.session,
                session_uid=claim.uid,
            )
        digest = hashlib.sha256(token.encode()).digest()
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Identity(name=ADMIN_USER, admin=True, token_id=ADMIN_TOKEN_ID)
        if not Accounts.looks_like(token):
            raise Unauthorized("the token is not one vTeam issued")
        record = await self._accounts.verify(token)
        if record.kind == "key":
            return Identity(
                name=f"key:{record.project}/{record.name}",
                kind="key",
                project=record.project,
                role=record.role,
                token_id=record.id,
            )
        if record.kind != "api":
            raise Unauthorized("this kind of token does not work as a bearer token")
        return await self._person(record.user or "", record.id)

    async def _person(self, name: str, token_id: str, *, via: Literal["bearer", "cookie"] = "bearer") -> Identity:
        user = await self._accounts.get_user(name)
        if user is None:
            raise Unauthorized("the token's user no longer exists")
        return Identity(name=user.name, admin=user.admin, token_id=token_id, via=via)

    def _forwarded(self, headers: Mapping[str, str]) -> Identity:
        """A proxy's forwarded person. These headers arrive only from a proxy that proved itself with
        `VTEAM_PROXY_SECRET` (`api.middleware.ProxyHeaders` drops everyone else's), so groups, and admin
        through them, come only from an authenticated proxy."""
        name = headers.get("x-forwarded-user", "").strip()
        groups = tuple(g.strip() for g in headers.get("x-forwarded-groups", "").split(",") if g.strip())
        return Identity(
            name=name,
            groups=groups,
            admin=bool(self._admin_groups & set(groups)),
            access_token=headers.get("x-forwarded-access-token") or None,
            via="proxy",
        )
