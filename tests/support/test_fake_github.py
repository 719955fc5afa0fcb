"""The fake GitHub is faithful: githubkit parses all it sends, git talks to it, and it polices itself.

Forge tests trust `tests.support.fake_github.FakeGitHub` in place of github.com, so these tests hold it to the real
client (githubkit, whose models come from the same OpenAPI description), to real `git clone`/`git push` over smart
HTTP, and prove that its OpenAPI validation catches bad requests and bad responses rather than passing everything.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from tests.support.fake_github import FakeGitHub, openapi_path

pytestmark = pytest.mark.skipif(
    openapi_path() is None,
    reason="GitHub's OpenAPI description (npm @octokit/openapi) is not installed; run make test",
)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path) as server:
        yield server
        server.check()


def client(fake: FakeGitHub, token: str, *, retry: bool = False) -> GitHub[Any]:
    return GitHub(TokenAuthStrategy(token), base_url=fake.api_url, auto_retry=retry)


def api(fake: FakeGitHub, token: str | None = None) -> httpx.Client:
    headers = {"Accept": "application/vnd.github+json"}
    if token:
        headers["Authorization"] = f"token {token}"
    return httpx.Client(base_url=fake.api_url, headers=headers, timeout=10)


def git(*args: str, cwd: Path, token: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Real git with the token handed over by GIT_ASKPASS, as vTeam does it."""
    askpass = cwd.parent / f"askpass-{token or 'none'}.sh"
    askpass.write_text(f"#!/bin/sh\ncase \"$1\" in Username*) echo x-access-token;; *) echo '{token or ''}';; esac\n")
    askpass.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": str(askpass),
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stderr}")
    return result


def clone_and_commit(fake: FakeGitHub, tmp_path: Path, repo: str, token: str | None, branch: str) -> Path:
    work = tmp_path / f"work-{repo.replace('/', '-')}-{branch}"
    work.mkdir()
    git("clone", "--quiet", f"{fake.url}/{repo}.git", ".", cwd=work, token=token)
    git("checkout", "--quiet", "-b", branch, cwd=work)
    (work / "CHANGE.md").write_text(f"{branch}\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", f"Change on {branch}", cwd=work)
    return work


async def test_githubkit_parses_repository_user_branches_permission_and_contents(fake: FakeGitHub) -> None:
    alice = fake.add_user("alice")
    fake.add_user("bob")
    fake.create_repo("alice", "lib")
    fake.create_repo(
        "alice",
        "app",
        files={"README.md": "hello\n", "docs/guide.md": "# Guide\n"},
        allow_merge_commit=False,
        submodules={"vendor/lib": f"{fake.url}/alice/lib.git"},
    )
    fake.add_collaborator("alice", "app", "bob", "read")
    gh = client(fake, alice)

    repo = (await gh.rest.repos.async_get("alice", "app")).parsed_data
    assert (repo.full_name, repo.default_branch, repo.fork, repo.private) == ("alice/app", "main", False, False)
    assert repo.permissions is not None
    assert repo.permissions.admin
    assert (repo.allow_merge_commit, repo.allow_squash_merge, repo.allow_rebase_merge) == (False, True, True)
    me = (await gh.rest.users.async_get_authenticated()).parsed_data
    assert me.login == "alice"

    level = (await gh.rest.repos.async_get_collaborator_permission_level("alice", "app", "bob")).parsed_data
    assert (level.permission, level.role_name) == ("read", "read")
    owner = (await gh.rest.repos.async_get_collaborator_permission_level("alice", "app", "alice")).parsed_data
    assert owner.permission == "admin"

    branches = (await gh.rest.repos.async_list_branches("alice", "app")).parsed_data
    assert [(b.name, b.protected, b.commit.sha) for b in branches] == [
        ("main", False, fake.branch_sha("alice", "app", "main"))
    ]
    main = (await gh.rest.repos.async_get_branch("alice", "app", "main")).parsed_data
    assert main.commit.commit.author is not None
    assert main.commit.commit.author.name == "vTeam Test"
    with pytest.raises(RequestFailed) as missing:
        await gh.rest.repos.async_get_branch("alice", "app", "nope")
    assert missing.value.response.status_code == 404
    assert missing.value.response.json()["message"] == "Branch not found"

    readme = (await gh.rest.repos.async_get_content("alice", "app", "docs/guide.md")).parsed_data
    assert getattr(readme, "type", None) == "file"
    assert base64.b64decode(readme.content) == b"# Guide\n"  # type: ignore[union-attr]
    root = (await gh.rest.repos.async_get_content("alice", "app", "")).parsed_data
    assert isinstance(root, list)
    assert {(e.name, e.type) for e in root} == {
        (".gitmodules", "file"),
        ("README.md", "file"),
        ("docs", "dir"),
        ("vendor", "dir"),
    }
    vendor = (await gh.rest.repos.async_get_content("alice", "app", "vendor")).parsed_data
    assert isinstance(vendor, list)
    assert [(e.name, e.type) for e in vendor] == [("lib", "file")], "GitHub lists submodules as files in directories"
    submodule = (await gh.rest.repos.async_get_content("alice", "app", "vendor/lib")).parsed_data
    assert getattr(submodule, "type", None) == "submodule"
    assert submodule.submodule_git_url == f"{fake.url}/alice/lib.git"  # type: ignore[union-attr]
    assert submodule.sha == fake.branch_sha("alice", "lib", "main")  # type: ignore[union-attr]
    with pytest.raises(RequestFailed) as unknown_ref:
        await gh.rest.repos.async_get_content("alice", "app", "README.md", ref="no-such-ref")
    assert unknown_ref.value.response.status_code == 404
    assert fake.api_versions == {"2026-03-10"}, "githubkit asks for a newer API version than the description"
    assert fake.violations == []


async def test_pull_request_lifecycle_through_githubkit_and_git(fake: FakeGitHub, tmp_path: Path) -> None:
    alice = fake.add_user("alice")
    fake.create_repo("alice", "app", allow_merge_commit=False)
    work = clone_and_commit(fake, tmp_path, "alice/app", alice, "feature")
    git("push", "--quiet", "origin", "feature", cwd=work, token=alice)
    gh = client(fake, alice)

    created = (
        await gh.rest.pulls.async_create("alice", "app", title="Add change", head="feature", base="main", body="Why")
    ).parsed_data
    assert created.html_url == f"{fake.url}/alice/app/pull/1"
    assert created.head.sha == fake.branch_sha("alice", "app", "feature")
    assert (created.state, created.merged, created.head.ref, created.base.ref) == ("open", False, "feature", "main")

    with pytest.raises(RequestFailed) as duplicate:
        await gh.rest.pulls.async_create("alice", "app", title="Again", head="feature", base="main")
    assert duplicate.value.response.status_code == 422
    assert duplicate.value.response.json()["errors"][0]["message"] == "A pull request already exists for alice:feature."
    with pytest.raises(RequestFailed) as no_head:
        await gh.rest.pulls.async_create("alice", "app", title="Missing", head="nope", base="main")
    assert no_head.value.response.json()["errors"][0]["field"] == "head"

    listed = (await gh.rest.pulls.async_list("alice", "app", head="alice:feature", state="open")).parsed_data
    assert [p.number for p in listed] == [1]
    assert (await gh.rest.pulls.async_list("alice", "app", head="alice:other")).parsed_data == []
    updated = (await gh.rest.pulls.async_update("alice", "app", 1, title="Better title")).parsed_data
    assert updated.title == "Better title"

    with pytest.raises(RequestFailed) as forbidden:
        await gh.rest.pulls.async_merge("alice", "app", 1, merge_method="merge")
    assert forbidden.value.response.status_code == 405
    assert forbidden.value.response.json()["message"] == "Merge commits are not allowed on this repository."
    merged = (await gh.rest.pulls.async_merge("alice", "app", 1, merge_method="squash")).parsed_data
    assert merged.merged
    assert fake.branch_sha("alice", "app", "main") == merged.sha
    after = await gh.rest.pulls.async_get("alice", "app", 1)
    assert (after.parsed_data.state, after.parsed_data.merged) == ("closed", True)
    assert after.json()["merge_commit_sha"] == merged.sha, "githubkit's 2026-03-10 model no longer has this field"
    assert [p["number"] for p in fake.pulls("alice", "app")] == [1]


def test_a_malformed_request_is_answered_500_and_recorded(tmp_path: Path) -> None:
    with FakeGitHub(tmp_path) as fake:
        alice = fake.add_user("alice")
        fake.create_repo("alice", "app")
        with api(fake, alice) as http:
            response = http.post("/repos/alice/app/pulls", json={"title": "no head", "base": "main"})
            unknown = http.get("/repos/alice/app/no-such-endpoint")
            bad_query = http.get("/repos/alice/app/pulls", params={"state": "merged"})
        assert response.status_code == 500
        assert unknown.status_code == 500
        assert bad_query.status_code == 500
        assert any("POST /repos/alice/app/pulls" in v and "head" in v for v in fake.violations), fake.violations
        assert any("no such operation" in v for v in fake.violations)
        assert any("state" in v for v in fake.violations)
        with pytest.raises(AssertionError, match="OpenAPI"):
            fake.check()


def test_a_response_missing_a_required_field_fails_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = FakeGitHub._repo_json

    def without_default_branch(self: FakeGitHub, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(self, *args, **kwargs)
        del data["default_branch"]
        return data

    monkeypatch.setattr(FakeGitHub, "_repo_json", without_default_branch)
    with FakeGitHub(tmp_path) as fake:
        alice = fake.add_user("alice")
        fake.create_repo("alice", "app")
        with api(fake, alice) as http:
            assert http.get("/repos/alice/app").status_code == 200, "a bad response is still sent"
        with pytest.raises(AssertionError, match="default_branch"):
            fake.check()


async def test_fork_appears_after_polls_and_takes_a_pull_request(fake: FakeGitHub, tmp_path: Path) -> None:
    alice = fake.add_user("alice")
    bob = fake.add_user("bob")
    fake.create_repo("alice", "app", private=False)
    fake.fork_delay = 2
    gh = client(fake, bob)

    fork = (await gh.rest.repos.async_create_fork("alice", "app")).parsed_data
    assert (fork.full_name, fork.fork) == ("bob/app", True)
    again = (await gh.rest.repos.async_create_fork("alice", "app")).parsed_data
    assert again.id == fork.id, "forking again answers the existing fork"
    for _ in range(2):
        with pytest.raises(RequestFailed) as not_yet:
            await gh.rest.repos.async_get("bob", "app")
        assert not_yet.value.response.status_code == 404
    ready = (await gh.rest.repos.async_get("bob", "app")).parsed_data
    assert ready.parent is not None
    assert ready.parent.full_name == "alice/app"
    assert ready.source is not None
    assert ready.source.full_name == "alice/app"

    work = clone_and_commit(fake, tmp_path, "bob/app", bob, "fix")
    git("push", "--quiet", "origin", "fix", cwd=work, token=bob)
    pull = (await gh.rest.pulls.async_create("alice", "app", title="Fix", head="bob:fix", base="main")).parsed_data
    assert pull.head.sha == fake.branch_sha("bob", "app", "fix")
    assert pull.head.repo is not None
    assert pull.head.repo.full_name == "bob/app"
    assert fake.branch_sha("alice", "app", "fix") is None
    as_alice = client(fake, alice)
    merged = (await as_alice.rest.pulls.async_merge("alice", "app", pull.number)).parsed_data
    assert merged.merged
    assert (tmp_path / "fake-github").exists()


def test_git_push_needs_write_access_and_a_valid_token(fake: FakeGitHub, tmp_path: Path) -> None:
    alice = fake.add_user("alice")
    writer = fake.add_user("writer")
    reader = fake.add_user("reader")
    fake.create_repo("alice", "secret", private=True)
    fake.add_collaborator("alice", "secret", "writer", "write")
    fake.add_collaborator("alice", "secret", "reader", "read")

    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    denied = git("clone", f"{fake.url}/alice/secret.git", ".", cwd=anonymous, check=False)
    assert denied.returncode != 0, "a private repository needs credentials"
    bad = git("clone", f"{fake.url}/alice/secret.git", ".", cwd=anonymous, token="ghp_wrong", check=False)
    assert bad.returncode != 0
    assert "401" in bad.stderr or "Authentication failed" in bad.stderr

    work = clone_and_commit(fake, tmp_path, "alice/secret", writer, "from-writer")
    git("push", "--quiet", "origin", "from-writer", cwd=work, token=writer)
    assert fake.branch_sha("alice", "secret", "from-writer") is not None

    read_only = clone_and_commit(fake, tmp_path, "alice/secret", reader, "from-reader")
    refused = git("push", "origin", "from-reader", cwd=read_only, token=reader, check=False)
    assert refused.returncode != 0
    assert "403" in refused.stderr
    assert fake.branch_sha("alice", "secret", "from-reader") is None
    assert alice


def test_protected_branch_push_is_declined_by_the_hook(fake: FakeGitHub, tmp_path: Path) -> None:
    alice = fake.add_user("alice")
    fake.create_repo("alice", "app")
    fake.protect_branch("alice", "app", "main")
    before = fake.branch_sha("alice", "app", "main")
    work = clone_and_commit(fake, tmp_path, "alice/app", alice, "topic")
    rejected = git("push", "origin", "HEAD:main", cwd=work, token=alice, check=False)
    assert rejected.returncode != 0
    assert "GH006: Protected branch update failed" in rejected.stderr
    assert "hook declined" in rejected.stderr
    assert fake.branch_sha("alice", "app", "main") == before
    git("push", "--quiet", "origin", "topic", cwd=work, token=alice)
    with api(fake, alice) as http:
        branches = {b["name"]: b["protected"] for b in http.get("/repos/alice/app/branches").json()}
    assert branches == {"main": True, "topic": False}


def test_etag_answers_304_and_branches_paginate_with_link(fake: FakeGitHub) -> None:
    alice = fake.add_user("alice")
    bare = fake.create_repo("alice", "app")
    for n in range(5):
        subprocess.run(["git", "--git-dir", str(bare), "branch", f"b{n}", "main"], check=True)
    with api(fake, alice) as http:
        first = http.get("/repos/alice/app")
        etag = first.headers["ETag"]
        again = http.get("/repos/alice/app", headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
        assert fake.not_modified == 1
        for name in ("limit", "remaining", "reset", "used", "resource"):
            assert f"x-ratelimit-{name}" in first.headers

        page = http.get("/repos/alice/app/branches", params={"per_page": 2})
        assert [b["name"] for b in page.json()] == ["b0", "b1"]
        assert page.links["next"]["url"].endswith("per_page=2&page=2")
        assert page.links["last"]["url"].endswith("per_page=2&page=3")
        last = http.get(page.links["last"]["url"])
        assert [b["name"] for b in last.json()] == ["b4", "main"]
        assert "next" not in last.links
        assert "prev" in last.links


def test_rate_limits_answer_403_and_429_with_their_headers(fake: FakeGitHub) -> None:
    alice = fake.add_user("alice")
    fake.create_repo("alice", "app")
    with api(fake, alice) as http:
        fake.rate_limit(count=1, reset_in=30)
        primary = http.get("/repos/alice/app")
        assert primary.status_code == 403
        assert primary.headers["x-ratelimit-remaining"] == "0"
        assert int(primary.headers["x-ratelimit-reset"]) >= int(time.time()) + 29
        assert primary.json()["message"].startswith("API rate limit exceeded")
        fake.rate_limit(count=1, reset_in=7, secondary=True)
        secondary = http.get("/repos/alice/app")
        assert secondary.status_code == 429
        assert secondary.headers["Retry-After"] == "7"
        assert "secondary rate limit" in secondary.json()["message"]
        assert http.get("/repos/alice/app").status_code == 200
    assert len(fake.rate_limited) == 2


async def test_githubkit_waits_for_the_rate_limit_reset(fake: FakeGitHub) -> None:
    alice = fake.add_user("alice")
    fake.create_repo("alice", "app")
    fake.rate_limit(count=1, reset_in=1.0)
    gh = client(fake, alice, retry=True)
    await gh.rest.repos.async_get("alice", "app")
    assert len(fake.rate_limited) == 1
    assert fake.resumed_at is not None
    assert fake.resumed_at >= fake.rate_limited[0] + 0.9, "the client waited for x-ratelimit-reset"


async def test_installation_tokens_are_scoped_and_expire(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_user("alice")
    fake.create_repo("alice", "app", private=True)
    fake.create_repo("alice", "other", private=True)
    app = fake.create_app(slug="vteam")
    installation_id = fake.install_app(app, "alice")
    as_app = GitHub(AppAuthStrategy(app.app_id, app.private_key_pem), base_url=fake.api_url)

    me = (await as_app.rest.apps.async_get_authenticated()).parsed_data
    assert me is not None
    assert me.slug == "vteam"
    found = (await as_app.rest.apps.async_get_repo_installation("alice", "app")).parsed_data
    assert found.id == installation_id
    issued = (
        await as_app.rest.apps.async_create_installation_access_token(installation_id, repositories=["app"])
    ).parsed_data
    assert issued.token.startswith("ghs_")
    assert issued.repository_selection == "selected"
    assert [r.full_name for r in issued.repositories or []] == ["alice/app"]

    with api(fake, issued.token) as http:
        assert http.get("/repos/alice/app").json()["permissions"]["push"] is True
        assert http.get("/repos/alice/other").status_code == 404, "the token is scoped to alice/app"
        assert http.get("/user").status_code == 403
    work = clone_and_commit(fake, tmp_path, "alice/app", issued.token, "bot")
    git("push", "--quiet", "origin", "bot", cwd=work, token=issued.token)
    scoped_out = tmp_path / "scoped-out"
    scoped_out.mkdir()
    assert git("clone", f"{fake.url}/alice/other.git", ".", cwd=scoped_out, token=issued.token, check=False).returncode

    fake.expire_installation_tokens()
    with api(fake, issued.token) as http:
        expired = http.get("/repos/alice/app")
    assert expired.status_code == 401
    assert expired.json()["message"] == "Bad credentials"
    (work / "MORE.md").write_text("more\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "more", cwd=work)
    assert git("push", "origin", "bot", cwd=work, token=issued.token, check=False).returncode != 0

    read_only = (
        await as_app.rest.apps.async_create_installation_access_token(
            installation_id, permissions={"contents": "read", "metadata": "read"}
        )
    ).parsed_data
    with api(fake, read_only.token) as http:
        assert http.get("/repos/alice/other").json()["permissions"]["push"] is False
    with pytest.raises(RequestFailed) as not_granted:
        await as_app.rest.apps.async_create_installation_access_token(installation_id, permissions={"issues": "write"})
    assert not_granted.value.response.status_code == 422
    with pytest.raises(RequestFailed) as not_installed:
        await as_app.rest.apps.async_get_repo_installation("bob", "app")
    assert not_installed.value.response.status_code == 404


def test_app_jwts_are_verified(fake: FakeGitHub) -> None:
    app = fake.create_app(slug="vteam")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = int(time.time())

    def call(key: Any, **claims: Any) -> httpx.Response:
        payload = json.dumps({"iss": str(app.app_id), "iat": now - 30, "exp": now + 500, **claims}).encode()
        token = jwt.api_jws.PyJWS().encode(payload, key, "RS256")  # PyJWT's jwt.encode refuses a numeric iss
        with httpx.Client(base_url=fake.api_url, headers={"Authorization": f"Bearer {token}"}) as http:
            return http.get("/app")

    assert call(app.private_key_pem).status_code == 200
    assert call(app.private_key_pem, iss=app.app_id).status_code == 200, "iss may be a number"
    forged = call(other_pem)
    assert forged.status_code == 401
    assert "JSON web token" in forged.json()["message"]
    assert call(app.private_key_pem, exp=now + 3600).status_code == 401, "exp at most 10 minutes after iat"
    assert call(app.private_key_pem, exp=now - 120).status_code == 401, "expired"


def test_oauth_code_exchange_and_user_installations(fake: FakeGitHub) -> None:
    fake.add_user("alice")
    fake.add_user("carol")
    fake.add_org("acme")
    fake.create_repo("acme", "app")
    fake.add_collaborator("acme", "app", "alice", "write")
    app = fake.create_app(slug="vteam", client_id="Iv1.client", client_secret="shh")
    installation_id = fake.install_app(app, "acme", repositories=["acme/app"])

    with httpx.Client(base_url=fake.url, headers={"Accept": "application/json"}) as web:
        form = {"client_id": "Iv1.client", "client_secret": "shh"}
        bad = web.post("/login/oauth/access_token", data={**form, "code": "wrong"})
        assert (bad.status_code, bad.json()["error"]) == (200, "bad_verification_code")
        code = fake.oauth_code("alice")
        granted = web.post("/login/oauth/access_token", json={**form, "code": code}).json()
        assert granted["access_token"].startswith("ghu_")
        assert granted["token_type"] == "bearer"
        reused = web.post("/login/oauth/access_token", data={**form, "code": code}).json()
        assert reused["error"] == "bad_verification_code", "codes are one-time"
        carol = web.post("/login/oauth/access_token", data={**form, "code": fake.oauth_code("carol")}).json()

    with api(fake, granted["access_token"]) as http:
        listed = http.get("/user/installations").json()
        assert [i["id"] for i in listed["installations"]] == [installation_id]
        assert http.get("/user").json()["login"] == "alice"
    with api(fake, carol["access_token"]) as http:
        assert http.get("/user/installations").json()["total_count"] == 0
