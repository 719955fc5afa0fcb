"""What vTeam asks of the Kubernetes API, on plain dicts: its custom objects, project namespaces, runner Secrets
and accounts, project RoleBindings, and the reviews that authenticate and authorize callers.

Bodies are sent as Kubernetes writes them (camelCase); answers come back as plain dicts or vTeam values, so no
caller sees the client's classes. Failures are the client's `ApiException`: the caller, which knows what the
object is, translates it (`translate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from vteam.kube.client import KubeClients
from vteam.resources import GROUP, VERSION

Raw = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class TokenUser:
    """Who the API server says a bearer token belongs to."""

    name: str
    groups: tuple[str, ...]


class KubeApi:
    """Operations on one set of clients; it owns nothing, so closing stays with whoever made the clients."""

    def __init__(self, clients: KubeClients) -> None:
        self._clients = clients

    @property
    def _core(self) -> Any:
        """Untyped on purpose: the generated annotations refuse dict bodies and options the client accepts."""
        return self._clients.core

    @property
    def _custom(self) -> Any:
        return self._clients.custom

    def _plain(self, obj: Any) -> Raw:
        result: Raw = self._clients.api.sanitize_for_serialization(obj)
        return result

    # --- vTeam's custom objects: a namespace of None means a cluster-scoped kind, or every namespace --------

    async def get_object(self, plural: str, name: str, namespace: str | None) -> Raw:
        if namespace is None:
            raw: Raw = await self._custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            raw = await self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        return raw

    async def list_objects(
        self,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Raw:
        """One page, as Kubernetes lists it (`items`, `metadata.resourceVersion`, `metadata.continue`)."""
        args = {"label_selector": label_selector or None, "limit": limit, "_continue": continue_token}
        if namespace is None:
            page: Raw = await self._custom.list_cluster_custom_object(GROUP, VERSION, plural, **args)
        else:
            page = await self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **args)
        return page

    async def watch_objects(
        self, plural: str, namespace: str | None, *, resource_version: str, seconds: int
    ) -> aiohttp.ClientResponse:
        """The open watch stream, unread, which the server ends after `seconds`."""
        args = _watch_args(resource_version, seconds)
        if namespace is None:
            response: aiohttp.ClientResponse = await self._custom.list_cluster_custom_object(
                GROUP, VERSION, plural, **args
            )
        else:
            response = await self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **args)
        return response

    async def create_object(self, plural: str, body: Raw, namespace: str | None) -> Raw:
        if namespace is None:
            raw: Raw = await self._custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        else:
            raw = await self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        return raw

    async def replace_object(self, plural: str, name: str, body: Raw, namespace: str | None) -> Raw:
        if namespace is None:
            raw: Raw = await self._custom.replace_cluster_custom_object(GROUP, VERSION, plural, name, body)
        else:
            raw = await self._custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)
        return raw

    async def merge_status(self, plural: str, name: str, body: Raw, namespace: str | None) -> Raw:
        """A JSON merge patch on the status subresource (the client would send a JSON patch for a dict)."""
        if namespace is None:
            raw: Raw = await self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, body, _content_type=MERGE_PATCH
            )
        else:
            raw = await self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH
            )
        return raw

    async def delete_object(self, plural: str, name: str, namespace: str | None) -> None:
        if namespace is None:
            await self._custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            await self._custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    async def delete_all_objects(self, plural: str, namespace: str) -> None:
        await self._custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, plural)

    # --- namespaces -----------------------------------------------------------------------------------

    async def create_namespace(self, body: Raw) -> Raw:
        return self._plain(await self._core.create_namespace(body))

    async def read_namespace(self, name: str) -> Raw:
        return self._plain(await self._core.read_namespace(name))

    async def list_namespaces(
        self, *, label_selector: str, limit: int | None = None, continue_token: str | None = None
    ) -> Raw:
        listing = await self._core.list_namespace(label_selector=label_selector, limit=limit, _continue=continue_token)
        return self._plain(listing)

    async def watch_namespaces(
        self, *, label_selector: str, resource_version: str, seconds: int
    ) -> aiohttp.ClientResponse:
        args = _watch_args(resource_version, seconds)
        response: aiohttp.ClientResponse = await self._core.list_namespace(label_selector=label_selector, **args)
        return response

    async def replace_namespace(self, name: str, body: Raw) -> Raw:
        return self._plain(await self._core.replace_namespace(name, body))

    async def delete_namespace(self, name: str, *, uid: str | None = None) -> None:
        """With `uid`, only that namespace (not one made since under the same name), its contents in the background."""
        if uid is None:
            await self._core.delete_namespace(name)
            return
        options = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        await self._core.delete_namespace(name, body=options)

    # --- what a project's runners and members need -------------------------------------------------------

    async def create_service_account(self, namespace: str, body: Raw) -> None:
        await self._core.create_namespaced_service_account(namespace, body)

    async def create_secret(self, namespace: str, body: Raw) -> None:
        await self._core.create_namespaced_secret(namespace, body)

    async def patch_secret(self, name: str, namespace: str, patch: Raw) -> None:
        """A strategic merge patch: keys set to None are removed."""
        await self._core.patch_namespaced_secret(name, namespace, patch)

    async def create_role_binding(self, namespace: str, body: Raw) -> None:
        rbac: Any = self._clients.rbac
        await rbac.create_namespaced_role_binding(namespace, body)

    async def delete_role_binding(self, name: str, namespace: str) -> None:
        await self._clients.rbac.delete_namespaced_role_binding(name, namespace)

    # --- reviews --------------------------------------------------------------------------------------

    async def may(self, verb: str, resource: str, namespace: str) -> bool:
        """Whether these clients' own credentials may `verb` vTeam's `resource` there (SelfSubjectAccessReview)."""
        attributes = {"group": GROUP, "resource": resource, "verb": verb, "namespace": namespace}
        authorization: Any = self._clients.authorization
        answer = await authorization.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}})
        return bool(answer.status and answer.status.allowed)

    async def review_token(self, token: str) -> TokenUser | None:
        """The user a bearer token belongs to (TokenReview), or None when the API server does not know it."""
        authentication: Any = self._clients.authentication
        answer = await authentication.create_token_review({"spec": {"token": token}})
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            return None
        return TokenUser(name=status.user.username, groups=tuple(status.user.groups or ()))


def _watch_args(resource_version: str, seconds: int) -> dict[str, Any]:
    return {
        "watch": True,
        "resource_version": resource_version,
        "allow_watch_bookmarks": True,
        "timeout_seconds": seconds,
        "_preload_content": False,
        "_request_timeout": aiohttp.ClientTimeout(total=seconds + 30, sock_connect=10),
    }
