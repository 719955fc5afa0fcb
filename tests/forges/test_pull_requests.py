"""Change sets on GitHub: a real `vteam up` against the fake GitHub, whose every request and response is
checked against GitHub's published OpenAPI description, and whose repos are real bare repos over smart HTTP.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.api import create_session, read_events, sessions_path, wait_phase
from tests.support.cli import vteam
from tests.support.fake_github import FakeGitHub, openapi_path
from tests.support.git import bare_repo, git, show
from tests.support.server import Server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        openapi_path() is None,
        reason="GitHub's OpenAPI description (npm @octokit/openapi) is not installed; `make test` installs it",
    ),
]


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path_factory.mktemp("github")) as fake:
        yield fake
        fake.check()


@pytest.fixture(scope="module")
def app(github: FakeGitHub) -> Any:
    return github.create_app(slug="vteam-test")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, github: FakeGitHub, app: Any) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("vteam") / "home"
    key = home.parent / "app.pem"
    key.write_text(app.private_key_pem)
    env = {
        "VTEAM_MAX_RUNNING_SESSIONS": "8",
        "VTEAM_GITHUB_URL": github.url,
        "VTEAM_GITHUB_APP_ID": str(app.app_id),
        "VTEAM_GITHUB_APP_SLUG": app.slug,
        "VTEAM_GITHUB_APP_PRIVATE_KEY_FILE": str(key),
        "VTEAM_GITHUB_APP_CLIENT_ID": app.client_id,
        "VTEAM_GITHUB_APP_CLIENT_SECRET": app.client_secret,
        "VTEAM_FORGE_MAX_WAIT_SECONDS": "10",
    }
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _project(api: httpx.Client) -> str:
    name = _unique("p")
    assert api.post("/api/projects", json={"name": name}).status_code == 201
    return name


def _use_token(api: httpx.Client, token: str | None) -> None:
    """The embedded mode's one user links this personal token (or none)."""
    if token is None:
        api.delete("/api/user/forges/github/token")
        return
    response = api.put("/api/user/forges/github/token", json={"token": token})
    assert response.status_code == 200, response.text
    assert token not in response.text


def _repo(github: FakeGitHub, owner: str, name: str, **kwargs: Any) -> dict[str, Any]:
    github.create_repo(owner, name, files={"README.md": f"# {name}\n"}, **kwargs)
    url = f"{github.url}/{owner}/{name}.git"
    return {"input": {"url": url}, "output": {"url": url, "createPullRequest": True}}


def _why(session: dict[str, Any]) -> tuple[Any, ...]:
    status = session["status"]
    return status.get("message"), [(r.get("error"), r.get("note")) for r in status.get("repos", [])]


def _run(api: httpx.Client, project: str, prompt: str, repos: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    name = _unique("s")
    create_session(api, project, name=name, prompt=prompt, repos=repos, **extra)
    return wait_phase(api, project, name, timeout=90)


def test_two_changed_repos_get_two_linked_pull_requests(api: httpx.Client, github: FakeGitHub, server: Server) -> None:
    owner = _unique("org")
    alice = github.add_user(owner + "-alice")
    repos = [_repo(github, owner, "umbrella"), _repo(github, owner, "support")]
    for repo in ("umbrella", "support"):
        github.add_collaborator(owner, repo, owner + "-alice", "write")
    _use_token(api, alice)
    project = _project(api)
    done = _run(
        api,
        project,
        "echo umbrella >> README.md && echo support >> ../support/README.md",
        repos,
        displayName="Bump both repos",
    )
    assert done["status"]["phase"] == "Completed", _why(done)
    statuses = done["status"]["repos"]
    pulls = {repo: github.pulls(owner, repo) for repo in ("umbrella", "support")}
    assert [len(p) for p in pulls.values()] == [1, 1]
    umbrella, support = pulls["umbrella"][0], pulls["support"][0]
    assert umbrella["title"] == "Bump both repos"
    assert umbrella["head"]["ref"] == f"vteam/{done['metadata']['name']}"
    assert umbrella["base"]["ref"] == "main"
    assert support["html_url"] in umbrella["body"]
    assert umbrella["html_url"] in support["body"]
    assert f"/api/projects/{project}/agentic-sessions/{done['metadata']['name']}" in umbrella["body"]
    assert [s["pullRequestUrl"] for s in statuses] == [umbrella["html_url"], support["html_url"]]
    assert statuses[0]["pullRequest"]["mergeMethod"] == "merge"

    listed = api.get(sessions_path(project, done["metadata"]["name"]) + "/pull-requests").json()
    assert [(p["repo"], p["state"], p["number"]) for p in listed["items"]] == [
        (f"{owner}/umbrella", "open", umbrella["number"]),
        (f"{owner}/support", "open", support["number"]),
    ]
    events = read_events(api, project, done["metadata"]["name"])
    announced = [e["data"]["value"]["url"] for e in events if e["type"] == "vteam.pull_request"]
    assert announced == [umbrella["html_url"], support["html_url"]]
    assert github.branch_sha(owner, "umbrella", umbrella["head"]["ref"]) == statuses[0]["commitSha"]
    for text in (str(events), str(done), str(listed), server.log()):
        assert alice not in text


def test_without_push_access_the_branch_goes_to_a_fork(api: httpx.Client, github: FakeGitHub) -> None:
    owner, user = _unique("upstream"), _unique("bob")
    _use_token(api, github.add_user(user))
    repos = [_repo(github, owner, "app")]
    github.fork_delay = 2
    done = _run(api, _project(api), "echo forked >> README.md", repos)
    assert done["status"]["phase"] == "Completed", _why(done)
    status = done["status"]["repos"][0]
    branch = status["branch"]
    assert github.branch_sha(owner, "app", branch) is None, "nothing was pushed upstream"
    assert github.branch_sha(user, "app", branch) == status["commitSha"]
    assert status["pushedUrl"] == f"{github.url}/{user}/app.git"
    [pull] = github.pulls(owner, "app")
    assert pull["head"]["repo"]["full_name"] == f"{user}/app"
    assert pull["head"]["label"] == f"{user}:{branch}"
    assert status["pullRequest"]["headRepo"] == f"{user}/app"


def test_a_repo_that_forbids_merge_commits_falls_back_and_says_so(api: httpx.Client, github: FakeGitHub) -> None:
    owner = _unique("strict")
    token = github.add_user(owner)
    _use_token(api, token)
    repos = [_repo(github, owner, "lib", allow_merge_commit=False)]
    done = _run(api, _project(api), "echo x >> README.md", repos)
    assert done["status"]["phase"] == "Completed", _why(done)
    pull = done["status"]["repos"][0]["pullRequest"]
    assert pull["mergeMethod"] == "squash"
    assert "does not allow merge merges" in pull["mergeMethodNote"]
    [opened] = github.pulls(owner, "lib")
    assert "Merge method:" in opened["body"]
    assert "squash" in opened["body"]


def test_running_again_updates_the_same_pull_requests(api: httpx.Client, github: FakeGitHub) -> None:
    owner = _unique("again")
    _use_token(api, github.add_user(owner))
    project = _project(api)
    first = _run(api, project, "echo one >> README.md", [_repo(github, owner, "svc")])
    assert first["status"]["phase"] == "Completed", _why(first)
    number = first["status"]["repos"][0]["pullRequest"]["number"]
    response = api.post(
        sessions_path(project, first["metadata"]["name"]) + "/continue",
        json={"prompt": "echo two >> README.md", "name": _unique("s")},
    )
    assert response.status_code == 201, response.text
    second = wait_phase(api, project, response.json()["metadata"]["name"], timeout=90)
    assert second["status"]["phase"] == "Completed", _why(second)
    pulls = github.pulls(owner, "svc")
    assert len(pulls) == 1, "the second run updated the pull request instead of opening another"
    assert second["status"]["repos"][0]["pullRequest"]["number"] == number
    assert pulls[0]["head"]["sha"] == second["status"]["repos"][0]["commitSha"]
    assert pulls[0]["base"]["ref"] == "main"


def test_an_app_installation_links_and_its_expired_token_is_reminted(
    api: httpx.Client, github: FakeGitHub, app: Any, server: Server
) -> None:
    owner, user = _unique("apporg"), _unique("carol")
    github.add_user(user)
    repos = [_repo(github, owner, "tool")]
    github.add_collaborator(owner, "tool", user, "write")
    installation = github.install_app(app, owner, repositories=[f"{owner}/tool"])
    _use_token(api, None)

    started = api.get("/api/user/forges/github/install", follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    assert location.startswith(f"{github.url}/apps/{app.slug}/installations/new?state=")
    state = parse_qs(urlsplit(location).query)["state"][0]
    forged = api.get(
        "/api/user/forges/github/callback",
        params={"installation_id": installation, "state": state + "x", "code": github.oauth_code(user)},
    )
    assert forged.status_code == 403, forged.text
    stranger = api.get(
        "/api/user/forges/github/callback",
        params={"installation_id": installation, "state": state, "code": github.oauth_code(_unique("eve"))},
    )
    assert stranger.status_code == 404, "an installation the user cannot access is not linked"
    started = api.get("/api/user/forges/github/install", follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    # Back from GitHub, a browser leaves its SameSite=Strict cookie behind: it gets a page that loads the same
    # URL again from vTeam's origin, and the state is not spent on that first, cookie-less visit.
    returning = httpx.get(
        f"{api.base_url}/api/user/forges/github/callback",
        params={"installation_id": installation, "state": state, "code": github.oauth_code(user)},
        headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    )
    assert returning.status_code == 200, returning.text
    assert 'name="vteam-renavigate"' in returning.text
    assert "/static/app.js" in returning.text
    linked = api.get(
        "/api/user/forges/github/callback",
        params={"installation_id": installation, "state": state, "code": github.oauth_code(user)},
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["installation"] == {"id": installation, "login": user}
    replay = api.get(
        "/api/user/forges/github/callback",
        params={"installation_id": installation, "state": state, "code": github.oauth_code(user)},
    )
    assert replay.status_code == 403, "a state works once"

    project = _project(api)
    first = _run(api, project, "echo first >> README.md", repos)
    assert first["status"]["phase"] == "Completed", _why(first)
    minted = _minted(github)
    assert minted >= 1
    github.expire_installation_tokens()
    second = _run(api, project, "echo second >> README.md", repos)
    assert second["status"]["phase"] == "Completed", _why(second)
    assert _minted(github) > minted, "the rejected token was replaced by a new one"
    assert len(github.pulls(owner, "tool")) == 2
    accounts = api.get("/api/user/forges").json()["items"][0]
    assert accounts["installation"] == {"id": installation, "login": user}
    assert "ghs_" not in server.log()
    for session in (first, second):
        events = read_events(api, project, session["metadata"]["name"])
        assert "ghs_" not in json.dumps(events), "installation tokens never reach the event stream"
    runner_logs = [p.read_text() for p in (server.home / "workspaces" / project).rglob("runner.log")]
    assert runner_logs
    assert all("ghs_" not in text for text in runner_logs)


def _minted(github: FakeGitHub) -> int:
    return sum(1 for m, p, s in github.requests if m == "POST" and p.endswith("/access_tokens") and s == 201)


def test_protected_and_missing_branches_fail_clearly(api: httpx.Client, github: FakeGitHub) -> None:
    owner = _unique("guarded")
    _use_token(api, github.add_user(owner))
    project = _project(api)
    repo = _repo(github, owner, "core")
    github.protect_branch(owner, "core", "release")
    repo["output"]["targetBranch"] = "release"
    protected = _run(api, project, "echo x >> README.md", [repo])
    assert protected["status"]["phase"] == "Failed"
    error = protected["status"]["repos"][0]["error"]
    assert "release" in error
    assert "protected" in error.lower()
    assert github.branch_sha(owner, "core", "release") is None

    repo = _repo(github, owner, "edge")
    repo["output"]["pullRequestBase"] = "no-such-base"
    missing = _run(api, project, "echo x >> README.md", [repo])
    assert missing["status"]["phase"] == "Failed"
    assert "base branch 'no-such-base' does not exist" in missing["status"]["repos"][0]["error"]


def test_a_plain_git_remote_is_pushed_and_says_why_no_pull_request(
    api: httpx.Client, tmp_path: Path, github: FakeGitHub
) -> None:
    bare = bare_repo(tmp_path)
    repo = {"input": {"url": str(bare)}, "output": {"url": str(bare), "createPullRequest": True}}
    done = _run(api, _project(api), "echo x >> README.md", [repo])
    assert done["status"]["phase"] == "Completed", _why(done)
    status = done["status"]["repos"][0]
    assert status["pushed"] is True
    assert "could open no pull request" in status["note"]
    listed = api.get(sessions_path(done["metadata"]["namespace"], done["metadata"]["name"]) + "/pull-requests")
    assert listed.json()["items"] == []
    assert "could open no pull request" in listed.json()["notOpened"][0]["note"]


def test_repo_browser_pages_caches_resolves_submodules_and_waits_out_rate_limits(
    api: httpx.Client, github: FakeGitHub
) -> None:
    owner = _unique("browse")
    _use_token(api, github.add_user(owner))
    project = _project(api)
    github.create_repo(owner, "child", files={"lib.txt": "child\n"})
    bare = github.create_repo(
        owner,
        "parent",
        files={"README.md": "# parent\n", "docs/guide.md": "guide\n"},
        submodules={"vendor/child": f"{github.url}/{owner}/child.git"},
    )
    url = f"{github.url}/{owner}/parent.git"

    tree = api.get(f"/api/projects/{project}/repo/tree", params={"repo": url})
    assert tree.status_code == 200, tree.text
    entries = {e["path"]: e for e in tree.json()["items"]}
    assert entries["docs"]["type"] == "dir"
    assert entries["README.md"]["type"] == "file"
    vendor = api.get(f"/api/projects/{project}/repo/tree", params={"repo": url, "path": "vendor"}).json()["items"]
    [submodule] = vendor
    assert submodule["type"] == "submodule"
    assert submodule["submodule"]["url"] == f"{github.url}/{owner}/child.git"
    assert submodule["submodule"]["repo"] == f"{owner}/child"
    assert submodule["submodule"]["commit"] == github.branch_sha(owner, "child", "main")

    before = github.not_modified
    again = api.get(f"/api/projects/{project}/repo/tree", params={"repo": url})
    assert again.json() == tree.json()
    assert github.not_modified == before + 1, "the repeat was a conditional request GitHub answered 304"

    blob = api.get(f"/api/projects/{project}/repo/blob", params={"repo": url, "path": "docs/guide.md"})
    assert blob.status_code == 200
    assert blob.json()["content"] == "guide\n"
    missing = api.get(f"/api/projects/{project}/repo/blob", params={"repo": url, "path": "nope.md"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    escape = api.get(f"/api/projects/{project}/repo/blob", params={"repo": url, "path": "../x"})
    assert escape.status_code == 422

    for n in range(3):
        git("--git-dir", str(bare), "branch", f"feature-{n}", "main")
    first = api.get(f"/api/projects/{project}/repo/branches", params={"repo": url, "perPage": 2}).json()
    assert len(first["items"]) == 2
    assert first["nextPage"] == 2
    second = api.get(f"/api/projects/{project}/repo/branches", params={"repo": url, "perPage": 2, "page": 2}).json()
    assert second["nextPage"] is None
    names = [b["name"] for b in first["items"] + second["items"]]
    assert sorted(names) == ["feature-0", "feature-1", "feature-2", "main"]

    github.rate_limit(count=1, reset_in=1.0)
    waited = api.get(f"/api/projects/{project}/repo/branches", params={"repo": url, "perPage": 3})
    assert waited.status_code == 200, waited.text
    assert github.rate_limited
    assert github.resumed_at is not None
    assert github.resumed_at >= github.rate_limited[-1] + 1.0, "the retry came after the reset"

    github.rate_limit(count=5, reset_in=3600)
    refused = api.get(f"/api/projects/{project}/repo/branches", params={"repo": url, "perPage": 4})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 3000
    github.rate_limit(count=0)


def test_a_changed_submodule_gets_its_own_pull_request_in_the_change_set(api: httpx.Client, github: FakeGitHub) -> None:
    owner = _unique("mono")
    _use_token(api, github.add_user(owner))
    lib = github.create_repo(owner, "lib", files={"lib.txt": "v1\n"})
    app = github.create_repo(
        owner, "app", files={"README.md": "# app\n"}, submodules={"vendor/lib": f"{github.url}/{owner}/lib.git"}
    )
    url = f"{github.url}/{owner}/app.git"
    repos = [{"input": {"url": url}, "output": {"url": url, "createPullRequest": True}}]
    done = _run(api, _project(api), "echo v2 >> vendor/lib/lib.txt", repos)
    assert done["status"]["phase"] == "Completed", _why(done)
    app_status, lib_status = done["status"]["repos"]
    assert lib_status["submoduleOf"] == 0
    assert lib_status["path"] == "vendor/lib"
    assert lib_status["url"] == f"{github.url}/{owner}/lib.git"
    assert lib_status["baseBranch"] == "main"
    assert show(lib, lib_status["branch"], "lib.txt") == "v1\nv2\n"
    gitlink = git("--git-dir", str(app), "ls-tree", app_status["branch"], "vendor/lib")
    assert gitlink.split()[2] == lib_status["commitSha"], "the app's branch points at the submodule's pushed commit"
    [app_pull] = github.pulls(owner, "app")
    [lib_pull] = github.pulls(owner, "lib")
    assert lib_pull["html_url"] in app_pull["body"]
    assert app_pull["html_url"] in lib_pull["body"]


def test_the_cli_links_a_token_from_stdin_and_lists_a_change_set(
    api: httpx.Client, github: FakeGitHub, server: Server
) -> None:
    owner = _unique("cli")
    token = github.add_user(owner)
    linked = vteam(server, "forge", "login", "github", stdin=token + "\n")
    assert linked.returncode == 0, linked.stderr
    assert linked.stdout.strip() == f"github token stored for {owner}"
    bad = vteam(server, "forge", "login", "github", stdin="ghp_not-a-real-token\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ")
    assert "ghp_not-a-real-token" not in bad.stderr
    listed = json.loads(vteam(server, "forge", "list", "--json").stdout)
    assert listed[0]["token"]["updated"]
    assert token not in json.dumps(listed)

    github.create_repo(owner, "site", files={"index.html": "<h1>hi</h1>\n"})
    url = f"{github.url}/{owner}/site.git"
    project = _project(api)
    created = vteam(
        server,
        *("session", "create", "--project", project, "--name", "via-cli"),
        *("--repo", url, "--output", url, "--pr", "--draft", "--prompt", "echo more >> index.html", "--wait"),
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    prs = vteam(server, "session", "prs", "via-cli", "--project", project)
    assert prs.returncode == 0, prs.stderr
    [pull] = github.pulls(owner, "site")
    assert pull["draft"] is True
    assert pull["html_url"] in prs.stdout
    assert "open (draft)" in prs.stdout

    secret = vteam(server, "secret", "set", "GIT_TOKEN", "--project", project, stdin="s3cret-value\n")
    assert secret.returncode == 0, secret.stderr
    names = vteam(server, "secret", "list", "--project", project)
    assert "GIT_TOKEN" in names.stdout
    assert "s3cret-value" not in names.stdout
