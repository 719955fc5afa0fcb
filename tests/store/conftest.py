"""ResourceStore fixtures: one `store` per implementation, so the contract suite runs against each.

To run the contract against another implementation, add one entry to IMPLEMENTATIONS: a function that
takes pytest's request and tmp_path and returns an async context manager yielding a ready store, and
cleans up after it.

The Kubernetes store runs twice: against a real cluster when VTEAM_TEST_KUBECONFIG names a kubeconfig
("kube"), and against the fake API server in tests/support/fake_kube.py ("kube-fake"), started once per
test session. Both install the CRDs once and delete the projects a test made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vteam.db import open_database
from vteam.errors import NotFound
from vteam.kube import KubeClients, load_configuration
from vteam.resources import GROUP, VERSION, Project, crds
from vteam.store import KubeStore, ResourceStore, SqliteStore

KUBECONFIG = os.environ.get("VTEAM_TEST_KUBECONFIG")
"""Read at import: the autouse fixture in tests/conftest.py hides every VTEAM_* variable from the tests."""
NO_CLUSTER = "VTEAM_TEST_KUBECONFIG is not set: no Kubernetes API server to run against"
CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"
KUBE_IMPLEMENTATIONS = ("kube", "kube-fake")


@asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResourceStore]:
    db = await open_database(tmp_path / "db.sqlite", synchronous="NORMAL")
    store = SqliteStore(db)
    try:
        yield store
    finally:
        await store.close()
        await db.close()


@dataclass
class Cluster:
    """A Kubernetes API server for the tests: a real one, or the fake (then `fake` is the FakeKube)."""

    kubeconfig: Path
    fake: Any | None = None


@pytest.fixture(scope="session")
def real_kube() -> Cluster:
    if not KUBECONFIG:
        pytest.skip(NO_CLUSTER)
    return Cluster(Path(KUBECONFIG))


@pytest.fixture(scope="session")
def fake_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from tests.support.fake_kube import start_fake_kube

    fake = start_fake_kube(tmp_path_factory.mktemp("fake-kube"))
    try:
        yield Cluster(fake.kubeconfig, fake)
    finally:
        fake.close()


def cluster_for(request: pytest.FixtureRequest, implementation: str) -> Cluster:
    cluster: Cluster = request.getfixturevalue("real_kube" if implementation == "kube" else "fake_kube")
    return cluster


class TrackingKubeStore(KubeStore):
    """Remembers the projects it made, so a test against a shared cluster leaves nothing behind."""

    def __init__(self, clients: KubeClients) -> None:
        super().__init__(clients, owns_clients=False)
        self.projects: list[str] = []

    async def create(self, obj: Any) -> Any:
        created = await super().create(obj)
        if isinstance(obj, Project):
            self.projects.append(obj.name)
        return created

    async def remove_projects(self) -> None:
        for name in self.projects:
            with contextlib.suppress(NotFound):
                await self.delete(Project, name)


_CRDS_READY: set[Path] = set()


def crd_documents() -> list[dict[str, Any]]:
    """The committed CRDs of vTeam's group, or, before they are generated, the ones the models give."""
    docs = [
        doc
        for path in sorted(CRD_DIR.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["group"] == GROUP
    ]
    return docs or crds.definitions()


async def install_crds(clients: KubeClients, kubeconfig: Path) -> None:
    """Create or update the CRDs once per server and test session, and wait until they are served."""
    if kubeconfig in _CRDS_READY:
        return
    extensions = client.ApiextensionsV1Api(clients.api)
    for doc in crd_documents():
        try:
            await extensions.create_custom_resource_definition(body=doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = await extensions.read_custom_resource_definition(doc["metadata"]["name"])
            doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current.metadata.resource_version}}
            await extensions.replace_custom_resource_definition(doc["metadata"]["name"], body=doc)
    for doc in crd_documents():
        plural = doc["spec"]["names"]["plural"]
        for _ in range(300):
            try:
                await clients.custom.list_cluster_custom_object(GROUP, VERSION, plural, limit=1)
                break
            except ApiException as exc:
                if exc.status != 404:
                    raise
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the API server never served {plural} after its CRD was created")
    _CRDS_READY.add(kubeconfig)


@asynccontextmanager
async def kube_clients(cluster: Cluster) -> AsyncIterator[KubeClients]:
    clients = KubeClients.of(await load_configuration(cluster.kubeconfig))
    try:
        await install_crds(clients, cluster.kubeconfig)
        yield clients
    finally:
        await clients.close()


@asynccontextmanager
async def kube_store(cluster: Cluster) -> AsyncIterator[TrackingKubeStore]:
    async with kube_clients(cluster) as clients:
        store = TrackingKubeStore(clients)
        try:
            yield store
        finally:
            await store.remove_projects()
            await store.close()


def _kube(implementation: str) -> Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[ResourceStore]]:
    def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AbstractAsyncContextManager[ResourceStore]:
        return kube_store(cluster_for(request, implementation))

    return open_store


IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[ResourceStore]]] = {
    "sqlite": _sqlite,
    **{name: _kube(name) for name in KUBE_IMPLEMENTATIONS},
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResourceStore]:
    async with IMPLEMENTATIONS[request.param](request, tmp_path) as impl:
        yield impl


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that cannot collide with another test's, should a backend be shared between tests."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
