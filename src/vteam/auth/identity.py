"""Who is calling: a person, a project's access key, or a session's runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from vteam.auth.roles import Role

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    name: str
    kind: Literal["user", "key", "runner", "anonymous"] = "user"
    groups: tuple[str, ...] = field(default_factory=tuple)
    admin: bool = False
    """A platform admin: every role in every project."""
    project: str | None = None
    """The one project an access key or a runner token is for."""
    role: Role | None = None
    """An access key's role in its project."""
    session: str | None = None
    session_uid: str | None = None
    token_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    """The caller's own token from a trusted OAuth proxy (X-Forwarded-Access-Token), for acting as them
    against the cluster's API; never stored or logged."""
    via: Literal["bearer", "cookie", "proxy", "none"] = "bearer"
    """How the caller proved who they are: a bearer token, the browser's session cookie, a trusted proxy's
    forwarded headers, or nothing. A cookie alone may not mint bearer credentials (`edge.deps.Issuer`)."""

    @property
    def is_runner(self) -> bool:
        return self.kind == "runner"

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def principal(self) -> str:
        """Who is behind the credential, for per-caller limits: a person's many tokens count as one person,
        each access key as itself, and each session's runner as itself."""
        if self.kind == "key":
            return f"key:{self.token_id}"
        if self.kind == "runner":
            return f"runner:{self.session_uid}"
        return f"{self.kind}:{self.name}"


NOBODY = Identity(name=ANONYMOUS, kind="anonymous", via="none")


class Authenticator(Protocol):
    """Turn a request's credentials into an Identity: NOBODY when it brings none, Unauthorized when they are bad."""

    async def authenticate(self, headers: Mapping[str, str], session_cookie: str | None) -> Identity: ...
