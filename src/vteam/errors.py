"""The one exception tree of vTeam; the API edge maps each type to an HTTP problem.

VteamError
├── NotFound            404: a resource or project does not exist (or is not visible)
├── AlreadyExists       409: a resource with that name exists
├── Conflict            409: a write raced another (stale resourceVersion)
├── InvalidInput        422: a request is well-formed JSON but its content is wrong
│   └── RepositoryRefused   422: a repository URL or path the repository policy does not allow
├── InvalidTransition   409: a phase change the phase rules forbid
├── Unauthorized        401: no or bad credentials
├── Forbidden           403: credentials are fine, the action is not allowed
│   └── IsolationRefused    403: no sandbox can be made here, and this session would need one
├── Expired             410: a watch asked for history that has been compacted
├── RateLimited         429: too many requests, here or at a forge; retry after `retry_after` seconds
└── Unavailable         502: a forge or other outside service failed or could not be reached
"""

from __future__ import annotations

from typing import Any


class VteamError(Exception):
    """Base of every error vTeam raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(VteamError):
    status = 404
    title = "Not found"


class AlreadyExists(VteamError):
    status = 409
    title = "Already exists"


class Conflict(VteamError):
    status = 409
    title = "Conflict"


class InvalidInput(VteamError):
    status = 422
    title = "Invalid input"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])
        self.errors = errors or []


class RepositoryRefused(InvalidInput):
    """The repository policy refused a URL or path: the message names the field and the reason, never a secret."""

    title = "Repository refused"

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(
            f"{field}: {reason}" if field else reason,
            errors=[{"loc": _loc(field) if field else [], "msg": reason, "type": "repository_refused"}],
        )
        self.reason = reason
        self.field = field


def _loc(field: str) -> list[str]:
    """`repos[0].input.url` as the API's problem details give a location: ["repos", "0", "input", "url"]."""
    return [part for part in field.replace("[", ".").replace("]", "").split(".") if part]


class InvalidTransition(VteamError):
    status = 409
    title = "Invalid phase transition"


class Unauthorized(VteamError):
    status = 401
    title = "Unauthorized"


class Forbidden(VteamError):
    status = 403
    title = "Forbidden"


class IsolationRefused(Forbidden):
    """No sandbox can be made on this machine and no operator chose to run agents unconfined: the message
    says why and what would let the session run."""

    title = "Isolation unavailable"


class Expired(VteamError):
    status = 410
    title = "Gone"


class RateLimited(VteamError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(VteamError):
    status = 502
    title = "Bad gateway"
