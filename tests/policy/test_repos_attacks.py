"""One project must not reach another's repositories, nor the platform's network: the repository policy at the
API (422 naming the field) and again in the runner, right before git runs.

The server here allows no loopback address but 127.0.0.2 (the tests' own allowance, 127.0.0.1, is off), so
every refusal is the policy's; the attacker holds an `edit` access key of project A.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.git import IDENTITY, bare_repo, branches, git, rev
from tests.support.server import Server
from vteam.controller.reconcile import QUEUED

pytestmark = pytest.mark.integration

ALLOWED_LOOPBACK = "127.0.0.2"
"""The one non-public address the operator allows here (VTEAM_REPO_ALLOW_HOSTS)."""
REMOTE_BODY = "SECRET-INTERNAL-BODY: admin console at 10.0.0.5"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("repos") / "home"
    env = {"VTEAM_REPO_ALLOW_HOSTS": ALLOWED_LOOPBACK, "VTEAM_MAX_RUNNING_SESSIONS": "1"}
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


@dataclass
class World:
    admin: httpx.Client
    key: httpx.Client
    """An `edit` access key of project A."""
    a: str
    b: str
    a_root: Path
    a_repo: Path
    b_repo: Path
    home: Path


@pytest.fixture(scope="module")
def world(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("repo-roots")
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    a_root, b_root = root / "a", root / "b"
    a_root.mkdir()
    b_root.mkdir()
    with server.client() as admin:
        for project, allowed in ((a, a_root), (b, b_root)):
            assert admin.post("/api/projects", json={"name": project}).status_code == 201
            put = admin.put(f"/api/admin/projects/{project}/repository-policy", json={"localRoots": [str(allowed)]})
            assert put.status_code == 200, put.text
            assert put.json()["localRoots"] == [str(allowed)]
        made = admin.post(f"/api/projects/{a}/keys", json={"name": "attacker", "role": "edit"})
        assert made.status_code == 201, made.text
        with server.client(token=made.json()["token"]) as key:
            yield World(
                admin=admin,
                key=key,
                a=a,
                b=b,
                a_root=a_root,
                a_repo=bare_repo(a_root, "app", files={"README.md": "a\n"}),
                b_repo=bare_repo(b_root, "secret-app", files={"README.md": "b's code\n"}),
                home=server.home.resolve(),
            )


def _refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    [error] = problem["errors"]
    assert error["loc"] == field.replace("[", ".").replace("]", "").split("."), problem
    return str(problem["detail"])


def _count(world: World) -> int:
    return len(world.admin.get(sessions_path(world.a)).json()["items"])


def test_an_edit_key_cannot_read_or_push_another_projects_repository(world: World) -> None:
    before, head = _count(world), rev(world.b_repo, "main")
    link = world.a_root / "looks-like-a.git"
    link.symlink_to(world.b_repo)
    workspace = world.home / "workspaces" / world.b / "s-1" / "repos" / "secret-app"
    attempts = [
        ({"input": {"url": str(world.b_repo)}, "output": {"url": str(world.b_repo), "targetBranch": "main"}}, "input"),
        ({"input": {"url": f"file://{world.b_repo}"}}, "input"),
        ({"input": {"url": str(world.a_repo)}, "output": {"url": str(world.b_repo)}}, "output"),
        ({"input": {"url": str(link)}}, "input"),
        ({"input": {"url": f"file://{workspace}"}}, "input"),
        ({"input": {"url": str(world.home / "vteam.db")}}, "input"),
    ]
    for repo, side in attempts:
        body = {"prompt": "true", "framework": "script", "repos": [repo]}
        detail = _refused(world.key.post(sessions_path(world.a), json=body), f"repos[0].{side}.url")
        assert "platform admin allows" in detail or "vTeam's own data folder" in detail, detail
    assert _count(world) == before, "a refused session was stored"
    assert branches(world.b_repo) == ["main"]
    assert rev(world.b_repo, "main") == head


def test_the_same_key_works_in_its_own_projects_allowed_folder(world: World) -> None:
    """The control: the key is refused for where it points, not for what it is."""
    repo = {"input": {"url": str(world.a_repo)}, "output": {"url": str(world.a_repo), "targetBranch": "vteam/own"}}
    created = create_session(world.key, world.a, prompt="echo mine >> README.md", repos=[repo])
    done = wait_phase(world.admin, world.a, created["metadata"]["name"], timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "vteam/own" in branches(world.a_repo)


def test_only_a_platform_admin_sets_a_projects_local_roots(server: Server, world: World) -> None:
    path = f"/api/admin/projects/{world.a}/repository-policy"
    assert world.key.put(path, json={"localRoots": ["/"]}).status_code == 403
    made = world.admin.post(f"/api/projects/{world.a}/keys", json={"name": "a-admin", "role": "admin"})
    with server.client(token=made.json()["token"]) as project_admin:
        assert project_admin.put(path, json={"localRoots": ["/"]}).status_code == 403
        annotations = {"vteam.ambient-code/repo-local-roots": '["/"]'}
        project_admin.patch(f"/api/projects/{world.a}", json={"metadata": {"annotations": annotations}})
    assert world.admin.get(path).json()["localRoots"] == [str(world.a_root)]
    inside = world.admin.put(path, json={"localRoots": [str(world.home / "workspaces")]})
    assert inside.status_code == 422
    assert "vTeam's own data folder" in inside.json()["detail"]
    everything = world.admin.put(path, json={"localRoots": ["/"]})
    assert everything.status_code == 422, everything.text
    assert "holds vTeam's own data folder" in everything.json()["detail"]
    assert world.admin.get(path).json()["localRoots"] == [str(world.a_root)]


def test_a_session_cannot_mark_itself_as_a_platform_admins(world: World) -> None:
    body = {
        "metadata": {"annotations": {"vteam.ambient-code/repo-local-any": "true"}},
        "spec": {"prompt": "true", "framework": "script", "repos": [{"input": {"url": str(world.b_repo)}}]},
    }
    refused = world.key.post(sessions_path(world.a), json=body)
    assert refused.status_code == 422, refused.text
    assert "vteam.ambient-code/repo-local-any" in refused.text, "the reserved annotation is named as the reason"
    # Without the claim, B's repository is still refused for A's editor.
    del body["metadata"]
    _refused(world.key.post(sessions_path(world.a), json=body), "repos[0].input.url")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam", "link-local"),
        ("http://127.0.0.1:8080/api/projects.git", "loopback"),
        ("http://[::ffff:127.0.0.1]/x.git", "loopback"),
        ("https://localhost/x.git", "loopback"),
        ("git://10.96.0.1/x.git", "service network"),
        ("ssh://git@192.168.1.1/x.git", "private"),
        ("git@100.64.0.1:x.git", "CGNAT"),
        ("http://2130706433/x.git", "dotted decimal"),
        ("http://0177.0.0.1/x.git", "dotted decimal"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("https://github.com/--upload-pack=x/r.git", "starting with '-'"),
    ],
)
def test_network_urls_aimed_inside_are_refused(world: World, url: str, reason: str) -> None:
    body = {"prompt": "true", "framework": "script", "repos": [{"input": {"url": url}}]}
    assert reason in _refused(world.key.post(sessions_path(world.a), json=body), "repos[0].input.url")


def test_a_token_in_a_url_is_refused_and_not_echoed(world: World) -> None:
    body = {"prompt": "true", "repos": [{"input": {"url": "https://ghp_leakedtoken123@github.com/acme/app.git"}}]}
    response = world.key.post(sessions_path(world.a), json=body)
    assert response.status_code == 422
    assert "ghp_leakedtoken123" not in response.text
    assert "user name, password or token" in response.text


class _Counting:
    """A loopback HTTP server that counts what reaches it and answers every request with a body of its own."""

    def __init__(self, host: str, status: int) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits += 1
                body = (REMOTE_BODY + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Counting:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _with_submodule(root: Path, name: str, url: str) -> Path:
    """A bare repo whose main branch declares one submodule, vendor/lib, at `url`."""
    return _with_gitmodules(root, name, f'[submodule "lib"]\n\tpath = vendor/lib\n\turl = {url}\n')


def _with_gitmodules(root: Path, name: str, gitmodules: str) -> Path:
    """A bare repo whose main branch has this `.gitmodules` and a gitlink at vendor/lib."""
    bare, work = root / f"{name}.git", root / f"{name}-seed"
    git("init", "--quiet", "--bare", "-b", "main", str(bare))
    git("init", "--quiet", "-b", "main", str(work))
    (work / "README.md").write_text("app\n")
    (work / ".gitmodules").write_text(gitmodules)
    git("add", "-A", cwd=work)
    git(*IDENTITY, "commit", "--quiet", "-m", "base", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).strip()
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib", cwd=work)
    git(*IDENTITY, "commit", "--quiet", "-m", "submodule", cwd=work)
    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
    return bare


def _failed(world: World, name: str) -> str:
    done = wait_phase(world.admin, world.a, name, timeout=60)
    assert done["status"]["phase"] == "Failed", done["status"]
    return str(done["status"]["message"])


def test_a_submodule_aimed_at_a_refused_address_fails_before_git_connects(world: World) -> None:
    """The API never sees `.gitmodules`: the runner applies the policy to each submodule's URL itself."""
    with _Counting("127.0.0.1", 200) as inside:
        repo = _with_submodule(world.a_root, f"sub-{uuid.uuid4().hex[:6]}", f"{inside.url}/lib.git")
        created = create_session(world.key, world.a, prompt="true", repos=[{"input": {"url": str(repo)}}])
        message = _failed(world, created["metadata"]["name"])
        assert inside.hits == 0, "git reached the refused address"
    assert "refused before git ran" in message
    assert "submodule 'vendor/lib'" in message
    assert "loopback" in message


def test_a_gitmodules_value_cannot_smuggle_a_submodule_past_the_policy(world: World) -> None:
    """git prints an escaped newline in a value as a real one: Z's URL forges lines that re-point N at
    vendor/lib and give M an allowed URL. git fetches vendor/lib by M's real URL, which must be checked."""
    allowed = str(world.a_repo)
    with _Counting("127.0.0.1", 200) as inside:
        forged = f"{allowed}\\nsubmodule.N.path vendor/lib\\nsubmodule.M.url {allowed}"
        gitmodules = (
            f'[submodule "N"]\n\tpath = dummy\n\turl = {allowed}\n'
            f'[submodule "M"]\n\tpath = vendor/lib\n\turl = {inside.url}/internal.git\n'
            f'[submodule "Z"]\n\tpath = zz\n\turl = "{forged}"\n'
        )
        repo = _with_gitmodules(world.a_root, f"smuggle-{uuid.uuid4().hex[:6]}", gitmodules)
        created = create_session(world.key, world.a, prompt="true", repos=[{"input": {"url": str(repo)}}])
        done = wait_phase(world.admin, world.a, created["metadata"]["name"], timeout=60)
        assert inside.hits == 0, "git fetched a submodule URL the policy never checked"
    assert done["status"]["phase"] == "Failed", done["status"]
    assert "refused before git ran" in done["status"]["message"]


def test_a_gitmodules_that_gives_one_path_two_submodules_is_refused(world: World) -> None:
    """git and vTeam must read the same owner for a path; where they might not, nothing is fetched."""
    with _Counting("127.0.0.1", 200) as inside:
        gitmodules = (
            f'[submodule "N"]\n\tpath = vendor/lib\n\turl = {world.a_repo}\n'
            f'[submodule "N"]\n\tpath = vendor/lib\n\turl = {inside.url}/internal.git\n'
        )
        repo = _with_gitmodules(world.a_root, f"twice-{uuid.uuid4().hex[:6]}", gitmodules)
        created = create_session(world.key, world.a, prompt="true", repos=[{"input": {"url": str(repo)}}])
        message = _failed(world, created["metadata"]["name"])
        assert inside.hits == 0
    assert "refused before git ran" in message
    assert "more than once" in message


def test_a_submodule_aimed_at_another_projects_repository_fails(world: World) -> None:
    head = rev(world.b_repo, "main")
    repo = _with_submodule(world.a_root, f"sub-{uuid.uuid4().hex[:6]}", str(world.b_repo))
    created = create_session(world.key, world.a, prompt="true", repos=[{"input": {"url": str(repo)}}])
    message = _failed(world, created["metadata"]["name"])
    assert "refused before git ran" in message
    assert "platform admin allows" in message
    assert rev(world.b_repo, "main") == head


def _queued(world: World, name: str) -> dict[str, Any]:
    """The session's status once the controller has queued it for want of a free runner."""
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = world.admin.get(sessions_path(world.a, name)).json()["status"]
        if status.get("message") == QUEUED:
            return status
        time.sleep(0.05)
    raise AssertionError(f"session {name} was not queued: {status}")


def test_a_path_swapped_after_the_api_checked_it_is_refused_by_the_runner(world: World) -> None:
    """A symlink that pointed into A's folder when the session was created, and into B's repo when it runs.

    The server runs one session at a time (VTEAM_MAX_RUNNING_SESSIONS=1 in this module's server), so while the
    blocker runs the new session is queued, and the swap happens before its runner can start."""
    blocker = create_session(world.admin, world.a, prompt="sleep 600")
    wait_phase(world.admin, world.a, blocker["metadata"]["name"], "Running", timeout=30)
    link = world.a_root / f"swap-{uuid.uuid4().hex[:6]}.git"
    link.symlink_to(world.a_repo)
    head = rev(world.b_repo, "main")
    try:
        repo = {"input": {"url": str(link)}, "output": {"url": str(link), "targetBranch": "vteam/swap"}}
        created = create_session(world.key, world.a, prompt="echo stolen >> README.md", repos=[repo])
        name = created["metadata"]["name"]
        assert _queued(world, name)["phase"] == "Pending"
        link.unlink()
        link.symlink_to(world.b_repo)
    finally:
        stopped = world.admin.post(sessions_path(world.a, blocker["metadata"]["name"]) + "/stop")
        assert stopped.status_code == 202, stopped.text
    message = _failed(world, name)
    assert "refused before git ran" in message
    assert "platform admin allows" in message
    assert branches(world.b_repo) == ["main"]
    assert rev(world.b_repo, "main") == head


def test_a_clone_failure_says_what_failed_without_the_remotes_answer(world: World) -> None:
    with _Counting(ALLOWED_LOOPBACK, 403) as remote:
        url = f"{remote.url}/private.git"
        created = create_session(world.key, world.a, prompt="true", repos=[{"input": {"url": url}}])
        name = created["metadata"]["name"]
        message = _failed(world, name)
        assert remote.hits >= 1, "the operator's allowance should have let git through"
    assert message == f"cloning repos[0] from {url} failed: repository not found or access denied"
    events = json.dumps(read_events(world.admin, world.a, name))
    assert "SECRET-INTERNAL-BODY" not in events
    session = world.admin.get(sessions_path(world.a, name)).text
    assert "SECRET-INTERNAL-BODY" not in session
