"""What a runner Job and its Pods say about the runner, as the RunnerState the reconcile decision reads.

Pure: the Job and Pods go in as the API returns them (camelCase dicts), so the mapping is tested on
realistic objects without a cluster. Reasons read after "runner " in the session's message.
"""

from __future__ import annotations

import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

from vteam.controller.executor import NO_RUNNER, RunnerState
from vteam.controller.job import CONTAINER
from vteam.controller.reconcile import deadline
from vteam.resources import AgenticSession

IMAGE_FAILURES = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
"""Waiting reasons that mean the runner's image will not arrive, so the runner never starts. A first
`ErrImagePull` is not one: the kubelet retries, and a registry hiccup often passes; `ImagePullBackOff` follows
when it does not."""
CONFIG_FAILURES = frozenset({"CreateContainerConfigError"})
"""The pod spec cannot be honoured (a Secret or key it names is missing): the kubelet waits, the runner never
starts."""

Obj = dict[str, Any]


def runner_state(job: Obj | None, pods: list[Obj]) -> RunnerState:
    """The runner's state from its Job (None when there is none) and the Pods listed by its session label."""
    if job is None:
        return NO_RUNNER
    pod = _latest(_owned(job, pods))
    container = _container(pod) if pod else None
    if _condition(job, "Complete"):
        return RunnerState("exited", exit_code=0, reason="exited with code 0")
    failed = _condition(job, "Failed")
    if (over := _deadline(job)) is not None:
        code = _exit_code(container)
        return RunnerState("exited", exit_code=code, reason=f"ran past its deadline: {_text(over)}")
    ended = _pod_ended(pod, container) if pod else None
    if ended is not None:
        return ended
    if failed is not None:
        return RunnerState("exited", reason=f"failed: {_text(failed)}")
    waiting = ((container or {}).get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in IMAGE_FAILURES:
        image = (container or {}).get("image") or _spec_image(pod or {}) or "?"
        detail = f"{waiting['reason']}: {waiting['message']}" if waiting.get("message") else waiting["reason"]
        return RunnerState("exited", reason=f"could not start: its image {image} could not be pulled ({detail})")
    if waiting.get("reason") in CONFIG_FAILURES:
        return RunnerState("exited", reason=f"could not start: {waiting.get('message') or waiting['reason']}")
    return RunnerState("running")


def deadline_exceeded(job: Obj | None) -> bool:
    """Whether Kubernetes stopped the Job at its activeDeadlineSeconds (the session's timeout)."""
    return job is not None and _deadline(job) is not None


def _deadline(job: Obj) -> Obj | None:
    """The condition saying the deadline passed: FailureTarget comes first, while the pods are still stopping."""
    for kind in ("Failed", "FailureTarget"):
        condition = _condition(job, kind)
        if condition is not None and condition.get("reason") == "DeadlineExceeded":
            return condition
    return None


def decision_time(session: AgenticSession, job: Obj | None, now: datetime) -> datetime:
    """The `now` to decide with: once Kubernetes stopped the Job at its deadline, the session's has passed too.

    The Job's clock starts a moment after the session's start time is recorded (or before, after a
    restart mid-start), so without this a runner stopped at its deadline could end Failed, not TimedOut.
    """
    due = deadline(session)
    if due is not None and due > now and deadline_exceeded(job):
        return due
    return now


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, or a datetime the client parsed), in UTC; None when unreadable."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def finished(job: Obj) -> bool:
    """Whether the Job has ended: Kubernetes set its Complete or Failed condition."""
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def lingers(job: Obj, pods: list[Obj]) -> bool:
    """Whether an unfinished Job holds a pod whose runner will never run (its image cannot be pulled).

    Kubernetes would keep it until its deadline, counting against the limits; the operator deletes it.
    """
    if finished(job) or runner_state(job, pods).state != "exited":
        return False
    return not any((p.get("status") or {}).get("phase") in ("Succeeded", "Failed") for p in _owned(job, pods))


def _pod_ended(pod: Obj, container: Obj | None) -> RunnerState | None:
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        message = status.get("message") or "no reason given"
        return RunnerState("exited", exit_code=_exit_code(container), reason=f"was evicted from its node: {message}")
    terminated = ((container or {}).get("state") or {}).get("terminated")
    if terminated is not None:
        return _terminated(terminated, _memory_limit(pod))
    phase = status.get("phase")
    if phase == "Succeeded":
        return RunnerState("exited", exit_code=0, reason="exited with code 0")
    if phase == "Failed":
        why = ": ".join(p for p in (status.get("reason"), status.get("message")) if p) or "no reason given"
        return RunnerState("exited", reason=f"failed: {why}")
    return None


def _terminated(terminated: Obj, memory_limit: str | None) -> RunnerState:
    code = terminated.get("exitCode")
    tail = (terminated.get("message") or "").strip()
    if terminated.get("reason") == "OOMKilled":
        limit = f" of {memory_limit}" if memory_limit else ""
        reason = f"was killed for using more than its memory limit{limit} (OOMKilled)"
        return RunnerState("exited", exit_code=code, reason=reason, log_tail=tail)
    if code is None:
        return RunnerState("exited", reason="exited without reporting an exit status", log_tail=tail)
    reason = f"exited with code {code}"
    if code > 128:
        with contextlib.suppress(ValueError):
            reason += f" (killed by {signal.Signals(code - 128).name})"
    return RunnerState("exited", exit_code=code, reason=reason, log_tail=tail if code else "")


def _condition(job: Obj, kind: str) -> Obj | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _text(condition: Obj) -> str:
    return ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p) or "no reason given"


def _owned(job: Obj, pods: list[Obj]) -> list[Obj]:
    """The Pods of this Job, not of an earlier Job of a deleted session with the same name."""
    uid = (job.get("metadata") or {}).get("uid")
    owned = []
    for pod in pods:
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        if not owners or not uid or any(o.get("uid") == uid for o in owners):
            owned.append(pod)
    return owned


def _latest(pods: list[Obj]) -> Obj | None:
    if not pods:
        return None
    return max(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")


def _container(pod: Obj) -> Obj | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), statuses[0] if statuses else None)


def _exit_code(container: Obj | None) -> int | None:
    terminated = ((container or {}).get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")
    return code if isinstance(code, int) else None


def _spec(pod: Obj) -> Obj | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == CONTAINER), containers[0] if containers else None)


def _spec_image(pod: Obj) -> str | None:
    spec = _spec(pod)
    return spec.get("image") if spec else None


def _memory_limit(pod: Obj) -> str | None:
    spec = _spec(pod) or {}
    limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return str(limit) if limit else None
