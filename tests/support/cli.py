"""Run the real `vteam` command against a test server, as a user would from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.server import Server


def vteam(
    server: Server | str,
    *args: str,
    timeout: float = 60,
    stdin: str | None = None,
    token: str | None = None,
    config_dir: Path | None = None,
    remembered: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`vteam ARGS` signed in as the server's admin (or with `token`, or with what `config_dir` saved).

    With `remembered`, no VTEAM_SERVER is set: the CLI talks to the server `vteam login` saved in `config_dir`.
    """
    url = server if isinstance(server, str) else server.url
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    if not remembered:
        env["VTEAM_SERVER"] = url
    env["VTEAM_CONFIG_DIR"] = str(config_dir or Path(tempfile.gettempdir()) / "vteam-cli-tests-unused")
    if token is not None or (config_dir is None and not isinstance(server, str)):
        env["VTEAM_TOKEN"] = token or server.token  # type: ignore[union-attr]
    return subprocess.run(
        [sys.executable, "-m", "vteam", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin if stdin is not None else "",
    )
