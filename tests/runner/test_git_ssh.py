"""Clone and push over ssh:// against a real sshd, with the key from VTEAM_GIT_SSH_KEY_FILE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import sshd
from tests.support.api import create_session, wait_phase
from tests.support.git import bare_repo, show
from tests.support.server import Server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not sshd.available(),
        reason="OpenSSH server and client are not installed (make test installs openssh-server)",
    ),
]


def test_ssh_clone_and_push_with_the_configured_key(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "over-ssh")
    with sshd.SshServer(tmp_path / "sshd") as ssh:
        server = Server(tmp_path / "home", env={"VTEAM_GIT_SSH_KEY_FILE": str(ssh.client_key)}).start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "s"})
                url = ssh.url(bare)
                create_session(
                    api,
                    "s",
                    name="viassh",
                    prompt="echo via-ssh > SSH.md",
                    repos=[{"input": {"url": url, "branch": "main"}, "output": {"url": url}}],
                )
                done = wait_phase(api, "s", "viassh", timeout=30)
        finally:
            server.close()
    assert done["status"]["phase"] == "Completed", done["status"]
    assert show(bare, "vteam/viassh", "SSH.md") == "via-ssh\n"
    assert not list((tmp_path / "home").rglob(".ssh")), "ssh wrote nothing into the runner's home"


def test_ssh_without_a_key_fails_without_prompting(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "locked")
    with sshd.SshServer(tmp_path / "sshd") as ssh:
        server = Server(tmp_path / "home").start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "s"})
                create_session(api, "s", name="nokey", prompt="true", repos=[{"input": {"url": ssh.url(bare)}}])
                done = wait_phase(api, "s", "nokey", timeout=30)
        finally:
            server.close()
    assert done["status"]["phase"] == "Failed"
    assert "cloning repos[0] from" in done["status"]["message"]
    assert "repository not found or access denied" in done["status"]["message"]
