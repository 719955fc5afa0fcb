"""A fake Kubernetes API server on 127.0.0.1, for cluster-mode tests when no real cluster is at hand.

vTeam's cluster mode (the Kubernetes ResourceStore, the kopf operator, the JobExecutor, the backend's user-scoped
clients) talks to kube-apiserver over its REST API with `kubernetes_asyncio` and kopf's own aiohttp client. When
VTEAM_TEST_KUBECONFIG names a real cluster the tests use it; otherwise they use this fake, which answers the way
kube-apiserver does for what vTeam uses:

* plain HTTP with bearer tokens; `.kubeconfig` is a kubeconfig file for the admin (group system:masters) that both
  `kubernetes_asyncio.config.load_kube_config` and kopf's `login_via_async_client` accept;
* discovery (`/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`, `/version`) with APIResourceLists as kopf
  scans them (singularName, namespaced, kind, verbs, shortNames, `plural/status` subresources);
* built-in kinds: namespaces, pods (+status, +log), secrets, configmaps, serviceaccounts (+token), events, jobs and
  cronjobs (+status), roles, rolebindings, clusterroles, clusterrolebindings, leases, customresourcedefinitions (a
  created CRD serves its resources at once, with its scope, names and status subresource), and the review kinds
  selfsubjectaccessreviews, subjectaccessreviews, selfsubjectreviews, tokenreviews (create only);
* create (server-set uid, resourceVersion from one global counter, generation, creationTimestamp, generateName),
  get, list (label and field selectors, limit/continue on a consistent snapshot, list resourceVersion semantics),
  update with optimistic concurrency, merge / strategic-merge / JSON patch, the status subresource, delete with
  finalizers, ownerReference garbage collection (Background, Foreground, Orphan) and namespace deletion, watch
  (initial ADDED events, resume from a resourceVersion, bookmarks, timeoutSeconds, 410 Expired after the bounded
  history `history_limit` is trimmed), deletecollection, dryRun=All;
* errors as kube's `Status` objects (NotFound, AlreadyExists, Conflict, Invalid, Forbidden, Unauthorized, Expired,
  BadRequest, MethodNotAllowed, UnsupportedMediaType), with kube's message shapes;
* authentication by bearer token (`add_user`, service-account users `system:serviceaccount:NS:NAME`, TokenRequest)
  and RBAC authorization evaluated from the Roles/ClusterRoles/RoleBindings/ClusterRoleBindings stored in the fake
  (wildcards, subresources, resourceNames, aggregated ClusterRoles; default cluster-admin/admin/edit/view roles).

How it is checked against the real API's published description: every built-in object written is validated with
the JSON schemas that the `kubernetes_validate` package bundles (generated from Kubernetes' OpenAPI, v1.37): an
object that does not match answers 422 Invalid as kube would, and is recorded in `.violations` (tests assert it
empty). The same schemas in their strict form find unknown fields, which are dropped as kube does by default
(fieldValidation=Warn; 422 with fieldValidation=Strict), answered with a `Warning` header and recorded in
`.warnings`. Custom resources are validated against their CRD's openAPIV3Schema with `jsonschema` (nullable and
int-or-string handled), get the schema's defaults and are pruned of unknown fields, as kube does. On top of the
schemas, a few of kube's own validation rules that vTeam can trip are checked: object and label names, pod
specs of Pods and Jobs (containers, images, restartPolicy, volume mounts, env names), Job template immutability,
finalizers on objects being deleted. `tests/support/test_fake_kube.py` drives the fake with the real clients.

Fixture API: `start_fake_kube(tmp_path) -> FakeKube` (or `with fake_kube(tmp_path) as fake:`), then `fake.url`,
`fake.kubeconfig` (admin), `fake.admin_token`, `fake.add_user(name, groups) -> token`,
`fake.kubeconfig_for(token, path)`, `fake.run_job_pod(namespace, job) -> pod`, `fake.set_pod_log(ns, pod, text)`,
`fake.apply(obj)` / `fake.get(api_version, plural, name, namespace)` (in-process, as the admin), `fake.violations`,
`fake.warnings`, `fake.check()`, `fake.history_limit` and `fake.bookmark_interval` (settable), `fake.close()`.
Namespaces `default`, `kube-system`, `kube-public` exist from the start, and every namespace gets its `default`
ServiceAccount. As in kube, a custom resource (or a CRD) cannot be replaced without metadata.resourceVersion (422),
a Job deleted without a propagationPolicy orphans its pods, and a custom resource cannot take a strategic merge
patch (415; kubernetes_asyncio picks json-patch for dict bodies of custom objects unless `_content_type` says
`application/merge-patch+json`).

Known deviations from kube-apiserver:
* nothing runs: no kubelet, no scheduler, of the job controller only its deadline (a Job active past its
  activeDeadlineSeconds gets its pods deleted and its FailureTarget and Failed conditions, reason DeadlineExceeded;
  otherwise `run_job_pod` makes the Pod a Job controller would, without its job-tracking finalizer, and tests patch
  statuses themselves), no service-account token controller (only the `default` ServiceAccount of each new
  namespace is made); pods delete at once (no grace period);
* garbage collection and namespace deletion are synchronous inside the delete request (kube does them a moment
  later, with the namespace Terminating meanwhile; here it is Terminating only while finalizers hold contents), and
  Foreground deletion deletes dependents first instead of waiting on a `foregroundDeletion` finalizer;
* strategic merge patch knows the merge keys of the lists vTeam touches (containers, env, volumes, conditions,
  ownerReferences, ...) rather than Kubernetes' whole patch-strategy table; server-side apply
  (application/apply-patch+yaml) is answered 415; no managedFields;
* CEL rules (x-kubernetes-validations), `format`s, list-type/map-type uniqueness, and most of kube's hand-written
  validation beyond the above are not checked; CRD conversion is "None" only (all served versions share one storage);
* of the admission plugins, only ServiceAccount's check and PodSecurity in enforce mode on Pod creation (a namespace
  labelled `pod-security.kubernetes.io/enforce`, judged by tests/support/pod_security.py at `latest` whatever the
  version label says); no warn or audit mode, no warnings on workloads whose template would be refused;
* the history for watch resumption is one global bounded list (kube keeps a per-resource watch cache and etcd
  compaction), and a list with resourceVersionMatch=Exact or a continue token is served from it;
* no token or an unknown token answers 401 (kube's anonymous user would get 403 instead where anonymous auth is on);
  non-resource URLs (discovery, /version, /healthz) are open to every authenticated user;
* only JSON (no protobuf, no Table), HTTP/1.1 with chunked watch streams; no aggregated discovery.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema
import referencing
import referencing.jsonschema
import yaml

from tests.support import pod_security

Obj = dict[str, Any]
Key = tuple[str, str]  # (group, plural): one storage
NsName = tuple[str, str]  # (namespace or "", name)

K8S_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-fake", "platform": "linux/amd64"}
SCHEMA_DIR = "v1.37.0-local"
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME = re.compile(rf"({DNS_SUBDOMAIN}/)?{LABEL_NAME}")
LABEL_VALUE = re.compile(rf"({LABEL_NAME})?")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


def _truthy(value: str | None) -> bool:
    """Go's strconv.ParseBool, as kube parses boolean query parameters."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------------------------
# Errors, shaped like kube's metav1.Status
# --------------------------------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body["message"] = self.message
        body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(kind: Kind, name: str, kind_name: str | None = None) -> Obj:
    details: Obj = {"name": name} if name else {}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind_name or kind.plural
    return details


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.gr} "{name}" not found', _details(kind, name))


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind.gr} "{name}" already exists', _details(kind, name))


def conflict(kind: Kind, name: str, why: str) -> ApiError:
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {kind.gr} "{name}": {why}', _details(kind, name)
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass
class Cause:
    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueForbidden, ...
    message: str


def invalid(kind: Kind, name: str, causes: Sequence[Cause]) -> ApiError:
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    details = _details(kind, name, kind.kind)
    details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


# --------------------------------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Kind:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()  # "status", "log", "token", "finalize"
    generation: bool = False  # metadata.generation kept (bumped on spec changes)
    return_deleted: bool = False  # DELETE answers the object rather than a Status
    categories: tuple[str, ...] = ()
    schema: Obj | None = None  # a CRD version's openAPIV3Schema; None for built-ins
    crd: str | None = None  # the CRD's name, for custom resources
    validator: Any = None  # jsonschema validator of `schema`

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> Key:
        return (self.group, self.plural)

    @property
    def status_subresource(self) -> bool:
        return "status" in self.subresources

    @property
    def builtin(self) -> bool:
        return self.crd is None

    def discovery(self) -> list[Obj]:
        entry: Obj = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for sub in self.subresources:
            verbs = {"status": ["get", "patch", "update"], "log": ["get"], "token": ["create"]}.get(sub, ["update"])
            sub_kind = {"token": "TokenRequest"}.get(sub, self.kind)
            entries.append(
                {"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced, "kind": sub_kind}
                | {"verbs": verbs}
            )
        return entries


def _builtin_kinds() -> list[Kind]:
    return [
        Kind(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            False,
            ("ns",),
            subresources=("status", "finalize"),
            return_deleted=True,
        ),
        Kind(
            "",
            "v1",
            "pods",
            "pod",
            "Pod",
            True,
            ("po",),
            subresources=("status", "log"),
            generation=True,
            return_deleted=True,
        ),
        Kind("", "v1", "secrets", "secret", "Secret", True),
        Kind("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
        Kind("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",), subresources=("token",)),
        Kind("", "v1", "events", "event", "Event", True, ("ev",)),
        Kind("batch", "v1", "jobs", "job", "Job", True, subresources=("status",), generation=True, categories=("all",)),
        Kind("batch", "v1", "cronjobs", "cronjob", "CronJob", True, ("cj",), subresources=("status",), generation=True),
        Kind("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
        Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
        Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
        Kind(
            "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False
        ),
        Kind("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
        Kind(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            subresources=("status",),
            generation=True,
            return_deleted=True,
        ),
        Kind(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "selfsubjectaccessreview",
            "SelfSubjectAccessReview",
            False,
            verbs=CREATE_ONLY,
        ),
        Kind(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "subjectaccessreview",
            "SubjectAccessReview",
            False,
            verbs=CREATE_ONLY,
        ),
        Kind("authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", False, verbs=CREATE_ONLY),
        Kind(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "selfsubjectreview",
            "SelfSubjectReview",
            False,
            verbs=CREATE_ONLY,
        ),
    ]


REVIEW_KINDS = {"selfsubjectaccessreviews", "subjectaccessreviews", "tokenreviews", "selfsubjectreviews"}


# --------------------------------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if self.op == "exists":
            return has
        return not has


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    reqs: list[Requirement] = []
    for term in _split_terms(text or ""):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            req = Requirement(m.group(1), m.group(2), values)
        elif term.startswith("!"):
            req = Requirement(term[1:].strip(), "!")
        elif m := re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", term):
            req = Requirement(m.group(1), "=" if m.group(2) == "==" else m.group(2), (m.group(3),))
        elif re.fullmatch(r"[^=!\s()]+", term):
            req = Requirement(term, "exists")
        else:
            raise bad_request(f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !=")
        if not QUALIFIED_NAME.fullmatch(req.key) or len(req.key.split("/")[-1]) > 63:
            raise bad_request(
                f'unable to parse requirement: <nil>: Invalid value: "{req.key}": name part must '
                "consist of alphanumeric characters, '-', '_' or '.'"
            )
        for value in req.values:
            if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
                raise bad_request(f'unable to parse requirement: values[0][{req.key}]: Invalid value: "{value}"')
        reqs.append(req)
    return reqs


def match_label_selector_object(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels, matchExpressions); an empty selector matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[expr["operator"]]
        if not Requirement(expr["key"], op, tuple(expr.get("values") or ())).matches(labels):
            return False
    return True


FIELD_SELECTABLE: dict[Key, set[str]] = {
    ("", "pods"): {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    ("", "events"): {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
    ("batch", "jobs"): {"status.successful"},
}


def parse_field_selector(text: str, kind: Kind) -> list[tuple[str, str, str]]:
    terms: list[tuple[str, str, str]] = []
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_SELECTABLE.get(kind.key, set())
    for term in _split_terms(text or ""):
        m = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        name, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if name not in allowed:
            if kind.builtin:
                raise bad_request(f"field label not supported: {name}")
            raise bad_request(f'"{name}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        terms.append((name, "!=" if op == "!=" else "=", value))
    return terms


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if path == "source" and isinstance(value, dict):
        value = value.get("component")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass
class Selector:
    labels: list[Requirement] = field(default_factory=list)
    fields: list[tuple[str, str, str]] = field(default_factory=list)
    namespace: str | None = None

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((_field_value(obj, name) == value) == (op == "=") for name, op, value in self.fields)

    @property
    def filtered(self) -> bool:
        return bool(self.labels or self.fields)


# --------------------------------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


SMP_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "tolerations": "key",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}
SMP_MERGE_PRIMITIVES = {"finalizers"}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for the lists vTeam touches: keyed lists merge by their patchMergeKey."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and key in SMP_MERGE_KEYS and isinstance(current, list):
            merge_key = SMP_MERGE_KEYS[key]
            merged = list(current)
            for item in value:
                if not isinstance(item, dict) or merge_key not in item:
                    merged.append(copy.deepcopy(item))
                    continue
                index = next((i for i, old in enumerate(merged) if old.get(merge_key) == item[merge_key]), None)
                if item.get("$patch") == "delete":
                    if index is not None:
                        merged.pop(index)
                elif index is None:
                    merged.append(strategic_merge_patch({}, item))
                else:
                    merged[index] = strategic_merge_patch(merged[index], item)
            result[key] = merged
        elif isinstance(value, list) and key in SMP_MERGE_PRIMITIVES and isinstance(current, list):
            result[key] = current + [v for v in value if v not in current]
        else:
            result[key] = strategic_merge_patch(current, value) if isinstance(value, dict) else copy.deepcopy(value)
    return result


class JsonPatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise JsonPatchError(f"doc is missing path: /{'/'.join(parts)}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise TypeError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)

    def add(parts: list[str], value: Any) -> None:
        nonlocal doc
        if not parts:
            doc = value
            return
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict):
            parent[last] = value
        elif isinstance(parent, list):
            if last == "-":
                parent.append(value)
            elif last.isdigit() and int(last) <= len(parent):
                parent.insert(int(last), value)
            else:
                raise JsonPatchError(f"add operation does not apply: index {last} out of bounds")
        else:
            raise JsonPatchError("add operation does not apply: doc is missing path")

    def remove(parts: list[str]) -> Any:
        if not parts:
            raise JsonPatchError("unable to remove the document root")
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict) and last in parent:
            return parent.pop(last)
        if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            return parent.pop(int(last))
        raise JsonPatchError(f'remove operation does not apply: doc is missing path: "/{"/".join(parts)}"')

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise TypeError("each JSON patch operation needs an op and a path")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "add":
            add(parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            remove(parts)
        elif kind == "replace":
            _walk(doc, parts)
            if parts:
                remove(parts)
            add(parts, copy.deepcopy(op.get("value")))
        elif kind == "move":
            value = remove(_pointer(op["from"]))
            add(parts, value)
        elif kind == "copy":
            add(parts, copy.deepcopy(_walk(doc, _pointer(op["from"]))))
        elif kind == "test":
            try:
                actual = _walk(doc, parts)
            except JsonPatchError:
                actual = None
            if actual != op.get("value"):
                raise JsonPatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise TypeError(f"Unexpected kind: {kind}")
    return doc


# --------------------------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------------------------


class BuiltinSchemas:
    """Validators for built-in kinds from kubernetes_validate's bundled JSON schemas, built once per kind."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    def validator(self, api_version: str, kind: str, strict: bool) -> Any:
        key = (api_version, kind, strict)
        with self._lock:
            if key not in self._cache:
                from kubernetes_validate.utils import schema_contents

                short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
                folder = SCHEMA_DIR + ("-strict" if strict else "")
                try:
                    schema = schema_contents(f"kubernetes-json-schema/{folder}/{kind.lower()}-{short}.json", "1.37")
                except FileNotFoundError:
                    self._cache[key] = None
                    return None
                defs = schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", "1.37")
                registry: referencing.Registry[Any] = referencing.Registry()
                registry = referencing.Resource.from_contents(schema) @ registry
                registry = referencing.Resource.from_contents(defs) @ registry
                self._cache[key] = jsonschema.Draft202012Validator(schema, registry=registry)
            return self._cache[key]


BUILTIN_SCHEMAS = BuiltinSchemas()


def openapi_to_jsonschema(schema: Any) -> Any:
    """A structural openAPIV3Schema as draft-4 JSON schema: `nullable`, `x-kubernetes-int-or-string`."""
    if not isinstance(schema, dict):
        return schema
    out: Obj = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "description", "example", "format"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: openapi_to_jsonschema(v) for name, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = openapi_to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(v) for v in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [*(out["type"] if isinstance(out["type"], list) else [out["type"]]), "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _path(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_causes(validator: Any, obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))[:20]:
        where = _path(list(error.absolute_path))
        if error.validator == "required":
            missing = re.match(r"'([^']*)'", error.message)
            name = missing.group(1) if missing else "?"
            causes.append(Cause(f"{where}.{name}" if where else name, "FieldValueRequired", "Required value"))
        elif error.validator == "enum":
            supported = ", ".join(json.dumps(v) for v in error.validator_value if v is not None)
            causes.append(
                Cause(
                    where,
                    "FieldValueNotSupported",
                    f"Unsupported value: {json.dumps(error.instance)}: supported values: {supported}",
                )
            )
        else:
            causes.append(
                Cause(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(error.instance)[:200]}: {where or 'body'} in body {error.message}",
                )
            )
    return causes


def unknown_fields(validator: Any, obj: Obj) -> list[tuple[list[Any], str]]:
    """(parent path, field) pairs that a strict schema rejects as additional properties."""
    found: list[tuple[list[Any], str]] = []
    for error in validator.iter_errors(obj):
        for err in [error, *(error.context or [])]:
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                known = set((err.schema or {}).get("properties") or {})
                for name in err.instance:
                    if name not in known:
                        found.append((list(err.absolute_path), name))
    return found


def apply_defaults(value: Any, schema: Obj) -> None:
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and isinstance(sub, dict) and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in (schema.get("properties") or {}):
                    apply_defaults(value[name], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def prune(value: Any, schema: Obj, path: str, pruned: list[str], root: bool = False) -> None:
    """Drop fields the structural schema does not know, as kube does (x-kubernetes-preserve-unknown-fields keeps)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        for name in list(value):
            if root and name in ("apiVersion", "kind", "metadata"):
                continue
            sub_path = f"{path}.{name}" if path else name
            sub_schema = props.get(name, extra if isinstance(extra, dict) else None)
            if value[name] is None and isinstance(sub_schema, dict) and not sub_schema.get("nullable"):
                del value[name]  # kube drops nulls where the schema is not nullable (then defaults apply)
            elif sub_schema is not None:
                prune(value[name], sub_schema, sub_path, pruned)
            elif extra is True or preserve or schema.get("x-kubernetes-embedded-resource"):
                continue
            else:
                del value[name]
                pruned.append(sub_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            prune(item, schema["items"], f"{path}[{i}]", pruned)


# --------------------------------------------------------------------------------------------------------------------
# Users and RBAC
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""


@dataclass
class Attributes:
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _rule_allows(rule: Obj, attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if attrs.path:
        urls = rule.get("nonResourceURLs") or []
        return any(u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1])) for u in urls)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    resources = rule.get("resources") or []
    if not (
        "*" in resources or attrs.combined in resources or (attrs.subresource and f"*/{attrs.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


DEFAULT_VIEW = [
    {
        "apiGroups": [""],
        "resources": [
            "pods",
            "pods/log",
            "pods/status",
            "configmaps",
            "events",
            "serviceaccounts",
            "namespaces",
            "namespaces/status",
            "services",
            "endpoints",
            "persistentvolumeclaims",
        ],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["batch"],
        "resources": ["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch"]},
]
DEFAULT_EDIT = [
    {
        "apiGroups": [""],
        "resources": [
            "pods",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "services",
            "endpoints",
            "persistentvolumeclaims",
            "events",
        ],
        "verbs": ["create", "delete", "deletecollection", "patch", "update"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {
        "apiGroups": ["batch"],
        "resources": ["jobs", "cronjobs"],
        "verbs": ["create", "delete", "deletecollection", "patch", "update"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
        "verbs": ["create", "delete", "deletecollection", "patch", "update"],
    },
]
DEFAULT_ADMIN = [
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
]
AGG = "rbac.authorization.k8s.io/aggregate-to-"


def _default_rbac() -> list[Obj]:
    def role(name: str, rules: list[Obj] | None, labels: dict[str, str] | None = None, agg: str = "") -> Obj:
        obj: Obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}}
        obj["metadata"]["labels"] = {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})}
        if agg:
            obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGG + agg: "true"}}]}
            obj["rules"] = []
        else:
            obj["rules"] = rules or []
        return obj

    return [
        role(
            "cluster-admin",
            [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
        ),
        role("admin", None, agg="admin"),
        role("edit", None, {AGG + "admin": "true"}, agg="edit"),
        role("view", None, {AGG + "edit": "true"}, agg="view"),
        role("system:aggregate-to-admin", DEFAULT_ADMIN, {AGG + "admin": "true"}),
        role("system:aggregate-to-edit", DEFAULT_EDIT, {AGG + "edit": "true"}),
        role("system:aggregate-to-view", DEFAULT_VIEW, {AGG + "view": "true"}),
    ]


# --------------------------------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Change:
    rv: int
    key: Key
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


class _Server(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a watch it stopped, a request it timed out) is no error of the fake's."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeKube:
    """A fake kube-apiserver on 127.0.0.1 (see the module docstring); start it with `start_fake_kube`."""

    def __init__(self, workdir: Path, *, history_limit: int = 1000, bookmark_interval: float = 5.0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.violations: list[str] = []
        """Objects that did not match the published schema (answered 422): tests assert this empty."""
        self.warnings: list[str] = []
        """Unknown fields dropped from objects written (kube answers these with a Warning header)."""
        self.requests: deque[str] = deque(maxlen=5000)
        """"METHOD path?query" of the latest requests, for debugging."""
        self.bookmark_interval = bookmark_interval
        self._cond = threading.Condition(threading.RLock())
        self._rv = 0
        self._compacted = 0
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._objects: dict[Key, dict[NsName, Obj]] = {}
        self._kinds: dict[tuple[str, str, str], Kind] = {}
        self._logs: dict[tuple[str, str], str] = {}
        self._users: dict[str, User] = {}
        self._closing = False
        self._connections: set[socket.socket] = set()
        self._pending_policy: dict[tuple[Key, str, str], str] = {}
        for kind in _builtin_kinds():
            self._register(kind)
        self.admin_token = self.add_user("admin", [MASTERS])
        admin = self._users[self.admin_token]
        with self._cond:
            for ns in ("default", "kube-system", "kube-public"):
                self._create(self._kind("", "v1", "namespaces"), "", {"metadata": {"name": ns}}, admin)
            for obj in _default_rbac():
                self._create(self._kind("rbac.authorization.k8s.io", "v1", "clusterroles"), "", obj, admin)
        self.violations.clear()
        self._httpd = _Server(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = self.kubeconfig_for(self.admin_token, workdir / "kubeconfig")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="fake-kube"
        )
        self._thread.start()
        self._deadlines = threading.Thread(target=self._enforce_job_deadlines, daemon=True, name="fake-kube-jobs")
        self._deadlines.start()

    # ---- the fixture API --------------------------------------------------------------------------------------

    @property
    def history_limit(self) -> int:
        return self._history_limit

    @history_limit.setter
    def history_limit(self, limit: int) -> None:
        with self._cond:
            self._history_limit = max(1, limit)
            self._trim()

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out."""
        return str(self._rv)

    def add_user(self, name: str, groups: Sequence[str] = ()) -> str:
        """A bearer token for a user; `system:serviceaccount:NS:NAME` users get the service-account groups."""
        token = "fake-kube-" + secrets.token_urlsafe(18)
        all_groups = list(groups)
        if name.startswith("system:serviceaccount:") and name.count(":") == 3:
            all_groups += ["system:serviceaccounts", f"system:serviceaccounts:{name.split(':')[2]}"]
        all_groups.append(AUTHENTICATED)
        with self._cond:
            self._users[token] = User(name, tuple(dict.fromkeys(all_groups)), str(uuid.uuid4()))
        return token

    def kubeconfig_for(self, token: str, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig file that signs in with `token` (current-context set)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "user", "namespace": namespace}}],
            "current-context": "fake",
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    def run_job_pod(self, namespace: str, job: str) -> Obj:
        """Create the Pod a job controller would create for a Job (labels, ownerReference), as the admin."""
        admin = self._users[self.admin_token]
        with self._cond:
            job_obj = self._get(self._kind("batch", "v1", "jobs"), namespace, job)
            template = copy.deepcopy(job_obj["spec"]["template"])
            meta = template.get("metadata") or {}
            uid = job_obj["metadata"]["uid"]
            labels = {
                **(meta.get("labels") or {}),
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": job,
                "controller-uid": uid,
                "job-name": job,
            }
            pod: Obj = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{job}-",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": meta.get("annotations") or {},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": job,
                            "uid": uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template.get("spec") or {},
            }
            if not pod["metadata"]["annotations"]:
                del pod["metadata"]["annotations"]
            return self._out(
                self._kind("", "v1", "pods"), self._create(self._kind("", "v1", "pods"), namespace, pod, admin)
            )

    def set_pod_log(self, namespace: str, pod: str, text: str) -> None:
        """What GET pods/{pod}/log answers."""
        self._logs[(namespace, pod)] = text

    def apply(self, obj: Obj) -> Obj:
        """Create (or replace) an object as the admin, in-process; handy for CRDs and fixtures."""
        admin = self._users[self.admin_token]
        group, _, version = obj["apiVersion"].rpartition("/")
        with self._cond:
            kind = next(
                (k for k in self._kinds.values() if (k.group, k.version, k.kind) == (group, version, obj["kind"])), None
            )
            if kind is None:
                raise ValueError(f"no kind {obj['kind']} in {obj['apiVersion']}")
            ns = obj["metadata"].get("namespace", "") if kind.namespaced else ""
            name = obj["metadata"]["name"]
            try:
                current = self._get(kind, ns, name)
            except ApiError:
                return self._out(kind, self._create(kind, ns, copy.deepcopy(obj), admin))
            body = copy.deepcopy(obj)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self._out(kind, self._update(kind, ns, name, body, ""))

    def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> Obj | None:
        """An object as stored (in-process, no authorization), or None."""
        group, _, version = api_version.rpartition("/")
        with self._cond:
            kind = self._kinds.get((group, version, plural))
            if kind is None:
                return None
            obj = self._objects.get(kind.key, {}).get((namespace if kind.namespaced else "", name))
            return copy.deepcopy(self._out(kind, obj)) if obj else None

    def check(self) -> None:
        """Fail the test if any object written did not match its schema."""
        assert not self.violations, "objects that kube would reject:\n" + "\n".join(self.violations)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._deadlines.join(5)

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the job controller's deadline ---------------------------------------------------------------------------

    def _enforce_job_deadlines(self) -> None:
        """The one part of kube's job controller the fake plays: a Job active past activeDeadlineSeconds fails.

        As the job controller does, it kills the Job's pods and writes the verdict (FailureTarget and Failed,
        reason DeadlineExceeded), timed from status.startTime, else from creation (the controller sets startTime
        on its first sync, a moment after creation; the fake writes it only with the verdict).
        """
        with self._cond:
            while not self._closing:
                jobs = self._kind("batch", "v1", "jobs")
                for (ns, name), job in list(self._objects.get(jobs.key, {}).items()):
                    if _past_deadline(job):
                        self._fail_job_at_deadline(jobs, ns, name, job)
                self._cond.wait(0.1)

    def _fail_job_at_deadline(self, jobs: Kind, ns: str, name: str, job: Obj) -> None:
        pods = self._kind("", "v1", "pods")
        uid = job["metadata"]["uid"]
        killed = 0
        for (pod_ns, pod_name), pod in list(self._objects.get(pods.key, {}).items()):
            owners = pod["metadata"].get("ownerReferences") or []
            if pod_ns == ns and any(o.get("uid") == uid for o in owners):
                phase = (pod.get("status") or {}).get("phase")
                killed += phase not in ("Succeeded", "Failed")
                self._remove(pods, pod_ns, pod_name, "Background")
        now = _now()
        status = dict(job.get("status") or {})
        verdict = {
            "status": "True",
            "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline",
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
        status["conditions"] = [
            *(status.get("conditions") or []),
            {"type": "FailureTarget", **verdict},
            {"type": "Failed", **verdict},
        ]
        status["startTime"] = status.get("startTime") or job["metadata"]["creationTimestamp"]
        status["failed"] = (status.get("failed") or 0) + killed
        status.pop("active", None)
        self._update(jobs, ns, name, {**copy.deepcopy(job), "status": status}, "status")

    # ---- kinds ------------------------------------------------------------------------------------------------

    def _register(self, kind: Kind) -> None:
        self._kinds[(kind.group, kind.version, kind.plural)] = kind
        self._objects.setdefault(kind.key, {})

    def _kind(self, group: str, version: str, plural: str) -> Kind:
        return self._kinds[(group, version, plural)]

    def _crd_kinds(self, crd: Obj) -> list[Kind]:
        spec = crd["spec"]
        names = spec["names"]
        kinds = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            subresources = tuple(s for s in ("status", "scale") if s in (version.get("subresources") or {}))
            kind = Kind(
                spec["group"],
                version["name"],
                names["plural"],
                names.get("singular") or names["kind"].lower(),
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                tuple(names.get("shortNames") or ()),
                subresources=subresources,
                generation=True,
                return_deleted=True,
                categories=tuple(names.get("categories") or ()),
                schema=schema,
                crd=crd["metadata"]["name"],
            )
            if schema:
                kind.validator = jsonschema.Draft4Validator(openapi_to_jsonschema(schema))
            kinds.append(kind)
        return kinds

    def _sync_crd(self, crd: Obj | None, name: str) -> None:
        for key, kind in list(self._kinds.items()):
            if kind.crd == name:
                del self._kinds[key]
        if crd is not None:
            for kind in self._crd_kinds(crd):
                self._register(kind)

    # ---- history ----------------------------------------------------------------------------------------------

    def _record(self, kind: Kind, type_: str, obj: Obj, old: Obj | None) -> None:
        self._history.append(Change(self._rv, kind.key, type_, obj, old))
        self._trim()
        self._cond.notify_all()

    def _trim(self) -> None:
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _snapshot(self, kind: Kind, rv: int) -> dict[NsName, Obj]:
        if rv < self._compacted:
            raise expired(f"The resourceVersion for the provided list is too old. ({rv} < {self._compacted + 1})")
        state = dict(self._objects.get(kind.key, {}))
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.key != kind.key:
                continue
            meta = change.obj["metadata"]
            nk = (meta.get("namespace", ""), meta["name"])
            if change.type == "ADDED":
                state.pop(nk, None)
            elif change.old is not None:
                state[nk] = change.old
        return state

    # ---- reads ------------------------------------------------------------------------------------------------

    def _out(self, kind: Kind, obj: Obj, *, in_list: bool = False) -> Obj:
        out = dict(obj)
        if in_list and kind.builtin:
            out.pop("apiVersion", None)
            out.pop("kind", None)
            return out
        out["apiVersion"] = kind.api_version
        out["kind"] = kind.kind
        return {"apiVersion": out.pop("apiVersion"), "kind": out.pop("kind"), **out}

    def _get(self, kind: Kind, ns: str, name: str) -> Obj:
        obj = self._objects[kind.key].get((ns, name))
        if obj is None:
            raise not_found(kind, name)
        return obj

    def _list(self, kind: Kind, selector: Selector, query: dict[str, str]) -> Obj:
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        rv_param = query.get("resourceVersion", "")
        match = query.get("resourceVersionMatch", "")
        start: NsName | None = None
        if token:
            if rv_param:
                raise bad_request("specifying resource version is not allowed when using continue")
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, start = int(decoded["rv"]), (decoded["start"][0], decoded["start"][1])
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise bad_request(f"continue key is not valid: {e}") from e
            if list_rv < self._compacted:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the first "
                    "chunk was returned and now may show up in the list."
                )
            state = self._snapshot(kind, list_rv)
        else:
            list_rv = self._rv
            if rv_param and rv_param != "0":
                try:
                    wanted = int(rv_param)
                except ValueError as e:
                    raise bad_request(f"invalid resource version: {rv_param}") from e
                if wanted > self._rv:
                    raise ApiError(
                        504,
                        "Timeout",
                        f"Too large resource version: {wanted}, current: {self._rv}",
                        {
                            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                            "retryAfterSeconds": 1,
                        },
                    )
                if match == "Exact":
                    list_rv = wanted
            state = self._snapshot(kind, list_rv) if list_rv != self._rv else self._objects[kind.key]
        keys = sorted(k for k, obj in state.items() if selector.matches(obj))
        if start is not None:
            keys = [k for k in keys if k > start]
        items = keys[:limit] if limit > 0 else keys
        meta: Obj = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(keys) > limit:
            cont = {"rv": list_rv, "start": list(items[-1])}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(cont).encode()).decode()
            if not selector.filtered:
                meta["remainingItemCount"] = len(keys) - limit
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": meta,
            "items": [self._out(kind, state[k], in_list=True) for k in items],
        }

    # ---- writes -----------------------------------------------------------------------------------------------

    def _check_namespace(self, kind: Kind, ns: str, name: str) -> None:
        if not kind.namespaced:
            return
        namespace = self._objects[("", "namespaces")].get(("", ns))
        if namespace is None:
            raise not_found(self._kind("", "v1", "namespaces"), ns)
        if namespace["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{kind.gr} "{name}" is forbidden: unable to create new content in '
                f"namespace {ns} because it is being terminated",
                _details(kind, name),
            )

    def _admit_pod_security(self, kind: Kind, ns: str, name: str, pod: Obj) -> None:
        """PodSecurity admission in enforce mode, as the namespace's `pod-security.kubernetes.io/enforce` asks
        (an unknown level counts as restricted); every version label is evaluated as `latest`."""
        labels = self._objects[("", "namespaces")][("", ns)]["metadata"].get("labels") or {}
        label = labels.get(pod_security.ENFORCE_LABEL)
        if label is None or label == "privileged":
            return
        level: pod_security.Level = "baseline" if label == "baseline" else "restricted"
        found = pod_security.violations(pod.get("spec") or {}, pod.get("metadata") or {}, level)
        if found:
            version = labels.get(pod_security.ENFORCE_VERSION_LABEL, "latest")
            message = pod_security.admission_message(level, found, version)
            raise ApiError(403, "Forbidden", f'{kind.gr} "{name}" is forbidden: {message}', _details(kind, name))

    def _validate_meta(self, kind: Kind, meta: Obj) -> list[Cause]:
        causes: list[Cause] = []
        name = meta.get("name", "")
        if kind.plural == "namespaces" or kind.plural == "jobs":
            ok, what = re.fullmatch(DNS_LABEL, name) is not None and len(name) <= 63, "RFC 1123 label"
        elif kind.group == "rbac.authorization.k8s.io":
            ok, what = name not in (".", "..") and not re.search(r"[/%]", name), "path segment name"
        else:
            ok, what = re.fullmatch(DNS_SUBDOMAIN, name) is not None and len(name) <= 253, "RFC 1123 subdomain"
        if not ok:
            causes.append(
                Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase {what} '
                    "must consist of lower case alphanumeric characters, '-' or '.', and must start "
                    "and end with an alphanumeric character",
                )
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or not QUALIFIED_NAME.fullmatch(key) or len(key.split("/")[-1]) > 63:
                causes.append(
                    Cause(
                        "metadata.labels",
                        "FieldValueInvalid",
                        f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'",
                    )
                )
            elif len(value) > 63 or not LABEL_VALUE.fullmatch(value):
                causes.append(
                    Cause(
                        "metadata.labels",
                        "FieldValueInvalid",
                        f'Invalid value: "{value}": a valid '
                        "label must be an empty string or consist of alphanumeric characters, '-', '_' "
                        "or '.', and must start and end with an alphanumeric character",
                    )
                )
        for key in meta.get("annotations") or {}:
            if not QUALIFIED_NAME.fullmatch(key):
                causes.append(Cause("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}"'))
        for i, ref in enumerate(meta.get("ownerReferences") or []):
            for required in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(required):
                    causes.append(
                        Cause(f"metadata.ownerReferences[{i}].{required}", "FieldValueRequired", "Required value")
                    )
        return causes

    def _validate(self, kind: Kind, obj: Obj, query: dict[str, str]) -> list[str]:
        """Validate an object about to be stored; drops unknown fields; raises 422. Answers warnings."""
        name = obj["metadata"].get("name", "")
        causes = self._validate_meta(kind, obj["metadata"])
        warnings: list[str] = []
        if kind.builtin:
            validator = BUILTIN_SCHEMAS.validator(kind.api_version, kind.kind, False)
            if validator is not None:
                causes += schema_causes(validator, obj)
                strict = BUILTIN_SCHEMAS.validator(kind.api_version, kind.kind, True)
                if not causes and strict is not None:
                    for parent, field_name in unknown_fields(strict, obj):
                        target: Any = obj
                        for part in parent:
                            target = target[part]
                        if isinstance(target, dict) and field_name in target:
                            del target[field_name]
                            warnings.append(f'unknown field "{_path([*parent, field_name])}"')
            causes += _semantic_checks(kind, obj)
        elif kind.schema is not None:
            pruned: list[str] = []
            prune(obj, kind.schema, "", pruned, root=True)
            warnings += [f'unknown field "{p}"' for p in pruned]
            apply_defaults(obj, kind.schema)
            causes += schema_causes(kind.validator, obj)
        if warnings and query.get("fieldValidation") == "Strict":
            causes += [Cause("", "FieldValueInvalid", w) for w in warnings]
        if causes:
            raise invalid(kind, name, causes)
        if warnings and query.get("fieldValidation") != "Ignore":
            self.warnings += [f"{kind.kind} {name}: {w}" for w in warnings]
        return warnings

    def _create(self, kind: Kind, ns: str, body: Obj, user: User, query: dict[str, str] | None = None) -> Obj:
        query = query or {}
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_type(kind, body)
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be created",
                {"causes": [{"message": "resourceVersion should not be set on objects to be created"}]},
            )
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    kind,
                    "",
                    [Cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")],
                )
            for _ in range(100):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(GENERATE_CHARS) for _ in range(5))
                if (ns, meta["name"]) not in self._objects[kind.key]:
                    break
        name = meta["name"]
        self._check_namespace(kind, ns, name)
        if kind.plural == "customresourcedefinitions":
            crd_spec = body.get("spec") or {}
            expected = f"{(crd_spec.get('names') or {}).get('plural')}.{crd_spec.get('group')}"
            if name != expected:
                raise invalid(
                    kind,
                    name,
                    [
                        Cause(
                            "metadata.name",
                            "FieldValueInvalid",
                            f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                        )
                    ],
                )
        if (ns, name) in self._objects[kind.key]:
            raise already_exists(kind, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(server_field, None)
        if kind.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if kind.status_subresource:
            body.pop("status", None)
        _prepare_create(kind, body)
        self._validate(kind, body, query)
        if kind.plural == "pods":
            sa = body["spec"].get("serviceAccountName") or "default"
            if ("", "serviceaccounts") in self._objects and (ns, sa) not in self._objects[("", "serviceaccounts")]:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: error looking up service account '
                    f'{ns}/{sa}: serviceaccount "{sa}" not found',
                    _details(kind, name),
                )
            self._admit_pod_security(kind, ns, name, body)
        if query.get("dryRun") == "All":
            return body
        meta["resourceVersion"] = self._next_rv()
        self._objects[kind.key][(ns, name)] = body
        self._record(kind, "ADDED", body, None)
        if kind.plural == "customresourcedefinitions":
            self._sync_crd(body, name)
        if kind.plural == "namespaces":
            sa_kind = self._kind("", "v1", "serviceaccounts")
            self._create(sa_kind, name, {"metadata": {"name": "default"}}, user)
        return body

    def _check_type(self, kind: Kind, body: Obj) -> None:
        api_version, kind_name = body.get("apiVersion"), body.get("kind")
        if api_version and kind.crd is None and api_version != kind.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if api_version and kind.crd is not None and api_version.rpartition("/")[0] != kind.group:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({kind.api_version})"
            )
        if kind_name and kind_name != kind.kind:
            raise bad_request(f"the kind in the data ({kind_name}) does not match the expected kind ({kind.kind})")
        body["apiVersion"] = kind.api_version
        body["kind"] = kind.kind

    def _update(
        self,
        kind: Kind,
        ns: str,
        name: str,
        body: Obj,
        sub: str,
        query: dict[str, str] | None = None,
        *,
        patched: bool = False,
    ) -> Obj:
        query = query or {}
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        current = self._get(kind, ns, name)
        self._check_type(kind, body)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if kind.namespaced and meta.get("namespace", ns) != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        rv = meta.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if not rv and not patched and (not kind.builtin or kind.plural == "customresourcedefinitions"):
            raise invalid(
                kind,
                name,
                [
                    Cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        old_meta = current["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise invalid(
                kind,
                name,
                [Cause("metadata.uid", "FieldValueInvalid", f'Invalid value: "{meta["uid"]}": field is immutable')],
            )
        if sub == "status":
            new = copy.deepcopy(current)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new_meta = new["metadata"]
            for server_field in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
            ):
                if server_field in old_meta:
                    new_meta[server_field] = old_meta[server_field]
                else:
                    new_meta.pop(server_field, None)
            new_meta["name"] = name
            if kind.status_subresource:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            if old_meta.get("deletionTimestamp"):
                added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise invalid(
                        kind,
                        name,
                        [
                            Cause(
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object is "
                                "being deleted, found new finalizers " + json.dumps(sorted(added)),
                            )
                        ],
                    )
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        _prepare_update(kind, new, current)
        if sub != "status" and (immutable := _update_immutable(kind, new, current)):
            raise invalid(kind, name, immutable)
        if kind.generation and sub != "status":
            ignore = ("metadata", "status") if (kind.status_subresource or kind.builtin) else ("metadata",)
            if {k: v for k, v in new.items() if k not in ignore} != {
                k: v for k, v in current.items() if k not in ignore
            }:
                new["metadata"]["generation"] = old_meta.get("generation", 0) + 1
        self._validate(kind, new, query)
        if new == current:
            return current
        if query.get("dryRun") == "All":
            return new
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[kind.key][(ns, name)] = new
        self._record(kind, "MODIFIED", new, current)
        if kind.plural == "customresourcedefinitions":
            self._sync_crd(new, name)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(kind, ns, name, "Background")
        return new

    def _patch(
        self, kind: Kind, ns: str, name: str, raw: bytes, content_type: str, sub: str, query: dict[str, str]
    ) -> Obj:
        current = self._get(kind, ns, name)
        content_type = content_type.split(";")[0].strip().lower()
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from e
        if content_type == "application/merge-patch+json":
            patched = merge_patch(current, patch)
        elif content_type == "application/strategic-merge-patch+json" and kind.builtin:
            patched = strategic_merge_patch(current, patch)
        elif content_type == "application/json-patch+json":
            try:
                patched = json_patch(current, patch)
            except TypeError as e:
                raise bad_request(str(e)) from e
            except JsonPatchError as e:
                raise ApiError(422, "", str(e)) from e
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: application/json-patch+json, application/merge-patch+json"
                + (", application/strategic-merge-patch+json" if kind.builtin else "")
                + ", application/apply-patch+yaml",
            )
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        patched_meta: Obj = patched["metadata"] if isinstance(patched.get("metadata"), dict) else {}
        patched_rv = patched_meta.get("resourceVersion")
        if patched_rv and patched_rv != current["metadata"]["resourceVersion"]:
            raise conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        return self._update(kind, ns, name, patched, sub, query, patched=True)

    def _delete(self, kind: Kind, ns: str, name: str, options: Obj, query: dict[str, str]) -> tuple[Obj, bool]:
        """Delete, or mark for deletion; answers (the object, whether it is gone)."""
        current = self._get(kind, ns, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
            raise conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                f"meta: {current['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(
                kind,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{current['metadata']['resourceVersion']}",
            )
        policy = options.get("propagationPolicy") or query.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy is None:
            policy = "Orphan" if kind.key in (("batch", "jobs"), ("batch", "cronjobs")) else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise invalid(
                kind,
                name,
                [
                    Cause(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        if query.get("dryRun") == "All" or options.get("dryRun") == ["All"]:
            return current, False
        if kind.plural == "namespaces" or current["metadata"].get("finalizers"):
            if current["metadata"].get("deletionTimestamp"):
                return current, False
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if "generation" in new["metadata"]:
                new["metadata"]["generation"] += 1
            if kind.plural == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[kind.key][(ns, name)] = new
            self._record(kind, "MODIFIED", new, current)
            self._pending_policy[(kind.key, ns, name)] = policy
            if kind.plural == "namespaces":
                self._empty_namespace(name)
                return self._objects[kind.key].get((ns, name), new), (ns, name) not in self._objects[kind.key]
            return new, False
        if policy == "Foreground":
            self._collect(current["metadata"]["uid"], "Foreground")
        gone = self._remove(kind, ns, name, policy)
        return gone, True

    def _remove(self, kind: Kind, ns: str, name: str, policy: str) -> Obj:
        current = self._objects[kind.key].pop((ns, name))
        policy = self._pending_policy.pop((kind.key, ns, name), policy)
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._record(kind, "DELETED", gone, current)
        if kind.plural == "customresourcedefinitions":
            self._drop_crd(current)
        uid = current["metadata"]["uid"]
        self._collect(uid, policy)
        if ns:
            namespace = self._objects[("", "namespaces")].get(("", ns))
            if namespace and namespace["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns)
        if kind.plural == "pods":
            self._logs.pop((ns, name), None)
        return gone

    def _drop_crd(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        kinds = [k for k in self._kinds.values() if k.crd == name]
        if kinds:
            for (ns, obj_name), _obj in list(self._objects[kinds[0].key].items()):
                if (ns, obj_name) in self._objects[kinds[0].key]:
                    self._remove(kinds[0], ns, obj_name, "Background")
        self._sync_crd(None, name)

    def _kind_for_key(self, key: Key) -> Kind | None:
        return next((k for k in self._kinds.values() if k.key == key), None)

    def _collect(self, uid: str, policy: str) -> None:
        """The garbage collector: dependents of a deleted owner `uid`."""
        live_uids = {o["metadata"]["uid"] for objs in self._objects.values() for o in objs.values()}
        for key, objs in list(self._objects.items()):
            kind = self._kind_for_key(key)
            if kind is None:
                continue
            for (ns, name), obj in list(objs.items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if policy == "Orphan":
                    body = copy.deepcopy(obj)
                    body["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not body["metadata"]["ownerReferences"]:
                        del body["metadata"]["ownerReferences"]
                    self._update(kind, ns, name, body, "", patched=True)
                elif (ns, name) in objs and not any(r.get("uid") in live_uids for r in refs if r.get("uid") != uid):
                    self._delete(kind, ns, name, {"propagationPolicy": policy}, {})

    def _empty_namespace(self, ns: str) -> None:
        for key, objs in list(self._objects.items()):
            kind = self._kind_for_key(key)
            if kind is None or not kind.namespaced:
                continue
            for (obj_ns, name), _obj in list(objs.items()):
                if obj_ns == ns and (obj_ns, name) in objs:
                    self._delete(kind, ns, name, {}, {})
        self._finish_namespace(ns)

    def _finish_namespace(self, ns: str) -> None:
        if any(k[0] == ns for key, objs in self._objects.items() if key != ("", "namespaces") for k in objs):
            return
        namespace = self._objects[("", "namespaces")].get(("", ns))
        meta = (namespace or {}).get("metadata") or {}
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(self._kind("", "v1", "namespaces"), "", ns, "Background")

    # ---- authentication and authorization ---------------------------------------------------------------------

    def _authenticate(self, header: str | None) -> User:
        if header and header.lower().startswith("bearer "):
            user = self._users.get(header[7:].strip())
            if user is not None:
                return user
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _rules_of(self, kind: str, name: str, ns: str, seen: set[str] | None = None) -> list[Obj]:
        if kind == "Role":
            role = self._objects[("rbac.authorization.k8s.io", "roles")].get((ns, name))
            return list((role or {}).get("rules") or [])
        role = self._objects[("rbac.authorization.k8s.io", "clusterroles")].get(("", name))
        seen = seen if seen is not None else set()
        if role is None or name in seen:
            return []
        seen.add(name)
        rules = list(role.get("rules") or [])
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if selectors:  # kube's aggregation controller writes these rules into the role; here they are computed
            for (_, other_name), other in self._objects[("rbac.authorization.k8s.io", "clusterroles")].items():
                labels = other["metadata"].get("labels") or {}
                if any(match_label_selector_object(s, labels) for s in selectors):
                    rules += self._rules_of("ClusterRole", other_name, "", seen)
        return rules

    @staticmethod
    def _subject_matches(subject: Obj, user: User, binding_ns: str) -> bool:
        kind = subject.get("kind")
        if kind == "User":
            return bool(subject.get("name") == user.name)
        if kind == "Group":
            return subject.get("name") in user.groups
        if kind == "ServiceAccount":
            sa_ns = subject.get("namespace") or binding_ns
            return user.name == f"system:serviceaccount:{sa_ns}:{subject.get('name')}"
        return False

    def authorize(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """RBAC: (allowed, reason), the way kube's RBAC authorizer decides."""
        if MASTERS in user.groups:
            return True, ""
        if attrs.path:
            if attrs.verb == "get" and (
                attrs.path in PUBLIC_PATHS or attrs.path.startswith(("/api", "/apis", "/openapi"))
            ):
                return True, 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery"'
        elif (
            attrs.verb == "create"
            and attrs.group in ("authorization.k8s.io", "authentication.k8s.io")
            and (attrs.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"))
        ):
            return True, 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user"'
        who = f'{"ServiceAccount" if user.name.startswith("system:serviceaccount:") else "User"} "{user.name}"'
        with self._cond:
            for binding in self._objects[("rbac.authorization.k8s.io", "clusterrolebindings")].values():
                ref = binding.get("roleRef") or {}
                if ref.get("kind") != "ClusterRole":
                    continue
                subjects = binding.get("subjects") or []
                if any(self._subject_matches(s, user, "") for s in subjects) and any(
                    _rule_allows(r, attrs) for r in self._rules_of("ClusterRole", ref.get("name", ""), "")
                ):
                    return True, (
                        f'RBAC: allowed by ClusterRoleBinding "{binding["metadata"]["name"]}" of '
                        f'ClusterRole "{ref.get("name")}" to {who}'
                    )
            if attrs.namespace and not attrs.path:
                for (ns, bname), binding in self._objects[("rbac.authorization.k8s.io", "rolebindings")].items():
                    if ns != attrs.namespace:
                        continue
                    ref = binding.get("roleRef") or {}
                    if any(self._subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                        rules = self._rules_of(ref.get("kind", ""), ref.get("name", ""), ns)
                        if any(_rule_allows(r, attrs) for r in rules):
                            return True, (
                                f'RBAC: allowed by RoleBinding "{bname}/{ns}" of {ref.get("kind")} '
                                f'"{ref.get("name")}" to {who}'
                            )
        return False, ""

    def _forbidden(self, user: User, attrs: Attributes, kind: Kind | None) -> ApiError:
        if attrs.path:
            return ApiError(
                403, "Forbidden", f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"', {}
            )
        gr = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
        subject = f'{gr} "{attrs.name}"' if attrs.name else gr
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        message = (
            f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{attrs.combined}" in '
            f'API group "{attrs.group}" {where}'
        )
        details: Obj = {"name": attrs.name} if attrs.name else {}
        if attrs.group:
            details["group"] = attrs.group
        details["kind"] = attrs.resource
        return ApiError(403, "Forbidden", message, details)

    def _review(self, kind: Kind, body: Obj, user: User) -> Obj:
        body = copy.deepcopy(body) if isinstance(body, dict) else {}
        body["apiVersion"], body["kind"] = kind.api_version, kind.kind
        body.setdefault("metadata", {})["creationTimestamp"] = None
        spec = body.get("spec") or {}
        if kind.plural == "tokenreviews":
            subject = self._users.get(spec.get("token") or "")
            status: Obj = {"authenticated": subject is not None}
            if subject is not None:
                status["user"] = {"username": subject.name, "uid": subject.uid, "groups": list(subject.groups)}
            else:
                status["error"] = "invalid bearer token"
            status["audiences"] = spec.get("audiences") or ["https://kubernetes.default.svc"]
            body["status"] = status
            return body
        if kind.plural == "selfsubjectreviews":
            body["status"] = {"userInfo": {"username": user.name, "uid": user.uid, "groups": list(user.groups)}}
            return body
        if kind.plural == "subjectaccessreviews":
            if not spec.get("user") and not spec.get("groups"):
                raise invalid(
                    kind,
                    "",
                    [
                        Cause(
                            "spec.user",
                            "FieldValueInvalid",
                            'Invalid value: "": at least one of user or group must be specified',
                        )
                    ],
                )
            subject_user = User(spec.get("user") or "", tuple(spec.get("groups") or ()))
        else:
            subject_user = user
        if spec.get("resourceAttributes"):
            ra = spec["resourceAttributes"]
            attrs = Attributes(
                ra.get("verb", ""),
                ra.get("group", ""),
                ra.get("resource", ""),
                ra.get("subresource", ""),
                ra.get("namespace", ""),
                ra.get("name", ""),
            )
        elif spec.get("nonResourceAttributes"):
            nra = spec["nonResourceAttributes"]
            attrs = Attributes(nra.get("verb", ""), path=nra.get("path", "/"))
        else:
            raise invalid(
                kind,
                "",
                [
                    Cause(
                        "spec.resourceAttributes",
                        "FieldValueRequired",
                        "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )
                ],
            )
        allowed, reason = self.authorize(subject_user, attrs)
        body["status"] = {"allowed": allowed} | ({"reason": reason} if reason else {})
        return body

    def _token_request(self, ns: str, name: str, body: Obj) -> Obj:
        self._get(self._kind("", "v1", "serviceaccounts"), ns, name)
        seconds = int(((body or {}).get("spec") or {}).get("expirationSeconds") or 3600)
        token = self.add_user(f"system:serviceaccount:{ns}:{name}")
        expires = datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        spec = {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": seconds, "boundObjectRef": None}
        spec |= (body or {}).get("spec") or {}
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": _now()},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expires},
        }

    # ---- discovery --------------------------------------------------------------------------------------------

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for kind in self._kinds.values():
            if kind.group and kind.version not in groups.setdefault(kind.group, []):
                groups[kind.group].append(kind.version)
        return groups

    def _api_group(self, name: str, versions: list[str]) -> Obj:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    def _resource_list(self, group: str, version: str) -> Obj | None:
        kinds = [k for k in self._kinds.values() if (k.group, k.version) == (group, version)]
        if not kinds:
            return None
        body: Obj = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}"}
        if not group:
            body = {"kind": "APIResourceList", "groupVersion": version}
        body["resources"] = [entry for k in kinds for entry in k.discovery()]
        return body

    def _discovery(self, parts: list[str]) -> Obj | None:
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if parts == ["apis"]:
            groups = [self._api_group(n, v) for n, v in self._groups().items()]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis":
            versions = self._groups().get(parts[1])
            return {"kind": "APIGroup", "apiVersion": "v1"} | self._api_group(parts[1], versions) if versions else None
        if len(parts) == 3 and parts[0] == "apis":
            return self._resource_list(parts[1], parts[2])
        return None


# --------------------------------------------------------------------------------------------------------------------
# Kind-specific preparation and checks
# --------------------------------------------------------------------------------------------------------------------


def _past_deadline(job: Obj) -> bool:
    """Whether an unfinished Job has been active longer than its activeDeadlineSeconds."""
    seconds = (job.get("spec") or {}).get("activeDeadlineSeconds")
    status = job.get("status") or {}
    if not isinstance(seconds, int) or job["metadata"].get("deletionTimestamp"):
        return False
    if any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions") or []
    ):
        return False
    started = datetime.strptime(status.get("startTime") or job["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    return datetime.now(UTC) >= started.replace(tzinfo=UTC) + timedelta(seconds=seconds)


def _pod_spec_defaults(spec: Obj, in_template: bool) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if not in_template:
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        default_pull = "Always" if not tagged or image.endswith(":latest") else "IfNotPresent"
        container.setdefault("imagePullPolicy", default_pull)
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _prepare_create(kind: Kind, body: Obj) -> None:
    meta = body["metadata"]
    if kind.key == ("", "namespaces"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        body["spec"] = {"finalizers": ["kubernetes"]}
        body["status"] = {"phase": "Active"}
    elif kind.key == ("", "secrets"):
        _secret_string_data(body)
    elif kind.key == ("", "pods"):
        if isinstance(body.get("spec"), dict):
            _pod_spec_defaults(body["spec"], in_template=False)
        body["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif kind.key == ("batch", "jobs"):
        spec = body.get("spec")
        if isinstance(spec, dict):
            uid, name = meta["uid"], meta["name"]
            for setting, value in (
                ("backoffLimit", 6),
                ("completions", 1),
                ("parallelism", 1),
                ("completionMode", "NonIndexed"),
                ("suspend", False),
                ("podReplacementPolicy", "TerminatingOrFailed"),
                ("manualSelector", None),
            ):
                if value is not None:
                    spec.setdefault(setting, value)
            if not spec.get("manualSelector"):
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            template = spec.get("template")
            if isinstance(template, dict):
                tmeta = template.setdefault("metadata", {})
                tmeta.setdefault("labels", {}).update(
                    {
                        "batch.kubernetes.io/controller-uid": uid,
                        "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid,
                        "job-name": name,
                    }
                )
                tmeta.setdefault("creationTimestamp", None)
                if isinstance(template.get("spec"), dict):
                    _pod_spec_defaults(template["spec"], in_template=True)
        body["status"] = {}
    elif kind.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = body.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind')}List")
        if isinstance(body.get("spec"), dict):
            body["spec"]["names"] = names
            body["spec"].setdefault("conversion", {"strategy": "None"})
        now = _now()
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        body["status"] = {
            "acceptedNames": names,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "storedVersions": storage,
        }


def _prepare_update(kind: Kind, new: Obj, current: Obj) -> None:
    if kind.key == ("", "secrets"):
        _secret_string_data(new)
    elif kind.key == ("", "namespaces"):
        new["spec"] = current.get("spec", {})
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new["metadata"]["name"]


def _secret_string_data(body: Obj) -> None:
    string_data = body.pop("stringData", None)
    if isinstance(string_data, dict):
        data = body.setdefault("data", {}) or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        body["data"] = data
    body.setdefault("type", "Opaque")
    for key, value in (body.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError as e:
            raise bad_request(f"illegal base64 data in Secret.data[{key}]") from e


def _pod_spec_causes(spec: Any, where: str, job: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [Cause(where, "FieldValueRequired", "Required value")]
    containers = spec.get("containers") or []
    if not containers:
        causes.append(Cause(f"{where}.containers", "FieldValueRequired", "Required value"))
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            at = f"{where}.{group}[{i}]"
            if not isinstance(container, dict):
                continue
            name = container.get("name") or ""
            if not name:
                causes.append(Cause(f"{at}.name", "FieldValueRequired", "Required value"))
            elif not re.fullmatch(DNS_LABEL, name) or len(name) > 63:
                causes.append(
                    Cause(
                        f"{at}.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase RFC '
                        "1123 label must consist of lower case alphanumeric characters or '-'",
                    )
                )
            elif name in seen:
                causes.append(Cause(f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not container.get("image"):
                causes.append(Cause(f"{at}.image", "FieldValueRequired", "Required value"))
            for j, env in enumerate(container.get("env") or []):
                if isinstance(env, dict) and not ENV_NAME.fullmatch(env.get("name") or ""):
                    causes.append(
                        Cause(
                            f"{at}.env[{j}].name",
                            "FieldValueInvalid",
                            f"Invalid value: "
                            f'"{env.get("name")}": a valid environment variable name must consist of '
                            "alphabetic characters, digits, '_', '-', or '.'",
                        )
                    )
                ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef")
                if isinstance(ref, dict) and not ref.get("key"):
                    causes.append(
                        Cause(f"{at}.env[{j}].valueFrom.secretKeyRef.key", "FieldValueRequired", "Required value")
                    )
            for j, mount in enumerate(container.get("volumeMounts") or []):
                if isinstance(mount, dict) and mount.get("name") not in volumes:
                    causes.append(
                        Cause(f"{at}.volumeMounts[{j}].name", "FieldValueNotFound", f'Not found: "{mount.get("name")}"')
                    )
    policy = spec.get("restartPolicy")
    allowed = ("OnFailure", "Never") if job else ("Always", "OnFailure", "Never")
    if policy not in allowed:
        what = "Required value" if not policy else f'Unsupported value: "{policy}"'
        causes.append(
            Cause(
                f"{where}.restartPolicy",
                "FieldValueNotSupported" if policy else "FieldValueRequired",
                f"{what}: supported values: " + ", ".join(f'"{a}"' for a in allowed),
            )
        )
    return causes


def _semantic_checks(kind: Kind, obj: Obj) -> list[Cause]:
    if kind.key == ("", "pods"):
        return _pod_spec_causes(obj.get("spec"), "spec", job=False)
    if kind.key == ("batch", "jobs"):
        spec = obj.get("spec") or {}
        causes = _pod_spec_causes((spec.get("template") or {}).get("spec"), "spec.template.spec", job=True)
        for setting in ("backoffLimit", "ttlSecondsAfterFinished", "parallelism", "completions"):
            if isinstance(spec.get(setting), int) and spec[setting] < 0:
                causes.append(
                    Cause(
                        f"spec.{setting}",
                        "FieldValueInvalid",
                        f"Invalid value: {spec[setting]}: must be greater than or equal to 0",
                    )
                )
        deadline = spec.get("activeDeadlineSeconds")
        if isinstance(deadline, int) and deadline <= 0:
            causes.append(
                Cause(
                    "spec.activeDeadlineSeconds",
                    "FieldValueInvalid",
                    f"Invalid value: {deadline}: must be greater than 0",
                )
            )
        return causes
    if kind.key == ("", "secrets"):
        return [
            Cause(
                f"data[{k}]",
                "FieldValueInvalid",
                f"Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            )
            for k in (obj.get("data") or {})
            if not SECRET_KEY.fullmatch(k)
        ]
    if kind.key in (
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ):
        ref = obj.get("roleRef") or {}
        allowed = ("Role", "ClusterRole") if kind.plural == "rolebindings" else ("ClusterRole",)
        if ref.get("kind") not in allowed:
            return [
                Cause(
                    "roleRef.kind",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{ref.get("kind")}": '
                    "supported values: " + ", ".join(f'"{a}"' for a in allowed),
                )
            ]
    return []


def _update_immutable(kind: Kind, new: Obj, current: Obj) -> list[Cause]:
    if kind.key == ("batch", "jobs"):
        for path in ("template", "selector", "completionMode"):
            if (new.get("spec") or {}).get(path) != (current.get("spec") or {}).get(path):
                return [Cause(f"spec.{path}", "FieldValueInvalid", "Invalid value: ...: field is immutable")]
    return []


# --------------------------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Route:
    kind: Kind
    namespace: str  # "" for cluster-scoped or all namespaces
    name: str
    sub: str
    all_namespaces: bool


def _handler_class(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-kube"

        def setup(self) -> None:
            super().setup()
            fake._connections.add(self.connection)

        def finish(self) -> None:
            fake._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            _Request(fake, self).handle()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    return Handler


class _Request:
    def __init__(self, fake: FakeKube, handler: BaseHTTPRequestHandler) -> None:
        self.fake, self.h = fake, handler
        split = urlsplit(handler.path)
        self.path = unquote(split.path).rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.method = handler.command
        self.warnings: list[str] = []
        self._body: bytes | None = None

    # -- responses --

    def send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.h.send_response(code)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Content-Length", str(len(data)))
        self.h.send_header("Cache-Control", "no-cache, private")
        for warning in self.warnings:
            self.h.send_header("Warning", f'299 - "{warning}"')
        self.h.end_headers()
        if self.method != "HEAD":
            self.h.wfile.write(data)

    def read_body(self) -> bytes:
        if self._body is None:
            length = int(self.h.headers.get("Content-Length") or 0)
            self._body = self.h.rfile.read(length) if length else b""
        return self._body

    def json_body(self) -> Any:
        raw = self.read_body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as e:
            raise bad_request(f"error decoding body: {e}") from e

    # -- dispatch --

    def handle(self) -> None:
        self.fake.requests.append(f"{self.method} {self.h.path}")
        try:
            self.dispatch()
        except ApiError as e:
            if e.reason == "Invalid":
                self.fake.violations.append(e.message)
            self.read_leftover()
            self.send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            self.h.close_connection = True

    def read_leftover(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.read_body()

    def dispatch(self) -> None:
        parts = [p for p in self.path.split("/") if p]
        if self.path in ("/healthz", "/livez", "/readyz"):
            self.send(200, b"ok", "text/plain; charset=utf-8")
            return
        if self.path == "/version":
            self.send(200, K8S_VERSION)
            return
        user = self.fake._authenticate(self.h.headers.get("Authorization"))
        with self.fake._cond:
            discovery = self.fake._discovery(parts) if self.method == "GET" else None
        if discovery is not None:
            allowed, _ = self.fake.authorize(user, Attributes("get", path=self.path))
            if not allowed:
                raise self.fake._forbidden(user, Attributes("get", path=self.path), None)
            self.send(200, discovery)
            return
        route = self.route(parts)
        attrs = self.attributes(route)
        allowed, _ = self.fake.authorize(user, attrs)
        if not allowed:
            raise self.fake._forbidden(user, attrs, route.kind)
        self.resource(route, user)

    def route(self, parts: list[str]) -> Route:
        missing = ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise missing
        kinds = self.fake._kinds
        ns = ""
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and (group, version, rest[2]) in kinds
            and not (not group and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3 or (group, version, rest[0]) not in kinds:
            raise missing
        kind = kinds[(group, version, rest[0])]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in kind.subresources:
            raise missing
        if kind.namespaced and not ns and name:
            raise missing
        if not kind.namespaced and ns:
            raise missing
        return Route(kind, ns, name, sub, kind.namespaced and not ns)

    def attributes(self, route: Route) -> Attributes:
        watch = _truthy(self.query.get("watch"))
        name = route.name
        if not name:
            verb = {
                "GET": "watch" if watch else "list",
                "HEAD": "list",
                "POST": "create",
                "DELETE": "deletecollection",
            }.get(self.method, self.method.lower())
            if verb in ("list", "watch"):
                for term in _split_terms(self.query.get("fieldSelector", "")):
                    if m := re.fullmatch(r"metadata\.name==?(.*)", term):
                        name = m.group(1)
        else:
            verb = {
                "GET": "get",
                "HEAD": "get",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete",
            }[self.method]
        return Attributes(verb, route.kind.group, route.kind.plural, route.sub, route.namespace, name)

    def resource(self, route: Route, user: User) -> None:
        fake, kind, ns, name, sub = self.fake, route.kind, route.namespace, route.name, route.sub
        method = self.method
        verb_ok = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
            "HEAD": "get",
        }[method]
        if (route.all_namespaces and method != "GET") or (not name and method in ("PUT", "PATCH")):
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        if sub in ("status",) and method not in ("GET", "PUT", "PATCH"):
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        if not sub and verb_ok not in kind.verbs:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
            )
        if kind.plural in REVIEW_KINDS:
            body = self.json_body()
            with fake._cond:
                self.send(201, fake._review(kind, body, user))
            return
        if sub == "token":
            if method != "POST":
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
                )
            body = self.json_body()
            with fake._cond:
                self.send(201, fake._token_request(ns, name, body))
            return
        if sub == "log":
            with fake._cond:
                fake._get(kind, ns, name)
            self.send(200, fake._logs.get((ns, name), "").encode(), "text/plain")
            return
        if method in ("GET", "HEAD") and not name:
            selector = Selector(
                parse_label_selector(self.query.get("labelSelector", "")),
                parse_field_selector(self.query.get("fieldSelector", ""), kind),
                ns if kind.namespaced and not route.all_namespaces else None,
            )
            if _truthy(self.query.get("watch")):
                self.watch(kind, selector)
                return
            with fake._cond:
                body = fake._list(kind, selector, self.query)
            self.send(200, body)
            return
        if method in ("GET", "HEAD"):
            with fake._cond:
                body = fake._out(kind, fake._get(kind, ns, name))
            self.send(200, body)
            return
        if method == "POST":
            if name:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
                )
            body = self.json_body()
            with fake._cond:
                created = fake._out(kind, fake._create(kind, ns, body, user, self.query))
            self.warnings = self.pop_warnings(created)
            self.send(201, created)
            return
        if method == "PUT":
            body = self.json_body()
            with fake._cond:
                before = len(fake.warnings)
                updated = fake._update(kind, ns, name, body, sub, self.query)
                out = fake._out(kind, updated)
                self.warnings = [w.split(": ", 1)[-1] for w in fake.warnings[before:]]
            self.send(200, out)
            return
        if method == "PATCH":
            raw = self.read_body()
            with fake._cond:
                before = len(fake.warnings)
                patched = fake._patch(kind, ns, name, raw, self.h.headers.get("Content-Type", ""), sub, self.query)
                out = fake._out(kind, patched)
                self.warnings = [w.split(": ", 1)[-1] for w in fake.warnings[before:]]
            self.send(200, out)
            return
        if method == "DELETE":
            options = self.json_body()
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            if not name:
                self.delete_collection(route, options)
                return
            with fake._cond:
                obj, gone = fake._delete(kind, ns, name, options, self.query)
                obj = fake._out(kind, obj)
            if kind.return_deleted or not gone:
                self.send(200, obj)
            else:
                details: Obj = {"name": name} | ({"group": kind.group} if kind.group else {})
                details |= {"kind": kind.plural, "uid": obj["metadata"]["uid"]}
                self.send(
                    200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
                )
            return
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})

    def pop_warnings(self, created: Obj) -> list[str]:
        prefix = f"{created.get('kind')} {created['metadata'].get('name')}: "
        return [w[len(prefix) :] for w in self.fake.warnings if w.startswith(prefix)][-10:]

    def delete_collection(self, route: Route, options: Obj) -> None:
        fake, kind = self.fake, route.kind
        selector = Selector(
            parse_label_selector(self.query.get("labelSelector", "")),
            parse_field_selector(self.query.get("fieldSelector", ""), kind),
            route.namespace if kind.namespaced and not route.all_namespaces else None,
        )
        with fake._cond:
            items = []
            for (ns, name), obj in sorted(fake._objects[kind.key].items()):
                if selector.matches(obj) and (ns, name) in fake._objects[kind.key]:
                    deleted, _ = fake._delete(kind, ns, name, options, self.query)
                    items.append(fake._out(kind, deleted, in_list=True))
            body = {
                "apiVersion": kind.api_version,
                "kind": f"{kind.kind}List",
                "metadata": {"resourceVersion": str(fake._rv)},
                "items": items,
            }
        self.send(200, body)

    # -- watch --

    def watch(self, kind: Kind, selector: Selector) -> None:
        fake = self.fake
        rv_param = self.query.get("resourceVersion", "")
        timeout = float(self.query.get("timeoutSeconds") or 0)
        bookmarks = _truthy(self.query.get("allowWatchBookmarks"))
        initial_events = _truthy(self.query.get("sendInitialEvents"))
        deadline = time.monotonic() + timeout if timeout > 0 else None
        pending: list[Obj] = []
        with fake._cond:
            if rv_param in ("", "0") or initial_events:
                position = fake._rv
                for key in sorted(fake._objects[kind.key]):
                    obj = fake._objects[kind.key][key]
                    if selector.matches(obj):
                        pending.append({"type": "ADDED", "object": fake._out(kind, obj)})
                if initial_events and bookmarks:
                    pending.append(self.bookmark(kind, position, initial_end=True))
            else:
                try:
                    position = int(rv_param)
                except ValueError as e:
                    raise bad_request(f"invalid resource version: {rv_param}") from e
        self.h.send_response(200)
        self.h.send_header("Content-Type", "application/json")
        self.h.send_header("Transfer-Encoding", "chunked")
        self.h.send_header("Cache-Control", "no-cache, private")
        self.h.end_headers()
        last_sent = time.monotonic()
        try:
            while True:
                for event in pending:
                    self.chunk(json.dumps(event).encode() + b"\n")
                    last_sent = time.monotonic()
                pending = []
                with fake._cond:
                    if position < fake._compacted:
                        error = expired(f"too old resource version: {position} ({fake._compacted + 1})")
                        self.chunk(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
                        break
                    pending = self.events_after(kind, selector, position)
                    position = fake._rv
                    if pending:
                        continue
                    now = time.monotonic()
                    if fake._closing or (deadline is not None and now >= deadline):
                        break
                    if bookmarks and now - last_sent >= fake.bookmark_interval:
                        pending = [self.bookmark(kind, position)]
                        continue
                    wait = fake.bookmark_interval - (now - last_sent) if bookmarks else 1.0
                    if deadline is not None:
                        wait = min(wait, deadline - now)
                    fake._cond.wait(max(0.01, min(wait, 1.0)))
            self.h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.h.close_connection = True

    def bookmark(self, kind: Kind, rv: int, initial_end: bool = False) -> Obj:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"type": "BOOKMARK", "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}}

    def events_after(self, kind: Kind, selector: Selector, position: int) -> list[Obj]:
        fake = self.fake
        changes: list[Change] = []
        for change in reversed(fake._history):
            if change.rv <= position:
                break
            if change.key == kind.key:
                changes.append(change)
        events: list[Obj] = []
        for change in reversed(changes):
            new_match = change.type != "DELETED" and selector.matches(change.obj)
            old_match = selector.matches(change.old)
            if change.type == "DELETED":
                if old_match:
                    events.append({"type": "DELETED", "object": fake._out(kind, change.obj)})
            elif new_match and old_match:
                events.append({"type": "MODIFIED", "object": fake._out(kind, change.obj)})
            elif new_match:
                events.append({"type": "ADDED", "object": fake._out(kind, change.obj)})
            elif old_match:
                events.append({"type": "DELETED", "object": fake._out(kind, change.obj)})
        return events

    def chunk(self, data: bytes) -> None:
        self.h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.h.wfile.flush()


# --------------------------------------------------------------------------------------------------------------------
# Starting
# --------------------------------------------------------------------------------------------------------------------


def start_fake_kube(tmp_path: Path, *, history_limit: int = 1000, bookmark_interval: float = 5.0) -> FakeKube:
    """Start a fake kube-apiserver in a thread; `.kubeconfig` signs in as the admin. Close it with `.close()`."""
    return FakeKube(tmp_path / "fake-kube", history_limit=history_limit, bookmark_interval=bookmark_interval)


@contextlib.contextmanager
def fake_kube(tmp_path: Path, **kwargs: Any) -> Iterator[FakeKube]:
    """`start_fake_kube` as a context manager."""
    fake = start_fake_kube(tmp_path, **kwargs)
    try:
        yield fake
    finally:
        fake.close()


__all__ = ["ApiError", "FakeKube", "fake_kube", "start_fake_kube"]
