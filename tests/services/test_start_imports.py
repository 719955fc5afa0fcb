"""What the idle platform keeps in memory: the forges' client libraries and Alembic load only when needed
(about 27 MiB between them), so opening the platform and building the app must not import them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

OPEN = """
import asyncio, json, sys
from pathlib import Path
from vteam.api import Platform
from vteam.server import create_app
from vteam.settings import Settings

LIBRARIES = {"githubkit", "gitlab", "requests", "alembic"}

def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} & LIBRARIES)

async def main():
    settings = Settings(home=Path(sys.argv[1]), github_app_id="1", github_app_private_key="unused")
    platform = await Platform.open(settings)
    try:
        create_app(settings, server_url="http://127.0.0.1:9", platform=platform)
        opened = loaded()
        platform.forges.github.client(None)
        platform.forges.gitlab.client(None)
        return {"opened": opened, "clients": loaded()}
    finally:
        await platform.close()

print(json.dumps(asyncio.run(main())))
"""


def _open(home: Path) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", OPEN, str(home)], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_the_platform_opens_without_forge_libraries_or_alembic(tmp_path: Path) -> None:
    first = _open(tmp_path)
    assert first["opened"] == ["alembic"], "a new home's database is created by Alembic"
    again = _open(tmp_path)
    assert again["opened"] == [], "a current database, the forges and a configured GitHub App import none of them"
    assert again["clients"] == ["githubkit", "gitlab", "requests"], "a forge's first client imports its library"
