"""vTeam's adapter to the Kubernetes API: clients, configuration and error mapping (`client`), and the
operations the store, the cluster authenticator and the cluster services ask for on plain dicts (`api`).

The only room that imports the Kubernetes client; the rest of vTeam takes what it needs from here.
"""

from vteam.kube.api import KubeApi, TokenUser
from vteam.kube.client import (
    MANAGED_LABEL,
    ApiException,
    Configuration,
    KubeClients,
    load_configuration,
    translate,
    user_configuration,
)

__all__ = [
    "MANAGED_LABEL",
    "ApiException",
    "Configuration",
    "KubeApi",
    "KubeClients",
    "TokenUser",
    "load_configuration",
    "translate",
    "user_configuration",
]
