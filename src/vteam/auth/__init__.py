"""Identity, authentication, runner tokens and the secrets vault (roles and audit come with multi-tenancy)."""

from vteam.auth.identity import LOCAL_USER, Authenticator, Identity
from vteam.auth.keys import load_or_create
from vteam.auth.local import LocalAuthenticator
from vteam.auth.runner_tokens import RunnerClaim, RunnerTokens
from vteam.auth.vault import SecretInfo, SecretUnreadable, Vault

__all__ = [
    "LOCAL_USER",
    "Authenticator",
    "Identity",
    "LocalAuthenticator",
    "RunnerClaim",
    "RunnerTokens",
    "SecretInfo",
    "SecretUnreadable",
    "Vault",
    "load_or_create",
]
