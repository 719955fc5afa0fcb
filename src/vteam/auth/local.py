"""Embedded mode's authenticator for now: one local user, plus per-session runner tokens."""

from __future__ import annotations

from vteam.auth.identity import LOCAL_USER, Identity
from vteam.auth.runner_tokens import RunnerTokens
from vteam.errors import Unauthorized


class LocalAuthenticator:
    def __init__(self, runner_tokens: RunnerTokens) -> None:
        self._runner_tokens = runner_tokens

    def authenticate(self, authorization: str | None) -> Identity:
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized("Authorization header must be 'Bearer <token>'")
            if RunnerTokens.looks_like(token):
                claim = self._runner_tokens.verify(token)
                return Identity(
                    name=f"runner:{claim.project}/{claim.session}",
                    kind="runner",
                    project=claim.project,
                    session=claim.session,
                    session_uid=claim.uid,
                )
        return Identity(name=LOCAL_USER, groups=("vteam:admins",))
