"""What the Kubernetes store does beyond the contract: how projects look as namespaces, what it hides,
how its watches survive lost history, and that a user's store is held to Kubernetes RBAC."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.store.conftest import (
    KUBE_IMPLEMENTATIONS,
    Cluster,
    TrackingKubeStore,
    cluster_for,
    kube_clients,
    kube_store,
)
from vteam.errors import Expired, Forbidden, NotFound
from vteam.kube import MANAGED_LABEL, KubeClients, load_configuration
from vteam.resources import (
    GROUP,
    SETTINGS_NAME,
    VERSION,
    AgenticSession,
    ObjectMeta,
    Project,
    ProjectSettings,
    ProjectSettingsSpec,
    ProjectSpec,
    SessionSpec,
)
from vteam.resources.project import ProjectDefaults
from vteam.store import KubeStore, WatchEvent, kube_watch

Names = Callable[[str], str]

EVENT_TIMEOUT = 5.0


@pytest.fixture(params=KUBE_IMPLEMENTATIONS)
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return cluster_for(request, request.param)


@pytest.fixture
def fake(cluster: Cluster) -> Any:
    if cluster.fake is None:
        pytest.skip("needs the fake API server's controls, which a real cluster does not have")
    return cluster.fake


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[KubeClients]:
    async with kube_clients(cluster) as clients:
        yield clients


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[TrackingKubeStore]:
    async with kube_store(cluster) as impl:
        yield impl


@pytest.fixture
async def plain_namespace(api: KubeClients, unique: Names) -> AsyncIterator[str]:
    """A namespace vTeam did not make and does not manage."""
    name = unique("plain")
    await api.core.create_namespace({"metadata": {"name": name, "labels": {"team": "elsewhere"}}})
    yield name
    with contextlib.suppress(ApiException):
        await api.core.delete_namespace(name)


def session(name: str, project: str, prompt: str = "fix the bug") -> AgenticSession:
    return AgenticSession(metadata=ObjectMeta(name=name, namespace=project), spec=SessionSpec(prompt=prompt))


async def next_event(watch: AsyncIterator[WatchEvent[Any]]) -> WatchEvent[Any]:
    return await asyncio.wait_for(anext(watch), timeout=EVENT_TIMEOUT)


async def next_event_about(watch: AsyncIterator[WatchEvent[Any]], names: set[str]) -> WatchEvent[Any]:
    """The next event about one of `names`: a real cluster may hold other people's projects."""
    while True:
        event = await next_event(watch)
        if event.object.name in names:
            return event


def summary(event: WatchEvent[Any]) -> tuple[str, str]:
    return (event.type, event.object.name)


# --- projects are namespaces ----------------------------------------------------------------------


async def test_project_is_a_managed_namespace_that_carries_its_spec(
    store: KubeStore, api: KubeClients, unique: Names
) -> None:
    name = unique("proj")
    spec = ProjectSpec(
        display_name="Docs", description="Everything about the docs", defaults=ProjectDefaults(framework="claude")
    )
    created = await store.create(
        Project(metadata=ObjectMeta(name=name, labels={"team": "docs"}, annotations={"note": "hi"}), spec=spec)
    )

    namespace = await api.core.read_namespace(name)
    assert namespace.metadata.labels[MANAGED_LABEL] == "true"
    assert namespace.metadata.labels["team"] == "docs"
    assert namespace.metadata.annotations["openshift.io/display-name"] == "Docs"
    assert namespace.metadata.annotations["openshift.io/description"] == "Everything about the docs"
    assert json.loads(namespace.metadata.annotations["vteam.ambient-code/defaults"]) == {"framework": "claude"}
    assert namespace.metadata.annotations["note"] == "hi"
    assert created.metadata.uid == namespace.metadata.uid
    assert created.metadata.resource_version == namespace.metadata.resource_version
    assert created.metadata.labels == {"team": "docs"}
    assert created.metadata.annotations == {"note": "hi"}
    assert created.spec == spec
    assert created.status.phase == "Active"

    edited = created.model_copy(deep=True)
    edited.spec.display_name = "Documentation"
    replaced = await store.replace(edited)

    namespace = await api.core.read_namespace(name)
    assert namespace.metadata.annotations["openshift.io/display-name"] == "Documentation"
    assert replaced.metadata.resource_version == namespace.metadata.resource_version
    assert replaced.metadata.resource_version != created.metadata.resource_version
    assert replaced.metadata.generation == 2
    assert await store.get(Project, name) == replaced


async def test_a_new_project_holds_its_settings(store: KubeStore, api: KubeClients, unique: Names) -> None:
    name = unique("proj")
    await store.create(Project(metadata=ObjectMeta(name=name)))

    settings = await store.get(ProjectSettings, SETTINGS_NAME, name)
    raw = await api.custom.get_namespaced_custom_object(GROUP, VERSION, name, "projectsettings", SETTINGS_NAME)

    assert settings.spec == ProjectSettingsSpec()
    assert raw["metadata"]["uid"] == settings.metadata.uid
    assert [s.name for s in (await store.list(ProjectSettings, name)).items] == [SETTINGS_NAME]


async def test_namespaces_vteam_does_not_manage_are_not_projects(
    store: KubeStore, api: KubeClients, plain_namespace: str, unique: Names
) -> None:
    raw = await api.core.read_namespace(plain_namespace)

    with pytest.raises(NotFound, match=plain_namespace):
        await store.get(Project, plain_namespace)
    with pytest.raises(NotFound, match=plain_namespace):
        await store.replace(
            Project(metadata=ObjectMeta(name=plain_namespace, resource_version=raw.metadata.resource_version))
        )
    with pytest.raises(NotFound, match=plain_namespace):
        await store.delete(Project, plain_namespace)
    managed = unique("proj")
    await store.create(Project(metadata=ObjectMeta(name=managed)))

    names = [p.name for p in (await store.list(Project)).items]
    assert managed in names
    assert plain_namespace not in names
    assert plain_namespace not in await store.versions(Project)
    assert (await api.core.read_namespace(plain_namespace)).metadata.uid == raw.metadata.uid


async def test_project_watch_ignores_namespaces_vteam_does_not_manage(
    store: KubeStore, api: KubeClients, unique: Names
) -> None:
    plain, managed = unique("plain"), unique("proj")
    watch = store.watch(Project, resource_version=await store.current_version())
    try:
        await api.core.create_namespace({"metadata": {"name": plain}})
        await store.create(Project(metadata=ObjectMeta(name=managed)))
        event = await next_event_about(watch, {plain, managed})
    finally:
        await watch.aclose()
        with contextlib.suppress(ApiException):
            await api.core.delete_namespace(plain)

    assert summary(event) == ("ADDED", managed)


async def test_deleting_a_project_deletes_its_namespace_and_reports_it_once(
    store: KubeStore, api: KubeClients, unique: Names
) -> None:
    doomed, later = unique("doomed"), unique("later")
    await store.create(Project(metadata=ObjectMeta(name=doomed)))
    watch = store.watch(Project, resource_version=await store.current_version())
    try:
        await store.delete(Project, doomed)
        gone = await next_event_about(watch, {doomed, later})
        await store.create(Project(metadata=ObjectMeta(name=later)))
        after = await next_event_about(watch, {doomed, later})
    finally:
        await watch.aclose()

    assert summary(gone) == ("DELETED", doomed)
    assert summary(after) == ("ADDED", later)
    assert doomed not in [p.name for p in (await store.list(Project)).items]
    assert await _namespace_is_going(api, doomed)


async def _namespace_is_going(api: KubeClients, name: str) -> bool:
    try:
        namespace = await api.core.read_namespace(name)
    except ApiException as exc:
        return exc.status == 404
    return namespace.metadata.deletion_timestamp is not None


async def test_a_project_whose_namespace_is_still_terminating_is_gone(
    store: KubeStore, api: KubeClients, unique: Names
) -> None:
    doomed, later = unique("doomed"), unique("later")
    await store.create(Project(metadata=ObjectMeta(name=doomed)))
    await store.create(session("held", doomed))
    hold = {"metadata": {"finalizers": ["test.vteam.ambient-code/hold"]}}
    await _merge_patch(api, doomed, "held", hold)
    watch = store.watch(Project, resource_version=await store.current_version())
    try:
        await store.delete(Project, doomed)
        terminating = await api.core.read_namespace(doomed)
        with pytest.raises(NotFound, match=doomed):
            await store.get(Project, doomed)
        listed = [p.name for p in (await store.list(Project)).items]
        versions = await store.versions(Project)
        gone = await next_event_about(watch, {doomed, later})
        release = {"metadata": {"finalizers": None}}
        await _merge_patch(api, doomed, "held", release)
        await store.create(Project(metadata=ObjectMeta(name=later)))
        after = await next_event_about(watch, {doomed, later})
    finally:
        await watch.aclose()

    assert terminating.metadata.deletion_timestamp is not None
    assert doomed not in listed
    assert doomed not in versions
    assert summary(gone) == ("DELETED", doomed)
    assert gone.object.status.phase == "Terminating"
    assert summary(after) == ("ADDED", later)


async def _merge_patch(api: KubeClients, project: str, name: str, patch: dict[str, Any]) -> None:
    await api.custom.patch_namespaced_custom_object(
        GROUP, VERSION, project, "agenticsessions", name, patch, _content_type="application/merge-patch+json"
    )


async def test_a_namespace_labelled_by_hand_is_a_project_even_with_unreadable_defaults(
    store: KubeStore, api: KubeClients, unique: Names
) -> None:
    name = unique("byhand")
    await api.core.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {MANAGED_LABEL: "true", "team": "ops"},
                "annotations": {"openshift.io/display-name": "Ops", "vteam.ambient-code/defaults": "{not json"},
            }
        }
    )
    try:
        project = await store.get(Project, name)
    finally:
        await api.core.delete_namespace(name)

    assert project.spec.display_name == "Ops"
    assert project.spec.defaults is None
    assert project.metadata.labels == {"team": "ops"}
    assert project.metadata.generation == 1


# --- watches --------------------------------------------------------------------------------------


async def test_watch_resumes_after_the_server_ends_the_stream_without_losing_or_repeating(
    store: KubeStore, unique: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_watch, "WATCH_SECONDS", 1)
    project = unique("proj")
    await store.create(Project(metadata=ObjectMeta(name=project)))
    listed = await store.list(AgenticSession, project)
    watch = store.watch(AgenticSession, project, resource_version=listed.resource_version)
    try:
        await store.create(session("before", project))
        first = await next_event(watch)
        await asyncio.sleep(1.5)  # the server ends the stream; the watch resumes from what it saw last
        await store.create(session("after", project))
        second = await next_event(watch)
        await asyncio.sleep(1.5)
        await store.delete(AgenticSession, "before", project)
        third = await next_event(watch)
    finally:
        await watch.aclose()

    assert [summary(e) for e in (first, second, third)] == [
        ("ADDED", "before"),
        ("ADDED", "after"),
        ("DELETED", "before"),
    ]


async def test_watch_from_a_version_older_than_the_history_is_expired(
    store: KubeStore, fake: Any, unique: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake, "history_limit", 10)
    project = unique("proj")
    first = await store.create(Project(metadata=ObjectMeta(name=project)))
    for i in range(fake.history_limit + 5):
        await store.create(session(f"s-{i}", project))

    watch = store.watch(AgenticSession, project, resource_version=first.metadata.resource_version)
    try:
        with pytest.raises(Expired):
            await next_event(watch)
    finally:
        await watch.aclose()


async def test_watch_that_loses_history_while_away_relists_and_reports_what_changed(
    store: KubeStore, fake: Any, unique: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_watch, "WATCH_SECONDS", 1)
    monkeypatch.setattr(fake, "history_limit", 10)
    project = unique("proj")
    await store.create(Project(metadata=ObjectMeta(name=project)))
    kept = await store.create(session("kept", project))
    await store.create(session("removed", project))
    await store.create(session("edited", project, prompt="v1"))
    watch = store.watch(AgenticSession, project, resource_version=kept.metadata.resource_version)
    try:
        assert summary(await next_event(watch)) == ("ADDED", "removed")
        assert summary(await next_event(watch)) == ("ADDED", "edited")
        await asyncio.sleep(1.5)  # the server ends the stream while nobody reads it
        edited = await store.get(AgenticSession, "edited", project)
        edited.spec.prompt = "v2"
        await store.replace(edited)
        await store.delete(AgenticSession, "removed", project)
        await store.create(session("added", project))
        for i in range(fake.history_limit + 5):
            await store.patch_status(AgenticSession, "kept", project, {"message": f"churn {i}"})

        missed = [await next_event(watch) for _ in range(4)]
        await store.create(session("live", project))
        live = await next_event(watch)
    finally:
        await watch.aclose()

    assert [summary(e) for e in missed] == [
        ("DELETED", "removed"),
        ("ADDED", "added"),
        ("MODIFIED", "edited"),
        ("MODIFIED", "kept"),
    ]
    assert missed[2].object.spec.prompt == "v2"
    assert missed[3].object.status.message == f"churn {fake.history_limit + 4}"
    assert summary(live) == ("ADDED", "live")


# --- a user's own store ---------------------------------------------------------------------------


async def test_user_store_can_do_only_what_rbac_allows(
    store: KubeStore, api: KubeClients, cluster: Cluster, fake: Any, unique: Names
) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    await store.create(Project(metadata=ObjectMeta(name=mine)))
    await store.create(Project(metadata=ObjectMeta(name=theirs)))
    await store.create(session("s1", mine))
    user = unique("reader")
    token = fake.add_user(user, [])
    role = unique("session-reader")
    await api.rbac.create_cluster_role(
        {
            "metadata": {"name": role},
            "rules": [{"apiGroups": [GROUP], "resources": ["agenticsessions"], "verbs": ["get", "list", "watch"]}],
        }
    )
    await api.rbac.create_namespaced_role_binding(
        mine,
        {
            "metadata": {"name": "readers"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    as_user = KubeStore.for_user(await load_configuration(cluster.kubeconfig), token)
    try:
        assert [s.name for s in (await as_user.list(AgenticSession, mine)).items] == ["s1"]
        assert (await as_user.get(AgenticSession, "s1", mine)).name == "s1"
        with pytest.raises(Forbidden):
            await as_user.create(session("s2", mine))
        with pytest.raises(Forbidden):
            await as_user.delete(AgenticSession, "s1", mine)
        with pytest.raises(Forbidden):
            await as_user.list(AgenticSession, theirs)
        with pytest.raises(Forbidden):
            await as_user.create(Project(metadata=ObjectMeta(name=unique("nope"))))
    finally:
        await as_user.close()
        await api.rbac.delete_cluster_role(role)

    assert [s.name for s in (await store.list(AgenticSession, mine)).items] == ["s1"]
