"""Kubernetes API clients and error mapping, shared by the store, the operator and the cluster backend."""

from vteam.kube.client import (
    MANAGED_LABEL,
    ApiException,
    KubeClients,
    load_configuration,
    translate,
    user_configuration,
)

__all__ = ["MANAGED_LABEL", "ApiException", "KubeClients", "load_configuration", "translate", "user_configuration"]
