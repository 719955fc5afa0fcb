"""`vteam` starts fast: a command that only talks HTTP never imports the server side.

The API server, the database, the controller and the Kubernetes client cost most of a second to import;
only `vteam up`, `runner` and `operator` need them. No timing is asserted (shared machines vary): what is
imported is, as `python -X importtime` lists it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SERVER_SIDE = (
    "fastapi",
    "sqlalchemy",
    "uvicorn",
    "kubernetes",
    "kopf",
    "vteam.api",
    "vteam.controller",
    "vteam.web",
    "vteam.store",
    "vteam.settings",
    "vteam.resources",
)
"""What a command that only talks HTTP never needs: the server's libraries and rooms, and the resource models."""


def imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime ARGS` with no vTeam settings; its result and every module it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env["VTEAM_CONFIG_DIR"] = str(tmp_path / "config")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result, modules - {"package"}


def server_side(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in SERVER_SIDE))


@pytest.mark.parametrize(
    "args",
    [
        ("-c", "import vteam.cli"),
        ("-m", "vteam", "--help"),
        ("-m", "vteam", "project", "grant", "--help"),
    ],
)
def test_the_cli_and_its_help_import_no_server_side(tmp_path: Path, args: tuple[str, ...]) -> None:
    result, modules = imported(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "vteam.cli" in modules, "importtime listed what was imported"
    assert server_side(modules) == []


def test_a_command_that_talks_http_imports_only_the_client(tmp_path: Path) -> None:
    result, modules = imported(tmp_path, "-m", "vteam", "project", "list", "--server", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "error: cannot reach vTeam at http://127.0.0.1:9" in result.stderr
    assert {"vteam.client", "httpx"} <= modules
    assert server_side(modules) == []


def test_importing_the_cli_imports_no_pydantic(tmp_path: Path) -> None:
    """pydantic costs ~50 ms; typer takes it up only to parse a command's parameters, never at import."""
    result, modules = imported(tmp_path, "-c", "import vteam.cli")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pydantic" not in modules
    assert "httpx" not in modules, "the HTTP client is imported by the first command that calls the API"
