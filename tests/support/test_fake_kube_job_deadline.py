"""The fake API server plays the job controller's deadline, as the operator's timeout path relies on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.fake_kube import fake_kube


def _job(deadline: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "slow", "namespace": "default"},
        "spec": {
            "activeDeadlineSeconds": deadline,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": "vteam:1"}]}},
        },
    }


def test_a_job_active_past_its_deadline_fails_and_loses_its_pod(tmp_path: Path) -> None:
    with fake_kube(tmp_path) as fake:
        fake.apply(_job(2))  # at least 1 s to go: timestamps have whole seconds
        pod = fake.run_job_pod("default", "slow")["metadata"]["name"]
        assert fake.get("v1", "pods", pod, "default") is not None
        until = time.monotonic() + 5
        while (job := fake.get("batch/v1", "jobs", "slow", "default")) and not job.get("status"):
            assert time.monotonic() < until, "the Job never got its deadline verdict"
            time.sleep(0.05)
        assert job is not None
        conditions = {c["type"]: c for c in job["status"]["conditions"]}
        assert conditions["Failed"]["reason"] == conditions["FailureTarget"]["reason"] == "DeadlineExceeded"
        assert job["status"]["failed"] == 1
        assert job["status"]["startTime"] == job["metadata"]["creationTimestamp"]
        assert fake.get("v1", "pods", pod, "default") is None


def test_a_job_within_its_deadline_is_left_alone(tmp_path: Path) -> None:
    with fake_kube(tmp_path) as fake:
        fake.apply(_job(600))
        time.sleep(0.3)
        job = fake.get("batch/v1", "jobs", "slow", "default")
        assert job is not None
        assert not job.get("status")
