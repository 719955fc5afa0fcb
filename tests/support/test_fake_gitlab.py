"""The fake GitLab behaves like gitlab.com for what vTeam does, judged by `python-gitlab` and real git.

Tests of vTeam's GitLab support trust `tests.support.fake_gitlab` in place of gitlab.com, so here the fake is held
to GitLab's real client (python-gitlab 8.x) and to git over smart HTTP: merge requests (also from forks),
forks, permissions and protected branches on push, pagination, ETags, rate limiting with the client's own
back-off, the repository tree (submodules included) and files, and the checks that make `check()` mean something.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import gitlab
import httpx
import pytest
from gitlab.v4.objects import Project

from tests.support.fake_gitlab import DEVELOPER, MAINTAINER, REPORTER, FakeGitLab

ASKPASS = '#!/bin/sh\ncase "$1" in Username*) echo oauth2 ;; *) echo "$FAKE_GITLAB_TOKEN" ;; esac\n'


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGitLab]:
    with FakeGitLab(tmp_path / "gitlab") as server:
        yield server
        server.check()


class Git:
    """git in a scratch home, answering credential prompts with a token through GIT_ASKPASS (never a prompt)."""

    def __init__(self, tmp_path: Path, token: str | None) -> None:
        self.home = tmp_path / f"home-{token or 'anon'}"
        self.home.mkdir(parents=True, exist_ok=True)
        askpass = self.home / "askpass.sh"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o755)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(askpass),
            "FAKE_GITLAB_TOKEN": token or "",
            "GIT_AUTHOR_NAME": "Dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
        }

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
        return result

    def clone(self, url: str, name: str = "work") -> Path:
        work = self.home / name
        self("clone", "--quiet", url, str(work))
        return work

    def commit_push(self, work: Path, branch: str, files: dict[str, str], *, check: bool = True) -> str:
        """Commit `files` on `branch` (created from HEAD) and push it; returns git's stderr."""
        self("checkout", "--quiet", "-B", branch, cwd=work)
        for path, text in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(text)
        self("add", "-A", cwd=work)
        self("commit", "--quiet", "-m", f"change {', '.join(files)}", cwd=work)
        return self("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work, check=check).stderr


def client(fake: FakeGitLab, token: str | None = None) -> gitlab.Gitlab:
    return gitlab.Gitlab(fake.url, private_token=token)


def git_url(fake: FakeGitLab, path: str) -> str:
    return f"{fake.url}/{path}.git"


def test_user_project_and_member_shapes(fake: FakeGitLab) -> None:
    token = fake.add_user("alice")
    fake.add_user("rita")
    fake.create_project("acme", "app", {"README.md": "hi\n"})
    fake.add_member("acme/app", "rita", REPORTER)
    gl = client(fake, token)
    gl.auth()
    assert gl.user is not None
    assert gl.user.username == "alice"
    project = gl.projects.get("acme/app")
    assert project.path_with_namespace == "acme/app"
    assert project.default_branch == "main"
    assert project.http_url_to_repo == git_url(fake, "acme/app")
    assert project.namespace["kind"] == "group"
    assert project.merge_method == "merge"
    assert project.permissions["project_access"] is None, "alice is no member of acme/app"
    assert gl.projects.get(project.id).path == "app"
    assert project.members_all.get(fake.user_id("rita")).access_level == REPORTER
    with pytest.raises(gitlab.GitlabGetError):
        project.members_all.get(fake.user_id("alice"))
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gl.projects.get("acme/nope")
    assert missing.value.response_code == 404
    assert missing.value.error_message == "404 Project Not Found"
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client(fake, "glpat-wrong").auth()
    own = fake.create_project("alice", "mine")
    assert own.is_dir()
    mine = gl.projects.get("alice/mine")
    assert mine.namespace["kind"] == "user"
    assert mine.permissions["project_access"]["access_level"] == 50, "the owner of a personal namespace"


def test_merge_request_create_list_update_duplicate_and_merge(fake: FakeGitLab, tmp_path: Path) -> None:
    token = fake.add_user("dev")
    fake.create_project("acme", "app")
    fake.add_member("acme/app", "dev", MAINTAINER)
    git = Git(tmp_path, token)
    work = git.clone(git_url(fake, "acme/app"))
    git.commit_push(work, "feature", {"a.txt": "a\n"})
    project = client(fake, token).projects.get("acme/app")

    mr = project.mergerequests.create(
        {"source_branch": "feature", "target_branch": "main", "title": "Draft: add a", "description": "why"}
    )
    assert (mr.iid, mr.state, mr.draft, mr.work_in_progress) == (1, "opened", True, True)
    assert mr.id != mr.iid
    assert mr.project_id == mr.source_project_id == mr.target_project_id == project.id
    assert mr.sha == fake.branch_sha("acme/app", "feature")
    assert mr.web_url == f"{fake.url}/acme/app/-/merge_requests/1"
    assert mr.references["full"] == "acme/app!1"
    assert mr.author["username"] == "dev"
    assert mr.detailed_merge_status == "draft_status"

    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        project.mergerequests.create({"source_branch": "feature", "target_branch": "main", "title": "again"})
    assert duplicate.value.response_code == 409
    assert json.loads(duplicate.value.response_body or b"{}") == {
        "message": ["Another open merge request already exists for this source branch: !1"]
    }
    with pytest.raises(gitlab.GitlabCreateError) as no_branch:
        project.mergerequests.create({"source_branch": "ghost", "target_branch": "main", "title": "x"})
    assert no_branch.value.response_code == 400

    found = project.mergerequests.list(source_branch="feature", state="opened", get_all=False)
    assert [m.iid for m in found] == [1]
    assert project.mergerequests.list(state="merged", get_all=False) == []

    mr.title = "add a"
    mr.save()
    again = project.mergerequests.get(1)
    assert (again.title, again.draft, again.detailed_merge_status) == ("add a", False, "mergeable")

    again.state_event = "close"
    again.save()
    assert project.mergerequests.get(1).state == "closed"
    assert project.mergerequests.list(source_branch="feature", state="opened", get_all=False) == []
    again.state_event = "reopen"
    again.save()

    git.commit_push(work, "feature", {"b.txt": "b\n"})
    refreshed = project.mergerequests.get(1)
    assert refreshed.sha == fake.branch_sha("acme/app", "feature"), "the MR follows pushes to its branch"
    refreshed.merge()
    assert refreshed.state == "merged"
    main = fake.branch_sha("acme/app", "main")
    assert main == refreshed.merge_commit_sha
    assert fake.merge_requests("acme/app")[0]["state"] == "merged"
    with pytest.raises(gitlab.GitlabMRClosedError) as twice:
        refreshed.merge()
    assert twice.value.response_code == 405


def test_fork_then_merge_request_into_upstream(fake: FakeGitLab, tmp_path: Path) -> None:
    upstream_token = fake.add_user("owner")
    token = fake.add_user("bot")
    fake.create_project("owner", "lib", {"lib.py": "x = 1\n"})
    gl = client(fake, token)
    upstream = gl.projects.get("owner/lib")

    fork = upstream.forks.create({})
    assert fork.path_with_namespace == "bot/lib"
    assert fork.import_status == "started"
    assert fork.forked_from_project["id"] == upstream.id
    polled = gl.projects.get(fork.id)
    assert polled.import_status == "finished", "finished after fake.fork_delay (1) GET"
    assert polled.namespace["kind"] == "user"
    with pytest.raises(gitlab.GitlabCreateError) as twice:
        upstream.forks.create({})
    assert twice.value.response_code == 409

    git = Git(tmp_path, token)
    work = git.clone(polled.http_url_to_repo)
    git.commit_push(work, "fix", {"lib.py": "x = 2\n"})
    assert fake.branch_sha("owner/lib", "fix") is None, "the push went to the fork"
    assert "403" in git.commit_push(git.clone(upstream.http_url_to_repo, "up"), "fix", {"z": "z"}, check=False)

    mr = polled.mergerequests.create(
        {"source_branch": "fix", "target_branch": "main", "title": "Fix x", "target_project_id": upstream.id}
    )
    assert (mr.project_id, mr.target_project_id, mr.source_project_id) == (upstream.id, upstream.id, polled.id)
    assert mr.web_url == f"{fake.url}/owner/lib/-/merge_requests/1"
    assert mr.sha == fake.branch_sha("bot/lib", "fix")
    assert [m.iid for m in upstream.mergerequests.list(source_branch="fix", state="opened", get_all=False)] == [1]
    assert polled.mergerequests.list(get_all=False) == [], "fork MRs are listed on the target project"
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gl.projects.get("owner/lib").mergerequests.get(1).merge()

    merged = client(fake, upstream_token).projects.get("owner/lib").mergerequests.get(1)
    merged.merge()
    tip = fake.branch_sha("owner/lib", "main")
    assert tip is not None
    shown = subprocess.run(
        ["git", "--git-dir", str(tmp_path / "gitlab/gitlab-repos/owner/lib.git"), "show", f"{tip}:lib.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == "x = 2\n"


def test_a_missing_required_parameter_is_a_400_and_a_violation(fake: FakeGitLab) -> None:
    token = fake.add_user("dev")
    fake.create_project("dev", "app")
    gl = client(fake, token)
    with pytest.raises(gitlab.GitlabHttpError) as bad:
        gl.http_post("/projects/dev%2Fapp/merge_requests", post_data={"source_branch": "main", "target_branch": "x"})
    assert bad.value.response_code == 400
    assert bad.value.error_message == "title is missing"
    with pytest.raises(gitlab.GitlabHttpError) as state:
        gl.http_get("/projects/dev%2Fapp/merge_requests", query_data={"state": "open"})
    assert state.value.error_message == "state does not have a valid value"
    gl.http_get("/projects/dev%2Fapp/merge_requests", query_data={"draft": "yes"})
    assert len(fake.violations) == 3, fake.violations
    assert "draft" in fake.violations[2], "unknown parameters are recorded although GitLab ignores them"
    with pytest.raises(gitlab.GitlabHttpError) as no_ref:
        gl.http_get("/projects/dev%2Fapp/repository/files/README.md")
    assert no_ref.value.error_message == "ref is missing"
    with pytest.raises(gitlab.GitlabHttpError) as slash:
        gl.http_get("/projects/dev%2Fapp/repository/files/docs/README.md", query_data={"ref": "main"})
    assert slash.value.response_code == 404, "a file path must be URL-encoded, slashes included"
    assert len(fake.violations) == 5, fake.violations
    with pytest.raises(AssertionError, match="title is missing"):
        fake.check()
    fake.violations.clear()


def test_push_needs_developer_and_reads_follow_visibility(fake: FakeGitLab, tmp_path: Path) -> None:
    dev_token = fake.add_user("dev")
    reporter_token = fake.add_user("rep")
    fake.create_project("acme", "app")
    fake.create_project("acme", "secret", visibility="private")
    fake.add_member("acme/app", "dev", DEVELOPER)
    fake.add_member("acme/app", "rep", REPORTER)
    dev = Git(tmp_path, dev_token)
    dev.commit_push(dev.clone(git_url(fake, "acme/app")), "topic", {"t.txt": "t\n"})
    assert fake.branch_sha("acme/app", "topic") is not None

    reporter = Git(tmp_path, reporter_token)
    rejected = reporter.commit_push(reporter.clone(git_url(fake, "acme/app")), "nope", {"n": "n"}, check=False)
    assert "403" in rejected
    assert fake.branch_sha("acme/app", "nope") is None

    anonymous = Git(tmp_path, None)
    anonymous.clone(git_url(fake, "acme/app"))
    hidden = anonymous("clone", "--quiet", git_url(fake, "acme/secret"), str(tmp_path / "s"), check=False)
    assert hidden.returncode != 0
    stranger = dev("clone", "--quiet", git_url(fake, "acme/secret"), str(tmp_path / "s2"), check=False)
    assert stranger.returncode != 0, "private projects are invisible to non-members"
    wrong = Git(tmp_path, "glpat-not-a-token")
    denied = wrong.commit_push(wrong.clone(git_url(fake, "acme/app")), "w", {"w": "w"}, check=False)
    assert "Authentication failed" in denied, "a public clone needs no token, a push with a bad one fails"
    assert fake.branch_sha("acme/app", "w") is None


def test_protected_branch_push_is_rejected_by_the_hook(fake: FakeGitLab, tmp_path: Path) -> None:
    dev_token = fake.add_user("dev")
    lead_token = fake.add_user("lead")
    fake.create_project("acme", "app")
    fake.add_member("acme/app", "dev", DEVELOPER)
    fake.add_member("acme/app", "lead", MAINTAINER)
    fake.protect_branch("acme/app", "main")
    before = fake.branch_sha("acme/app", "main")
    dev = Git(tmp_path, dev_token)
    stderr = dev.commit_push(dev.clone(git_url(fake, "acme/app")), "main", {"x": "x"}, check=False)
    assert "You are not allowed to push code to protected branches on this project" in stderr
    assert fake.branch_sha("acme/app", "main") == before
    lead = Git(tmp_path, lead_token)
    lead.commit_push(lead.clone(git_url(fake, "acme/app")), "main", {"y": "y"})
    assert fake.branch_sha("acme/app", "main") != before, "Maintainers may push to protected branches"
    branch = client(fake, dev_token).projects.get("acme/app").branches.get("main")
    assert (branch.protected, branch.default, branch.can_push) == (True, True, False)


def test_pagination_headers_and_link(fake: FakeGitLab, tmp_path: Path) -> None:
    token = fake.add_user("dev")
    bare = fake.create_project("dev", "app")
    for name in ("b1", "b2", "b3", "b4"):
        subprocess.run(["git", "--git-dir", str(bare), "branch", name, "main"], check=True)
    project = client(fake, token).projects.get("dev/app")
    page = project.branches.list(get_all=False, per_page=2, page=1)
    assert [b.name for b in page] == ["b1", "b2"]
    assert [b.name for b in project.branches.list(get_all=True, per_page=2)] == ["b1", "b2", "b3", "b4", "main"]
    assert next(b for b in page if b.name == "b1").merged is True
    response = httpx.get(
        f"{fake.api_url}/projects/dev%2Fapp/repository/branches",
        params={"per_page": 2, "page": 2},
        headers={"PRIVATE-TOKEN": token},
    )
    headers = response.headers
    assert (headers["X-Total"], headers["X-Total-Pages"], headers["X-Page"], headers["X-Per-Page"]) == (
        "5",
        "3",
        "2",
        "2",
    )
    assert (headers["X-Next-Page"], headers["X-Prev-Page"]) == ("3", "1")
    assert set(response.links) == {"prev", "next", "first", "last"}
    assert response.links["next"]["url"].startswith(f"{fake.api_url}/projects/dev%2Fapp/repository/branches?")
    assert "page=3" in response.links["next"]["url"]
    assert int(headers["RateLimit-Remaining"]) > 0
    missing = httpx.get(f"{fake.api_url}/projects/dev%2Fapp/repository/branches/nope")
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Branch Not Found"})


def test_etag_gives_304(fake: FakeGitLab) -> None:
    fake.create_project("acme", "app")
    first = httpx.get(f"{fake.api_url}/projects/acme%2Fapp")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = httpx.get(f"{fake.api_url}/projects/acme%2Fapp", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
    assert fake.not_modified == 1


def test_rate_limit_429_and_python_gitlab_waits_for_retry_after(fake: FakeGitLab) -> None:
    token = fake.add_user("dev")
    fake.create_project("dev", "app")
    fake.rate_limit(count=2, reset_in=1.0)
    limited = httpx.get(f"{fake.api_url}/projects/dev%2Fapp", headers={"PRIVATE-TOKEN": token})
    assert (limited.status_code, limited.json()) == (429, {"message": "Retry later"})
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert int(limited.headers["RateLimit-Reset"]) >= int(time.time())
    assert limited.headers["RateLimit-ResetTime"].endswith("GMT")
    assert int(limited.headers["RateLimit-Limit"]) > 0
    started = time.monotonic()
    project = client(fake, token).projects.get("dev/app")
    assert project.path == "app"
    assert len(fake.throttled) == 2
    assert fake.resumed_at is not None
    assert fake.resumed_at - fake.throttled[-1] >= 0.5, "python-gitlab slept for Retry-After before retrying"
    assert time.monotonic() - started < 5


def test_tree_lists_submodules_and_files_decode(fake: FakeGitLab, tmp_path: Path) -> None:
    token = fake.add_user("dev")
    fake.create_project("dev", "app", {"README.md": "hi\n", "src/main.py": "print(1)\n"})
    git = Git(tmp_path, token)
    work = git.clone(git_url(fake, "dev/app"))
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    (work / ".gitmodules").write_text('[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n')
    git("add", ".gitmodules", cwd=work)
    git("update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib", cwd=work)
    git("commit", "--quiet", "-m", "add submodule", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    project: Project = client(fake, token).projects.get("dev/app")

    top = project.repository_tree(ref="main", get_all=True)
    assert isinstance(top, list)
    assert [(e["type"], e["path"]) for e in top] == [
        ("tree", "src"),
        ("tree", "vendor"),
        ("blob", ".gitmodules"),
        ("blob", "README.md"),
    ]
    vendor = project.repository_tree(path="vendor", ref="main", get_all=True)
    assert vendor == [{"id": sha, "name": "lib", "type": "commit", "path": "vendor/lib", "mode": "160000"}]
    everything = project.repository_tree(ref="main", recursive=True, get_all=True)
    assert {e["path"] for e in everything} >= {"src/main.py", "vendor/lib", "src"}
    assert next(e for e in top if e["path"] == "src")["mode"] == "040000"

    file = project.files.get(file_path="src/main.py", ref="main")
    assert file.decode() == b"print(1)\n"
    assert (file.file_name, file.encoding, file.size) == ("main.py", "base64", 9)
    assert base64.b64decode(file.content) == b"print(1)\n"
    assert project.files.raw(file_path="src/main.py", ref="main") == b"print(1)\n"
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.files.get(file_path="nope.txt", ref="main")
    assert missing.value.error_message == "404 File Not Found"
    with pytest.raises(gitlab.GitlabGetError):
        project.files.get(file_path="vendor/lib", ref="main")


def test_fast_forward_merge_method_needs_a_rebased_branch(fake: FakeGitLab, tmp_path: Path) -> None:
    token = fake.add_user("dev")
    fake.create_project("dev", "app", merge_method="ff")
    git = Git(tmp_path, token)
    work = git.clone(git_url(fake, "dev/app"))
    git.commit_push(work, "one", {"one.txt": "1\n"})
    git("checkout", "--quiet", "main", cwd=work)
    git.commit_push(work, "two", {"two.txt": "2\n"})
    project = client(fake, token).projects.get("dev/app")
    assert project.merge_method == "ff"
    first = project.mergerequests.create({"source_branch": "one", "target_branch": "main", "title": "one"})
    second = project.mergerequests.create({"source_branch": "two", "target_branch": "main", "title": "two"})
    first.merge()
    assert fake.branch_sha("dev/app", "main") == fake.branch_sha("dev/app", "one"), "a fast-forward"
    assert project.mergerequests.get(second.iid).detailed_merge_status == "need_rebase"
    with pytest.raises(gitlab.GitlabMRClosedError) as refused:
        second.merge()
    assert refused.value.response_code == 405


def test_conflicting_merge_request_cannot_be_merged_and_squash_makes_one_commit(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    token = fake.add_user("dev")
    fake.create_project("dev", "app", {"f.txt": "base\n"})
    git = Git(tmp_path, token)
    work = git.clone(git_url(fake, "dev/app"))
    git.commit_push(work, "left", {"f.txt": "left\n"})
    git.commit_push(work, "left", {"g.txt": "g\n"})
    git("checkout", "--quiet", "main", cwd=work)
    git.commit_push(work, "right", {"f.txt": "right\n"})
    project = client(fake, token).projects.get("dev/app")
    left = project.mergerequests.create(
        {
            "source_branch": "left",
            "target_branch": "main",
            "title": "left",
            "squash": True,
            "remove_source_branch": True,
        }
    )
    right = project.mergerequests.create({"source_branch": "right", "target_branch": "main", "title": "right"})
    left.merge()
    assert left.squash_commit_sha is not None
    assert fake.branch_sha("dev/app", "left") is None, "remove_source_branch deleted it after the merge"
    assert left.merge_commit_sha == fake.branch_sha("dev/app", "main")
    conflicted = project.mergerequests.get(right.iid)
    assert (conflicted.detailed_merge_status, conflicted.has_conflicts) == ("conflict", True)
    with pytest.raises(gitlab.GitlabMRClosedError) as refused:
        conflicted.merge()
    assert refused.value.response_code == 405
