"""ResourceStore on the Kubernetes API: custom resources for sessions and settings, namespaces for projects.

A project is a namespace labelled `vteam.ambient-code/managed=true`; its spec lives in the namespace's
annotations so that replacing it moves the namespace's resourceVersion like any other write.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp
from pydantic import BaseModel, ValidationError

from vteam.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Unavailable, VteamError
from vteam.kube import (
    MANAGED_LABEL,
    ApiException,
    Configuration,
    KubeApi,
    KubeClients,
    load_configuration,
    translate,
    user_configuration,
)
from vteam.resources import (
    SETTINGS_NAME,
    AgenticSession,
    ObjectMeta,
    Project,
    ProjectSettings,
    Resource,
    crds,
)
from vteam.store import kube_watch, selectors
from vteam.store.base import R, ResourceList, WatchEvent
from vteam.store.kube_mapping import (
    Key,
    from_custom,
    is_managed,
    is_terminating,
    key_of,
    namespace_from_project,
    plural,
    project_from_namespace,
    to_custom,
    version_of,
)

T = TypeVar("T")

PROJECT_PLURALS = tuple(kind.plural for kind in crds.KINDS)
"""The custom kinds a project holds; deleting the project deletes them first, so they vanish at once."""

_MANAGED = f"{MANAGED_LABEL}=true"


def _describe(kind: type[Resource], name: str, namespace: str | None) -> str:
    where = f" in project {namespace!r}" if kind.NAMESPACED and namespace else ""
    return f"{kind.KIND} {name!r}{where}"


def _status(exc: ApiException) -> dict[str, Any]:
    """The Kubernetes Status object the server answered with, or {}."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _missing_project(ns: str | None) -> Callable[[ApiException], VteamError | None]:
    """Creating in a namespace that is not there, or is going, is creating in a missing project."""

    def special(exc: ApiException) -> VteamError | None:
        details = _status(exc).get("details") or {}
        if exc.status == 404 and details.get("kind") == "namespaces":
            return NotFound(f"project {ns!r} not found")
        if exc.status == 403 and "being terminated" in str(_status(exc).get("message") or ""):
            return NotFound(f"project {ns!r} not found: it is being deleted")
        return None

    return special


def _being_deleted(name: str) -> Callable[[ApiException], VteamError | None]:
    def special(exc: ApiException) -> VteamError | None:
        if exc.status == 409 and "being deleted" in str(_status(exc).get("message") or ""):
            return AlreadyExists(f"Project {name!r} already exists and is being deleted; try again shortly")
        return None

    return special


class KubeStore:
    """Every call is one or two API requests; nothing is cached, so several replicas can share a cluster.

    `close()` closes the clients the store was given, unless they are shared (`owns_clients=False`), so a
    store built on fresh clients, as `connect`, `open` and `for_user` build them, is one thing to close.
    """

    def __init__(self, clients: KubeClients, *, owns_clients: bool = True) -> None:
        self._clients = clients
        self._api = KubeApi(clients)
        self._owns = owns_clients

    @classmethod
    def connect(cls, configuration: Configuration) -> KubeStore:
        return cls(KubeClients.of(configuration))

    @classmethod
    async def open(cls, kubeconfig: Path | None = None) -> KubeStore:
        return cls.connect(await load_configuration(kubeconfig))

    @classmethod
    def for_user(cls, base: Configuration, token: str) -> KubeStore:
        """A store that acts as the caller, so Kubernetes RBAC decides; close it when the request ends."""
        return cls.connect(user_configuration(base, token))

    async def close(self) -> None:
        if self._owns:
            await self._clients.close()

    async def _call(
        self, what: str, call: Awaitable[T], special: Callable[[ApiException], VteamError | None] | None = None
    ) -> T:
        """Await one API request; its failure becomes a vTeam error, `special`'s where it has one."""
        try:
            return await call
        except ApiException as exc:
            error = special(exc) if special else None
            raise error or translate(exc, what) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"the Kubernetes API could not be reached on {what}: {exc}") from exc

    # --- create and get -----------------------------------------------------------------------------

    async def create(self, obj: R) -> R:
        """Status is not written: as in Kubernetes, a new object starts with none (the model's default)."""
        kind = type(obj)
        if isinstance(obj, Project):
            return cast(R, await self._create_project(obj))
        ns = obj.metadata.namespace
        if kind.NAMESPACED and not ns:
            raise InvalidInput(f"{kind.KIND} needs a project")
        body = to_custom(obj, resource_version=False)
        if kind.NAMESPACED:
            body["metadata"]["namespace"] = ns
        call = self._api.create_object(plural(kind), body, ns if kind.NAMESPACED else None)
        return from_custom(kind, await self._call(_describe(kind, obj.name, ns), call, _missing_project(ns)))

    async def _create_project(self, project: Project) -> Project:
        """The namespace, then its ProjectSettings; a half-made project is removed again."""
        name = project.name
        body = namespace_from_project(project, generation=1)
        namespace = await self._call(
            _describe(Project, name, None), self._api.create_namespace(body), _being_deleted(name)
        )
        settings = ProjectSettings(metadata=ObjectMeta(name=SETTINGS_NAME, namespace=name))
        try:
            await self.create(settings)
        except Exception:
            with contextlib.suppress(ApiException, aiohttp.ClientError, TimeoutError):
                await self._api.delete_namespace(name)
            raise
        return project_from_namespace(namespace)

    async def get(self, kind: type[R], name: str, namespace: str | None = None) -> R:
        if kind is Project:
            return cast(R, project_from_namespace(await self._namespace(name)))
        what = _describe(kind, name, namespace)
        if kind.NAMESPACED and not namespace:
            raise NotFound(f"{what} not found")
        raw = await self._call(what, self._api.get_object(plural(kind), name, namespace if kind.NAMESPACED else None))
        return from_custom(kind, raw)

    async def _namespace(self, name: str) -> dict[str, Any]:
        """The project's namespace: NotFound unless it exists, is managed and is not being deleted."""
        what = _describe(Project, name, None)
        namespace = await self._call(what, self._api.read_namespace(name))
        if not is_managed(namespace):
            raise NotFound(f"{what} not found")
        if is_terminating(namespace):
            raise NotFound(f"{what} not found: it is being deleted")
        return namespace

    # --- list -----------------------------------------------------------------------------------------

    async def _page(
        self,
        kind: type[Resource],
        namespace: str | None,
        *,
        label_selector: str | None,
        limit: int | None,
        continue_token: str | None,
    ) -> dict[str, Any]:
        """One raw page of a kind, as Kubernetes lists it."""
        what = f"the list of {kind.KIND}" + (f" in project {namespace!r}" if namespace and kind.NAMESPACED else "")
        if kind is Project:
            selector = _MANAGED + (f",{label_selector}" if label_selector and label_selector.strip() else "")
            listing = self._api.list_namespaces(label_selector=selector, limit=limit, continue_token=continue_token)
            return await self._call(what, listing)
        call = self._api.list_objects(
            plural(kind),
            namespace if kind.NAMESPACED else None,
            label_selector=label_selector,
            limit=limit,
            continue_token=continue_token,
        )
        return await self._call(what, call)

    async def list(
        self,
        kind: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        phase: str | None = None,
    ) -> ResourceList[R]:
        """Selectors are checked here first, so vTeam's rules (no negated sets) hold whatever the server takes."""
        selectors.parse(label_selector)
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be at least 1")
        if phase is not None:
            return await self._list_phase(kind, namespace, label_selector, limit, continue_token, phase)
        page = await self._page(
            kind, namespace, label_selector=label_selector, limit=limit, continue_token=continue_token or None
        )
        raws = sorted(page.get("items") or [], key=key_of)
        if kind is Project:
            raws = [raw for raw in raws if not is_terminating(raw)]
        items = [self._convert(kind, raw) for raw in raws]
        meta = page.get("metadata") or {}
        return ResourceList(
            items=items,
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=meta.get("continue") or None,
        )

    async def _list_phase(
        self,
        kind: type[R],
        namespace: str | None,
        label_selector: str | None,
        limit: int | None,
        continue_token: str | None,
        phase: str,
    ) -> ResourceList[R]:
        """Custom resources cannot be selected by status, so pages of PHASE_PAGE (or `limit`, if more) are read
        and filtered here.

        A page can hold more matches than are wanted; the continue token then names the Kubernetes page and
        the last object returned, and the next call reads that page again past that object.
        """
        page_token, seen, size = _decode_phase_continue(continue_token) if continue_token else (None, None, None)
        size = size or max(limit or 0, PHASE_PAGE)
        items: list[R] = []
        last: Key | None = None
        while True:
            page = await self._page(
                kind, namespace, label_selector=label_selector, limit=size, continue_token=page_token
            )
            raws = sorted(page.get("items") or [], key=key_of)
            if kind is Project:
                raws = [raw for raw in raws if not is_terminating(raw)]
            for raw in raws:
                if seen is not None and key_of(raw) <= seen:
                    continue
                obj = self._convert(kind, raw)
                if _phase_of(obj) != phase:
                    continue
                if limit is not None and last is not None and len(items) >= limit:
                    token = _encode_phase_continue(page_token, last, size)
                    return ResourceList(items=items, resource_version=_version(page), continue_token=token)
                items.append(obj)
                last = key_of(raw)
            seen = None
            page_token = (page.get("metadata") or {}).get("continue") or None
            if page_token is None:
                return ResourceList(items=items, resource_version=_version(page))

    def _convert(self, kind: type[R], raw: dict[str, Any]) -> R:
        if kind is Project:
            return cast(R, project_from_namespace(raw))
        return from_custom(kind, raw)

    async def versions(self, kind: type[R], namespace: str | None = None) -> dict[str, str]:
        """One list of the kind (paged by 500); full objects, as the generated client cannot ask for metadata only."""
        items, _ = await kube_watch.list_all(self._feed(kind, namespace))
        visible = (raw for raw in items if kind is not Project or not is_terminating(raw))
        return {str(raw["metadata"]["name"]): version_of(raw) for raw in visible}

    async def current_version(self) -> str:
        """The cluster's latest resourceVersion, from a list of at most one AgenticSession.

        Kubernetes versions are cluster-wide: this also moves when anything else in the cluster is written,
        so a cache keyed on it is invalidated more often than needed, never less.
        """
        page = await self._page(AgenticSession, None, label_selector=None, limit=1, continue_token=None)
        return str((page.get("metadata") or {}).get("resourceVersion") or "")

    # --- replace and patch ---------------------------------------------------------------------------

    async def replace(self, obj: R) -> R:
        kind = type(obj)
        what = _describe(kind, obj.name, obj.metadata.namespace)
        given = obj.metadata.resource_version
        if not given:
            raise Conflict(f"{what} has no resourceVersion to replace; read it first and send what you read")
        if isinstance(obj, Project):
            return cast(R, await self._replace_project(obj, given))
        body = to_custom(obj, resource_version=True)
        ns = obj.metadata.namespace
        if kind.NAMESPACED:
            if not ns:
                raise NotFound(f"{what} not found")
            body["metadata"]["namespace"] = ns
        call = self._api.replace_object(plural(kind), obj.name, body, ns if kind.NAMESPACED else None)
        return from_custom(kind, await self._call(what, call))

    async def _replace_project(self, project: Project, given: str) -> Project:
        """Read first: only a managed namespace may be replaced, and the generation moves with the spec."""
        what = _describe(Project, project.name, None)
        current = await self._namespace(project.name)
        if version_of(current) != given:
            raise Conflict(f"{what} was changed by someone else (resourceVersion {given} is stale); read it again")
        old = project_from_namespace(current)
        generation = (old.metadata.generation or 1) + (old.spec != project.spec)
        body = namespace_from_project(project, generation=generation, resource_version=given)
        return project_from_namespace(await self._call(what, self._api.replace_namespace(project.name, body)))

    async def patch_status(
        self,
        kind: type[R],
        name: str,
        namespace: str | None,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> R:
        """A JSON merge patch on the status subresource; with resource_version, Kubernetes makes it conditional.

        Unlike a top-level merge, an object-valued field is merged key by key; `status_patch` sends whole
        objects with their unset keys as null, which makes the two agree.
        """
        what = _describe(kind, name, namespace)
        if kind is Project:
            raise InvalidInput("a project's status is its namespace's; Kubernetes sets it")
        _check_status(kind, status)
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        if kind.NAMESPACED and not namespace:
            raise NotFound(f"{what} not found")
        call = self._api.merge_status(plural(kind), name, body, namespace if kind.NAMESPACED else None)
        return from_custom(kind, await self._call(what, call))

    # --- delete ---------------------------------------------------------------------------------------

    async def delete(self, kind: type[R], name: str, namespace: str | None = None) -> None:
        what = _describe(kind, name, namespace)
        if kind is Project:
            await self._delete_project(name)
        elif kind.NAMESPACED and not namespace:
            raise NotFound(f"{what} not found")
        else:
            await self._call(what, self._api.delete_object(plural(kind), name, namespace if kind.NAMESPACED else None))

    async def _delete_project(self, name: str) -> None:
        """Its resources first, so they are gone now rather than when Kubernetes finishes the namespace."""
        namespace = await self._namespace(name)
        for kinds in PROJECT_PLURALS:
            with contextlib.suppress(NotFound):
                await self._call(f"the {kinds} of project {name!r}", self._api.delete_all_objects(kinds, name))
        uid = namespace["metadata"]["uid"]
        await self._call(_describe(Project, name, None), self._api.delete_namespace(name, uid=uid))

    # --- watch ----------------------------------------------------------------------------------------

    async def watch(
        self, kind: type[R], namespace: str | None = None, *, resource_version: str | None = None
    ) -> AsyncIterator[WatchEvent[R]]:
        """Lists once to know what the reader has, then watches; see `kube_watch` for resuming and relisting.

        A project whose namespace starts terminating is reported DELETED then, not when Kubernetes is done.
        """
        async for event in kube_watch.watch(self._feed(kind, namespace), resource_version):
            yield event

    def _feed(self, kind: type[R], namespace: str | None) -> kube_watch.Feed[R]:
        scoped = namespace if kind.NAMESPACED else None
        what = kind.KIND + (f" in project {scoped!r}" if scoped else "")

        async def list_page(token: str | None, limit: int) -> dict[str, Any]:
            return await self._page(kind, scoped, label_selector=None, limit=limit, continue_token=token)

        async def open_watch(version: str, seconds: int) -> aiohttp.ClientResponse:
            if kind is Project:
                return await self._api.watch_namespaces(
                    label_selector=_MANAGED, resource_version=version, seconds=seconds
                )
            return await self._api.watch_objects(plural(kind), scoped, resource_version=version, seconds=seconds)

        if kind is Project:
            return kube_watch.Feed(
                what, list_page, open_watch, lambda raw: self._convert(kind, raw), lambda raw: not is_terminating(raw)
            )
        return kube_watch.Feed(what, list_page, open_watch, lambda raw: from_custom(kind, raw))


PHASE_PAGE = 500
"""How many objects one Kubernetes request reads for a list filtered by phase."""


def _phase_of(obj: Resource) -> str | None:
    value = getattr(getattr(obj, "status", None), "phase", None)
    return None if value is None else str(getattr(value, "value", value))


def _version(page: dict[str, Any]) -> str:
    return str((page.get("metadata") or {}).get("resourceVersion") or "")


def _encode_phase_continue(page_token: str | None, last: Key, size: int) -> str:
    """A phase list's continue token: the Kubernetes page to read again, the last object returned, the page size."""
    raw = json.dumps({"page": page_token, "after": list(last), "size": size})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_phase_continue(token: str) -> tuple[str | None, Key, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        page, (ns, name), size = raw["page"], raw["after"], int(raw["size"])
        if not (page is None or isinstance(page, str)) or not 1 <= size <= 10_000:
            raise ValueError(size)
        return page, (str(ns), str(name)), size
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput("continue token is not one this server gave out for this phase") from exc


def _check_status(kind: type[Resource], status: dict[str, Any]) -> None:
    """Refuse a status the model would not read back, before it reaches the cluster."""
    field = kind.model_fields.get("status")
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return
    try:
        model.model_validate(status)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise InvalidInput(f"{kind.KIND} status is not valid: {exc.error_count()} error(s)", errors=errors) from exc
