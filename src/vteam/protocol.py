"""The runner ↔ backend protocol, typed once for both sides: the environment the executor hands a runner,
the runner's status report, and the frames of its WebSocket.

The runner imports this module, so it stays free of server libraries (no FastAPI, no database driver).
A runner and a backend one release apart either speak the same `PROTOCOL_VERSION` or refuse each other
with `mismatch()`'s message, instead of failing later on a frame one of them does not understand.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vteam.resources import AgentStatus, CamelModel, Condition, RepoStatus, SessionResult

PROTOCOL_VERSION: Final = 1
"""Raised whenever a frame or report changes in a way the other side cannot read."""

SUPPORTED: Final = frozenset({PROTOCOL_VERSION})
"""The runner protocols this backend speaks."""

PROTOCOL_HEADER: Final = "Vteam-Runner-Protocol"
"""Sent by the runner on its WebSocket handshake (and its HTTP calls): the protocol it speaks."""

FEATURES_HEADER: Final = "Vteam-Runner-Features"
"""Sent by the runner on its WebSocket handshake: the optional frames it can use, comma-separated. Features
are how a runner and a backend one release apart agree on more within one `PROTOCOL_VERSION`."""

BATCH: Final = "batch"
"""The feature of sending events in batches, `{"events": [envelope, ...]}`, each acknowledged by its highest seq."""

REFUSED_CLOSE_CODE: Final = 4409
"""The WebSocket close code of a protocol refusal after the handshake; the reason carries the message."""


class Env:
    """Every environment variable the executor hands a runner, by the name both sides use."""

    SERVER: Final = "VTEAM_SERVER"
    PROJECT: Final = "VTEAM_PROJECT"
    SESSION: Final = "VTEAM_SESSION"
    SESSION_UID: Final = "VTEAM_SESSION_UID"
    RUNNER_TOKEN: Final = "VTEAM_RUNNER_TOKEN"  # noqa: S105 - a variable name, not a password
    WORKSPACE: Final = "VTEAM_WORKSPACE"
    SECRETS_FD: Final = "VTEAM_SECRETS_FD"
    SECRET_PREFIX: Final = "VTEAM_SECRET_"  # noqa: S105 - how the runner tells an agent's secrets from the rest
    AGENT_ENV_PREFIX: Final = "VTEAM_AGENT_ENV_"
    GIT_TOKEN: Final = "VTEAM_GIT_TOKEN"  # noqa: S105
    GIT_USERNAME: Final = "VTEAM_GIT_USERNAME"
    GIT_SSH_KEY_FILE: Final = "VTEAM_GIT_SSH_KEY_FILE"
    GIT_TOKEN_HOSTS: Final = "VTEAM_GIT_TOKEN_HOSTS"  # noqa: S105
    GIT_AUTHOR_NAME: Final = "VTEAM_GIT_AUTHOR_NAME"
    GIT_AUTHOR_EMAIL: Final = "VTEAM_GIT_AUTHOR_EMAIL"
    RECONNECT_SECONDS: Final = "VTEAM_RUNNER_RECONNECT_SECONDS"
    IDLE_TIMEOUT_SECONDS: Final = "VTEAM_IDLE_TIMEOUT_SECONDS"
    STALL_TIMEOUT_SECONDS: Final = "VTEAM_STALL_TIMEOUT_SECONDS"
    RESUME_CONVERSATION: Final = "VTEAM_RESUME_CONVERSATION"
    RESUME_HOME: Final = "VTEAM_RESUME_HOME"
    ISOLATION: Final = "VTEAM_ISOLATION"
    SANDBOX_HIDE: Final = "VTEAM_SANDBOX_HIDE"
    SANDBOX_ALLOW_HOSTS: Final = "VTEAM_SANDBOX_ALLOW_HOSTS"
    REPO_LOCAL_ROOTS: Final = "VTEAM_REPO_LOCAL_ROOTS"
    REPO_ANY_LOCAL: Final = "VTEAM_REPO_ANY_LOCAL"
    REPO_FORBIDDEN_ROOTS: Final = "VTEAM_REPO_FORBIDDEN_ROOTS"
    REPO_ALLOW_HOSTS: Final = "VTEAM_REPO_ALLOW_HOSTS"
    REPO_SERVICE_RANGES: Final = "VTEAM_REPO_SERVICE_RANGES"

    PREFIX: Final = "VTEAM_"
    """Everything the executor hands over starts with it; the runner drops it all from its environment."""
    REQUIRED: Final = (SERVER, PROJECT, SESSION, RUNNER_TOKEN)
    SECRETS: Final = (RUNNER_TOKEN, GIT_TOKEN)
    """The values that travel as secrets (over a pipe locally, from a Secret in cluster mode), with SECRET_PREFIX."""

    @classmethod
    def is_secret(cls, name: str) -> bool:
        return name in cls.SECRETS or name.startswith(cls.SECRET_PREFIX)


class UnsupportedProtocol(ValueError):
    """The other side speaks a runner protocol this one does not."""


def mismatch(runner: int, backend: int) -> str:
    """The one message both sides show when their protocols differ, saying which side to upgrade."""
    side = "the runner image" if runner < backend else "the backend"
    return (
        f"runner protocol {runner} is not supported by this backend ({backend}); "
        f"upgrade {side} so both come from the same vTeam release"
    )


def offered(header: str | None) -> frozenset[str]:
    """The features a runner names in its `FEATURES_HEADER`; unknown ones are for a newer backend to take up."""
    return frozenset(name.strip() for name in (header or "").split(",") if name.strip())


def check(runner: int) -> None:
    """Refuse a runner protocol this backend does not speak."""
    if runner not in SUPPORTED:
        raise UnsupportedProtocol(mismatch(runner, PROTOCOL_VERSION))


class RunnerReport(CamelModel):
    """What a runner reports about its own session (`POST …/runner/status`)."""

    phase: Literal["Running"] | None = None
    agent_status: AgentStatus | None = None
    message: str | None = Field(None, max_length=20_000)
    result: SessionResult | None = None
    repos: list[RepoStatus] | None = None
    conditions: list[Condition] | None = None
    conversation_id: str | None = Field(None, max_length=200)
    final: bool = False

    @field_validator("repos")
    @classmethod
    def _no_pull_requests(cls, repos: list[RepoStatus] | None) -> list[RepoStatus] | None:
        """Pull requests are the server's own record, from the forge's answer when it opens them: whatever a
        runner says about them is dropped, so a runner cannot plant a link on the session's pages."""
        if repos is None:
            return None
        return [r.model_copy(update={"pull_request": None, "pull_request_url": None}) for r in repos]


class Frame(BaseModel):
    """A WebSocket control frame; fields a newer peer adds within the same protocol are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class BatchLimits(Frame):
    """What one `{"events": [...]}` frame may hold, as the backend reads it; a larger one closes the socket."""

    max_events: int = Field(ge=1, alias="maxEvents")
    max_bytes: int = Field(ge=1, alias="maxBytes")


class Hello(Frame):
    """Backend → runner, first: the protocol the backend speaks and the runner's highest stored seq.

    A backend from before protocols were numbered sends no `protocol`; it spoke what is now version 1.
    `batch` is there only when the runner offered the `batch` feature and the backend takes batches: without it
    (an older backend) the runner sends each event on its own frame(s).
    """

    protocol: int = 1
    last_seq: int = Field(0, ge=0, alias="lastSeq")
    batch: BatchLimits | None = None


class ControlAfter(Frame):
    """Runner → backend, first: the protocol the runner speaks and the control cursor it has consumed."""

    protocol: int = 1
    control_after: int = Field(0, ge=0, alias="controlAfter")


class Ack(Frame):
    """Backend → runner: every event up to `ack` is stored."""

    ack: int = Field(ge=0)


class Control(Frame):
    """Backend → runner: a user message, interrupt or end, as the stored envelope (seq, ts, type, data)."""

    control: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.control["seq"])


def server_frame(message: dict[str, Any]) -> Hello | Ack | Control | None:
    """A frame the backend sent after its hello, or None for one this protocol does not know."""
    if "ack" in message:
        return Ack.model_validate(message)
    if "control" in message:
        return Control.model_validate(message)
    return None
