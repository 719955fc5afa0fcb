"""Build Kubernetes API clients: the platform's own (service account or kubeconfig) and per-user ones.

A user-scoped client carries the caller's own bearer token, so Kubernetes RBAC decides what they may do.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import Configuration as Configuration
from kubernetes_asyncio.client.exceptions import ApiException as ApiException

from vteam.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
    VteamError,
)

MANAGED_LABEL = "vteam.ambient-code/managed"
"""Namespaces with this label set to `true` are vTeam projects."""


async def load_configuration(kubeconfig: Path | None = None) -> Configuration:
    """The platform's own connection: a kubeconfig named, else the pod's service account, else ~/.kube/config."""
    configuration = Configuration()
    try:
        if kubeconfig is not None:
            await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or "the pod's service account or ~/.kube/config"
        raise Unavailable(f"cannot connect to Kubernetes with {where}: {exc}") from None
    return configuration


def user_configuration(base: Configuration, token: str) -> Configuration:
    """The same API server and CA as `base`, authenticated as the caller's bearer token and nothing else."""
    user = copy.copy(base)
    user.api_key = {"BearerToken": f"Bearer {token}"}
    user.api_key_prefix = {}
    user.cert_file = None
    user.key_file = None
    user.username = None
    user.password = None
    user.refresh_api_key_hook = None
    return user


@dataclass
class KubeClients:
    """One ApiClient (one connection pool) and the typed API groups vTeam uses on it."""

    api: client.ApiClient

    @classmethod
    def of(cls, configuration: Configuration) -> KubeClients:
        return cls(client.ApiClient(configuration))

    def as_user(self, token: str) -> KubeClients:
        """New clients on the same API server that act as the caller's bearer token; the caller closes them."""
        return KubeClients.of(user_configuration(self.api.configuration, token))

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def authentication(self) -> client.AuthenticationV1Api:
        return client.AuthenticationV1Api(self.api)

    @property
    def authorization(self) -> client.AuthorizationV1Api:
        return client.AuthorizationV1Api(self.api)

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    async def close(self) -> None:
        await self.api.close()


def translate(exc: ApiException, what: str) -> VteamError:
    """The vTeam error for a Kubernetes API failure; `what` names the object, e.g. "AgenticSession 'a' in 'p'"."""
    reason = _message(exc)
    status = exc.status or 0
    if status == 404:
        return NotFound(f"{what} not found")
    if status == 409:
        if "AlreadyExists" in (exc.body or "") or "already exists" in reason:
            return AlreadyExists(f"{what} already exists")
        return Conflict(f"{what} was changed by someone else; read it again and retry")
    if status == 410:
        return Expired(f"the history asked for is gone: {reason}")
    if status in (400, 422):
        return InvalidInput(f"{what}: {reason}")
    if status == 401:
        return Unauthorized("the Kubernetes API did not accept the credentials")
    if status == 403:
        return Forbidden(f"Kubernetes RBAC does not allow this on {what}: {reason}")
    return Unavailable(f"the Kubernetes API failed ({status or 'no answer'}) on {what}: {reason}")


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "")
