"""A stand-in kubelet and job controller for cluster-mode tests: it runs each Job's container as a local process.

The fake API server runs no pods. This helper does what a node would, through the API like the real ones: for a
new Job it creates the Pod (as the job controller does), starts the container's command here with the env the
pod spec declares (secretKeyRef and envFrom resolved from the Secrets, the emptyDir mounts mapped to folders),
reports the Pod Running, and when the process exits reports it terminated and marks the Job Complete or Failed.
A Job or Pod deleted meanwhile has its process killed, as a kubelet kills a deleted pod's containers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_kube import FakeKube
from tests.support.server import FOREIGN

Obj = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Running:
    namespace: str
    job: str
    pod: str
    proc: subprocess.Popen[bytes]
    started: str
    log: Path


class Kubelet:
    def __init__(self, fake: FakeKube, workdir: Path) -> None:
        self.fake = fake
        self.workdir = workdir
        self.api = httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}, timeout=10)
        self.seen: set[str] = set()
        self.running: dict[str, Running] = {}
        self.finished: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet")

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for run in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(5)
        self.api.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                self._tick()
            self._stop.wait(0.1)

    def _tick(self) -> None:
        jobs = self.api.get("/apis/batch/v1/jobs").json()["items"]
        live = set()
        for job in jobs:
            uid = job["metadata"]["uid"]
            live.add(uid)
            if uid not in self.seen:
                self.seen.add(uid)
                self._start(job)
        for uid, run in list(self.running.items()):
            pod_gone = self.api.get(f"/api/v1/namespaces/{run.namespace}/pods/{run.pod}").status_code == 404
            if uid not in live or pod_gone:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGTERM)
                run.proc.wait(10)
                del self.running[uid]
                continue
            code = run.proc.poll()
            if code is not None:
                del self.running[uid]
                self.finished[uid] = code
                self._ended(run, code)

    def _start(self, job: Obj) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        pod = self.fake.run_job_pod(namespace, name)
        pod_name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        folder = self.workdir / f"{namespace}-{pod_name}"
        mounts = {m["mountPath"]: folder / m["name"] for m in container.get("volumeMounts", [])}
        for path in mounts.values():
            path.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN) and k not in ("HOME", "TMPDIR")}
        env.update(self._env(namespace, container))
        for key, value in list(env.items()):
            if value in mounts:
                env[key] = str(mounts[value])
        command = container["command"]
        if command[0] == "vteam":
            command = [sys.executable, "-m", "vteam", *command[1:]]
        started = now()
        log = folder / "container.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=mounts.get(container.get("workingDir", ""), folder),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[job["metadata"]["uid"]] = Running(namespace, name, pod_name, proc, started, log)
        self._pod_status(
            namespace,
            pod_name,
            "Running",
            {"running": {"startedAt": started}},
            ready=True,
            image=container["image"],
        )

    def _env(self, namespace: str, container: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref is None:
                continue
            data = self._secret(namespace, ref["name"], optional=ref.get("optional", False))
            env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            elif ref := item.get("valueFrom", {}).get("secretKeyRef"):
                env[item["name"]] = self._secret(namespace, ref["name"])[ref["key"]]
        return env

    def _secret(self, namespace: str, name: str, *, optional: bool = False) -> dict[str, str]:
        answer = self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if answer.status_code == 404 and optional:
            return {}
        answer.raise_for_status()
        return {k: base64.b64decode(v).decode() for k, v in (answer.json().get("data") or {}).items()}

    def _ended(self, run: Running, code: int) -> None:
        finished = now()
        state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": run.started,
                "finishedAt": finished,
            }
        }
        self._pod_status(run.namespace, run.pod, "Succeeded" if code == 0 else "Failed", state, ready=False)
        condition = (
            {"type": "Complete", "status": "True", "lastProbeTime": finished, "lastTransitionTime": finished}
            if code == 0
            else {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastProbeTime": finished,
                "lastTransitionTime": finished,
            }
        )
        status: Obj = {"startTime": run.started, "conditions": [condition]}
        if code == 0:
            status |= {"succeeded": 1, "completionTime": finished}
        else:
            status |= {"failed": 1}
        self.api.patch(
            f"/apis/batch/v1/namespaces/{run.namespace}/jobs/{run.job}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def _pod_status(
        self, namespace: str, pod: str, phase: str, state: Obj, *, ready: bool, image: str = "vteam:test"
    ) -> None:
        status = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}],
            "containerStatuses": [
                {"name": "runner", "ready": ready, "restartCount": 0, "image": image, "imageID": "", "state": state}
            ],
        }
        self.api.patch(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def wait_started(self, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no Job appeared within {timeout} s")
            time.sleep(0.05)
