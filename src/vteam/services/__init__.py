"""What a user can do, between the doors (api, web) and the machinery: keyword-only methods that take the
caller and return models, owning authorization, checks, audit records and the choice of store."""

from vteam.services.checks import SessionCheck, available_secrets, standard_checks
from vteam.services.sessions import ContinueIn, MessageIn, Sent, SessionLife, Sessions

__all__ = [
    "ContinueIn",
    "MessageIn",
    "Sent",
    "SessionCheck",
    "SessionLife",
    "Sessions",
    "available_secrets",
    "standard_checks",
]
