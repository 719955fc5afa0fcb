"""`vteam operator` as a process against an API server: sessions become Jobs, and Jobs' ends become phases.

A real cluster when VTEAM_TEST_KUBECONFIG names one, else the fake API server. Nothing runs the runner
pods here: the test creates each Pod a job controller would and writes its status as a kubelet would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes_asyncio.client.exceptions import ApiException

from tests.support.fake_kube import FakeKube, start_fake_kube
from vteam.auth import RunnerTokens, load_or_create
from vteam.kube import KubeClients, load_configuration

pytestmark = pytest.mark.integration

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "vteam.ambient-code", "v1alpha1", "agenticsessions"
MERGE = "application/merge-patch+json"
IMAGE = "registry.example.com/vteam-runner:test"


class Cluster:
    def __init__(self, kubeconfig: Path, fake: FakeKube | None) -> None:
        self.kubeconfig = kubeconfig
        self.fake = fake
        self.namespace = f"op-{uuid.uuid4().hex[:8]}"
        self.home = kubeconfig.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    real = os.environ.get("VTEAM_TEST_KUBECONFIG")
    fake = None if real else start_fake_kube(tmp_path_factory.mktemp("kube"))
    c = Cluster(Path(real) if real else fake.kubeconfig, fake)  # type: ignore[union-attr]
    asyncio.run(_prepare(c))
    yield c
    if fake is not None:
        assert fake.violations == []
        fake.close()


async def _prepare(c: Cluster) -> None:
    clients = KubeClients.of(await load_configuration(c.kubeconfig))
    try:
        for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    await _apply_crd(clients, doc)
        # Runner pods must pass the `restricted` Pod Security Standard: the namespace enforces it.
        labels = {"vteam.ambient-code/managed": "true", "pod-security.kubernetes.io/enforce": "restricted"}
        await clients.core.create_namespace({"metadata": {"name": c.namespace, "labels": labels}})
        # Runner pods run as this account; a project's namespace holds one (pods are refused without it).
        await clients.core.create_namespaced_service_account(c.namespace, {"metadata": {"name": "vteam-runner"}})
        await clients.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            c.namespace,
            "projectsettings",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ProjectSettings",
                "metadata": {"name": "settings", "namespace": c.namespace},
                "spec": {
                    "runnerResources": {"requests": {"cpu": "300m"}, "limits": {"memory": "3Gi"}},
                    "runnerSecret": "team-keys",
                },
            },
        )
    finally:
        await clients.close()


async def _apply_crd(clients: KubeClients, crd: dict[str, Any]) -> None:
    from kubernetes_asyncio import client

    api = client.ApiextensionsV1Api(clients.api)
    try:
        await api.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
    for _ in range(100):
        try:
            await clients.custom.list_namespaced_custom_object(
                crd["spec"]["group"], crd["spec"]["versions"][0]["name"], "default", crd["spec"]["names"]["plural"]
            )
            return
        except ApiException:
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    home = tmp_path_factory.mktemp("operator-home")
    cluster.home = home
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env.update(
        {
            "VTEAM_MODE": "cluster",
            "VTEAM_HOME": str(home),
            "VTEAM_KUBECONFIG": str(cluster.kubeconfig),
            "VTEAM_PUBLIC_URL": "http://vteam-backend.vteam.svc:8080",
            "VTEAM_RUNNER_IMAGE": IMAGE,
            "VTEAM_JOB_TTL_SECONDS": "120",
            "VTEAM_RESYNC_SECONDS": "1",
            # Every test's sessions share one namespace, and some leave runners behind: the fair share between
            # projects has its own tests.
            "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": "10000",
        }
    )
    log = (home / "operator.log").open("wb")
    vteam = Path(sys.executable).parent / "vteam"
    proc = subprocess.Popen(
        [str(vteam), "operator", "--standalone", "--namespace", cluster.namespace],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    if proc.returncode not in (0, -15):
        sys.stderr.write((home / "operator.log").read_text())


@pytest.fixture
async def kube(cluster: Cluster, operator: subprocess.Popen[bytes]) -> AsyncIterator[KubeClients]:
    clients = KubeClients.of(await load_configuration(cluster.kubeconfig))
    yield clients
    await clients.close()
    assert operator.poll() is None, "vteam operator exited"


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def create_session(kube: KubeClients, ns: str, name: str, timeout: int = 600) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"prompt": "echo hello", "timeout": timeout},
    }
    created: dict[str, Any] = await kube.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    return created


async def session(kube: KubeClients, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = await kube.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return found
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def phase_becomes(kube: KubeClients, ns: str, name: str, phase: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        s = await session(kube, ns, name)
        return s if s and (s.get("status") or {}).get("phase") == phase else None

    return await eventually(probe, f"session {name} to become {phase}")


async def job(kube: KubeClients, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found = await kube.batch.read_namespaced_job(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    plain: dict[str, Any] = kube.api.sanitize_for_serialization(found)
    return plain


async def secret(kube: KubeClients, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found = await kube.core.read_namespaced_secret(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    plain: dict[str, Any] = kube.api.sanitize_for_serialization(found)
    return plain


async def start_pod(cluster: Cluster, kube: KubeClients, name: str) -> str:
    """The Pod a job controller would make, Running as a kubelet would report it; its name."""
    ns = cluster.namespace
    await eventually(lambda: job(kube, ns, name), f"the Job of {name}")
    if cluster.fake is not None:
        pod = cluster.fake.run_job_pod(ns, name)
        pod_name: str = pod["metadata"]["name"]
    else:
        pods = await eventually(
            lambda: _pods(kube, ns, name), f"the Pod of {name}", timeout=60
        )  # a real job controller makes it
        pod_name = pods[0]["metadata"]["name"]
    await set_pod_status(kube, ns, pod_name, "Running", {"running": {"startedAt": "2025-06-01T12:00:01Z"}})
    return pod_name


async def _pods(kube: KubeClients, ns: str, name: str) -> list[dict[str, Any]] | None:
    listing = await kube.core.list_namespaced_pod(ns, label_selector=f"vteam.ambient-code/session={name}")
    items: list[dict[str, Any]] = kube.api.sanitize_for_serialization(listing)["items"]
    return items or None


async def set_pod_status(
    kube: KubeClients, ns: str, pod: str, phase: str, state: dict[str, Any], reason: str | None = None
) -> None:
    status: dict[str, Any] = {
        "phase": phase,
        "startTime": "2025-06-01T12:00:00Z",
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
    await kube.core.patch_namespaced_pod_status(pod, ns, {"status": status}, _content_type=MERGE)


async def set_job_condition(kube: KubeClients, ns: str, name: str, kind: str, reason: str, message: str) -> None:
    now = "2025-06-01T12:10:00Z"
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now},
    ]
    status: dict[str, Any] = {"conditions": conditions, "startTime": "2025-06-01T12:00:00Z"}
    if kind == "Complete":
        status.update({"succeeded": 1, "completionTime": now})
    else:
        status["failed"] = 1
    await kube.batch.patch_namespaced_job_status(name, ns, {"status": status}, _content_type=MERGE)


def terminated(code: int, reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2025-06-01T12:00:01Z",
        "finishedAt": "2025-06-01T12:05:00Z",
    }
    if message:
        state["message"] = message
    return {"terminated": state}


async def test_session_becomes_a_locked_down_job_and_completes(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    created = await create_session(kube, ns, "happy", timeout=900)
    spec = (await eventually(lambda: job(kube, ns, "happy"), "the Job"))["spec"]
    got = await job(kube, ns, "happy")
    assert got is not None
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 120
    assert got["metadata"]["ownerReferences"] == [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgenticSession",
            "name": "happy",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert got["metadata"]["labels"]["vteam.ambient-code/session"] == "happy"
    assert got["metadata"]["labels"]["vteam.ambient-code/project"] == ns
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    runner = pod["containers"][0]
    assert runner["image"] == IMAGE
    assert runner["command"] == ["vteam", "runner"]
    assert runner["securityContext"]["allowPrivilegeEscalation"] is False
    assert runner["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert runner["securityContext"]["readOnlyRootFilesystem"] is True
    # The project's settings win where they say something; the platform's defaults fill the rest.
    assert runner["resources"]["requests"]["cpu"] == "300m"
    assert runner["resources"]["limits"]["memory"] == "3Gi"
    assert runner["resources"]["limits"]["cpu"] == "2"
    assert runner["envFrom"] == [{"prefix": "VTEAM_SECRET_", "secretRef": {"name": "team-keys", "optional": True}}]
    env = {e["name"]: e for e in runner["env"]}
    assert env["VTEAM_SERVER"]["value"] == "http://vteam-backend.vteam.svc:8080"
    assert env["VTEAM_SESSION"]["value"] == "happy"
    token_ref = env["VTEAM_RUNNER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert "value" not in env["VTEAM_RUNNER_TOKEN"]
    stored = await eventually(lambda: secret(kube, ns, token_ref["name"]), "the runner Secret")
    token = base64.b64decode(stored["data"][token_ref["key"]]).decode()
    # A token the backend accepts for this session alone: signed with the key the two share.
    claim = RunnerTokens(load_or_create(cluster.home / "secret.key")).verify(token)
    assert (claim.project, claim.session, claim.uid) == (ns, "happy", created["metadata"]["uid"])
    assert token not in str(got)
    assert stored["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

    creating = await phase_becomes(kube, ns, "happy", "Creating")
    assert creating["status"]["startTime"]
    pod_name = await start_pod(cluster, kube, "happy")
    # The runner reports Running through the backend, which writes it; the operator leaves it be.
    await kube.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "happy", {"status": {"phase": "Running"}}, _content_type=MERGE
    )
    await asyncio.sleep(0.3)
    assert ((await session(kube, ns, "happy")) or {})["status"]["phase"] == "Running"
    await set_pod_status(kube, ns, pod_name, "Succeeded", terminated(0, "Completed"))
    await set_job_condition(kube, ns, "happy", "Complete", "CompletionsReached", "Reached expected number")
    done = await phase_becomes(kube, ns, "happy", "Completed")
    assert done["status"]["completionTime"]


async def test_out_of_memory_fails_the_session_naming_the_limit(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    await create_session(kube, ns, "hungry")
    pod_name = await start_pod(cluster, kube, "hungry")
    await set_pod_status(kube, ns, pod_name, "Failed", terminated(137, "OOMKilled"))
    failed = await phase_becomes(kube, ns, "hungry", "Failed")
    assert "OOMKilled" in failed["status"]["message"]
    assert "3Gi" in failed["status"]["message"]


async def test_failed_runner_reports_exit_code_and_log_tail(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    await create_session(kube, ns, "broken")
    pod_name = await start_pod(cluster, kube, "broken")
    await set_pod_status(kube, ns, pod_name, "Failed", terminated(2, "Error", "fatal: repository not found"))
    failed = await phase_becomes(kube, ns, "broken", "Failed")
    assert failed["status"]["message"].startswith("runner exited with code 2")
    assert "fatal: repository not found" in failed["status"]["message"]


async def test_image_that_cannot_be_pulled_fails_and_the_job_goes(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    await create_session(kube, ns, "no-image")
    pod_name = await start_pod(cluster, kube, "no-image")
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}}
    await set_pod_status(kube, ns, pod_name, "Pending", waiting)
    failed = await phase_becomes(kube, ns, "no-image", "Failed")
    assert f"image {IMAGE} could not be pulled" in failed["status"]["message"]

    async def gone() -> bool:
        return await job(kube, ns, "no-image") is None

    await eventually(gone, "the stuck Job to be deleted")


async def test_deadline_exceeded_times_out(cluster: Cluster, kube: KubeClients) -> None:
    """The Job runs with activeDeadlineSeconds = spec.timeout, and the job controller owns the verdict: it fails
    the Job (DeadlineExceeded) and kills the pod, or the operator's own clock stops it first; either way TimedOut."""
    ns = cluster.namespace
    await create_session(kube, ns, "slow", timeout=DEADLINE_SECONDS)
    spec = (await eventually(lambda: job(kube, ns, "slow"), "the Job"))["spec"]
    assert spec["activeDeadlineSeconds"] == DEADLINE_SECONDS
    pod_name = await start_pod(cluster, kube, "slow")
    timed_out = await phase_becomes(kube, ns, "slow", "TimedOut")
    assert timed_out["status"]["message"] == f"timed out after {DEADLINE_SECONDS} s"
    await eventually(lambda: _killed(kube, ns, pod_name), f"pod {pod_name} to be killed")
    left = await job(kube, ns, "slow")
    assert left is None or _deadline_verdict(left), left


DEADLINE_SECONDS = 3
"""Long enough for the test to see the runner's pod Running, short enough to wait for."""


async def _killed(kube: KubeClients, ns: str, pod: str) -> bool:
    """Gone, or terminating (a real pod on a node without a kubelet stays until its grace period ends)."""
    try:
        found = await kube.core.read_namespaced_pod(pod, ns)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return found.metadata.deletion_timestamp is not None


def _deadline_verdict(job_obj: dict[str, Any]) -> bool:
    conditions = (job_obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Failed" and c.get("reason") == "DeadlineExceeded" for c in conditions)


async def test_stop_deletes_the_job_and_ends_stopped(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    await create_session(kube, ns, "halt")
    await start_pod(cluster, kube, "halt")
    await phase_becomes(kube, ns, "halt", "Creating")
    await kube.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "halt", {"status": {"phase": "Stopping"}}, _content_type=MERGE
    )
    await phase_becomes(kube, ns, "halt", "Stopped")
    assert await job(kube, ns, "halt") is None


async def test_deleting_a_session_removes_its_job_and_secret(cluster: Cluster, kube: KubeClients) -> None:
    ns = cluster.namespace
    await create_session(kube, ns, "doomed")
    await eventually(lambda: job(kube, ns, "doomed"), "the Job")
    await eventually(lambda: secret(kube, ns, "doomed-runner"), "the Secret")
    await kube.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "doomed")

    async def cleaned() -> bool:
        return await job(kube, ns, "doomed") is None and await secret(kube, ns, "doomed-runner") is None

    await eventually(cleaned, "the Job and Secret to be garbage-collected")


async def test_an_end_decided_on_a_session_that_changed_meanwhile_is_decided_again(
    cluster: Cluster, kube: KubeClients
) -> None:
    """The runner's final report can land between the operator's read and its write: the write must not hold,
    or the session would end with the exit code's text instead of the runner's own message."""
    from vteam.controller.operator import Operator
    from vteam.errors import Conflict
    from vteam.resources import AgenticSession, Phase, status_patch
    from vteam.settings import Settings
    from vteam.store.kube import KubeStore

    ns = f"race-{uuid.uuid4().hex[:6]}"  # a namespace the running operator does not serve
    await kube.core.create_namespace({"metadata": {"name": ns, "labels": {"vteam.ambient-code/managed": "true"}}})
    await create_session(kube, ns, "raced")
    store = KubeStore(kube, owns_clients=False)
    await store.patch_status(AgenticSession, "raced", ns, status_patch(phase=Phase.CREATING))
    decided_on = await store.get(AgenticSession, "raced", ns)
    reported = "agent failed: the tests did not pass"
    await store.patch_status(AgenticSession, "raced", ns, status_patch(message=reported))
    operator = Operator(
        settings=Settings(public_url="http://vteam-backend.vteam.svc:8080", home=cluster.home),
        clients=kube,
        store=store,
        tokens=RunnerTokens(b"k" * 32),
        namespaces=[ns],
    )

    with pytest.raises(Conflict):
        await operator.set_phase(decided_on.key, Phase.FAILED, message="runner exited with code 1", based_on=decided_on)

    now = await store.get(AgenticSession, "raced", ns)
    assert now.phase == Phase.CREATING
    assert now.status.message == reported
