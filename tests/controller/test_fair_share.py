"""Issue 24: a project's share of the running slots, and the message a session waiting for it carries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vteam.controller.executor import NO_RUNNER
from vteam.controller.reconcile import QUEUED, Action, decide, project_limit, project_queued
from vteam.resources import AgenticSession


@pytest.mark.parametrize(
    ("platform", "default", "own", "limit"),
    [(4, None, None, 2), (5, None, None, 3), (1, None, None, 1), (8, 6, None, 6), (8, 6, 1, 1), (4, None, 4, 4)],
)
def test_a_project_gets_half_the_platform_unless_told_otherwise(
    platform: int, default: int | None, own: int | None, limit: int
) -> None:
    assert project_limit(platform, default, own) == limit


def test_a_session_waiting_for_its_project_share_says_so() -> None:
    pending = AgenticSession.model_validate(
        {"metadata": {"name": "s", "namespace": "a"}, "spec": {"prompt": "x"}, "status": {"phase": "Pending"}}
    )
    now = datetime.now(UTC)
    why = project_queued("a", 2, 2)
    assert decide(pending, NO_RUNNER, now=now, capacity=False, why=why).message == why
    assert "project 'a' already runs 2 sessions" in why
    assert decide(pending, NO_RUNNER, now=now, capacity=False).message == QUEUED
    assert decide(pending, NO_RUNNER, now=now, capacity=True).action == Action.START
