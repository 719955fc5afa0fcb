"""The Pod Security Standards' `baseline` and `restricted` profiles (Kubernetes' `latest`), as a checker of pod specs.

Written from the published standard, https://kubernetes.io/docs/concepts/security/pod-security-standards/, and
held to its reference implementation, the PodSecurity admission plugin (k8s.io/pod-security-admission, policy/
check_*.go, read at 8f84a87), whose reasons and details the messages below repeat, so a refusal here reads like
the API server's. Each control, in the standard's words: name (check id), level: restricted fields -> allowed values.

- HostProcess (windowsHostProcess), baseline: spec.securityContext.windowsOptions.hostProcess,
  containers[*].securityContext.windowsOptions.hostProcess -> undefined/nil, false.
- Host Namespaces (hostNamespaces), baseline: spec.hostNetwork, spec.hostPID, spec.hostIPC -> undefined/nil, false.
- Privileged Containers (privileged), baseline: containers[*].securityContext.privileged -> undefined/nil, false.
- Capabilities (capabilities_baseline), baseline: containers[*].securityContext.capabilities.add -> undefined/nil,
  AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID,
  SYS_CHROOT.
- HostPath Volumes (hostPathVolumes), baseline: spec.volumes[*].hostPath -> undefined/nil.
- Host Ports (hostPorts), baseline: containers[*].ports[*].hostPort -> undefined/nil, 0.
- Host Probes / Lifecycle Hooks (hostProbesAndHostLifecycle), baseline:
  containers[*].{livenessProbe,readinessProbe,startupProbe}.{httpGet,tcpSocket}.host,
  containers[*].lifecycle.{postStart,preStop}.{httpGet,tcpSocket}.host -> undefined/nil, "".
- AppArmor (appArmorProfile), baseline: spec.securityContext.appArmorProfile.type,
  containers[*].securityContext.appArmorProfile.type -> undefined/nil, RuntimeDefault, Localhost;
  metadata.annotations["container.apparmor.security.beta.kubernetes.io/*"] -> undefined/nil, runtime/default,
  localhost/*.
- SELinux (seLinuxOptions), baseline: spec.securityContext.seLinuxOptions.type and containers[*]' ->
  undefined/"", container_t, container_init_t, container_kvm_t, container_engine_t; .user and .role ->
  undefined/"".
- /proc Mount Type (procMount), baseline: containers[*].securityContext.procMount -> undefined/nil, Default
  (any value for a pod in a user namespace, `hostUsers: false`).
- Seccomp (seccompProfile_baseline), baseline: spec.securityContext.seccompProfile.type,
  containers[*].securityContext.seccompProfile.type -> undefined/nil, RuntimeDefault, Localhost.
- Sysctls (sysctls), baseline: spec.securityContext.sysctls[*].name -> undefined/nil, and the safe set
  SAFE_SYSCTLS below.
- Volume Types (restrictedVolumes), restricted: spec.volumes[*] -> only configMap, csi, downwardAPI, emptyDir,
  ephemeral, image, persistentVolumeClaim, projected, secret (replaces hostPathVolumes).
- Privilege Escalation (allowPrivilegeEscalation), restricted:
  containers[*].securityContext.allowPrivilegeEscalation -> false.
- Running as Non-root (runAsNonRoot), restricted: spec.securityContext.runAsNonRoot,
  containers[*].securityContext.runAsNonRoot -> true; containers may leave it undefined when the pod sets true;
  any value for a pod in a user namespace.
- Running as Non-root user (runAsUser), restricted: spec.securityContext.runAsUser,
  containers[*].securityContext.runAsUser -> any non-zero value, undefined/nil; any value in a user namespace.
- Seccomp (seccompProfile_restricted), restricted: spec.securityContext.seccompProfile.type,
  containers[*].securityContext.seccompProfile.type -> RuntimeDefault, Localhost; containers may leave it undefined
  when the pod sets it (replaces seccompProfile_baseline).
- Capabilities (capabilities_restricted), restricted: containers[*].securityContext.capabilities.drop -> any list
  including ALL; containers[*].securityContext.capabilities.add -> undefined/nil, NET_BIND_SERVICE (replaces
  capabilities_baseline).
- /proc Mount Type (procMount_restricted), restricted: containers[*].securityContext.procMount -> undefined/nil,
  Default, user namespace or not (replaces procMount).

`containers[*]` means every container, init container and ephemeral container. Pods with `spec.os.name: windows`
are exempt from Privilege Escalation, Seccomp (restricted) and Capabilities (restricted), as the standard says.
The restricted level is every baseline control, a restricted one standing in for the baseline one it replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]
Level = Literal["baseline", "restricted"]

DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
WORKLOAD_TEMPLATES = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}


@dataclass(frozen=True)
class Violation:
    """One control a pod fails: the admission plugin's reason and what must change."""

    check: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})"


Check = Callable[[Obj, Obj], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Control:
    id: str
    level: Level
    check: Check
    replaces: str | None = None


def containers(spec: Obj) -> Iterator[Obj]:
    """Every container the pod runs, in the order the admission plugin visits them."""
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []
    yield from spec.get("ephemeralContainers") or []


def _context(obj: Obj) -> Obj:
    return obj.get("securityContext") or {}


def _names(items: list[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _plural(singular: str, plural: str, items: Collection[Any]) -> str:
    return singular if len(items) == 1 else plural


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', names)} {_names(names)}"


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _user_namespace(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


def _windows_host_process(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    setters = ["pod"] if (_context(spec).get("windowsOptions") or {}).get("hostProcess") else []
    bad = [c["name"] for c in containers(spec) if (_context(c).get("windowsOptions") or {}).get("hostProcess")]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    return None


def _host_namespaces(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(shared)) if shared else None


def _privileged(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad = [c["name"] for c in containers(spec) if _context(c).get("privileged")]
    return ("privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true") if bad else None


def _capabilities_baseline(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad, extra = [], set()
    for c in containers(spec):
        added = set((_context(c).get("capabilities") or {}).get("add") or []) - DEFAULT_CAPABILITIES
        if added:
            bad.append(c["name"])
            extra |= added
    if bad:
        detail = (
            f"{_containers_phrase(bad)} must not include {_names(sorted(extra))} in securityContext.capabilities.add"
        )
        return "non-default capabilities", detail
    return None


def _host_path_volumes(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad = [v["name"] for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    return ("hostPath volumes", f"{_plural('volume', 'volumes', bad)} {_names(bad)}") if bad else None


def _host_ports(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad, ports = [], set()
    for c in containers(spec):
        used = {int(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")}
        if used:
            bad.append(c["name"])
            ports |= used
    if bad:
        uses = f"{_plural('uses', 'use', bad)} {_plural('hostPort', 'hostPorts', ports)}"
        return "hostPort", f"{_containers_phrase(bad)} {uses} {', '.join(str(p) for p in sorted(ports))}"
    return None


def _host_probes(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad, hosts = [], set()
    for c in containers(spec):
        handlers = [c.get(probe) for probe in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(c.get("lifecycle") or {}).get(hook) for hook in ("postStart", "preStop")]
        found = {
            (handler.get(kind) or {}).get("host", "")
            for handler in handlers
            if handler
            for kind in ("httpGet", "tcpSocket")
        } - {""}
        if found:
            bad.append(c["name"])
            hosts |= found
    if bad:
        used = f"{_plural('uses', 'use', bad)} {_plural('probe or lifecycle host', 'probe or lifecycle hosts', hosts)}"
        return "probe or lifecycle host", f"{_containers_phrase(bad)} {used} {_names(sorted(hosts))}"
    return None


def _app_armor(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    setters, values = [], set()
    pod_type = (_context(spec).get("appArmorProfile") or {}).get("type")
    if "appArmorProfile" in _context(spec) and pod_type not in APPARMOR_TYPES:
        setters.append("pod")
        values.add(str(pod_type))
    bad = []
    for c in containers(spec):
        if (
            "appArmorProfile" in _context(c)
            and (_context(c)["appArmorProfile"] or {}).get("type") not in APPARMOR_TYPES
        ):
            bad.append(c["name"])
            values.add(str((_context(c)["appArmorProfile"] or {}).get("type")))
    if bad:
        setters.append(_containers_phrase(bad))
    annotations = [
        f'{key}="{value}"'
        for key, value in sorted((meta.get("annotations") or {}).items())
        if key.startswith(APPARMOR_ANNOTATION)
        and value not in ("", "runtime/default")
        and not value.startswith("localhost/")
    ]
    if annotations:
        setters.append("annotation" if len(annotations) == 1 else "annotations")
    if setters:
        listed = [*sorted(values), *annotations]
        return (
            "forbidden AppArmor profile",
            f"{' and '.join(setters)} must not set AppArmor profile type to {_names(listed)}",
        )
    return None


def _se_linux(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    setters, types, user, role = [], set(), False, False

    def fine(options: Obj) -> bool:
        nonlocal user, role
        ok = options.get("type", "") in SELINUX_TYPES
        if not ok:
            types.add(options.get("type", ""))
        if options.get("user"):
            ok, user = False, True
        if options.get("role"):
            ok, role = False, True
        return ok

    if "seLinuxOptions" in _context(spec) and not fine(_context(spec)["seLinuxOptions"] or {}):
        setters.append("pod")
    bad = [
        c["name"]
        for c in containers(spec)
        if "seLinuxOptions" in _context(c) and not fine(_context(c)["seLinuxOptions"] or {})
    ]
    if bad:
        setters.append(_containers_phrase(bad))
    if not setters:
        return None
    said = [f"{_plural('type', 'types', types)} {_names(sorted(types))}"] if types else []
    said += ["user may not be set"] if user else []
    said += ["role may not be set"] if role else []
    return "seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(said)}"


def _proc_mount_strict(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad, kinds = [], set()
    for c in containers(spec):
        mount = _context(c).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(c["name"])
            kinds.add(mount)
    if bad:
        return (
            "procMount",
            f"{_containers_phrase(bad)} must not set securityContext.procMount to {_names(sorted(kinds))}",
        )
    return None


def _proc_mount_baseline(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    return None if _user_namespace(spec) else _proc_mount_strict(meta, spec)


def _seccomp(meta: Obj, spec: Obj, *, required: bool) -> tuple[str, str] | None:
    setters, values = [], set()
    pod_set = False
    if "seccompProfile" in _context(spec):
        kind = (_context(spec)["seccompProfile"] or {}).get("type")
        if kind in SECCOMP_TYPES:
            pod_set = True
        else:
            setters.append("pod")
            values.add(str(kind))
    bad, unset = [], []
    for c in containers(spec):
        if "seccompProfile" in _context(c):
            kind = (_context(c)["seccompProfile"] or {}).get("type")
            if kind not in SECCOMP_TYPES:
                bad.append(c["name"])
                values.add(str(kind))
        elif not pod_set:
            unset.append(c["name"])
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return (
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {_names(sorted(values))}",
        )
    if required and unset:
        allowed = '"RuntimeDefault" or "Localhost"'
        return (
            "seccompProfile",
            f"pod or {_containers_phrase(unset)} must set securityContext.seccompProfile.type to {allowed}",
        )
    return None


def _seccomp_baseline(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    return _seccomp(meta, spec, required=False)


def _seccomp_restricted(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    return None if _windows(spec) else _seccomp(meta, spec, required=True)


def _sysctls(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad = [s.get("name", "") for s in _context(spec).get("sysctls") or [] if s.get("name") not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def _restricted_volumes(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    bad, kinds = [], set()
    for volume in spec.get("volumes") or []:
        sources = {key for key, value in volume.items() if key != "name" and value is not None}
        if not sources & RESTRICTED_VOLUME_SOURCES:
            bad.append(volume["name"])
            kinds |= sources or {"unknown"}
    if not bad:
        return None
    detail = (
        f"{_plural('volume', 'volumes', bad)} {_names(bad)} {_plural('uses', 'use', bad)} "
        f"{_plural('restricted volume type', 'restricted volume types', kinds)} {_names(sorted(kinds))}"
    )
    return "restricted volume types", detail


def _allow_privilege_escalation(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    if _windows(spec):
        return None
    bad = [c["name"] for c in containers(spec) if _context(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return (
            "allowPrivilegeEscalation != false",
            f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
        )
    return None


def _run_as_non_root(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    if _user_namespace(spec):
        return None
    setters = []
    pod_value = _context(spec).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit = [c["name"] for c in containers(spec) if _context(c).get("runAsNonRoot") is False]
    implicit = [
        c["name"] for c in containers(spec) if _context(c).get("runAsNonRoot") is None and pod_value is not True
    ]
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    if _user_namespace(spec):
        return None
    setters = ["pod"] if _context(spec).get("runAsUser") == 0 else []
    bad = [c["name"] for c in containers(spec) if _context(c).get("runAsUser") == 0]
    if bad:
        setters.append(_containers_phrase(bad))
    if setters:
        return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"
    return None


def _capabilities_restricted(meta: Obj, spec: Obj) -> tuple[str, str] | None:
    if _windows(spec):
        return None
    no_drop, adding, extra = [], [], set()
    for c in containers(spec):
        capabilities = _context(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            no_drop.append(c["name"])
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            adding.append(c["name"])
            extra |= added
    details = []
    if no_drop:
        details.append(f'{_containers_phrase(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_names(sorted(extra))} in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


CONTROLS = (
    Control("windowsHostProcess", "baseline", _windows_host_process),
    Control("hostNamespaces", "baseline", _host_namespaces),
    Control("privileged", "baseline", _privileged),
    Control("capabilities_baseline", "baseline", _capabilities_baseline),
    Control("hostPathVolumes", "baseline", _host_path_volumes),
    Control("hostPorts", "baseline", _host_ports),
    Control("hostProbesAndHostLifecycle", "baseline", _host_probes),
    Control("appArmorProfile", "baseline", _app_armor),
    Control("seLinuxOptions", "baseline", _se_linux),
    Control("procMount", "baseline", _proc_mount_baseline),
    Control("seccompProfile_baseline", "baseline", _seccomp_baseline),
    Control("sysctls", "baseline", _sysctls),
    Control("restrictedVolumes", "restricted", _restricted_volumes, replaces="hostPathVolumes"),
    Control("allowPrivilegeEscalation", "restricted", _allow_privilege_escalation),
    Control("runAsNonRoot", "restricted", _run_as_non_root),
    Control("runAsUser", "restricted", _run_as_user),
    Control("seccompProfile_restricted", "restricted", _seccomp_restricted, replaces="seccompProfile_baseline"),
    Control("capabilities_restricted", "restricted", _capabilities_restricted, replaces="capabilities_baseline"),
    Control("procMount_restricted", "restricted", _proc_mount_strict, replaces="procMount"),
)


def controls(level: Level) -> tuple[Control, ...]:
    """The controls a level applies: baseline's, and for restricted its own in place of those they replace; in
    the admission plugin's order (baseline before restricted, each by id), which is its message's order."""
    chosen = [c for c in CONTROLS if c.level == "baseline" or level == "restricted"]
    replaced = {c.replaces for c in chosen}
    return tuple(sorted((c for c in chosen if c.id not in replaced), key=lambda c: (c.level != "baseline", c.id)))


def violations(spec: Obj, metadata: Obj | None = None, level: Level = "restricted") -> list[Violation]:
    """What in a pod (its spec, and its metadata for annotations) the level forbids; empty when it passes."""
    found = []
    for control in controls(level):
        result = control.check(metadata or {}, spec)
        if result is not None:
            found.append(Violation(control.id, *result))
    return found


def pod_templates(obj: Obj) -> list[tuple[Obj, Obj]]:
    """The pods an object defines, as (metadata, spec): a Pod itself, or the template of a workload."""
    if obj.get("kind") == "Pod":
        return [(obj.get("metadata") or {}, obj.get("spec") or {})]
    path = WORKLOAD_TEMPLATES.get(str(obj.get("kind")))
    if path is None:
        return []
    template: Any = obj
    for key in path:
        template = (template or {}).get(key)
    return [(template.get("metadata") or {}, template.get("spec") or {})] if template else []


def admission_message(level: Level, found: list[Violation], version: str = "latest") -> str:
    """How the API server words a refusal, after `pods "NAME" is forbidden: `."""
    return f'violates PodSecurity "{level}:{version}": ' + ", ".join(str(v) for v in found)
