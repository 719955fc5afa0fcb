"""Two `vteam operator` replicas sharing the `vteam` ClusterKopfPeering: one acts, and when it goes the other
takes over. Against the fake API server (kopf's peering is plain reads and patches of the peering object)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.fake_kube import FakeKube, start_fake_kube
from tests.support.server import FOREIGN

pytestmark = [pytest.mark.integration, pytest.mark.alone]

ROOT = Path(__file__).resolve().parents[2]
ACTIVE = "this replica is now the active operator"
SESSIONS = "/apis/vteam.ambient-code/v1alpha1/namespaces/team/agenticsessions"
MANAGED = "vteam.ambient-code/managed"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKube]:
    fake = start_fake_kube(tmp_path)
    paths = {
        "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "ClusterKopfPeering": "/apis/kopf.dev/v1/clusterkopfpeerings",
    }
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}) as api:
        for file in [*sorted((ROOT / "deploy" / "crds").glob("*.yaml")), ROOT / "deploy" / "base" / "peering.yaml"]:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and doc.get("kind") in paths:
                    assert api.post(paths[doc["kind"]], json=doc).status_code == 201
        api.post("/api/v1/namespaces", json={"metadata": {"name": "team", "labels": {MANAGED: "true"}}})
        api.post("/api/v1/namespaces/team/serviceaccounts", json={"metadata": {"name": "vteam-runner"}})
    yield fake
    fake.close()
    assert fake.violations == []


class Replica:
    def __init__(self, fake: FakeKube, home: Path, priority: int) -> None:
        home.mkdir()
        (home / "secret.key").write_text("ab" * 32)
        self.log = home / "operator.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env |= {
            "VTEAM_HOME": str(home),
            "VTEAM_KUBECONFIG": str(fake.kubeconfig),
            "VTEAM_PUBLIC_URL": "http://vteam-backend.vteam.svc:8080",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vteam", "operator", "--peering", "vteam", "--priority", str(priority)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def new_session(api: httpx.Client, name: str) -> None:
    body = {"metadata": {"name": name}, "spec": {"prompt": "true", "framework": "script"}}
    made = api.post(SESSIONS, json={"apiVersion": "vteam.ambient-code/v1alpha1", "kind": "AgenticSession", **body})
    assert made.status_code == 201, made.text


def test_one_replica_acts_and_the_other_takes_over_when_it_goes(fake: FakeKube, tmp_path: Path) -> None:
    first = Replica(fake, tmp_path / "first", priority=20)
    second: Replica | None = None
    try:
        wait_for(lambda: ACTIVE in first.text(), "the first replica to become active")
        second = Replica(fake, tmp_path / "second", priority=10)
        with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.admin_token}"}) as api:
            wait_for(
                lambda: len(api.get("/apis/kopf.dev/v1/clusterkopfpeerings/vteam").json().get("status", {}) or {}) >= 2,
                "both replicas to announce themselves in the peering object",
            )
            new_session(api, "one")
            wait_for(lambda: api.get("/apis/batch/v1/namespaces/team/jobs/one").status_code == 200, "a Job")
            wait_for(lambda: "team/one" in first.text(), "the active replica to record the start")
            time.sleep(1.0)
            assert "team/one" not in second.text()
            assert ACTIVE not in second.text()

            first.stop()
            wait_for(lambda: ACTIVE in second.text(), "the second replica to take over")
            new_session(api, "two")
            wait_for(lambda: api.get("/apis/batch/v1/namespaces/team/jobs/two").status_code == 200, "a Job")
            wait_for(lambda: "team/two" in second.text(), "the second replica to record the start")
    finally:
        first.stop()
        if second is not None:
            second.stop()
