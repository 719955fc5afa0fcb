"""Identity, authentication, roles, accounts and tokens, runner tokens, the secrets vault and the audit log."""

from vteam.auth.accounts import Accounts, Binding, Token, User
from vteam.auth.audit import AuditLog, AuditRecord, Verification
from vteam.auth.csrf import CsrfTokens
from vteam.auth.embedded import ADMIN_USER, SESSION_COOKIE, EmbeddedAuthenticator
from vteam.auth.identity import ANONYMOUS, NOBODY, Authenticator, Identity
from vteam.auth.keys import load_or_create
from vteam.auth.roles import Role
from vteam.auth.runner_tokens import RunnerClaim, RunnerTokens
from vteam.auth.vault import Room, SecretInfo, SecretsFull, SecretUnreadable, Vault

__all__ = [
    "ADMIN_USER",
    "ANONYMOUS",
    "NOBODY",
    "SESSION_COOKIE",
    "Accounts",
    "AuditLog",
    "AuditRecord",
    "Authenticator",
    "Binding",
    "CsrfTokens",
    "EmbeddedAuthenticator",
    "Identity",
    "Role",
    "Room",
    "RunnerClaim",
    "RunnerTokens",
    "SecretInfo",
    "SecretUnreadable",
    "SecretsFull",
    "Token",
    "User",
    "Vault",
    "Verification",
    "load_or_create",
]
