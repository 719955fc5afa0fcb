"""The controller's pure decision table: session phase + runner state -> next action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vteam.controller.executor import NO_RUNNER, RunnerState
from vteam.controller.reconcile import Action, decide
from vteam.resources import REPORTED, AgenticSession, Phase

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
ALIVE = RunnerState("running")
EXITED_OK = RunnerState("exited", exit_code=0, reason="exited with code 0")
EXITED_1 = RunnerState("exited", exit_code=1, reason="exited with code 1", log_tail="Traceback: boom")


def session(
    phase: Phase,
    *,
    started_ago: float | None = None,
    timeout: int = 1800,
    message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> AgenticSession:
    status: dict[str, Any] = {"phase": phase.value, "conditions": conditions or []}
    if started_ago is not None:
        status["startTime"] = (NOW - timedelta(seconds=started_ago)).isoformat()
    if message is not None:
        status["message"] = message
    return AgenticSession.model_validate(
        {
            "metadata": {"name": "s1", "namespace": "team-a"},
            "spec": {"prompt": "do it", "timeout": timeout},
            "status": status,
        }
    )


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED, Phase.STOPPED, Phase.TIMED_OUT])
def test_terminal_with_live_runner_kills_it(phase: Phase) -> None:
    assert decide(session(phase), ALIVE, now=NOW, capacity=True).action is Action.KILL


@pytest.mark.parametrize("runner", [NO_RUNNER, EXITED_OK, EXITED_1])
@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED, Phase.STOPPED, Phase.TIMED_OUT])
def test_terminal_without_live_runner_releases(phase: Phase, runner: RunnerState) -> None:
    decision = decide(session(phase), runner, now=NOW, capacity=True)
    assert decision.action is Action.RELEASE
    assert decision.phase is None


def test_stopping_with_live_runner_kills() -> None:
    assert decide(session(Phase.STOPPING), ALIVE, now=NOW, capacity=True).action is Action.KILL


@pytest.mark.parametrize("runner", [EXITED_1, NO_RUNNER])
def test_stopping_once_runner_is_gone_finishes_stopped(runner: RunnerState) -> None:
    decision = decide(session(Phase.STOPPING), runner, now=NOW, capacity=True)
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.STOPPED)
    assert decision.message == "stopped on request"


def test_stopping_keeps_the_stop_message() -> None:
    decision = decide(session(Phase.STOPPING, message="stopped by alice"), EXITED_1, now=NOW, capacity=True)
    assert decision.message == "stopped by alice"


def test_pending_with_capacity_starts() -> None:
    assert decide(session(Phase.PENDING), NO_RUNNER, now=NOW, capacity=True).action is Action.START


def test_pending_without_capacity_queues_with_a_reason() -> None:
    decision = decide(session(Phase.PENDING), NO_RUNNER, now=NOW, capacity=False)
    assert decision.action is Action.QUEUE
    assert decision.message is not None
    assert "queued" in decision.message


def test_pending_with_a_live_runner_does_not_start_a_second_one() -> None:
    assert decide(session(Phase.PENDING), ALIVE, now=NOW, capacity=True).action is Action.NOTHING


@pytest.mark.parametrize("phase", [Phase.RUNNING, Phase.CREATING])
def test_running_before_deadline_waits_until_the_deadline(phase: Phase) -> None:
    decision = decide(session(phase, started_ago=100, timeout=1800), ALIVE, now=NOW, capacity=True)
    assert decision.action is Action.NOTHING
    assert decision.requeue_after == pytest.approx(1700)


@pytest.mark.parametrize("started_ago", [1800, 1801, 99999])
def test_running_at_or_past_deadline_is_killed(started_ago: float) -> None:
    decision = decide(session(Phase.RUNNING, started_ago=started_ago, timeout=1800), ALIVE, now=NOW, capacity=True)
    assert decision.action is Action.KILL


def test_running_exit_zero_completes() -> None:
    decision = decide(session(Phase.RUNNING, started_ago=10), EXITED_OK, now=NOW, capacity=True)
    assert (decision.action, decision.phase, decision.message) == (Action.FINISH, Phase.COMPLETED, "completed")


def test_running_exit_zero_keeps_the_runners_message() -> None:
    decision = decide(
        session(Phase.RUNNING, started_ago=10, message="3 files changed"), EXITED_OK, now=NOW, capacity=True
    )
    assert (decision.phase, decision.message) == (Phase.COMPLETED, "3 files changed")


def test_running_non_zero_exit_past_deadline_times_out() -> None:
    decision = decide(session(Phase.RUNNING, started_ago=700, timeout=600), EXITED_1, now=NOW, capacity=True)
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.TIMED_OUT)
    assert decision.message == "timed out after 600 s"


def test_running_with_no_runner_fails_saying_the_runner_is_gone() -> None:
    decision = decide(session(Phase.RUNNING, started_ago=10), NO_RUNNER, now=NOW, capacity=True)
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.FAILED)
    assert decision.message is not None
    assert "runner is gone" in decision.message


def test_running_killed_runner_fails_with_reason_and_log_tail() -> None:
    runner = RunnerState(
        "exited", exit_code=-9, reason="was killed by signal SIGKILL", log_tail="step 3\nout of memory"
    )
    decision = decide(session(Phase.RUNNING, started_ago=10), runner, now=NOW, capacity=True)
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.FAILED)
    assert decision.message is not None
    assert "was killed by signal SIGKILL" in decision.message
    assert decision.message.endswith("step 3\nout of memory")


def test_running_failure_without_log_tail_has_just_the_reason() -> None:
    runner = RunnerState("exited", exit_code=2, reason="exited with code 2")
    decision = decide(session(Phase.RUNNING, started_ago=10), runner, now=NOW, capacity=True)
    assert decision.message == "runner exited with code 2"


def test_runner_reported_failure_message_is_used_verbatim() -> None:
    reported = [{"type": REPORTED, "status": "True", "reason": "AgentFailed"}]
    decision = decide(
        session(Phase.RUNNING, started_ago=10, message="agent crashed: no API key", conditions=reported),
        EXITED_1,
        now=NOW,
        capacity=True,
    )
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.FAILED)
    assert decision.message == "agent crashed: no API key"


def test_message_without_the_reported_condition_is_not_trusted_as_the_runners() -> None:
    not_reported = [{"type": REPORTED, "status": "False"}]
    decision = decide(
        session(Phase.RUNNING, started_ago=10, message="stale message", conditions=not_reported),
        EXITED_1,
        now=NOW,
        capacity=True,
    )
    assert decision.phase is Phase.FAILED
    assert decision.message is not None
    assert decision.message.startswith("runner exited with code 1")
    assert "Traceback: boom" in decision.message
