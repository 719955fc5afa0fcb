"""AgenticSession: one run of an agent framework against one or more repositories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from vteam.policy import links
from vteam.resources import validation
from vteam.resources.meta import CamelModel, Resource
from vteam.resources.phases import Phase

REPORTED = "RunnerReported"
"""Condition a runner sets with its final report, so a failure message is known to be its own."""

MAX_TIMEOUT = 24 * 3600
ENVIRONMENT_MAX_BYTES = 100_000
"""A session's `environment` in bytes: an exec's environment is bounded, and one string of it at 128 KiB."""
DEFAULT_TIMEOUT = 1800

AgentStatus = Literal["working", "waiting_input", "idle"]
Mode = Literal["interactive", "batch", "background"]


def _checked(check: Callable[[str], None]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        check(value)
        return value

    return validate


STORED: dict[str, Any] = {"stored": True}
"""Validation context for what a store (or the server, to its runner) hands back: a repository URL stored
under older, looser rules still loads, so one old session cannot break a project's listing; the runner
applies the repository policy again before git runs, and refuses it there."""


def _repo_url(value: str, info: ValidationInfo) -> str:
    if not (info.context or {}).get("stored"):
        validation.check_repo_url(value)
    return value


RepoUrl = Annotated[str, AfterValidator(_repo_url)]
BranchName = Annotated[str, AfterValidator(_checked(validation.check_branch))]
WebLink = Annotated[str, AfterValidator(links.check_link)]
"""A URL the web UI puts in an `href`: http or https only (see `vteam.policy.links`)."""


class RepoInput(CamelModel):
    url: RepoUrl
    branch: BranchName | None = None


class RepoOutput(CamelModel):
    url: RepoUrl
    target_branch: BranchName | None = None
    auto_commit: bool = True
    create_pull_request: bool = False
    draft: bool = Field(False, description="Open the pull request as a draft.")
    pull_request_base: BranchName | None = Field(
        None, description="The branch the pull request targets; default: the branch the work started from."
    )
    merge_method: Literal["merge", "squash", "rebase"] = Field(
        "merge", description="How the pull request should be merged; falls back to one the repository allows."
    )
    allow_default_branch: bool = Field(
        False, description="Allow pushing straight to the input's branch of the same repository."
    )


class SessionRepo(CamelModel):
    input: RepoInput
    output: RepoOutput | None = None

    def work_branch(self, session_name: str) -> str:
        if self.output and self.output.target_branch:
            return self.output.target_branch
        return f"vteam/{session_name}"


class SessionSpec(CamelModel):
    prompt: str = Field(min_length=1, max_length=200_000)
    display_name: str | None = Field(None, max_length=200)
    repos: list[SessionRepo] = Field(default_factory=list, max_length=20)
    main_repo_index: int = Field(0, ge=0)
    framework: str = Field("script", min_length=1, max_length=63)
    model: str | None = Field(None, max_length=200)
    timeout: int = Field(DEFAULT_TIMEOUT, ge=1, le=MAX_TIMEOUT, description="Seconds, at most 24 h.")
    max_turns: int | None = Field(None, ge=1, le=10_000, description="Most model turns an agent may take per run.")
    budget_usd: float | None = Field(None, gt=0, description="Most an agent may spend per run, where it reports cost.")
    interactive: bool = False
    idle_timeout: int | None = Field(
        None, ge=1, le=MAX_TIMEOUT, description="Seconds an interactive session waits for input before it ends."
    )
    mode: Mode = "batch"
    environment: dict[str, str] = Field(default_factory=dict)
    parent_session: str | None = None

    @field_validator("prompt", "display_name", "model")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            validation.check_text(value, to_camel(info.field_name or "text"))
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        size = 0
        for name, text in value.items():
            validation.check_env_name(name)
            validation.check_text(text, f"environment variable {name}")
            size += len(name.encode()) + len(text.encode()) + 2
        if size > ENVIRONMENT_MAX_BYTES:
            raise ValueError(
                f"environment holds {size:,} bytes; at most {ENVIRONMENT_MAX_BYTES:,} (names and values, UTF-8) "
                "fit beside the agent's own environment"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SessionSpec:
        if self.repos and self.main_repo_index >= len(self.repos):
            raise ValueError(
                f"mainRepoIndex {self.main_repo_index} is out of range: "
                f"there {'is' if len(self.repos) == 1 else 'are'} {len(self.repos)} "
                f"repo{'' if len(self.repos) == 1 else 's'} (indexes start at 0)"
            )
        if not self.repos and self.main_repo_index:
            raise ValueError("mainRepoIndex must be 0 when the session has no repos")
        if self.interactive and "mode" not in self.model_fields_set:
            self.mode = "interactive"
        if self.interactive != (self.mode == "interactive"):
            raise ValueError("interactive: true goes with mode 'interactive', and only with it")
        for index, repo in enumerate(self.repos):
            out = repo.output
            if out is None or out.allow_default_branch or out.target_branch is None:
                continue
            if validation.same_repository(out.url, repo.input.url) and out.target_branch == repo.input.branch:
                raise ValueError(
                    f"repos[{index}].output.targetBranch {out.target_branch!r} is the input branch "
                    "of the same repository; pick a work branch, or set allowDefaultBranch: true "
                    "to push there on purpose"
                )
        return self


class Condition(CamelModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


class SessionResult(CamelModel):
    text: str | None = None
    turns: int | None = None
    usage: dict[str, float] = Field(default_factory=dict)
    cost_usd: float | None = None


class FileStat(CamelModel):
    path: str
    insertions: int
    deletions: int


class DiffStat(CamelModel):
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    files: list[FileStat] = Field(default_factory=list)


class PullRequestStatus(CamelModel):
    """One pull request (GitHub) or merge request (GitLab) of a session's change set."""

    url: WebLink
    number: int
    forge: str
    repo: str
    head: str
    base: str
    state: str = "open"
    draft: bool = False
    title: str = ""
    merge_method: str | None = None
    merge_method_note: str | None = None
    head_repo: str | None = Field(None, description="The fork the branch was pushed to, when not the repo itself.")


class RepoStatus(CamelModel):
    url: str
    branch: str | None = None
    base_branch: str | None = Field(None, description="The branch the work started from, and its PR's base.")
    pushed: bool = False
    pushed_url: str | None = Field(None, description="Where the branch went: a fork's URL when pushed to a fork.")
    commit_sha: str | None = None
    diffstat: DiffStat | None = None
    pull_request_url: str | None = None
    pull_request: PullRequestStatus | None = None
    submodule_of: int | None = Field(None, description="Index of the repo this submodule belongs to.")
    path: str | None = Field(None, description="The submodule's path inside its parent repo.")
    note: str | None = Field(None, description="Why no pull request was opened, when none could be.")
    error: str | None = None

    @field_validator("pull_request_url", mode="before")
    @classmethod
    def _linkable_url(cls, value: Any) -> Any:
        """A URL that may not become a link is never kept (a status stored before this check included)."""
        return value if value is None or links.is_safe_link(value) else None

    @field_validator("pull_request", mode="before")
    @classmethod
    def _linkable_pull(cls, value: Any) -> Any:
        url = value.get("url") if isinstance(value, dict) else getattr(value, "url", None)
        return value if value is None or links.is_safe_link(url) else None


class SessionStatus(CamelModel):
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    message: str | None = None
    agent_status: AgentStatus | None = None
    result: SessionResult | None = None
    repos: list[RepoStatus] = Field(default_factory=list)
    conversation_id: str | None = None
    """The framework's own conversation id, which a continued session resumes where it can."""
    observed_generation: int | None = None


class AgenticSession(Resource):
    KIND: ClassVar[str] = "AgenticSession"

    kind: Literal["AgenticSession"] = "AgenticSession"
    spec: SessionSpec
    status: SessionStatus = Field(default_factory=SessionStatus)

    @property
    def phase(self) -> Phase:
        return self.status.phase

    @property
    def key(self) -> tuple[str, str]:
        return (self.metadata.namespace or "", self.metadata.name)


def status_patch(**fields: Any) -> dict[str, Any]:
    """A status fragment in wire form, checked against SessionStatus, for `ResourceStore.patch_status`."""
    checked = SessionStatus.model_validate(fields)
    return {
        key: value
        for key, value in checked.model_dump(mode="json", by_alias=True).items()
        if key in {SessionStatus.model_fields[name].alias for name in fields}
    }
