"""Run the real `vteam` command against a test server, as a user would from a shell."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.server import Server


def vteam(
    server: Server | str, *args: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    url = server if isinstance(server, str) else server.url
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env["VTEAM_SERVER"] = url
    return subprocess.run(
        [sys.executable, "-m", "vteam", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin if stdin is not None else "",
    )
