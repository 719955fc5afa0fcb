"""The CRDs in deploy/crds are what the models generate; Kubernetes accepts them; they check what pydantic does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from vteam.resources import (
    AgenticSession,
    Condition,
    DiffStat,
    ObjectMeta,
    Phase,
    ProjectSettings,
    PullRequestStatus,
    RepoInput,
    RepoOutput,
    RepoStatus,
    SessionRepo,
    SessionResult,
    SessionSpec,
    SessionStatus,
    crds,
    status_patch,
)
from vteam.resources.meta import CamelModel

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def openapi_to_jsonschema(node: Any) -> Any:
    """Kubernetes' OpenAPI v3 subset as draft-4 JSON Schema: `nullable: true` becomes a `null` type."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: openapi_to_jsonschema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def validator(kind: str) -> jsonschema.Draft4Validator:
    crd = next(c for c in crds.definitions() if c["spec"]["names"]["kind"] == kind)
    schema = openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def committed(name: str) -> str:
    path = CRD_DIR / name
    return path.read_text() if path.exists() else ""


def all_crd_documents() -> list[dict[str, Any]]:
    documents = [doc for path in sorted(CRD_DIR.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in documents if doc.get("kind") == "CustomResourceDefinition"]


def schema_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path or "<root>", node)]
    for name, child in node.get("properties", {}).items():
        found += schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += schema_nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def a_real_session() -> AgenticSession:
    started = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    return AgenticSession(
        metadata=ObjectMeta(
            name="fix-typo",
            namespace="team-a",
            uid="1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            resource_version="42",
            generation=1,
            labels={"team": "a"},
            creation_timestamp=started,
        ),
        spec=SessionSpec(
            prompt="Fix the typo in README.md",
            display_name="Typo",
            repos=[
                SessionRepo(
                    input=RepoInput(url="https://github.com/acme/app.git", branch="main"),
                    output=RepoOutput(
                        url="https://github.com/acme/app.git", target_branch="vteam/typo", create_pull_request=True
                    ),
                )
            ],
            framework="codex",
            model="gpt-5-mini",
            timeout=600,
            max_turns=20,
            budget_usd=2.5,
            environment={"LOG_LEVEL": "debug"},
        ),
        status=SessionStatus(
            phase=Phase.COMPLETED,
            conditions=[Condition(type="Ready", status="True", reason="Done", last_transition_time=started)],
            start_time=started,
            completion_time=started,
            agent_status="idle",
            result=SessionResult(text="Fixed.", turns=3, usage={"input_tokens": 1200.0}, cost_usd=0.01),
            repos=[
                RepoStatus(
                    url="https://github.com/acme/app.git",
                    branch="vteam/typo",
                    pushed=True,
                    commit_sha="0123456789abcdef0123456789abcdef01234567",
                    diffstat=DiffStat(files_changed=1, insertions=1, deletions=1),
                    pull_request=PullRequestStatus(
                        url="https://github.com/acme/app/pull/7",
                        number=7,
                        forge="github",
                        repo="acme/app",
                        head="vteam/typo",
                        base="main",
                    ),
                )
            ],
            observed_generation=1,
        ),
    )


@pytest.mark.parametrize("name", sorted(crds.files()))
def test_committed_crds_match_the_models(name: str) -> None:
    assert committed(name) == crds.files()[name], (
        f"deploy/crds/{name} differs from what the resource models generate; run `make manifests` and commit it"
    )


def test_the_module_entry_point_writes_one_file_per_crd(tmp_path: Path) -> None:
    assert crds.main([str(tmp_path)]) == 0
    written = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert written == crds.files()
    assert set(written) == {"agenticsessions.yaml", "projectsettings.yaml"}


@pytest.mark.parametrize("crd", crds.definitions(), ids=lambda crd: crd["spec"]["names"]["kind"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems = []
    for path, node in schema_nodes(root):
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{path}: no type")
        for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "default", "const"):
            if forbidden in node:
                problems.append(f"{path}: {forbidden}")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties: false")
    assert problems == []


def test_schemas_keep_the_models_validation() -> None:
    spec = validator("AgenticSession").schema["properties"]["spec"]["properties"]
    assert spec["timeout"]["minimum"] == 1
    assert spec["timeout"]["maximum"] == 24 * 3600
    assert spec["prompt"]["minLength"] == 1
    assert spec["repos"]["maxItems"] == 20
    assert spec["environment"]["additionalProperties"] == {"type": "string"}
    status = validator("AgenticSession").schema["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [phase.value for phase in Phase]
    assert status["startTime"]["format"] == "date-time"
    settings = validator("ProjectSettings").schema["properties"]["spec"]["properties"]
    assert "pattern" in settings["runnerResources"]["properties"]["limits"]["properties"]["cpu"]


def test_crds_name_the_kinds_as_kubectl_shows_them() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds.definitions()}
    sessions = by_kind["AgenticSession"]["spec"]
    assert sessions["names"]["plural"] == "agenticsessions"
    assert "ags" in sessions["names"]["shortNames"]
    assert sessions["scope"] == "Namespaced"
    version = sessions["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns == {"Phase": ".status.phase", "Framework": ".spec.framework", "Age": ".metadata.creationTimestamp"}
    assert by_kind["ProjectSettings"]["spec"]["names"]["shortNames"] == ["pset"]


@pytest.mark.parametrize("document", all_crd_documents(), ids=lambda doc: doc["metadata"]["name"])
def test_kubernetes_accepts_every_crd(document: dict[str, Any]) -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(document, version, strict=True)


def test_kopf_peering_crds_are_where_kopf_looks() -> None:
    peering = {doc["spec"]["names"]["kind"]: doc for doc in all_crd_documents() if doc["spec"]["group"] == "kopf.dev"}
    assert set(peering) == {"ClusterKopfPeering", "KopfPeering"}
    assert peering["ClusterKopfPeering"]["spec"]["scope"] == "Cluster"
    assert peering["KopfPeering"]["spec"]["names"]["plural"] == "kopfpeerings"
    for doc in peering.values():
        status = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_a_real_session_passes_the_crd_schema() -> None:
    check = validator("AgenticSession")
    wire = a_real_session().wire()
    assert list(check.iter_errors(wire)) == []
    wire["status"] |= status_patch(message=None, agent_status=None)
    assert list(check.iter_errors(wire)) == []


def test_default_project_settings_pass_the_crd_schema() -> None:
    settings = ProjectSettings(metadata=ObjectMeta(name="settings", namespace="team-a"))
    assert list(validator("ProjectSettings").iter_errors(settings.wire())) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "timeout"), 0),
        (("spec", "timeout"), 24 * 3600 + 1),
        (("spec", "prompt"), ""),
        (("spec", "budgetUsd"), 0),
        (("spec", "mode"), "forever"),
        (("spec", "environment"), {"A": 1}),
        (("status", "phase"), "Exploded"),
        (("status", "startTime"), "yesterday"),
        (("status", "repos"), [{"branch": "no-url"}]),
    ],
)
def test_an_invalid_session_is_rejected(path: tuple[str, str], value: Any) -> None:
    wire = a_real_session().wire()
    wire[path[0]][path[1]] = value
    assert list(validator("AgenticSession").iter_errors(wire)) != []


def test_a_session_without_spec_is_rejected() -> None:
    wire = a_real_session().wire()
    del wire["spec"]
    assert list(validator("AgenticSession").iter_errors(wire)) != []


def test_invalid_runner_quantities_are_rejected() -> None:
    wire = ProjectSettings(metadata=ObjectMeta(name="settings")).wire()
    wire["spec"]["runnerResources"] = {"limits": {"memory": "lots"}}
    assert list(validator("ProjectSettings").iter_errors(wire)) != []


def test_a_union_the_cluster_cannot_express_is_refused() -> None:
    class Either(CamelModel):
        value: int | str

    with pytest.raises(crds.UnsupportedSchema, match="union"):
        crds.structural(Either)


def test_nested_models_are_inlined_with_their_descriptions() -> None:
    class Inner(BaseModel):
        size: int = 1

    class Outer(CamelModel):
        inner: Inner | None = None

    schema = crds.structural(Outer)
    assert schema["properties"]["inner"] == {
        "type": "object",
        "nullable": True,
        "properties": {"size": {"type": "integer"}},
    }
