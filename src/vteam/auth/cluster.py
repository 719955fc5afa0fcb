"""Cluster mode's identity and access: Kubernetes tokens are identities, Kubernetes RBAC is the authority.

A bearer token vTeam did not issue is asked about with a TokenReview; a caller's role in a project is what
SelfSubjectAccessReviews sent with the caller's own token allow there. Answers are kept briefly, so a page
that makes ten calls costs one round of reviews, while a revoked binding stops working within seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from vteam.auth.embedded import EmbeddedAuthenticator
from vteam.auth.identity import Identity
from vteam.auth.roles import Role
from vteam.auth.runner_tokens import RunnerTokens
from vteam.errors import Unauthorized
from vteam.kube import ApiException, KubeApi, KubeClients, translate

V = TypeVar("V")
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Check:
    """One question for a SelfSubjectAccessReview: may the caller `verb` `resource` in the project?"""

    verb: str
    resource: str


ROLE_CHECKS: tuple[tuple[Role, Check], ...] = (
    (Role.ADMIN, Check("update", "projectsettings")),
    (Role.EDIT, Check("create", "agenticsessions")),
    (Role.VIEW, Check("get", "agenticsessions")),
)
"""What each role may do that the one below may not: the ClusterRoles vteam-project-{view,edit,admin} grant it."""


class TtlCache(Generic[V]):
    """Answers by key for `ttl` seconds, the least recently used dropped past `size`; keys are digests, never
    tokens."""

    def __init__(self, ttl: float, size: int = CACHE_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    async def get(self, key: str, compute: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        held = self._items.get(key)
        if held is not None and held[0] > now:
            self._items.move_to_end(key)
            return held[1]
        value = await compute()
        if self._ttl > 0:
            self._items[key] = (now + self._ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KubeAccess:
    """Roles by SelfSubjectAccessReview with the caller's own token, and identities by TokenReview."""

    def __init__(self, platform: KubeClients, *, ttl: float, admin_groups: tuple[str, ...] = ()) -> None:
        self._platform = platform
        self._roles: TtlCache[Role | None] = TtlCache(ttl)
        self._people: TtlCache[Identity | None] = TtlCache(ttl)
        self._admin_groups = set(admin_groups)

    async def role_of(self, token: str, project: str) -> Role | None:
        return await self._roles.get(f"{digest(token)}/{project}", lambda: self._review_roles(token, project))

    async def _review_roles(self, token: str, project: str) -> Role | None:
        user = self._platform.as_user(token)
        try:
            answers = await asyncio.gather(*(self._allowed(KubeApi(user), check, project) for _, check in ROLE_CHECKS))
        finally:
            await user.close()
        for (role, _), allowed in zip(ROLE_CHECKS, answers, strict=True):
            if allowed:
                return role
        return None

    async def _allowed(self, user: KubeApi, check: Check, project: str) -> bool:
        try:
            return await user.may(check.verb, check.resource, project)
        except ApiException as exc:
            if exc.status == 401:
                raise Unauthorized("the Kubernetes API did not accept your token") from None
            raise translate(exc, "an access review") from None

    async def identify(self, token: str) -> Identity | None:
        """The person a Kubernetes token belongs to, or None when the API server does not know it."""
        return await self._people.get(digest(token), lambda: self._review_token(token))

    async def _review_token(self, token: str) -> Identity | None:
        try:
            user = await KubeApi(self._platform).review_token(token)
        except ApiException as exc:
            raise translate(exc, "a token review") from None
        if user is None:
            return None
        return Identity(
            name=user.name,
            groups=user.groups,
            admin=bool(self._admin_groups & set(user.groups)),
            access_token=token,
        )


class ClusterAuthenticator:
    """vTeam's own credentials first (runner tokens, the admin token, API tokens, browser sessions, a trusted
    proxy's headers), then a Kubernetes bearer token, which the API server vouches for."""

    def __init__(self, embedded: EmbeddedAuthenticator, access: KubeAccess) -> None:
        self._embedded = embedded
        self._access = access

    async def authenticate(self, headers: Mapping[str, str], session_cookie: str | None) -> Identity:
        try:
            identity = await self._embedded.authenticate(headers, session_cookie)
        except Unauthorized:
            token = _bearer(headers)
            if token is None or RunnerTokens.looks_like(token) or token.startswith("vt_"):
                raise
            return await self._vouched(token)
        if identity.kind == "user" and identity.token_id is None and not identity.is_anonymous:
            return await self._forwarded(identity)
        return identity

    async def _vouched(self, token: str) -> Identity:
        person = await self._access.identify(token)
        if person is None:
            raise Unauthorized("the Kubernetes API server does not know this token")
        return person

    async def _forwarded(self, claimed: Identity) -> Identity:
        """A proxy's forwarded person: name and groups come from the API server's review of the forwarded token,
        never from headers, which a proxy such as OpenShift's oauth-proxy passes through from the client."""
        if not claimed.access_token:
            return Identity(name=claimed.name)
        person = await self._vouched(claimed.access_token)
        if person.name != claimed.name:
            raise Unauthorized("the forwarded user and the forwarded token's user differ")
        return person


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
