"""The fake Kubernetes API server answers the real clients (kubernetes_asyncio, kopf's login) the way kube does.

Cluster-mode tests (the Kubernetes store's contract suite, the operator's integration test) run against
`tests.support.fake_kube` when no real cluster is named, so here the fake is held to the behaviour they rely on:
CRUD of namespaces and custom resources, optimistic concurrency, the status subresource, selectors and pagination,
watches that resume and expire, garbage collection, finalizers, RBAC and access reviews, and schema validation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client import ApiClient, ApiException

from tests.support.fake_kube import FakeKube, fake_kube

GROUP, VERSION, PLURAL = "example.com", "v1", "widgets"
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0},
                                    "color": {"type": "string", "nullable": True, "default": "blue"},
                                },
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKube]:
    with fake_kube(tmp_path, bookmark_interval=0.2) as server:
        yield server


async def _client(kubeconfig: Path) -> ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return ApiClient(configuration)


@pytest.fixture
async def api(fake: FakeKube) -> AsyncIterator[ApiClient]:
    async with await _client(fake.kubeconfig) as api_client:
        await client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "p1"}})
        await client.ApiextensionsV1Api(api_client).create_custom_resource_definition(WIDGET_CRD)
        yield api_client


def widget(name: str, size: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"size": size},
    }


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == error.status
    return body


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "activeDeadlineSeconds": 600,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": "vteam:1"}]}},
        },
    }


async def test_discovery_serves_crds_and_kopf_logs_in_with_the_kubeconfig(
    fake: FakeKube, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = await client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    names = {r.name: r for r in resources.resources}
    assert names[PLURAL].namespaced
    assert names[PLURAL].kind == "Widget"
    assert names[PLURAL].short_names == ["wd"]
    assert "widgets/status" in names
    groups = {g.name for g in (await client.ApisApi(api).get_api_versions()).groups}
    assert {"batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io", GROUP} <= groups
    core = {r.name for r in (await client.CoreV1Api(api).get_api_resources()).resources}
    assert {"namespaces", "pods", "pods/status", "secrets", "serviceaccounts", "events"} <= core

    # what `kopf run` does in the operator's process, where KUBECONFIG names the fake's kubeconfig
    import kopf
    import kubernetes_asyncio.config.kube_config as kube_config
    from kopf._core.intents.piggybacking import login_via_async_client

    saved = client.Configuration.get_default_copy()
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(fake.kubeconfig))
    try:
        info = await login_via_async_client(logger=logging.getLogger("kopf"), settings=kopf.OperatorSettings())
    finally:
        client.Configuration.set_default(saved)
    assert info is not None
    assert info.server == fake.url
    assert info.token


async def test_namespaces_and_custom_resources_crud_with_optimistic_concurrency(fake: FakeKube, api: ApiClient) -> None:
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = await core.read_namespace("p1")
    assert ns.status.phase == "Active"
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "p1"
    with pytest.raises(ApiException) as exc:
        await core.create_namespace({"metadata": {"name": "p1"}})
    assert status_of(exc.value)["reason"] == "AlreadyExists"
    assert exc.value.status == 409

    created = await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("a"))
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > int(ns.metadata.resource_version)
    assert created["spec"] == {"size": 1, "color": "blue"}  # the schema's default
    nulls = {**widget("n"), "spec": {"size": None, "color": None, "extra": 1}}
    with pytest.raises(ApiException) as exc:  # size: a null where not nullable is dropped, then it is missing
        await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, nulls)
    assert status_of(exc.value)["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.size",
    }
    nulls["spec"]["size"] = 0
    kept = await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, nulls)
    assert kept["spec"] == {"size": 0, "color": None}  # color is nullable; extra is pruned
    assert fake.warnings == ['Widget n: unknown field "spec.extra"']
    generated = await objects.create_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, {**widget(""), "metadata": {"generateName": "w-"}}
    )
    assert generated["metadata"]["name"].startswith("w-")
    assert len(generated["metadata"]["name"]) == 7

    fresh = await objects.get_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a")
    fresh["spec"]["size"] = 2
    updated = await objects.replace_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a", fresh)
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    with pytest.raises(ApiException) as exc:  # fresh carries the old resourceVersion
        await objects.replace_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a", fresh)
    body = status_of(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on widgets.example.com "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    del fresh["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:  # custom resources never update unconditionally
        await objects.replace_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a", fresh)
    assert exc.value.status == 422

    deleted = await objects.delete_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a")
    assert deleted["metadata"]["name"] == "a"
    with pytest.raises(ApiException) as exc:
        await objects.get_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "a")
    body = status_of(exc.value)
    assert (exc.value.status, body["reason"], body["message"]) == (404, "NotFound", 'widgets.example.com "a" not found')
    assert body["details"] == {"name": "a", "group": GROUP, "kind": PLURAL}
    with pytest.raises(ApiException) as exc:
        await objects.create_namespaced_custom_object(GROUP, VERSION, "nope", PLURAL, widget("b"))
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "nope" not found'
    with pytest.raises(ApiException) as exc:  # spec.size is required and must be >= 0
        await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("c", size=-1))
    assert exc.value.status == 422
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "spec.size"
    assert len(fake.violations) == 3
    fake.violations.clear()


async def test_status_subresource_and_generation(api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    created = await objects.create_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, {**widget("s"), "status": {"phase": "Ignored"}}
    )
    assert "status" not in created
    merge = "application/merge-patch+json"
    patched = await objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, "p1", PLURAL, "s", {"status": {"phase": "Running"}, "spec": {"size": 9}}, _content_type=merge
    )
    assert patched["status"] == {"phase": "Running"}
    assert patched["spec"]["size"] == 1
    assert patched["metadata"]["generation"] == 1
    patched = await objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "p1",
        PLURAL,
        "s",
        {"status": {"phase": "Hacked"}, "metadata": {"labels": {"a": "b"}}},
        _content_type=merge,
    )
    assert patched["status"] == {"phase": "Running"}
    assert patched["metadata"]["generation"] == 1
    patched = await objects.patch_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, "s", {"spec": {"size": 3}}, _content_type=merge
    )
    assert patched["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as exc:  # kube takes no strategic merge patch for custom resources
        await objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "p1",
            PLURAL,
            "s",
            {"spec": {"size": 4}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415
    with pytest.raises(ApiException) as exc:  # a dict body goes out as json-patch unless told: kube answers 400
        await objects.patch_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "s", {"spec": {"size": 4}})
    assert exc.value.status == 400
    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}, {"op": "remove", "path": "/spec/color"}]
    with pytest.raises(ApiException) as exc:
        await objects.patch_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "s", stale)
    assert exc.value.status == 422
    stale_merge = {"metadata": {"resourceVersion": "1"}, "spec": {"size": 5}}
    with pytest.raises(ApiException) as exc:
        await objects.patch_namespaced_custom_object(
            GROUP, VERSION, "p1", PLURAL, "s", stale_merge, _content_type=merge
        )
    assert exc.value.status == 409


async def test_label_and_field_selectors_and_pagination(fake: FakeKube, api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    for i, tier in enumerate(["a", "a", "b", "c", ""]):
        await objects.create_namespaced_custom_object(
            GROUP, VERSION, "p1", PLURAL, widget(f"w{i}", labels={"tier": tier} if tier else {"other": "x"})
        )

    async def names(**kwargs: Any) -> list[str]:
        listed = await objects.list_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, **kwargs)
        return [item["metadata"]["name"] for item in listed["items"]]

    assert await names(label_selector="tier=a") == ["w0", "w1"]
    assert await names(label_selector="tier==a") == ["w0", "w1"]
    assert await names(label_selector="tier!=a") == ["w2", "w3", "w4"]
    assert await names(label_selector="tier in (b, c)") == ["w2", "w3"]
    assert await names(label_selector="tier notin (a,b)") == ["w3", "w4"]
    assert await names(label_selector="tier") == ["w0", "w1", "w2", "w3"]
    assert await names(label_selector="!tier") == ["w4"]
    assert await names(label_selector="tier,tier!=c") == ["w0", "w1", "w2"]
    assert await names(field_selector="metadata.name=w3") == ["w3"]
    assert await names(field_selector="metadata.namespace!=p1") == []
    with pytest.raises(ApiException) as exc:
        await names(label_selector="tier in (a")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        await names(field_selector="spec.size=1")
    assert exc.value.status == 400

    first = await objects.list_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["w0", "w1"]
    assert first["metadata"]["remainingItemCount"] == 3
    await objects.delete_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "w2")  # the snapshot still has it
    second = await objects.list_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, limit=2, _continue=first["metadata"]["continue"]
    )
    assert [i["metadata"]["name"] for i in second["items"]] == ["w2", "w3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    third = await objects.list_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, limit=2, _continue=second["metadata"]["continue"]
    )
    assert [i["metadata"]["name"] for i in third["items"]] == ["w4"]
    assert not third["metadata"].get("continue")

    everywhere = await objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert len(everywhere["items"]) == 4
    assert everywhere["kind"] == "WidgetList"
    fake.history_limit = 1
    await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("w9"))
    await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("w10"))
    with pytest.raises(ApiException) as exc:
        await objects.list_namespaced_custom_object(
            GROUP, VERSION, "p1", PLURAL, limit=2, _continue=first["metadata"]["continue"]
        )
    assert exc.value.status == 410
    assert status_of(exc.value)["reason"] == "Expired"


async def test_watch_resumes_from_a_version_sends_bookmarks_and_expires(fake: FakeKube, api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("old", labels={"w": "y"}))
    listed = await objects.list_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL)
    since = listed["metadata"]["resourceVersion"]

    async def changes() -> None:
        await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("new", labels={"w": "y"}))
        await objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "p1",
            PLURAL,
            "new",
            {"metadata": {"labels": {"w": "n"}}},
            _content_type="application/merge-patch+json",
        )
        await objects.delete_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "old")

    writer = asyncio.create_task(changes())
    seen: list[tuple[str, str]] = []
    async with watch.Watch() as w:
        async for event in w.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "p1",
            PLURAL,
            resource_version=since,
            label_selector="w=y",
            timeout_seconds=1,
            allow_watch_bookmarks=True,
        ):
            seen.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
    await writer
    # leaving the selector reads as DELETED, as kube's watch cache answers it
    assert [s for s in seen if s[0] != "BOOKMARK"] == [("ADDED", "new"), ("DELETED", "new"), ("DELETED", "old")]
    assert ("BOOKMARK", "") in seen

    initial: list[str] = []
    async with watch.Watch() as w:
        async for event in w.stream(
            objects.list_namespaced_custom_object, GROUP, VERSION, "p1", PLURAL, timeout_seconds=1
        ):
            initial.append(f"{event['type']} {event['object']['metadata']['name']}")
    assert initial == ["ADDED new"]

    fake.history_limit = 2
    for i in range(3):
        await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget(f"x{i}"))

    async def resume() -> None:
        async with watch.Watch() as w:
            async for _ in w.stream(
                objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "p1",
                PLURAL,
                resource_version=since,
                timeout_seconds=1,
            ):
                pass

    with pytest.raises(ApiException) as exc:
        await resume()
    assert exc.value.status == 410
    assert "Expired" in str(exc.value.reason)

    # the raw stream, as kopf reads it: HTTP 200 with an ERROR event whose object is a 410 Status
    headers = {"Authorization": f"Bearer {fake.admin_token}"}
    url = f"{fake.url}/apis/{GROUP}/{VERSION}/namespaces/p1/{PLURAL}?watch=true&resourceVersion={since}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200
        event = json.loads(await response.content.readline())
    assert event["type"] == "ERROR"
    assert {k: event["object"][k] for k in ("kind", "status", "reason", "code")} == {
        "kind": "Status",
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
    }


async def test_garbage_collection_finalizers_and_namespace_deletion(fake: FakeKube, api: ApiClient) -> None:
    objects, batch, core = client.CustomObjectsApi(api), client.BatchV1Api(api), client.CoreV1Api(api)
    owner = await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("owner"))
    ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "name": "owner", "uid": owner["metadata"]["uid"]}
    owned = job("owned")
    owned["metadata"]["ownerReferences"] = [{**ref, "controller": True, "blockOwnerDeletion": True}]
    await batch.create_namespaced_job("p1", owned)
    pod = fake.run_job_pod("p1", "owned")
    assert pod["metadata"]["labels"]["job-name"] == "owned"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    await objects.delete_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "owner")  # Background
    assert (await batch.list_namespaced_job("p1")).items == []
    assert (await core.list_namespaced_pod("p1")).items == []

    await batch.create_namespaced_job("p1", job("orphaner"))
    pod = fake.run_job_pod("p1", "orphaner")
    status = await batch.delete_namespaced_job("orphaner", "p1")  # a Job's default policy orphans its pods
    assert status.status == "Success"
    left = await core.read_namespaced_pod(pod["metadata"]["name"], "p1")
    assert not left.metadata.owner_references

    held = {**widget("held"), "metadata": {"name": "held", "finalizers": ["example.com/cleanup"]}}
    await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, held)
    marked = await objects.delete_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "held")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["finalizers"]
    with pytest.raises(ApiException) as exc:  # no new finalizers on an object being deleted
        await objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "p1",
            PLURAL,
            "held",
            {"metadata": {"finalizers": ["example.com/cleanup", "more"]}},
            _content_type="application/merge-patch+json",
        )
    assert exc.value.status == 422
    fake.violations.clear()
    await objects.patch_namespaced_custom_object(
        GROUP, VERSION, "p1", PLURAL, "held", [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    with pytest.raises(ApiException) as exc:
        await objects.get_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, "held")
    assert exc.value.status == 404

    await core.create_namespaced_secret("p1", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}})
    assert (await core.read_namespaced_secret("s", "p1")).data == {"token": "YWJj"}
    await core.delete_namespace("p1")
    with pytest.raises(ApiException) as exc:
        await core.read_namespace("p1")
    assert exc.value.status == 404
    assert fake.get("v1", "secrets", "s", "p1") is None
    assert fake.get("v1", "pods", pod["metadata"]["name"], "p1") is None


async def test_rbac_allows_what_bindings_grant_and_forbids_the_rest(
    fake: FakeKube, api: ApiClient, tmp_path: Path
) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    await core.create_namespace({"metadata": {"name": "p2"}})
    await rbac.create_cluster_role(
        {
            "metadata": {"name": "widget-editor", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
            "rules": [{"apiGroups": [GROUP], "resources": ["widgets", "widgets/status"], "verbs": ["*"]}],
        }
    )
    alice = fake.add_user("alice", ["team"])
    await rbac.create_namespaced_role_binding(
        "p1",
        {
            "metadata": {"name": "team-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "Group", "name": "team", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    runner = fake.add_user("system:serviceaccount:p2:runner")
    await rbac.create_namespaced_role(
        "p2",
        {
            "metadata": {"name": "one-widget"},
            "rules": [{"apiGroups": [GROUP], "resources": ["widgets"], "verbs": ["get"], "resourceNames": ["mine"]}],
        },
    )
    await rbac.create_namespaced_role_binding(
        "p2",
        {
            "metadata": {"name": "runner"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "one-widget"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner"}],
        },
    )
    admin_objects = client.CustomObjectsApi(api)
    for ns in ("p1", "p2"):
        await admin_objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, widget("mine"))

    async with await _client(fake.kubeconfig_for(alice, tmp_path / "alice")) as alice_api:
        objects = client.CustomObjectsApi(alice_api)
        await objects.create_namespaced_custom_object(GROUP, VERSION, "p1", PLURAL, widget("a"))  # edit aggregates
        await client.CoreV1Api(alice_api).create_namespaced_secret("p1", {"metadata": {"name": "s"}})
        with pytest.raises(ApiException) as exc:
            await objects.create_namespaced_custom_object(GROUP, VERSION, "p2", PLURAL, widget("a"))
        body = status_of(exc.value)
        assert (exc.value.status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == (
            'widgets.example.com is forbidden: User "alice" cannot create resource "widgets" in API group '
            '"example.com" in the namespace "p2"'
        )
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(alice_api).list_namespace()
        assert status_of(exc.value)["message"] == (
            'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" '
            "at the cluster scope"
        )
        reviews = client.AuthorizationV1Api(alice_api)

        async def can(verb: str, ns: str, resource: str = PLURAL, sub: str = "") -> bool:
            attrs = {"verb": verb, "group": GROUP, "resource": resource, "namespace": ns, "subresource": sub}
            review = await reviews.create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
            return bool(review.status.allowed)

        assert await can("delete", "p1")
        assert await can("patch", "p1", sub="status")
        assert not await can("get", "p2")
        assert not await can("create", "p1", resource="gadgets")

    async with await _client(fake.kubeconfig_for(runner, tmp_path / "runner")) as runner_api:
        objects = client.CustomObjectsApi(runner_api)
        assert (await objects.get_namespaced_custom_object(GROUP, VERSION, "p2", PLURAL, "mine"))["spec"]
        with pytest.raises(ApiException) as exc:
            await objects.list_namespaced_custom_object(GROUP, VERSION, "p2", PLURAL)
        assert exc.value.status == 403
        who = await client.AuthenticationV1Api(runner_api).create_self_subject_review({})
        assert who.status.user_info.username == "system:serviceaccount:p2:runner"
        assert "system:serviceaccounts:p2" in who.status.user_info.groups

    async with await _client(fake.kubeconfig_for("not-a-token", tmp_path / "nobody")) as nobody:
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(nobody).list_namespaced_pod("p1")
        assert exc.value.status == 401
        assert status_of(exc.value)["reason"] == "Unauthorized"

    review = await client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "spec": {
                "user": "bob",
                "groups": ["team"],
                "resourceAttributes": {"verb": "list", "group": "batch", "resource": "jobs", "namespace": "p1"},
            },
        }
    )
    assert review.status.allowed
    assert "RoleBinding" in review.status.reason


async def test_built_in_objects_are_validated_against_the_published_schemas(fake: FakeKube, api: ApiClient) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    bad = job("bad")
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = 5  # not a string
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # Jobs take Never or OnFailure
    with pytest.raises(ApiException) as exc:
        await batch.create_namespaced_job("p1", bad)
    body = status_of(exc.value)
    assert (exc.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('Job.batch "bad" is invalid: ')
    assert {c["field"] for c in body["details"]["causes"]} >= {"spec.template.spec.containers[0].image"}
    assert fake.violations == [body["message"]]
    fake.violations.clear()

    created = await batch.create_namespaced_job("p1", job("good"))
    assert created.spec.backoff_limit == 6
    assert created.spec.template.metadata.labels["job-name"] == "good"
    pod = fake.run_job_pod("p1", "good")
    name = pod["metadata"]["name"]
    assert (await core.read_namespaced_pod(name, "p1")).status.phase == "Pending"
    # the kubelet's part, played by the test through the API
    running = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "runner",
                    "image": "vteam:1",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                }
            ],
        }
    }
    await core.patch_namespaced_pod_status(name, "p1", running)
    assert (await core.read_namespaced_pod(name, "p1")).status.container_statuses[0].ready
    await batch.patch_namespaced_job_status("good", "p1", {"status": {"active": 1, "ready": 1}})
    assert (await batch.read_namespaced_job("good", "p1")).status.active == 1
    fake.set_pod_log("p1", name, "hello\n")
    assert await core.read_namespaced_pod_log(name, "p1") == "hello\n"

    typo = job("typo")
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Never"
    await batch.create_namespaced_job("p1", typo)  # dropped, with a warning, as kube does by default
    stored = fake.get("batch/v1", "jobs", "typo", "p1")
    assert stored is not None
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]
    assert fake.warnings
    assert "imagePullPolicyy" in fake.warnings[-1]
    assert fake.violations == []


@pytest.mark.parametrize("path", sorted((REPO / "deploy" / "crds").glob("*.yaml")), ids=lambda p: p.name)
async def test_the_project_crds_are_served(path: Path, fake: FakeKube, api: ApiClient) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            crd = await client.ApiextensionsV1Api(api).create_custom_resource_definition(doc)
            spec = doc["spec"]
            for version in spec["versions"]:
                found = await client.CustomObjectsApi(api).get_api_resources(spec["group"], version["name"])
                assert spec["names"]["plural"] in {r.name for r in found.resources}
            assert crd.status.accepted_names.kind == spec["names"]["kind"]
    assert fake.violations == []
