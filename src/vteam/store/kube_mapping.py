"""How vTeam resources look as Kubernetes objects: custom resources, and projects as namespaces.

Pure functions on JSON dicts, so the mapping can be read and tested apart from any API call.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from vteam.kube import MANAGED_LABEL
from vteam.resources import API_VERSION, STORED, ObjectMeta, Project, Resource, crds
from vteam.resources.meta import OwnerReference
from vteam.resources.project import ProjectDefaults
from vteam.store.base import R

log = logging.getLogger(__name__)

DISPLAY_NAME = "openshift.io/display-name"
DESCRIPTION = "openshift.io/description"
DEFAULTS = "vteam.ambient-code/defaults"
GENERATION = "vteam.ambient-code/generation"
"""Namespaces have no metadata.generation; the project's lives here, bumped when its spec changes."""
NAME_LABEL = "kubernetes.io/metadata.name"
"""Kubernetes sets this on every namespace; it is not the project's own label."""

HIDDEN_LABELS = frozenset({MANAGED_LABEL, NAME_LABEL})
SPEC_ANNOTATIONS = frozenset({DISPLAY_NAME, DESCRIPTION, DEFAULTS, GENERATION})

_PLURALS = {kind.kind: kind.plural for kind in crds.KINDS}

_META_KEYS = frozenset(field.alias or name for name, field in ObjectMeta.model_fields.items())
_OWNER_KEYS = frozenset(field.alias or name for name, field in OwnerReference.model_fields.items())


def plural(kind: type[Resource]) -> str:
    return _PLURALS.get(kind.KIND) or f"{kind.KIND.lower()}s"


Key = tuple[str, str]


def key_of(raw: dict[str, Any]) -> Key:
    meta = raw.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def version_of(raw: dict[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("resourceVersion") or "")


def uid_of(raw: dict[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("uid") or "")


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    """Only the metadata vTeam models: managedFields, finalizers and the like stay in Kubernetes."""
    meta = {k: v for k, v in (raw.get("metadata") or {}).items() if k in _META_KEYS and v is not None}
    if "ownerReferences" in meta:
        meta["ownerReferences"] = [
            {k: v for k, v in ref.items() if k in _OWNER_KEYS} for ref in meta["ownerReferences"]
        ]
    return meta


def from_custom(kind: type[R], raw: dict[str, Any]) -> R:
    fields = {field.alias or name for name, field in kind.model_fields.items()} - {"metadata"}
    body = {k: v for k, v in raw.items() if k in fields and v is not None}
    body["kind"] = kind.KIND
    body["metadata"] = _meta(raw)
    return kind.model_validate(body, context=STORED)


def to_custom(obj: Resource, *, resource_version: bool) -> dict[str, Any]:
    """The body to create or replace; status goes only through the status subresource."""
    body = obj.wire()
    body.pop("status", None)
    body["apiVersion"] = API_VERSION
    keep = {"name", "namespace", "labels", "annotations", "ownerReferences"}
    if resource_version:
        keep.add("resourceVersion")
    body["metadata"] = {k: v for k, v in body["metadata"].items() if k in keep}
    return body


def is_managed(namespace: dict[str, Any]) -> bool:
    return ((namespace.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL) == "true"


def is_terminating(namespace: dict[str, Any]) -> bool:
    """A namespace being deleted is a project that is gone, though Kubernetes still shows it a while."""
    meta = namespace.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (namespace.get("status") or {}).get("phase") == "Terminating"


def project_from_namespace(namespace: dict[str, Any]) -> Project:
    meta = _meta(namespace)
    meta.pop("namespace", None)
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    meta["labels"] = {k: v for k, v in labels.items() if k not in HIDDEN_LABELS}
    meta["annotations"] = {k: v for k, v in annotations.items() if k not in SPEC_ANNOTATIONS}
    meta["generation"] = _int(annotations.get(GENERATION), 1)
    spec: dict[str, Any] = {}
    if DISPLAY_NAME in annotations:
        spec["displayName"] = annotations[DISPLAY_NAME]
    if DESCRIPTION in annotations:
        spec["description"] = annotations[DESCRIPTION]
    if (defaults := _defaults(meta["name"], annotations.get(DEFAULTS))) is not None:
        spec["defaults"] = defaults
    phase = "Terminating" if is_terminating(namespace) else "Active"
    return Project.model_validate({"metadata": meta, "spec": spec, "status": {"phase": phase}})


def namespace_from_project(project: Project, *, generation: int, resource_version: str | None = None) -> dict[str, Any]:
    labels = {k: v for k, v in project.metadata.labels.items() if k not in HIDDEN_LABELS}
    labels[MANAGED_LABEL] = "true"
    labels[NAME_LABEL] = project.name
    annotations = {k: v for k, v in project.metadata.annotations.items() if k not in SPEC_ANNOTATIONS}
    annotations.update(spec_annotations(project))
    annotations[GENERATION] = str(generation)
    meta: dict[str, Any] = {"name": project.name, "labels": labels, "annotations": annotations}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def spec_annotations(project: Project) -> dict[str, str]:
    spec = project.spec
    out: dict[str, str] = {}
    if spec.display_name is not None:
        out[DISPLAY_NAME] = spec.display_name
    if spec.description is not None:
        out[DESCRIPTION] = spec.description
    if spec.defaults is not None:
        out[DEFAULTS] = json.dumps(spec.defaults.wire(), sort_keys=True, separators=(",", ":"))
    return out


def _defaults(name: str, text: str | None) -> dict[str, Any] | None:
    """A hand-edited annotation that does not parse must not hide the whole project."""
    if not text:
        return None
    try:
        return ProjectDefaults.model_validate_json(text).wire()
    except ValidationError:
        log.warning("project %s: ignoring annotation %s, which is not valid defaults: %r", name, DEFAULTS, text)
        return None


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
