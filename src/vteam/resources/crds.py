"""CustomResourceDefinitions generated from the pydantic models, so the cluster and the code share one schema.

`python -m vteam.resources.crds DIR` writes one YAML file per CRD; `make manifests` runs it into
`deploy/crds/`, and a test fails when the committed files drift from the models.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vteam.resources.meta import GROUP, VERSION, CamelModel
from vteam.resources.project_settings import ProjectSettings, ProjectSettingsSpec, ProjectSettingsStatus
from vteam.resources.session import AgenticSession, SessionSpec, SessionStatus

Schema = dict[str, Any]

HEADER = "# Generated from the vTeam resource models by `make manifests`; do not edit.\n"

DROPPED = frozenset({"title", "default", "$defs", "examples"})
"""Keys left out of CRD schemas. Defaults stay in the models: the API server filling them in would make
stored objects differ from what their writer sent, and pydantic applies them on every read anyway."""


class UnsupportedSchema(ValueError):
    """A model uses a JSON Schema construct that a structural CRD schema cannot express."""


@dataclass(frozen=True)
class Kind:
    """One custom resource kind and the models of its spec and status."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[CamelModel]
    status: type[CamelModel]
    spec_required: bool
    columns: tuple[dict[str, str], ...]


PHASE_COLUMN = {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

KINDS: tuple[Kind, ...] = (
    Kind(
        kind=AgenticSession.KIND,
        plural="agenticsessions",
        short_names=("ags", "asession"),
        spec=SessionSpec,
        status=SessionStatus,
        spec_required=True,
        columns=(
            PHASE_COLUMN,
            {"name": "Framework", "type": "string", "jsonPath": ".spec.framework"},
            AGE_COLUMN,
        ),
    ),
    Kind(
        kind=ProjectSettings.KIND,
        plural="projectsettings",
        short_names=("pset",),
        spec=ProjectSettingsSpec,
        status=ProjectSettingsStatus,
        spec_required=False,
        columns=(PHASE_COLUMN, AGE_COLUMN),
    ),
)


def structural(model: type[CamelModel]) -> Schema:
    """The model's wire schema as Kubernetes accepts it: no references, no unions, a type on every node."""
    document = model.model_json_schema(by_alias=True)
    return _convert(document, document.get("$defs", {}))


def _resolve(node: Schema, defs: Schema) -> Schema:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in defs:
            raise UnsupportedSchema(f"unknown reference {node['$ref']}")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        node = {**defs[name], **siblings}
    return node


def _convert(node: Schema, defs: Schema) -> Schema:
    node = _resolve(node, defs)
    nullable = False
    if "anyOf" in node:
        choices = [_resolve(choice, defs) for choice in node["anyOf"]]
        rest = [choice for choice in choices if choice.get("type") != "null"]
        if len(rest) != 1:
            raise UnsupportedSchema(f"a union of {len(rest)} types cannot be a structural schema: {node['anyOf']}")
        siblings = {key: value for key, value in node.items() if key != "anyOf"}
        node = {**rest[0], **siblings}
        nullable = len(rest) < len(choices)
        node = _resolve(node, defs)
    for unsupported in ("oneOf", "allOf", "not"):
        if unsupported in node:
            raise UnsupportedSchema(f"{unsupported} cannot be a structural schema: {node}")
    out: Schema = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _convert(child, defs) for name, child in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = copy.deepcopy(value)
    if "type" not in out:
        if "enum" in out and all(isinstance(item, str) for item in out["enum"]):
            out["type"] = "string"
        else:
            raise UnsupportedSchema(f"a schema node without a type: {node}")
    if nullable:
        out["nullable"] = True
    leading: Schema = {key: out.pop(key) for key in ("type", "nullable", "description") if key in out}
    return {**leading, **out}


def definition(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a plain dict."""
    root: Schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(kind.spec),
            "status": structural(kind.status),
        },
    }
    if kind.spec_required:
        root["required"] = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "vteam"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["vteam"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in kind.columns],
                }
            ],
        },
    }


def definitions() -> list[dict[str, Any]]:
    return [definition(kind) for kind in KINDS]


def render(crd: dict[str, Any]) -> str:
    """One CRD as the YAML text committed under deploy/crds/."""
    text: str = yaml.safe_dump(crd, sort_keys=False, default_flow_style=False, width=120)
    return HEADER + text


def files() -> dict[str, str]:
    """File name → YAML text for every generated CRD."""
    return {f"{kind.plural}.yaml": render(definition(kind)) for kind in KINDS}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m vteam.resources.crds DIR", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
