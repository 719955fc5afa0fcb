"""The JobExecutor against an API server: a session's runner as a Secret and a Job, observed from its Pods.

The fake API server stands in for the cluster; the test plays the job controller and kubelet (creates the
Pod and writes its status), as tests/controller/test_operator.py does for the whole operator.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.support.fake_kube import FakeKube, start_fake_kube
from vteam.controller.executor import NO_RUNNER, Later
from vteam.controller.job_executor import JobExecutor
from vteam.kube import KubeClients, load_configuration
from vteam.protocol import Env
from vteam.resources import AgenticSession
from vteam.settings import Settings
from vteam.store.kube import KubeStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MERGE = "application/merge-patch+json"
TOKEN = "vtr_dGVzdA.bWFj"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKube]:
    kube = start_fake_kube(tmp_path_factory.mktemp("kube"))
    yield kube
    assert kube.violations == []
    kube.close()


@pytest.fixture
async def kube(fake: FakeKube) -> AsyncIterator[KubeClients]:
    clients = KubeClients.of(await load_configuration(fake.kubeconfig))
    api = client.ApiextensionsV1Api(clients.api)
    for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                try:
                    await api.create_custom_resource_definition(doc)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
    yield clients
    await clients.close()


@pytest.fixture
async def namespace(kube: KubeClients) -> str:
    ns = f"je-{uuid.uuid4().hex[:8]}"
    labels = {"vteam.ambient-code/managed": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    await kube.core.create_namespace({"metadata": {"name": ns, "labels": labels}})
    await kube.core.create_namespaced_service_account(ns, {"metadata": {"name": "vteam-runner"}})
    return ns


def executor(kube: KubeClients, namespace: str, tmp_path: Path) -> JobExecutor:
    settings = Settings(public_url="http://vteam-backend.vteam.svc:8080", home=tmp_path, runner_image="vteam:test")
    return JobExecutor(
        settings=settings, clients=kube, store=KubeStore(kube, owns_clients=False), namespaces=[namespace]
    )


def session(namespace: str, name: str, uid: str | None = None) -> AgenticSession:
    return AgenticSession.model_validate(
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())},
            "spec": {"prompt": "fix the login bug", "timeout": 600, "framework": "script"},
        }
    )


async def run_pod(fake: FakeKube, kube: KubeClients, ns: str, job: str, state: dict[str, Any]) -> None:
    pod = fake.run_job_pod(ns, job)
    status = {
        "phase": "Running" if "running" in state else "Succeeded",
        "containerStatuses": [
            {"name": "runner", "image": "vteam:test", "imageID": "", "ready": False, "restartCount": 0, "state": state}
        ],
    }
    await kube.core.patch_namespaced_pod_status(pod["metadata"]["name"], ns, {"status": status}, _content_type=MERGE)


async def test_start_creates_secret_and_job_and_observe_follows_the_pod(
    fake: FakeKube, kube: KubeClients, namespace: str, tmp_path: Path
) -> None:
    jobs = executor(kube, namespace, tmp_path)
    s = session(namespace, "happy")
    assert jobs.observe(s) == NO_RUNNER

    await jobs.start(s, {Env.RUNNER_TOKEN: TOKEN})

    secret = kube.api.sanitize_for_serialization(await kube.core.read_namespaced_secret("happy-runner", namespace))
    assert base64.b64decode(secret["data"]["runner-token"]).decode() == TOKEN
    await jobs.refresh(s)
    job = jobs.job(s.key)
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == s.metadata.uid
    await run_pod(fake, kube, namespace, "happy", {"running": {"startedAt": "2025-06-01T12:00:01Z"}})
    await jobs.refresh(s)
    assert jobs.observe(s).alive
    await jobs.refresh_active()
    assert (jobs.active(), jobs.active(namespace), jobs.active("elsewhere")) == (1, 1, 0)

    await jobs.kill(s)
    await jobs.close()
    await jobs.refresh(s)
    assert jobs.job(s.key) is None
    assert jobs.observe(s) == NO_RUNNER


async def test_a_job_of_an_earlier_session_with_the_name_waits(
    kube: KubeClients, namespace: str, tmp_path: Path
) -> None:
    jobs = executor(kube, namespace, tmp_path)
    await jobs.start(session(namespace, "again"), {Env.RUNNER_TOKEN: TOKEN})
    later = session(namespace, "again")

    with pytest.raises(Later):
        await jobs.start(later, {Env.RUNNER_TOKEN: TOKEN})
    # Not this session's runner: it is none of its business.
    await jobs.refresh(later)
    assert jobs.job(later.key) is None
    assert jobs.observe(later) == NO_RUNNER


async def test_a_runner_that_exited_cleanly_is_seen_exited(
    fake: FakeKube, kube: KubeClients, namespace: str, tmp_path: Path
) -> None:
    jobs = executor(kube, namespace, tmp_path)
    s = session(namespace, "done")
    await jobs.start(s, {Env.RUNNER_TOKEN: TOKEN})
    done = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2025-06-01T12:00:01Z",
        "finishedAt": "2025-06-01T12:05:00Z",
    }
    await run_pod(fake, kube, namespace, "done", {"terminated": done})

    await jobs.refresh(s)

    assert jobs.observe(s).state == "exited"
    assert jobs.observe(s).exit_code == 0
