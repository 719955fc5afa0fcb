"""Project secrets reach only their project's agents, redacted everywhere; runners can run as their own user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import create_session, read_events, text_of, wait_phase
from tests.support.git import bare_repo, show
from tests.support.githttp import GitHttpServer
from tests.support.server import Server

pytestmark = pytest.mark.integration

VALUE = "s3cr3t-demo-value-123"
RUNNER_USER = "vteam-test-runner"


def test_a_project_secret_reaches_only_its_project_and_is_never_shown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = Server(home)
    server.start()
    try:
        with server.client(timeout=30) as api:
            for project in ("owner", "other"):
                assert api.post("/api/projects", json={"name": project}).status_code == 201
            put = api.put("/api/projects/owner/secrets/DEMO_API_KEY", json={"value": VALUE})
            assert put.status_code == 200, put.text
            prompt = "echo key=$DEMO_API_KEY"
            create_session(api, "owner", name="mine", prompt=prompt, framework="script")
            create_session(api, "other", name="theirs", prompt=prompt, framework="script")
            mine = wait_phase(api, "owner", "mine", timeout=30)
            theirs = wait_phase(api, "other", "theirs", timeout=30)
            assert mine["status"]["phase"] == "Completed", mine["status"]
            assert theirs["status"]["phase"] == "Completed", theirs["status"]
            mine_events = read_events(api, "owner", "mine")
            theirs_events = read_events(api, "other", "theirs")
            answers = [
                str(mine_events),
                str(theirs_events),
                api.get("/api/projects/owner/agentic-sessions/mine").text,
                api.get("/api/projects/other/agentic-sessions/theirs").text,
                api.get("/api/projects/owner/secrets").text,
            ]
    finally:
        server.close()
    assert "key=***" in text_of(mine_events), "the agent saw the secret, and its output was redacted"
    assert "key=\n" in text_of(theirs_events), "another project's agent sees nothing"
    for text in [*answers, server.log()]:
        assert VALUE not in text
    runner_files = [p for p in (home / "workspaces").rglob("*") if p.is_file()]
    assert any(p.name == "runner.log" for p in runner_files)
    assert [str(p) for p in runner_files if VALUE.encode() in p.read_bytes()] == []
    assert VALUE.encode() not in (home / "vteam.db").read_bytes(), "stored encrypted"


def test_minting_a_runner_token_is_audited(tmp_path: Path) -> None:
    server = Server(tmp_path / "home")
    server.start()
    try:
        with server.client(timeout=30) as api:
            api.post("/api/projects", json={"name": "a"})
            create_session(api, "a", name="audited", prompt="true")
            wait_phase(api, "a", "audited", timeout=30)
            listed = api.get("/api/audit", params={"action": "runner_token.mint"})
    finally:
        server.close()
    assert listed.status_code == 200, listed.text
    records = [(r["actor"], r["project"], r["target"], r["outcome"]) for r in listed.json()["items"]]
    assert records == [("controller", "a", "session/audited", "success")]


@pytest.fixture
def runner_user() -> Iterator[str]:
    """A throwaway unprivileged user, for as long as the test runs."""
    if os.geteuid() != 0:
        pytest.skip("runner isolation needs the tests to run as root (vteam up must be root to switch users)")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("runner isolation needs useradd and userdel to create a throwaway user")
    subprocess.run(["userdel", RUNNER_USER], capture_output=True, check=False)
    subprocess.run(["useradd", "--system", "--no-create-home", RUNNER_USER], check=True, capture_output=True)
    try:
        if not _can_run_python(RUNNER_USER):
            pytest.skip(f"an unprivileged user cannot run {sys.executable} here (a folder above it is private)")
        yield RUNNER_USER
    finally:
        subprocess.run(["userdel", RUNNER_USER], capture_output=True, check=False)


def _can_run_python(user: str) -> bool:
    entry = pwd.getpwnam(user)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import vteam.runner.main"],
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            check=False,
        )
    except OSError:
        return False
    return probe.returncode == 0


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user can cross (pytest's tmp_path is 0700 under root), for the home and served repos."""
    folder = Path(tempfile.mkdtemp(prefix="vteam-isolation-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


PROBE = """
id -un
cat {home}/secret.key && echo KEY-READ
head -c 16 {home}/vteam.db && echo DB-READ
ls {home} && echo HOME-LISTED
ls {home}/workspaces && echo WORKSPACES-LISTED
echo key=$DEMO_API_KEY
echo changed > CHANGED.md
"""


@pytest.mark.parametrize("prefork", [True, False], ids=["forked", "new-process"])
def test_runners_run_as_the_runner_user_and_cannot_read_the_platform(
    runner_user: str, open_dir: Path, prefork: bool
) -> None:
    """The runner-user layer on its own, without the sandbox around the agent."""
    repos = open_dir / "served"
    repos.mkdir()
    bare = bare_repo(repos, "app")
    home = open_dir / "home"
    token = "ghp_ISOLATIONtoken_0a1b2c3d"
    env = {
        "VTEAM_ISOLATION": "none",
        "VTEAM_RUNNER_USER": runner_user,
        "VTEAM_RUNNER_PREFORK": str(prefork).lower(),
        "VTEAM_GIT_TOKEN": token,
    }
    server = Server(home, env=env)
    with GitHttpServer(repos, username="x-access-token", password=token) as git_http:
        server.start()
        try:
            with server.client(timeout=30) as api:
                api.post("/api/projects", json={"name": "iso"})
                api.put("/api/projects/iso/secrets/DEMO_API_KEY", json={"value": VALUE})
                url = f"{git_http.url}/app.git"
                create_session(
                    api,
                    "iso",
                    name="probe",
                    prompt=PROBE.format(home=home),
                    repos=[{"input": {"url": url}, "output": {"url": url}}],
                )
                done = wait_phase(api, "iso", "probe", timeout=60)
                output = text_of(read_events(api, "iso", "probe"))
        finally:
            server.close()
    assert done["status"]["phase"] == "Completed", done["status"]
    assert output.splitlines()[0] == runner_user, output
    for leaked in ("KEY-READ", "DB-READ", "HOME-LISTED", "WORKSPACES-LISTED"):
        assert leaked not in output, output
    assert output.count("Permission denied") >= 4, output
    assert "key=***" in output, "project secrets still arrive over the private channel"
    assert show(bare, "vteam/probe", "CHANGED.md") == "changed\n", "the push still happened"
    workspace = next((home / "workspaces" / "iso").glob("probe-*"))
    assert workspace.stat().st_uid != 0, "the workspace belongs to the runner user"
    assert oct(home.stat().st_mode & 0o777) == "0o711"
    assert (home / "secret.key").stat().st_mode & 0o077 == 0
    assert ("forked runner pid" if prefork else "started runner pid") in server.log(), "the path under test ran"
    assert token not in server.log()
    assert VALUE not in server.log()


def test_an_unknown_runner_user_stops_vteam_up_with_one_line(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", env={"VTEAM_RUNNER_USER": "no-such-vteam-user"})
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert "VTEAM_RUNNER_USER=no-such-vteam-user" in str(failed.value)


def test_rotating_the_vault_key_keeps_every_secret_and_forgets_the_old_key(tmp_path: Path) -> None:
    server = Server(tmp_path / "home")
    server.start()
    try:
        with server.client() as api:
            api.post("/api/projects", json={"name": "rot"})
            value = "rotate-me-" + uuid.uuid4().hex
            assert api.put("/api/projects/rot/secrets/DEMO_API_KEY", json={"value": value}).status_code == 200
            before = (server.home / "vault.key").read_text()
            rotated = api.post("/api/admin/vault/rotate")
            assert rotated.status_code == 200, rotated.text
            assert rotated.json()["reencrypted"] >= 1
            assert (server.home / "vault.key").read_text() != before
            assert not (server.home / "vault.key.previous").exists(), "the old key is gone once nothing needs it"
            assert (server.home / "vault.key").stat().st_mode & 0o777 == 0o600
            create_session(api, "rot", name="after", prompt="echo key=$DEMO_API_KEY")
            wait_phase(api, "rot", "after")
            assert "key=***" in text_of(read_events(api, "rot", "after"))
            assert [r["action"] for r in api.get("/api/audit", params={"action": "vault."}).json()["items"]] == [
                "vault.rotate"
            ]
        server.stop()
        server.start()
        with server.client() as api:
            create_session(api, "rot", name="restarted", prompt="echo key=$DEMO_API_KEY")
            wait_phase(api, "rot", "restarted")
            assert "key=***" in text_of(read_events(api, "rot", "restarted")), "the new key reads after a restart"
    finally:
        server.close()
