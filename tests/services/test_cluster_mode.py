"""Cluster mode end to end: `vteam up` as the backend on the Kubernetes API, `vteam operator` running sessions as
Jobs, the S3 event log, and Kubernetes RBAC deciding who may do what.

The API server is the fake one from tests/support/fake_kube.py (a real one when VTEAM_TEST_KUBECONFIG is set
is left to tests/controller/test_operator.py and the store contract: this test must play kubelet, which it can
only do against the fake). S3 is moto's server on loopback. A stand-in kubelet (tests/support/kubelet.py) runs
each Job's `vteam runner` as a local process with the env its pod spec declares, so the session really runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.fake_kube import FakeKube, start_fake_kube
from tests.support.kubelet import Kubelet
from tests.support.moto_s3 import KEY_ID, SECRET, MotoS3, create_bucket, keys
from tests.support.server import FOREIGN, Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = "/api/projects/{project}/agentic-sessions"
PROXY_SECRET = "oauth-proxy-shared-secret"


def apply(fake: FakeKube, *files: Path) -> None:
    """What `kubectl apply -f` does for the kinds these files hold (CRDs and ClusterRoles)."""
    paths = {
        "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    }
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}) as api:
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and doc.get("kind") in paths:
                    answer = api.post(paths[doc["kind"]], json=doc)
                    assert answer.status_code == 201, answer.text


@dataclass
class Cluster:
    fake: FakeKube
    backend: Server
    operator: subprocess.Popen[bytes]
    operator_log: Path
    kubelet: Kubelet
    s3: MotoS3
    bucket: str

    def person(self, name: str, groups: tuple[str, ...] = ()) -> httpx.Client:
        """An API client signed in with a Kubernetes token of that person's own."""
        token = self.fake.add_user(name, groups)
        return httpx.Client(base_url=self.backend.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def kube(self) -> httpx.Client:
        return httpx.Client(base_url=self.fake.url, headers={"Authorization": f"Bearer {self.fake.admin_token}"})

    def logs(self) -> str:
        return self.backend.log() + self.operator_log.read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One platform for the module's tests; each test works in projects of its own."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    fake = start_fake_kube(tmp_path)
    apply(fake, *sorted((ROOT / "deploy" / "crds").glob("*.yaml")), ROOT / "deploy" / "base" / "project-roles.yaml")
    s3 = MotoS3().start()
    bucket = create_bucket(s3.endpoint)
    backend = Server(
        tmp_path / "backend",
        env={
            "VTEAM_MODE": "cluster",
            "VTEAM_KUBECONFIG": str(fake.kubeconfig),
            "VTEAM_S3_BUCKET": bucket,
            "VTEAM_S3_ENDPOINT_URL": s3.endpoint,
            "VTEAM_S3_ACCESS_KEY_ID": KEY_ID,
            "VTEAM_S3_SECRET_ACCESS_KEY": SECRET,
            "VTEAM_ACCESS_CACHE_SECONDS": "0",
            # As behind the OpenShift overlay's oauth-proxy sidecar, which proves itself with the shared secret.
            "VTEAM_TRUST_PROXY_HEADERS": "true",
            "VTEAM_PROXY_SECRET": PROXY_SECRET,
        },
    )
    operator_log = tmp_path / "operator.log"
    operator: subprocess.Popen[bytes] | None = None
    try:
        backend.start()
        operator_home = tmp_path / "operator"
        operator_home.mkdir()
        shutil.copy(backend.home / "secret.key", operator_home / "secret.key")
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env |= {
            "VTEAM_HOME": str(operator_home),
            "VTEAM_KUBECONFIG": str(fake.kubeconfig),
            "VTEAM_PUBLIC_URL": backend.url,
            "VTEAM_RUNNER_IMAGE": "vteam:test",
            "VTEAM_RESYNC_SECONDS": "2",
        }
        with operator_log.open("wb") as out:
            operator = subprocess.Popen(
                [sys.executable, "-m", "vteam", "operator", "--standalone"], env=env, stdout=out, stderr=out
            )
        with Kubelet(fake, tmp_path / "node") as kubelet:
            yield Cluster(fake, backend, operator, operator_log, kubelet, s3, bucket)
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                operator.kill()
        backend.close()
        s3.stop()
        fake.close()
    assert fake.violations == []


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def phase_of(client: httpx.Client, project: str, name: str) -> str:
    return str(client.get(f"{SESSIONS.format(project=project)}/{name}").json()["status"]["phase"])


def events(client: httpx.Client, project: str, name: str) -> list[dict[str, Any]]:
    answer = client.get(f"{SESSIONS.format(project=project)}/{name}/events", params={"follow": "false"})
    assert answer.status_code == 200, answer.text
    return [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]


def test_a_session_runs_as_a_job_and_its_events_land_in_s3(cluster: Cluster) -> None:
    with cluster.person("alice") as alice, cluster.kube() as kube:
        assert alice.post("/api/projects", json={"name": "team-a"}).status_code == 201
        namespace = kube.get("/api/v1/namespaces/team-a").json()
        assert namespace["metadata"]["labels"]["vteam.ambient-code/managed"] == "true"
        # The runner pod must pass the `restricted` Pod Security Standard, as an operator may have the cluster enforce.
        enforced = kube.patch(
            "/api/v1/namespaces/team-a",
            json={"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert enforced.status_code == 200, enforced.text
        bindings = kube.get("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings").json()["items"]
        assert [(b["roleRef"]["name"], b["subjects"][0]["name"]) for b in bindings] == [
            ("vteam-project-admin", "alice")
        ]

        put = alice.put("/api/projects/team-a/secrets/DEPLOY_KEY", json={"value": "s3cr3t-value"})
        assert put.status_code == 200, put.text
        runner_secret = kube.get("/api/v1/namespaces/team-a/secrets/vteam-runner-secrets").json()
        assert list(runner_secret["data"]) == ["DEPLOY_KEY"]

        prompt = 'echo hello from a pod; [ "$DEPLOY_KEY" = s3cr3t-value ] && echo the secret arrived'
        created = alice.post(SESSIONS.format(project="team-a"), json={"prompt": prompt, "framework": "script"})
        assert created.status_code == 201, created.text
        name = created.json()["metadata"]["name"]
        wait_for(lambda: phase_of(alice, "team-a", name) == "Completed", "the session to complete")

        job = kube.get(f"/apis/batch/v1/namespaces/team-a/jobs/{name}").json()
        assert job["metadata"]["ownerReferences"][0]["uid"] == created.json()["metadata"]["uid"]
        assert job["status"]["succeeded"] == 1
        stored = events(alice, "team-a", name)

    text = "".join(e["data"].get("delta", "") for e in stored if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert "hello from a pod" in text
    assert "the secret arrived" in text
    assert "s3cr3t-value" not in json.dumps(stored)
    phases = [e["data"]["value"]["phase"] for e in stored if e["type"] == "vteam.phase"]
    assert phases[-1] == "Completed"
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    objects = keys(cluster.s3.endpoint, cluster.bucket)
    assert objects
    assert all(key.startswith(f"sessions/team-a/{name}/") for key in objects)


def test_kubernetes_rbac_decides_who_sees_and_changes_a_project(cluster: Cluster) -> None:
    with cluster.person("alice") as alice, cluster.person("bob") as bob, cluster.person("carol") as carol:
        assert alice.post("/api/projects", json={"name": "team-b"}).status_code == 201
        sessions = SESSIONS.format(project="team-b")

        assert bob.get("/api/projects/team-b").status_code == 404
        assert "team-b" not in [p["metadata"]["name"] for p in bob.get("/api/projects").json()["items"]]
        assert bob.post(sessions, json={"prompt": "true"}).status_code == 404

        granted = alice.post(
            "/api/projects/team-b/permissions", json={"subjectType": "user", "subjectName": "bob", "role": "view"}
        )
        assert granted.status_code == 201, granted.text
        assert bob.get("/api/projects/team-b").status_code == 200
        assert bob.get(sessions).status_code == 200
        refused = bob.post(sessions, json={"prompt": "true"})
        assert refused.status_code == 403
        assert "view" in refused.json()["detail"]

        # A binding made with kubectl, outside vTeam, counts the same: RBAC is the authority.
        with cluster.kube() as kube:
            made = kube.post(
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings",
                json={
                    "metadata": {"name": "carol-edit"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "vteam-project-edit",
                    },
                    "subjects": [{"kind": "User", "name": "carol", "apiGroup": "rbac.authorization.k8s.io"}],
                },
            )
            assert made.status_code == 201, made.text
        assert "team-b" in [p["metadata"]["name"] for p in carol.get("/api/projects").json()["items"]]
        created = carol.post(sessions, json={"prompt": "true", "framework": "script"})
        assert created.status_code == 201, created.text

        revoked = alice.delete("/api/projects/team-b/permissions/user/bob")
        assert revoked.status_code == 204
        assert bob.get("/api/projects/team-b").status_code == 404

        assert carol.delete("/api/projects/team-b").status_code == 403
        assert alice.delete("/api/projects/team-b").status_code == 204
        with cluster.kube() as kube:
            assert kube.get("/api/v1/namespaces/team-b").status_code == 404
        assert alice.get("/api/projects/team-b").status_code == 404

    logs = cluster.logs()
    assert "fake-kube-" not in logs


def test_stop_deletes_the_job_and_the_session_ends_stopped(cluster: Cluster) -> None:
    with cluster.person("alice") as alice, cluster.kube() as kube:
        assert alice.post("/api/projects", json={"name": "team-c"}).status_code == 201
        created = alice.post(SESSIONS.format(project="team-c"), json={"prompt": "sleep 120", "framework": "script"})
        assert created.status_code == 201, created.text
        name = created.json()["metadata"]["name"]
        wait_for(lambda: phase_of(alice, "team-c", name) == "Running", "the runner to report Running")
        job_uid = kube.get(f"/apis/batch/v1/namespaces/team-c/jobs/{name}").json()["metadata"]["uid"]
        assert job_uid in cluster.kubelet.running

        stopped = alice.post(f"{SESSIONS.format(project='team-c')}/{name}/stop")
        assert stopped.status_code == 202, stopped.text
        wait_for(lambda: phase_of(alice, "team-c", name) == "Stopped", "the session to stop")
        assert kube.get(f"/apis/batch/v1/namespaces/team-c/jobs/{name}").status_code == 404
        wait_for(lambda: job_uid not in cluster.kubelet.running, "the runner process to be killed", timeout=15)

        assert alice.delete(f"{SESSIONS.format(project='team-c')}/{name}").status_code == 204
        wait_for(
            lambda: kube.get(f"/api/v1/namespaces/team-c/secrets/{name}-runner").status_code == 404,
            "the session's runner Secret to be garbage-collected",
            timeout=15,
        )


def test_each_phase_change_is_one_phase_event_written_by_the_relay(cluster: Cluster) -> None:
    """The operator writes Creating and Stopped, the backend Running (the runner's report) and Stopping (a stop):
    all four are status writes, and the backend's relay alone turns each into one `vteam.phase` event."""
    with cluster.person("alice") as alice:
        assert alice.post("/api/projects", json={"name": "team-e"}).status_code == 201
        created = alice.post(SESSIONS.format(project="team-e"), json={"prompt": "sleep 120", "framework": "script"})
        assert created.status_code == 201, created.text
        name = created.json()["metadata"]["name"]
        wait_for(lambda: phase_of(alice, "team-e", name) == "Running", "the runner to report Running")
        assert alice.post(f"{SESSIONS.format(project='team-e')}/{name}/stop").status_code == 202

        def announced() -> list[dict[str, Any]]:
            return [e["data"]["value"] for e in events(alice, "team-e", name) if e["type"] == "vteam.phase"]

        wait_for(lambda: any(v["final"] for v in announced()), "the final phase to be announced")
        time.sleep(1.0)  # time for a second writer, were there one, to add its copy
        stored = announced()

    assert [(v["previous"], v["phase"]) for v in stored] == [
        ("", "Creating"),
        ("Creating", "Running"),
        ("Running", "Stopping"),
        ("Stopping", "Stopped"),
    ]


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({}, "set VTEAM_S3_BUCKET"),
        ({"VTEAM_S3_BUCKET": "missing-bucket"}, "has no bucket missing-bucket"),
    ],
)
def test_cluster_mode_without_its_event_log_refuses_to_start_in_one_line(
    tmp_path: Path, settings: dict[str, str], said: str
) -> None:
    fake = start_fake_kube(tmp_path)
    s3 = MotoS3().start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env |= {
            "VTEAM_HOME": str(tmp_path / "home"),
            "VTEAM_MODE": "cluster",
            "VTEAM_KUBECONFIG": str(fake.kubeconfig),
            "VTEAM_S3_ENDPOINT_URL": s3.endpoint,
            "VTEAM_S3_ACCESS_KEY_ID": KEY_ID,
            "VTEAM_S3_SECRET_ACCESS_KEY": SECRET,
            **settings,
        }
        done = subprocess.run(
            [sys.executable, "-m", "vteam", "up", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        s3.stop()
        fake.close()
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert said in last
    assert SECRET not in done.stderr


def test_behind_the_proxy_name_and_groups_come_from_the_forwarded_token_not_headers(cluster: Cluster) -> None:
    """OpenShift's oauth-proxy passes a client's own X-Forwarded-Groups through; cluster mode never believes it."""
    with cluster.person("alice") as alice:
        assert alice.post("/api/projects", json={"name": "team-d"}).status_code == 201
    token = cluster.fake.add_user("mallory", ["staff"])
    with httpx.Client(base_url=cluster.backend.url) as proxied:
        claim = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "vteam-admins", "X-Forwarded-Access-Token": token}
        # What the overlay's oauth-proxy adds with --basic-auth-password: its proof of being the proxy.
        claim["Authorization"] = "Basic " + base64.b64encode(f"mallory:{PROXY_SECRET}".encode()).decode()
        me = proxied.get("/api/me", headers=claim).json()
        assert me["name"] == "mallory"
        assert me["admin"] is False
        assert "vteam-admins" not in me["groups"]
        assert proxied.get("/api/projects/team-d", headers=claim).status_code == 404
        assert proxied.delete("/api/projects/team-d", headers=claim).status_code == 404

        someone_else = {**claim, "X-Forwarded-User": "alice"}
        assert proxied.get("/api/me", headers=someone_else).status_code == 401
