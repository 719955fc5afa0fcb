"""Who is calling: the identity seam that the multi-tenancy work fills in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

LOCAL_USER = "local-admin"


@dataclass(frozen=True)
class Identity:
    name: str
    kind: Literal["user", "runner"] = "user"
    groups: tuple[str, ...] = field(default_factory=tuple)
    project: str | None = None
    session: str | None = None
    session_uid: str | None = None

    @property
    def is_runner(self) -> bool:
        return self.kind == "runner"


class Authenticator(Protocol):
    """Turn a request's credentials into an Identity; raise Unauthorized when they are bad."""

    def authenticate(self, authorization: str | None) -> Identity: ...
