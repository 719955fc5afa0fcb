"""`GET /api/runner-types` says which frameworks are ready, from what is really installed beside the source tree."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

FRAMEWORKS = ("script", "claude-code", "codex", "gemini", "mini-swe-agent")


def test_runner_types_say_which_frameworks_are_ready(api: httpx.Client) -> None:
    """All five are installed where the tests run: `make test` installs every framework before the tests."""
    response = api.get("/api/runner-types")
    assert response.status_code == 200, response.text
    assert {t["name"]: (t["ready"], t["status"]) for t in response.json()} == {
        name: (True, "ready") for name in FRAMEWORKS
    }


def test_the_openapi_document_describes_readiness(api: httpx.Client) -> None:
    schema = api.get("/api/openapi.json").json()["components"]["schemas"]["RunnerType"]
    assert {"ready", "status"} <= set(schema["required"])
