"""Runner Jobs and Pods, shaped as the Kubernetes API returns them, read as the runner's state.

Each case then goes through the same `decide()` the embedded controller uses, to check the phase and
message a user would see on the session.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from vteam.controller.executor import NO_RUNNER
from vteam.controller.job_state import deadline_exceeded, decision_time, finished, lingers, runner_state
from vteam.controller.reconcile import Action, decide
from vteam.resources import AgenticSession, Phase

JOB_UID = "0f6c1f0e-7d1a-4c55-9b39-1a1d2f6e8a10"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
IMAGE = "quay.io/ambient-code/vteam:0.1.0"


def job(conditions: list[dict[str, Any]] | None = None, *, active: int | None = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": "2025-06-01T11:50:00Z", "uncountedTerminatedPods": {}, "ready": 0}
    if active:
        status["active"] = active
    if conditions:
        status["conditions"] = conditions
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "fix-bug",
            "namespace": "team-a",
            "uid": JOB_UID,
            "resourceVersion": "48213",
            "generation": 1,
            "creationTimestamp": "2025-06-01T11:50:00Z",
            "labels": {"vteam.ambient-code/session": "fix-bug", "vteam.ambient-code/project": "team-a"},
        },
        "spec": {"activeDeadlineSeconds": 1800, "backoffLimit": 0, "completions": 1, "parallelism": 1},
        "status": status,
    }


def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": "2025-06-01T12:00:00Z",
        "lastTransitionTime": "2025-06-01T12:00:00Z",
        "reason": reason,
        "message": message,
    }


COMPLETE = [
    condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
    condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
]
DEADLINE = [
    condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),
    condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
]
BACKOFF = [
    condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
]


def pod(
    phase: str,
    state: dict[str, Any],
    *,
    reason: str | None = None,
    message: str | None = None,
    owner: str = JOB_UID,
    created: str = "2025-06-01T11:50:01Z",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "qosClass": "Burstable",
        "startTime": "2025-06-01T11:50:01Z",
        "containerStatuses": [
            {
                "name": "runner",
                "image": IMAGE,
                "imageID": "",
                "ready": "running" in state,
                "restartCount": 0,
                "started": "running" in state,
                "state": state,
            }
        ],
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "fix-bug-x7k2q",
            "namespace": "team-a",
            "uid": "5b0d4c0e-0000-4000-8000-000000000001",
            "creationTimestamp": created,
            "labels": {
                "batch.kubernetes.io/controller-uid": JOB_UID,
                "batch.kubernetes.io/job-name": "fix-bug",
                "vteam.ambient-code/session": "fix-bug",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "fix-bug",
                    "uid": owner,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "runner",
                    "image": IMAGE,
                    "resources": {"limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": "250m"}},
                }
            ],
        },
        "status": status,
    }


RUNNING = {"running": {"startedAt": "2025-06-01T11:50:03Z"}}
CREATING = {"waiting": {"reason": "ContainerCreating"}}


def terminated(code: int, reason: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2025-06-01T11:50:03Z",
        "finishedAt": "2025-06-01T11:59:58Z",
        "containerID": "containerd://4c1e",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


def session(phase: Phase = Phase.RUNNING, *, started_ago: float = 600, timeout: int = 1800) -> AgenticSession:
    return AgenticSession.model_validate(
        {
            "metadata": {"name": "fix-bug", "namespace": "team-a", "uid": "sess-uid"},
            "spec": {"prompt": "fix the bug", "timeout": timeout},
            "status": {"phase": phase.value, "startTime": (NOW - timedelta(seconds=started_ago)).isoformat()},
        }
    )


def outcome(job_obj: dict[str, Any] | None, pods: list[dict[str, Any]], s: AgenticSession | None = None) -> Any:
    s = s or session()
    return decide(s, runner_state(job_obj, pods), now=decision_time(s, job_obj, NOW), capacity=True)


def test_no_job_means_no_runner_and_a_running_session_fails_as_gone() -> None:
    assert runner_state(None, []) == NO_RUNNER
    decision = outcome(None, [])
    assert decision.phase is Phase.FAILED
    assert "runner is gone" in (decision.message or "")


def test_job_just_created_without_pods_is_alive() -> None:
    state = runner_state(job(active=None), [])
    assert state.alive
    assert outcome(job(active=None), []).action is Action.NOTHING


def test_pod_waiting_to_be_created_or_running_is_alive() -> None:
    assert runner_state(job(), [pod("Pending", CREATING)]).alive
    assert runner_state(job(), [pod("Running", RUNNING)]).alive


def test_pod_unschedulable_is_still_waiting_for_the_deadline() -> None:
    pending = pod("Pending", {})
    pending["status"].pop("containerStatuses")
    pending["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}
    ]
    assert runner_state(job(), [pending]).alive


def test_clean_exit_completes() -> None:
    done = job(COMPLETE, active=None)
    state = runner_state(done, [pod("Succeeded", terminated(0, "Completed"))])
    assert (state.state, state.exit_code) == ("exited", 0)
    assert finished(done)
    assert outcome(done, [pod("Succeeded", terminated(0, "Completed"))]).phase is Phase.COMPLETED


def test_job_complete_after_its_pods_were_cleaned_up_still_completes() -> None:
    assert outcome(job(COMPLETE, active=None), []).phase is Phase.COMPLETED


def test_pod_succeeded_before_the_job_noticed_completes() -> None:
    assert outcome(job(), [pod("Succeeded", terminated(0, "Completed"))]).phase is Phase.COMPLETED


def test_failure_carries_the_exit_code_and_the_last_log_lines() -> None:
    log = "Traceback (most recent call last):\nRuntimeError: clone failed"
    failed_pod = pod("Failed", terminated(3, "Error", log))
    state = runner_state(job(BACKOFF, active=None), [failed_pod])
    assert (state.state, state.exit_code) == ("exited", 3)
    assert state.log_tail == log
    decision = outcome(job(BACKOFF, active=None), [failed_pod])
    assert decision.phase is Phase.FAILED
    assert decision.message is not None
    assert decision.message.startswith("runner exited with code 3")
    assert "RuntimeError: clone failed" in decision.message


def test_killed_by_a_signal_names_it() -> None:
    state = runner_state(job(BACKOFF, active=None), [pod("Failed", terminated(137, "Error"))])
    assert state.exit_code == 137
    assert state.reason == "exited with code 137 (killed by SIGKILL)"


def test_out_of_memory_names_the_limit() -> None:
    oom = pod("Failed", terminated(137, "OOMKilled"))
    state = runner_state(job(BACKOFF, active=None), [oom])
    assert state.exit_code == 137
    assert "OOMKilled" in (state.reason or "")
    assert "memory limit of 4Gi" in (state.reason or "")
    decision = outcome(job(BACKOFF, active=None), [oom])
    assert decision.phase is Phase.FAILED
    assert "memory limit of 4Gi" in (decision.message or "")


def test_a_first_failed_pull_is_waited_out_as_the_kubelet_retries() -> None:
    waiting = {"waiting": {"reason": "ErrImagePull", "message": "rpc error: i/o timeout"}}

    assert runner_state(job(), [pod("Pending", waiting)]).alive


def test_a_pod_spec_the_kubelet_cannot_honour_fails_saying_why() -> None:
    message = 'secret "team-keys" not found'
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}

    state = runner_state(job(), [pod("Pending", waiting)])

    assert not state.alive
    assert outcome(job(), [pod("Pending", waiting)]).message == f"runner could not start: {message}"


def test_image_that_cannot_be_pulled_fails_naming_the_image() -> None:
    for reason in ("ImagePullBackOff", "InvalidImageName"):
        waiting = {
            "waiting": {
                "reason": reason,
                "message": f'Back-off pulling image "{IMAGE}": ErrImagePull: not found',
            }
        }
        state = runner_state(job(), [pod("Pending", waiting)])
        assert state.state == "exited"
        assert not state.alive
        assert IMAGE in (state.reason or "")
        assert "could not be pulled" in (state.reason or "")
        decision = outcome(job(), [pod("Pending", waiting)])
        assert decision.phase is Phase.FAILED
        assert f"runner could not start: its image {IMAGE} could not be pulled" in (decision.message or "")


def test_evicted_pod_fails_with_the_nodes_reason() -> None:
    message = "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 2Gi."
    evicted = pod("Failed", {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}, reason="Evicted")
    evicted["status"]["message"] = message
    state = runner_state(job(BACKOFF, active=None), [evicted])
    assert state.reason == f"was evicted from its node: {message}"
    assert "evicted" in (outcome(job(BACKOFF, active=None), [evicted]).message or "")


def test_deadline_exceeded_ends_timed_out_even_when_the_session_clock_is_a_little_behind() -> None:
    killed = pod("Failed", terminated(143, "Error"), reason="DeadlineExceeded")
    over = job(DEADLINE, active=None)
    assert deadline_exceeded(over)
    state = runner_state(over, [killed])
    assert state.state == "exited"
    assert "deadline" in (state.reason or "")
    # The session started 2 s after the Job did, so by its own clock the deadline is 2 s away.
    s = session(started_ago=1798)
    decision = outcome(over, [killed], s)
    assert decision.phase is Phase.TIMED_OUT
    assert decision.message == "timed out after 1800 s"


def test_deadline_verdict_counts_while_the_pod_is_still_being_stopped() -> None:
    target = job([condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")])
    assert deadline_exceeded(target)
    assert not runner_state(target, [pod("Running", RUNNING)]).alive
    assert outcome(target, [pod("Running", RUNNING)], session(started_ago=1799)).phase is Phase.TIMED_OUT


def test_deadline_exceeded_with_the_pod_already_gone_times_out() -> None:
    assert outcome(job(DEADLINE, active=None), [], session(started_ago=1801)).phase is Phase.TIMED_OUT


def test_a_clean_exit_at_the_deadline_still_completes() -> None:
    s = session(started_ago=1795)
    assert outcome(job(DEADLINE, active=None), [pod("Succeeded", terminated(0, "Completed"))], s).phase is (
        Phase.COMPLETED
    )


def test_decision_time_is_untouched_without_a_deadline_verdict() -> None:
    s = session(started_ago=10)
    assert decision_time(s, job(), NOW) == NOW
    assert decision_time(s, None, NOW) == NOW
    assert decision_time(s, job(BACKOFF), NOW) == NOW


def test_job_failed_without_pods_gives_its_own_reason() -> None:
    state = runner_state(job(BACKOFF, active=None), [])
    assert state.state == "exited"
    assert state.reason == "failed: BackoffLimitExceeded: Job has reached the specified backoff limit"


def test_pods_of_an_older_job_with_the_same_name_are_ignored() -> None:
    stale = pod("Failed", terminated(1, "Error"), owner="another-job-uid")
    assert runner_state(job(), [stale]).alive


def test_the_newest_pod_speaks_for_the_runner() -> None:
    old = pod("Failed", terminated(1, "Error"), created="2025-06-01T11:50:01Z")
    new = pod("Running", RUNNING, created="2025-06-01T11:52:00Z")
    assert runner_state(job(), [new, old]).alive
    assert runner_state(job(), [old, new]).alive


def test_a_stopping_session_whose_job_is_gone_ends_stopped() -> None:
    decision = outcome(None, [], session(Phase.STOPPING))
    assert (decision.action, decision.phase) == (Action.FINISH, Phase.STOPPED)


def test_a_stopping_session_with_a_live_job_kills_it() -> None:
    assert outcome(job(), [pod("Running", RUNNING)], session(Phase.STOPPING)).action is Action.KILL


def test_a_job_stuck_on_its_image_lingers_and_a_finished_one_does_not() -> None:
    stuck = pod("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
    assert lingers(job(), [stuck])
    assert not lingers(job(), [pod("Running", RUNNING)])
    assert not lingers(job(), [pod("Failed", terminated(1, "Error"))])
    assert not lingers(job(COMPLETE, active=None), [pod("Succeeded", terminated(0, "Completed"))])


def test_inputs_are_not_changed() -> None:
    j, p = job(DEADLINE), pod("Failed", terminated(143, "Error"))
    before = copy.deepcopy((j, p))
    runner_state(j, [p])
    assert (j, p) == before
