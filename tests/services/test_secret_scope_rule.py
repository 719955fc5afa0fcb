"""A project secret's scope: the one rule, as the embedded controller applies it and as the operator renders it
into a runner Job, and a database from before scopes upgraded with every secret still reaching every agent."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import kubernetes_validate
from alembic import command
from cryptography.fernet import Fernet

from vteam.agents import registry
from vteam.auth import Vault
from vteam.auth.vault import fernet_key
from vteam.controller.controller import Controller, ProjectSecret
from vteam.controller.job import (
    SCOPE_ANNOTATION_PREFIX,
    agent_secret_keys,
    render_job,
    scope_annotation,
    scope_annotations,
)
from vteam.db import migrate, open_database
from vteam.resources import AgenticSession
from vteam.settings import Settings

UID = "3c9f5a8e-2b1d-4f7a-9e0c-6d5b4a3f2e1d"
K8S = kubernetes_validate.latest_version()
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
ANNOTATION_KEY = re.compile(rf"^({DNS_LABEL}(\.{DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$")
"""Kubernetes' rule for an annotation's key: an optional DNS-subdomain prefix, and a name of at most 63."""


def session(framework: str) -> AgenticSession:
    return AgenticSession.model_validate(
        {
            "metadata": {"name": "s", "namespace": "team-a", "uid": UID},
            "spec": {"prompt": "x", "framework": framework},
        }
    )


def test_the_rule_unscoped_reaches_all_scoped_only_what_it_names() -> None:
    assert all(registry.reaches(None, name) for name in registry.ADAPTERS)
    assert registry.reaches(("codex",), "codex")
    assert not registry.reaches(("codex",), "script")
    assert not registry.reaches((), "script"), "an empty scope reaches nobody (the API never stores one)"
    assert registry.unknown_frameworks(["codex", "nope", "script", "gpt"]) == ["nope", "gpt"]


def test_the_controller_gives_each_framework_only_the_project_secrets_scoped_to_it() -> None:
    async def project_secrets(project: str) -> dict[str, ProjectSecret]:
        return {
            "OPEN": ProjectSecret("open"),
            "CODEX_ONLY": ProjectSecret("c", ("codex",)),
            "SCRIPT_AND_CODEX": ProjectSecret("sc", ("codex", "script")),
            "ANTHROPIC_API_KEY": ProjectSecret("project-key", ("codex",)),
        }

    none: Any = None
    controller = Controller(
        store=none,
        events=none,
        hub=none,
        tokens=none,
        executor_factory=lambda _on_exit: none,
        server_url=lambda: "",
        runner_env={},
        agent_environ={"ANTHROPIC_API_KEY": "platform-key", "OPENAI_API_KEY": "platform-openai"},
        max_running=1,
        resync_seconds=1,
        project_secrets=project_secrets,
    )
    script, _ = asyncio.run(controller._agent_environment(session("script")))
    assert script == {"OPEN": "open", "SCRIPT_AND_CODEX": "sc"}
    claude, _ = asyncio.run(controller._agent_environment(session("claude-code")))
    assert claude == {"OPEN": "open", "ANTHROPIC_API_KEY": "platform-key"}, (
        "the platform's key the framework declares stays; the project's, scoped to codex, does not replace it"
    )
    codex, _ = asyncio.run(controller._agent_environment(session("codex")))
    assert codex["CODEX_ONLY"] == "c"
    assert codex["ANTHROPIC_API_KEY"] == "project-key"
    assert codex["OPENAI_API_KEY"] == "platform-openai"


def runner_secret(data: list[str], annotations: dict[str, str | None]) -> dict[str, Any]:
    return {
        "metadata": {"name": "vteam-runner-secrets", "annotations": {k: v for k, v in annotations.items() if v}},
        "data": {key: "dg==" for key in data},
    }


def test_a_job_takes_the_whole_runner_secret_unless_a_key_is_scoped_away_from_its_framework() -> None:
    unscoped = runner_secret(["A", "B"], {})
    assert agent_secret_keys(unscoped, "script") is None
    scoped = runner_secret(["OPEN", "SCOPED"], scope_annotations("SCOPED", ["codex"]))
    assert agent_secret_keys(scoped, "codex") is None, "codex gets every key: the whole Secret, as before"
    assert agent_secret_keys(scoped, "script") == ["OPEN"]
    spoiled = runner_secret(["OPEN", "BAD"], {scope_annotation("BAD"): "not json"})
    assert agent_secret_keys(spoiled, "codex") == ["OPEN"], "a scope that does not parse is never widened"

    settings = Settings(public_url="http://vteam-backend.vteam.svc:8080", runner_image="vteam:9.9.9")
    whole = render_job(session("codex"), settings, None, "s-runner", agent_secrets=None)
    container = whole["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"prefix": "VTEAM_SECRET_", "secretRef": {"name": "vteam-runner-secrets", "optional": True}}
    ]
    only = render_job(session("script"), settings, None, "s-runner", agent_secrets=["OPEN"])
    kubernetes_validate.validate(only, K8S, strict=True)
    container = only["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == []
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["VTEAM_SECRET_OPEN"] == {"name": "vteam-runner-secrets", "key": "OPEN", "optional": True}
    assert "VTEAM_SECRET_SCOPED" not in refs


def test_every_secret_name_has_a_valid_annotation_of_its_own() -> None:
    names = ["A", "GIT_TOKEN", "ENDS_", "X" * 63, "X" * 64, "Y" * 128, "Y" * 127 + "_"]
    keys = [scope_annotation(name) for name in names]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert key.startswith(SCOPE_ANNOTATION_PREFIX)
        assert ANNOTATION_KEY.match(key), key
    assert scope_annotation("OPENAI_API_KEY") == SCOPE_ANNOTATION_PREFIX + "OPENAI_API_KEY", "readable where it can be"
    assert scope_annotations("A", ["codex", "gemini"]) == {SCOPE_ANNOTATION_PREFIX + "A": '["codex", "gemini"]'}
    assert scope_annotations("A", None) == {SCOPE_ANNOTATION_PREFIX + "A": None}, "a merge patch removes it"


async def test_a_database_from_before_scopes_upgrades_and_its_secrets_reach_every_framework(tmp_path: Path) -> None:
    path = tmp_path / "vteam.db"
    key = b"k" * 32
    await asyncio.to_thread(command.upgrade, migrate.config(path), "0003")
    token = Fernet(fernet_key(key)).encrypt(b"old-value")
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO secrets (scope, name, value, updated) VALUES (?, ?, ?, ?)",
            ("project:p", "OLD", token, "2026-01-01T00:00:00+00:00"),
        )
    db = await open_database(path)
    try:
        vault = Vault(db, [key])
        [old] = await vault.list("project:p")
        assert (old.name, old.frameworks) == ("OLD", None)
        assert await vault.get("project:p", "OLD") == "old-value"
        await vault.put("project:p", "OLD", "new-value", frameworks=["codex"])
        [scoped] = await vault.list("project:p")
        assert scoped.frameworks == ("codex",)
        await vault.put("project:p", "OLD", "newer-value")
        [widened] = await vault.list("project:p")
        assert widened.frameworks is None, "a write replaces the scope with what it says"
    finally:
        await db.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)
        stored = raw.execute("SELECT frameworks FROM secrets").fetchall()
    assert [json.loads(row[0]) if row[0] is not None else None for row in stored] == [None]
