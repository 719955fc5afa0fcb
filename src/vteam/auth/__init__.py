"""Identity, authentication and runner tokens (roles, secrets and audit come with multi-tenancy)."""

from vteam.auth.identity import LOCAL_USER, Authenticator, Identity
from vteam.auth.keys import load_or_create
from vteam.auth.local import LocalAuthenticator
from vteam.auth.runner_tokens import RunnerClaim, RunnerTokens

__all__ = [
    "LOCAL_USER",
    "Authenticator",
    "Identity",
    "LocalAuthenticator",
    "RunnerClaim",
    "RunnerTokens",
    "load_or_create",
]
