"""The forge layer's pure parts: repo URLs, merge methods, change-set text, the ETag cache, GitHub errors
and retries, and the GitHub App's signed link state. No network: githubkit's exceptions are built from
real httpx responses, as githubkit itself builds them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit.exception import (
    PrimaryRateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
    SecondaryRateLimitExceeded,
)
from githubkit.response import Response
from githubkit.retry import RetryOption

from vteam.errors import Forbidden, InvalidInput, NotFound, RateLimited
from vteam.forges import github_app
from vteam.forges.base import ForgeUnavailable, choose_merge_method, parse_gitmodules
from vteam.forges.cache import Cached, EtagCache
from vteam.forges.changeset import MARKER, TITLE_LIMIT, body_for, title_for
from vteam.forges.github import GitHubForge, RateLimitRetry, failure
from vteam.forges.github_app import GitHubApp
from vteam.forges.urls import host_of, repo_ref, split
from vteam.resources import AgenticSession, ObjectMeta, PullRequestStatus, SessionSpec
from vteam.resources.validation import resolve_relative_url

# --- repo URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("https://github.com/owner/name", "github.com", "owner/name"),
        ("https://github.com/owner/name.git", "github.com", "owner/name"),
        ("https://github.com/owner/name.git/", "github.com", "owner/name"),
        ("https://github.com/owner/name//", "github.com", "owner/name"),
        ("http://127.0.0.1:8000/group/sub/proj.git", "127.0.0.1:8000", "group/sub/proj"),
        ("ssh://git@github.com/owner/name.git", "github.com", "owner/name"),
        ("git@github.com:owner/name.git", "github.com", "owner/name"),
        ("github.com:owner/name", "github.com", "owner/name"),
        ("HTTPS://GitHub.COM/Owner/Name", "github.com", "Owner/Name"),
        ("GIT@GitHub.com:Owner/Name.git", "github.com", "Owner/Name"),
    ],
)
def test_split_reads_host_and_path_from_every_url_form_git_takes(url: str, host: str, path: str) -> None:
    assert split(url) == (host, path)


@pytest.mark.parametrize("url", ["/srv/git/thing.git", "../sibling", "relative/repo", "./x"])
def test_local_paths_have_no_host_and_are_plain_git(url: str) -> None:
    assert split(url) == ("", url)
    ref = repo_ref(url, github_host="github.com", gitlab_host="gitlab.com")
    assert ref.kind == "git"
    assert ref.host == ""
    assert ref.url == url


def _ref(url: str) -> Any:
    return repo_ref(url, github_host=host_of("https://GitHub.com/"), gitlab_host=host_of("http://127.0.0.1:8929"))


def test_github_repo_is_owner_and_name() -> None:
    ref = _ref("git@github.com:octo/hello.git")
    assert (ref.kind, ref.path, ref.owner, ref.name) == ("github", "octo/hello", "octo", "hello")
    assert ref.url == "git@github.com:octo/hello.git"


@pytest.mark.parametrize("url", ["https://github.com/octo", "https://github.com/octo/hello/tree/main"])
def test_github_needs_exactly_owner_and_name(url: str) -> None:
    assert _ref(url).kind == "git"


def test_gitlab_allows_nested_groups() -> None:
    ref = _ref("http://127.0.0.1:8929/group/sub/proj.git")
    assert (ref.kind, ref.path, ref.owner, ref.name) == ("gitlab", "group/sub/proj", "group/sub", "proj")
    assert _ref("http://127.0.0.1:8929/group/proj").kind == "gitlab"
    assert _ref("http://127.0.0.1:8929/proj").kind == "git"


def test_hosts_compare_case_insensitively() -> None:
    assert _ref("https://GITHUB.COM/octo/hello").kind == "github"
    assert _ref("ssh://git@GitHub.com/octo/hello.git").kind == "github"


def test_another_port_on_the_same_address_is_another_host() -> None:
    assert _ref("http://127.0.0.1:9999/group/proj").kind == "git"
    assert _ref("http://127.0.0.1/group/proj").kind == "git"


def test_unknown_host_is_plain_git() -> None:
    ref = _ref("https://git.example.org/team/repo.git")
    assert (ref.kind, ref.host, ref.path) == ("git", "git.example.org", "team/repo")


# --- merge methods and .gitmodules -------------------------------------------------------------------------


def test_preferred_merge_method_is_used_without_a_note() -> None:
    assert choose_merge_method("squash", {"merge": True, "squash": True, "rebase": True}, "o/r") == ("squash", None)


@pytest.mark.parametrize(
    ("allowed", "chosen"),
    [
        ({"merge": True, "squash": True, "rebase": True}, "merge"),
        ({"merge": False, "squash": True, "rebase": True}, "squash"),
        ({"merge": False, "squash": False, "rebase": True}, "rebase"),
        ({"rebase": True}, "rebase"),
    ],
)
def test_forbidden_preference_falls_back_in_order_with_a_note(allowed: dict[str, bool], chosen: str) -> None:
    method, note = choose_merge_method("fast-forward", allowed, "octo/hello")
    assert method == chosen
    assert note is not None
    assert "octo/hello" in note
    assert chosen in note
    assert "fast-forward" in note


def test_forbidden_squash_falls_back_to_merge() -> None:
    method, note = choose_merge_method("squash", {"merge": True, "squash": False, "rebase": True}, "octo/hello")
    assert method == "merge"
    assert note is not None
    assert "octo/hello" in note
    assert "squash" in note


def test_no_allowed_merge_method_says_how_to_fix_it() -> None:
    with pytest.raises(ForgeUnavailable) as caught:
        choose_merge_method("merge", {"merge": False, "squash": False, "rebase": False}, "octo/hello")
    message = str(caught.value)
    assert "octo/hello" in message
    assert "settings" in message
    assert "Pull Requests" in message


def test_parse_gitmodules_reads_every_submodule() -> None:
    text = """
[core]
    bare = false
[submodule "lib"]
    path = vendor/lib
    url = ../lib.git
[submodule "docs"]
    path = docs
    url = https://github.com/org/docs.git
    branch = main
[submodule "broken"]
    path = nowhere
"""
    assert parse_gitmodules(text) == {"vendor/lib": "../lib.git", "docs": "https://github.com/org/docs.git"}


@pytest.mark.parametrize("text", ['[submodule "x"\npath = a', "path = a\nurl = b\n", "\x00garbage = = ["])
def test_malformed_gitmodules_give_nothing(text: str) -> None:
    assert parse_gitmodules(text) == {}


def test_empty_gitmodules_give_nothing() -> None:
    assert parse_gitmodules("") == {}


# --- change-set title and body -----------------------------------------------------------------------------


def _session(prompt: str = "Fix the login page\nand add a test", display_name: str | None = None) -> AgenticSession:
    return AgenticSession(
        metadata=ObjectMeta(name="fix-login", namespace="team-a"),
        spec=SessionSpec(prompt=prompt, display_name=display_name),
    )


def _pr(repo: str, number: int) -> PullRequestStatus:
    return PullRequestStatus(
        url=f"https://github.com/{repo}/pull/{number}", number=number, forge="github", repo=repo, head="b", base="main"
    )


def test_display_name_wins_the_title() -> None:
    assert title_for(_session(display_name="Login fix"), "## Summary\nDid things") == "Login fix"


def test_title_is_first_line_of_the_result_without_markdown_heading() -> None:
    assert title_for(_session(), "\n\n  \n## Fixed the flaky login test\n\nDetails follow.") == (
        "Fixed the flaky login test"
    )
    assert title_for(_session(), "> - Quoted bullet line") == "Quoted bullet line"


def test_long_title_is_cut_to_the_limit_with_an_ellipsis() -> None:
    title = title_for(_session(), "word " * 40)
    assert len(title) <= TITLE_LIMIT == 72
    assert title.endswith("…")
    assert title.startswith("word word")
    assert not title[:-1].endswith(" ")
    exact = "x" * 72
    assert title_for(_session(), exact) == exact
    assert title_for(_session(), "y" * 73) == "y" * 71 + "…"


def test_title_falls_back_to_the_prompt() -> None:
    assert title_for(_session(), None) == "Fix the login page"
    assert title_for(_session(), "  \n \n# \n") == "Fix the login page"


def test_title_falls_back_to_the_session_name_when_nothing_has_text() -> None:
    assert title_for(_session(prompt="#"), None) == "vteam: fix-login"


def test_body_links_the_session_and_siblings_and_carries_the_marker() -> None:
    siblings = [_pr("org/api", 7), _pr("org/web", 12)]
    body = body_for(
        _session(),
        "Fixed the login page.\n\nAdded a regression test.",
        "https://vteam.example/projects/team-a/sessions/fix-login",
        siblings,
        "org/api does not allow squash merges; the change set uses merge",
    )
    assert body.startswith("Fixed the login page.")
    assert "https://vteam.example/projects/team-a/sessions/fix-login" in body
    assert "team-a/fix-login" in body
    assert "https://github.com/org/api/pull/7" in body
    assert "https://github.com/org/web/pull/12" in body
    assert "org/api does not allow squash merges" in body
    assert MARKER in body


def test_body_without_result_quotes_the_prompt_and_lists_no_siblings() -> None:
    body = body_for(_session(), None, "https://vteam.example/s", [])
    assert "fix-login" in body
    assert "Fix the login page" in body
    assert "and add a test" not in body
    assert "also includes" not in body
    assert "Merge method" not in body
    assert MARKER in body


# --- submodule URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "url", "resolved"),
    [
        ("https://github.com/org/parent.git", "../child.git", "https://github.com/org/child.git"),
        ("https://github.com/org/parent", "../child", "https://github.com/org/child"),
        ("https://github.com/org/parent/", "../child", "https://github.com/org/child"),
        ("https://github.com/org/parent.git", "./x", "https://github.com/org/parent.git/x"),
        ("http://127.0.0.1:8000/g/sub/parent.git", "../../other/lib.git", "http://127.0.0.1:8000/g/other/lib.git"),
        ("https://github.com/org/parent.git", "https://gitlab.com/a/b.git", "https://gitlab.com/a/b.git"),
        ("https://github.com/org/parent.git", "git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("/srv/git/parent", "../child", "/srv/git/child"),
        ("/srv/git/parent/", "../child.git", "/srv/git/child.git"),
        ("/srv/git/parent", "./sub", "/srv/git/parent/sub"),
        ("git@github.com:org/parent.git", "../child.git", "git@github.com:org/child.git"),
    ],
)
def test_submodule_urls_resolve_like_git(parent: str, url: str, resolved: str) -> None:
    assert resolve_relative_url(parent, url) == resolved


# --- ETag cache --------------------------------------------------------------------------------------------


def test_cache_keeps_each_callers_answers_apart() -> None:
    cache = EtagCache()
    alice, bob = Cached('"a"', {"private": "alice's"}), Cached('"b"', {"private": "bob's"})
    cache.put("token-alice", "/repos/o/r", alice)
    assert cache.get("token-bob", "/repos/o/r") is None
    assert cache.get(None, "/repos/o/r") is None
    cache.put("token-bob", "/repos/o/r", bob)
    assert cache.get("token-alice", "/repos/o/r") == alice
    assert cache.get("token-bob", "/repos/o/r") == bob
    assert cache.get("token-alice", "/repos/o/other") is None


def test_cache_overwrites_an_entry_for_the_same_caller() -> None:
    cache = EtagCache()
    cache.put(None, "/u", Cached('"1"', 1))
    cache.put(None, "/u", Cached('"2"', 2, link="<x>"))
    assert cache.get(None, "/u") == Cached('"2"', 2, link="<x>")


def test_cache_evicts_the_least_recently_used() -> None:
    cache = EtagCache(size=2)
    cache.put("t", "/1", Cached("e1", 1))
    cache.put("t", "/2", Cached("e2", 2))
    assert cache.get("t", "/1") is not None  # /1 is now the most recent
    cache.put("t", "/3", Cached("e3", 3))
    assert cache.get("t", "/2") is None
    assert cache.get("t", "/1") == Cached("e1", 1)
    assert cache.get("t", "/3") == Cached("e3", 3)


# --- GitHub errors and retries -----------------------------------------------------------------------------

SECRET = "ghp_s3cr3tt0kenvalue0123456789"


def _response(status: int, body: Any = None) -> Response[Any, Any]:
    request = httpx.Request("GET", "https://api.github.com/repos/o/r", headers={"Authorization": f"token {SECRET}"})
    raw = (
        httpx.Response(status, json=body, request=request)
        if body is not None
        else httpx.Response(status, request=request)
    )
    return Response(raw, Any)


def _rate_limited(seconds: float, kind: type[PrimaryRateLimitExceeded] = PrimaryRateLimitExceeded) -> Any:
    return kind(_response(403, {"message": "API rate limit exceeded"}), timedelta(seconds=seconds))


def test_short_rate_limit_is_retried_just_after_its_reset() -> None:
    retry = RateLimitRetry(max_wait=60, max_retry=3)
    assert retry(_rate_limited(5), 0) == RetryOption(True, timedelta(seconds=6))
    assert retry(_rate_limited(0, SecondaryRateLimitExceeded), 0) == RetryOption(True, timedelta(seconds=1))
    assert retry(_rate_limited(59), 0).do_retry  # 60 s is exactly max_wait


def test_long_rate_limit_is_not_waited_for() -> None:
    retry = RateLimitRetry(max_wait=60, max_retry=3)
    assert not retry(_rate_limited(60), 0).do_retry
    assert not retry(_rate_limited(3600), 0).do_retry


def test_rate_limit_retries_stop_after_max_retry() -> None:
    retry = RateLimitRetry(max_wait=60, max_retry=3)
    assert [retry(_rate_limited(1), n).do_retry for n in range(5)] == [True, True, True, False, False]


def test_server_errors_are_retried_and_client_errors_are_not() -> None:
    retry = RateLimitRetry(max_wait=60)
    assert retry(RequestFailed(_response(502)), 0).do_retry
    assert not retry(RequestFailed(_response(404)), 0).do_retry
    assert not retry(RequestFailed(_response(422)), 0).do_retry


def test_rate_limit_maps_to_429_with_a_retry_after_of_at_least_a_second() -> None:
    err = failure(_rate_limited(0), "listing branches")
    assert isinstance(err, RateLimited)
    assert err.status == 429
    assert err.retry_after >= 1
    assert "listing branches" in str(err)
    later = failure(_rate_limited(30), "listing branches")
    assert isinstance(later, RateLimited)
    assert later.retry_after == 31


def test_404_maps_to_not_found() -> None:
    err = failure(RequestFailed(_response(404, {"message": "Not Found"})), "reading o/r")
    assert isinstance(err, NotFound)
    assert "reading o/r" in str(err)


def test_422_maps_to_invalid_input_with_githubs_message() -> None:
    body = {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "message": "A pull request already exists for o:b."}],
    }
    err = failure(RequestFailed(_response(422, body)), "opening a pull request on o/r")
    assert isinstance(err, InvalidInput)
    assert "Validation Failed" in str(err)
    assert "A pull request already exists for o:b." in str(err)


def test_401_maps_to_unavailable_naming_the_credentials() -> None:
    err = failure(RequestFailed(_response(401, {"message": "Bad credentials"})), "reading the token's user")
    assert isinstance(err, ForgeUnavailable)
    assert err.status == 502
    assert "credentials" in str(err)
    assert "Bad credentials" in str(err)


def test_403_maps_to_forbidden_and_5xx_to_unavailable() -> None:
    assert isinstance(failure(RequestFailed(_response(403, {"message": "nope"})), "x"), Forbidden)
    err = failure(RequestFailed(_response(503, "not json at all")), "x")
    assert isinstance(err, ForgeUnavailable)
    assert "503" in str(err)


def test_timeouts_and_connection_failures_map_to_unavailable() -> None:
    request = httpx.Request("GET", "https://api.github.com/x", headers={"Authorization": f"token {SECRET}"})
    timeout = failure(RequestTimeout(httpx.ReadTimeout("timed out", request=request)), "reading o/r")
    assert isinstance(timeout, ForgeUnavailable)
    assert "in time" in str(timeout)
    refused = failure(RequestError(httpx.ConnectError(f"refused {SECRET}", request=request)), "reading o/r")
    assert isinstance(refused, ForgeUnavailable)
    assert "could not be reached" in str(refused)
    assert SECRET not in str(refused)


@pytest.mark.parametrize("status", [401, 403, 404, 422, 500])
def test_no_error_message_carries_the_token(status: int) -> None:
    err = failure(RequestFailed(_response(status, {"message": "Bad"})), "reading o/r")
    assert SECRET not in str(err)
    assert SECRET not in repr(err)
    assert SECRET not in str(failure(_rate_limited(5), "reading o/r"))


# --- GitHub App link state ---------------------------------------------------------------------------------

_KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)


def _app(forge: GitHubForge, signing_key: bytes = b"signing-key-1", slug: str | None = "vteam-dev") -> GitHubApp:
    return GitHubApp(
        forge,
        app_id="1",
        private_key=_KEY,
        slug=slug,
        client_id=None,
        client_secret=None,
        signing_key=signing_key,
    )


@pytest.fixture
async def forge() -> AsyncIterator[GitHubForge]:
    made = GitHubForge(
        web_url="http://127.0.0.1:9/",
        api_url="http://127.0.0.1:9/api/v3",
        timeout=1,
        max_wait=0,
        fork_wait=0,
        cache=EtagCache(),
    )
    yield made
    await made.close()


async def test_state_is_accepted_once_for_its_user(forge: GitHubForge) -> None:
    app = _app(forge)
    state = app.state_for("alice")
    app.check_state(state, "alice")
    with pytest.raises(Forbidden, match="already used"):
        app.check_state(state, "alice")


async def test_states_are_unique(forge: GitHubForge) -> None:
    app = _app(forge)
    first, second = app.state_for("alice"), app.state_for("alice")
    assert first != second
    app.check_state(second, "alice")
    app.check_state(first, "alice")


async def test_state_for_another_user_is_refused(forge: GitHubForge) -> None:
    app = _app(forge)
    state = app.state_for("alice")
    with pytest.raises(Forbidden):
        app.check_state(state, "mallory")
    app.check_state(state, "alice")  # the refusal did not use it up


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_tampered_state_is_refused(forge: GitHubForge) -> None:
    app = _app(forge)
    encoded, signature = app.state_for("alice").split(".")
    claims = json.loads(_unb64(encoded))
    claims["u"] = "mallory"
    with pytest.raises(Forbidden):
        app.check_state(_b64(json.dumps(claims).encode()) + "." + signature, "mallory")
    claims = json.loads(_unb64(encoded))
    claims["e"] += 10_000
    with pytest.raises(Forbidden):
        app.check_state(_b64(json.dumps(claims).encode()) + "." + signature, "alice")
    flipped = bytearray(_unb64(signature))
    flipped[0] ^= 1
    with pytest.raises(Forbidden):
        app.check_state(encoded + "." + _b64(bytes(flipped)), "alice")


async def test_state_signed_with_another_key_is_refused(forge: GitHubForge) -> None:
    state = _app(forge, signing_key=b"other-key").state_for("alice")
    with pytest.raises(Forbidden):
        _app(forge).check_state(state, "alice")


@pytest.mark.parametrize("garbage", ["", "nodot", "a.b", "!!!.???", "....", "eyJ1IjoiYWxpY2UifQ.", "\u00e9.\u00e9"])
async def test_garbage_state_is_refused(forge: GitHubForge, garbage: str) -> None:
    with pytest.raises(Forbidden):
        _app(forge).check_state(garbage, "alice")


async def test_expired_state_is_refused(forge: GitHubForge, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(forge)
    state = app.state_for("alice")
    later = time.time() + github_app.STATE_TTL + 1
    monkeypatch.setattr(github_app, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(Forbidden, match="expired"):
        app.check_state(state, "alice")


async def test_state_issued_with_no_lifetime_is_refused(forge: GitHubForge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github_app, "STATE_TTL", -1.0)
    app = _app(forge)
    with pytest.raises(Forbidden, match="expired"):
        app.check_state(app.state_for("alice"), "alice")


async def test_a_used_state_cannot_be_replayed_in_another_spelling(forge: GitHubForge) -> None:
    app = _app(forge)
    state = app.state_for("alice")
    app.check_state(state, "alice")
    encoded, signature = state.split(".")
    with pytest.raises(Forbidden):  # four characters base64 skips: the same bytes, another string
        app.check_state(encoded + "." + signature[:4] + "!!!!" + signature[4:], "alice")


async def test_install_url_uses_the_slug_and_encodes_the_state(forge: GitHubForge) -> None:
    app = _app(forge)
    url = app.install_url("a b&c=d/é")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://127.0.0.1:9/apps/vteam-dev/installations/new"
    assert "a b" not in url
    assert "&c=" not in url
    assert parse_qs(parts.query) == {"state": ["a b&c=d/é"]}
    state = app.state_for("alice")
    assert parse_qs(urlsplit(app.install_url(state)).query)["state"] == [state]


async def test_install_url_without_a_slug_says_what_to_set(forge: GitHubForge) -> None:
    with pytest.raises(InvalidInput, match="VTEAM_GITHUB_APP_SLUG"):
        _app(forge, slug=None).install_url("s")


def test_an_explicit_default_port_is_the_same_host() -> None:
    assert split("https://github.com:443/o/n.git") == ("github.com", "o/n")
    assert repo_ref("https://github.com:443/o/n.git", github_host="github.com", gitlab_host="gitlab.com").kind == (
        "github"
    )
    assert split("ssh://git@github.com:22/o/n.git") == ("github.com", "o/n")


def test_a_relative_submodule_of_an_scp_like_parent_keeps_its_host() -> None:
    assert resolve_relative_url("git@github.com:org/parent.git", "../child.git") == "git@github.com:org/child.git"
    assert resolve_relative_url("git@github.com:parent.git", "../child.git") == "git@github.com:child.git"


def test_a_title_drops_markdown_emphasis_and_a_blank_prompt_does_not_break_the_body() -> None:
    session = AgenticSession(metadata=ObjectMeta(name="s", namespace="p"), spec=SessionSpec(prompt="   "))
    assert title_for(session, "**Fixed** the `parser`") == "Fixed the parser"
    assert "vTeam session" in body_for(session, None, "http://x/s", [])
