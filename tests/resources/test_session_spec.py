"""AgenticSession and SessionSpec validation of camelCase wire documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from vteam.resources import AgenticSession, Phase, SessionSpec, status_patch

REPO = "https://github.com/org/repo"


def spec(**fields: Any) -> dict[str, Any]:
    return {"prompt": "fix the tests", **fields}


def repo(url: str = REPO, branch: str | None = "main", output: dict[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": {"url": url, "branch": branch}}
    if output is not None:
        entry["output"] = output
    return entry


def test_minimal_spec_gets_documented_defaults() -> None:
    parsed = SessionSpec.model_validate(spec())
    assert parsed.timeout == 1800
    assert parsed.mode == "batch"
    assert parsed.interactive is False
    assert parsed.main_repo_index == 0
    assert parsed.repos == []


def test_main_repo_index_out_of_range_names_the_count() -> None:
    with pytest.raises(ValidationError, match=r"mainRepoIndex 2 is out of range: there are 2 repos"):
        SessionSpec.model_validate(spec(repos=[repo(), repo("/srv/other")], mainRepoIndex=2))
    with pytest.raises(ValidationError, match=r"mainRepoIndex 1 is out of range: there is 1 repo "):
        SessionSpec.model_validate(spec(repos=[repo()], mainRepoIndex=1))


def test_main_repo_index_in_range_is_kept() -> None:
    parsed = SessionSpec.model_validate(spec(repos=[repo(), repo("/srv/other")], mainRepoIndex=1))
    assert parsed.main_repo_index == 1


def test_main_repo_index_without_repos_is_rejected() -> None:
    with pytest.raises(ValidationError, match="mainRepoIndex must be 0 when the session has no repos"):
        SessionSpec.model_validate(spec(mainRepoIndex=1))


@pytest.mark.parametrize("timeout", [0, -5, 86401])
def test_timeout_outside_one_second_to_a_day_is_rejected(timeout: int) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        SessionSpec.model_validate(spec(timeout=timeout))


def test_timeout_of_exactly_a_day_is_allowed() -> None:
    assert SessionSpec.model_validate(spec(timeout=86400)).timeout == 86400


def test_pushing_to_the_input_branch_of_the_same_repo_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"repos\[0\]\.output\.targetBranch 'main' is the input branch"):
        SessionSpec.model_validate(spec(repos=[repo(output={"url": REPO, "targetBranch": "main"})]))


def test_same_repo_check_ignores_a_trailing_slash() -> None:
    with pytest.raises(ValidationError, match="allowDefaultBranch"):
        SessionSpec.model_validate(spec(repos=[repo(output={"url": REPO + "/", "targetBranch": "main"})]))


def test_pushing_to_the_input_branch_is_allowed_on_purpose() -> None:
    parsed = SessionSpec.model_validate(
        spec(repos=[repo(output={"url": REPO, "targetBranch": "main", "allowDefaultBranch": True})])
    )
    assert parsed.repos[0].output is not None
    assert parsed.repos[0].output.target_branch == "main"


def test_same_branch_name_in_a_different_output_repo_is_allowed() -> None:
    parsed = SessionSpec.model_validate(
        spec(repos=[repo(output={"url": "https://github.com/fork/repo", "targetBranch": "main"})])
    )
    assert parsed.repos[0].work_branch("s1") == "main"


def test_work_branch_defaults_to_a_vteam_branch() -> None:
    parsed = SessionSpec.model_validate(spec(repos=[repo(output={"url": REPO})]))
    assert parsed.repos[0].work_branch("my-session") == "vteam/my-session"


def test_interactive_without_mode_means_interactive_mode() -> None:
    assert SessionSpec.model_validate(spec(interactive=True)).mode == "interactive"


def test_interactive_with_batch_mode_is_rejected() -> None:
    with pytest.raises(ValidationError, match="interactive: true goes with mode 'interactive'"):
        SessionSpec.model_validate(spec(interactive=True, mode="batch"))


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValidationError, match="mode"):
        SessionSpec.model_validate(spec(mode="eager"))


def test_environment_with_reserved_name_is_rejected() -> None:
    with pytest.raises(ValidationError, match="'VTEAM_TOKEN' is reserved"):
        SessionSpec.model_validate(spec(environment={"DEBUG": "1", "VTEAM_TOKEN": "x"}))


def test_environment_with_ordinary_names_is_kept() -> None:
    assert SessionSpec.model_validate(spec(environment={"DEBUG": "1"})).environment == {"DEBUG": "1"}


def test_bad_repo_url_and_branch_are_rejected_inside_the_spec() -> None:
    with pytest.raises(ValidationError, match="remote helper"):
        SessionSpec.model_validate(spec(repos=[repo(url="ext::sh -c id")]))
    with pytest.raises(ValidationError, match=r"branch name 'a\.\.b' is not valid"):
        SessionSpec.model_validate(spec(repos=[repo(branch="a..b")]))
    with pytest.raises(ValidationError, match="branch name 'x/' is not valid"):
        SessionSpec.model_validate(spec(repos=[repo(output={"url": REPO, "targetBranch": "x/"})]))


@pytest.mark.parametrize(
    "wire",
    [
        spec(promt="typo"),
        spec(main_repo_idx=0),
        spec(repos=[{"input": {"url": REPO, "ref": "main"}}]),
        spec(repos=[{"input": {"url": REPO}, "output": {"url": REPO, "force": True}}]),
    ],
)
def test_unknown_fields_are_rejected(wire: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SessionSpec.model_validate(wire)


def session_doc(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": "fix-tests", "namespace": "team-a", "labels": {"app": "web"}},
        "spec": spec(repos=[repo()], mainRepoIndex=0, displayName="Fix"),
        **extra,
    }


def test_agentic_session_from_wire_and_back() -> None:
    session = AgenticSession.model_validate(session_doc())
    assert session.key == ("team-a", "fix-tests")
    assert session.phase is Phase.PENDING
    wire = session.wire()
    assert wire["spec"]["mainRepoIndex"] == 0
    assert wire["spec"]["displayName"] == "Fix"
    assert "main_repo_index" not in wire["spec"]
    assert AgenticSession.model_validate(wire) == session


def test_agentic_session_rejects_unknown_top_level_field_and_bad_name() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AgenticSession.model_validate(session_doc(specs={}))
    doc = session_doc()
    doc["metadata"]["name"] = "Fix_Tests"
    with pytest.raises(ValidationError, match="DNS-1123"):
        AgenticSession.model_validate(doc)


def test_agentic_session_rejects_another_kind() -> None:
    with pytest.raises(ValidationError, match="kind"):
        AgenticSession.model_validate(session_doc(kind="Project"))


def test_status_patch_returns_only_given_fields_in_wire_form() -> None:
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    patch = status_patch(phase=Phase.RUNNING, start_time=start, agent_status="working")
    assert patch == {"phase": "Running", "startTime": "2025-01-02T03:04:05Z", "agentStatus": "working"}


def test_status_patch_can_clear_a_field() -> None:
    assert status_patch(message=None) == {"message": None}


@pytest.mark.parametrize(
    "fields",
    [{"phase": "Exploded"}, {"phase": "running"}, {"agent_status": "sleeping"}, {"start_time": "not a time"}],
)
def test_status_patch_rejects_invalid_values(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        status_patch(**fields)
