"""The repository policy (vteam.policy.repos): syntax, local roots with symlinks, and network addresses."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from vteam.errors import InvalidInput, RepositoryRefused
from vteam.policy import repos
from vteam.policy.repos import RepoPolicy, check_addresses, check_local, parse, vet
from vteam.resources import STORED, SessionSpec
from vteam.runner.git import remote_failure


def _vet(url: str, policy: RepoPolicy, field: str = "repos[0].input.url") -> repos.Vetted:
    return asyncio.run(vet(url, policy, field=field))


# --- syntax ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("http://ghp_secret123@github.com/o/r.git", "user name, password or token"),
        ("https://x-access-token:ghp_secret123@github.com/o/r.git", "user name, password or token"),
        ("git://ghp_secret123@git.example/r.git", "user name, password or token"),
        ("file://ghp_secret123@/srv/r.git", "no host"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("fd::17", "remote helper"),
        ("http::https://github.com/o/r", "remote helper"),
        ("-uhttps://github.com/o/r", "must not start with '-'"),
        ("https://-oProxyCommand=x/o/r", "starting with '-'"),
        ("https://github.com/-o/r", "starting with '-'"),
        ("/srv/git/--upload-pack=x", "starting with '-'"),
        ("host.example:-oProxyCommand=x", "starting with '-'"),
        ("-oProxyCommand=x@host:r", "must not start with '-'"),
        ("ssh://-oProxyCommand=x@host/r", "user name"),
        ("http://2130706433/x", "dotted decimal"),
        ("http://0177.0.0.1/x", "dotted decimal"),
        ("http://0x7f000001/x", "dotted decimal"),
        ("http://127.1/x", "dotted decimal"),
        ("http://%31%32%37.0.0.1/x", "host must be a name"),
        ("https://github.com/o/r?access_token=ghp_secret123", "query or fragment"),
        ("ftp://ftp.example/r", "scheme 'ftp'"),
    ],
)
def test_syntax_refusals(url: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as caught:
        parse(url)
    assert "ghp_secret123" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "kind", "host", "user"),
    [
        ("git@github.com:org/repo.git", "ssh", "github.com", "git"),
        ("ssh://git@github.com:2222/org/repo.git", "ssh", "github.com", "git"),
        ("https://GitHub.com/org/repo", "https", "github.com", None),
        ("git://git.example/repo", "git", "git.example", None),
        ("http://[::1]:8080/x.git", "http", "::1", None),
        ("/srv/git/repo.git", "local", "", None),
        ("file:///srv/git/repo.git", "local", "", None),
    ],
)
def test_what_may_be_handed_to_git(url: str, kind: str, host: str, user: str | None) -> None:
    """ssh's user name is not a secret (scp-like `git@host:path` is how most people write it), so it stays."""
    target = parse(url)
    assert (target.kind, target.host, target.user) == (kind, host, user)


def test_a_session_spec_refuses_a_token_in_the_url_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        SessionSpec.model_validate({"prompt": "x", "repos": [{"input": {"url": "https://ghp_tok3n@github.com/o/r"}}]})
    [error] = caught.value.errors()
    assert "ghp_tok3n" not in error["msg"]
    assert "user name, password or token" in error["msg"]


def test_a_refusal_names_the_field_as_an_api_error() -> None:
    with pytest.raises(RepositoryRefused) as caught:
        _vet("ext::sh", RepoPolicy(), field="repos[1].output.url")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.detail.startswith("repos[1].output.url: ")
    assert caught.value.errors[0]["loc"] == ["repos", "1", "output", "url"]


# --- local paths ----------------------------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "vteam-home"
    other_ws = home / "workspaces" / "b" / "s-1" / "repos" / "app"
    other_ws.mkdir(parents=True)
    allowed = tmp_path / "srv" / "a"
    (allowed / "app.git").mkdir(parents=True)
    elsewhere = tmp_path / "srv" / "b" / "app.git"
    elsewhere.mkdir(parents=True)
    return {"home": home, "other_ws": other_ws, "allowed": allowed, "elsewhere": elsewhere}


def _policy(layout: dict[str, Path], **extra: object) -> RepoPolicy:
    return RepoPolicy(local_roots=(str(layout["allowed"]),), forbidden_roots=(str(layout["home"]),), **extra)  # type: ignore[arg-type]


def test_a_path_under_an_allowed_root_is_fine_and_comes_back_resolved(layout: dict[str, Path]) -> None:
    assert check_local(str(layout["allowed"] / "x" / ".." / "app.git"), _policy(layout)) == str(
        layout["allowed"] / "app.git"
    )
    assert _vet(f"file://{layout['allowed']}/app.git", _policy(layout)).url == f"file://{layout['allowed']}/app.git"


def test_another_projects_repo_outside_the_roots_is_refused(layout: dict[str, Path]) -> None:
    for url in (str(layout["elsewhere"]), f"file://{layout['elsewhere']}"):
        with pytest.raises(RepositoryRefused, match="only under the folders a platform admin allows"):
            _vet(url, _policy(layout))


def test_no_roots_means_no_local_paths(layout: dict[str, Path]) -> None:
    with pytest.raises(RepositoryRefused, match="platform admin allows"):
        _vet(str(layout["allowed"] / "app.git"), RepoPolicy(forbidden_roots=(str(layout["home"]),)))


def test_vteam_home_and_other_workspaces_are_refused_even_to_a_platform_admin(layout: dict[str, Path]) -> None:
    admin = RepoPolicy(any_local=True, forbidden_roots=(str(layout["home"]),))
    assert _vet(str(layout["elsewhere"]), admin).url == str(layout["elsewhere"])
    for url in (str(layout["other_ws"]), f"file://{layout['other_ws']}", str(layout["home"])):
        with pytest.raises(RepositoryRefused, match="vTeam's own data folder"):
            _vet(url, admin)
    roots_holding_home = RepoPolicy(local_roots=(str(layout["home"].parent),), forbidden_roots=(str(layout["home"]),))
    with pytest.raises(RepositoryRefused, match="vTeam's own data folder"):
        _vet(str(layout["other_ws"]), roots_holding_home)


def test_symlinks_are_resolved_before_the_roots_are_compared(layout: dict[str, Path]) -> None:
    into_home = layout["allowed"] / "sneaky"
    into_home.symlink_to(layout["other_ws"])
    into_b = layout["allowed"] / "b-link.git"
    into_b.symlink_to(layout["elsewhere"])
    with pytest.raises(RepositoryRefused, match="vTeam's own data folder"):
        _vet(str(into_home), _policy(layout))
    with pytest.raises(RepositoryRefused, match="platform admin allows"):
        _vet(f"file://{into_b}", _policy(layout))
    root_link = layout["home"].parent / "root-link"
    root_link.symlink_to(layout["allowed"])
    via_link = RepoPolicy(local_roots=(str(root_link),), forbidden_roots=(str(layout["home"]),))
    assert check_local(str(layout["allowed"] / "app.git"), via_link) == str(layout["allowed"] / "app.git")


def test_an_admin_may_not_allow_a_root_inside_vteam_home(layout: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="vTeam's own data folder"):
        repos.check_root(str(layout["home"] / "workspaces"), (str(layout["home"]),))
    assert repos.check_root(str(layout["allowed"]) + "/", (str(layout["home"]),)) == str(layout["allowed"])


@pytest.mark.parametrize("root", ["/", "HOME_PARENT", "LINK_TO_HOME_PARENT"])
def test_an_admin_may_not_allow_a_root_holding_vteam_home(layout: dict[str, Path], root: str) -> None:
    """A root such as `/` would make every path look allowed but vTeam's: the policy refuses it outright."""
    link = layout["allowed"].parent / "to-home-parent"
    link.symlink_to(layout["home"].parent)
    given = {"HOME_PARENT": str(layout["home"].parent), "LINK_TO_HOME_PARENT": str(link)}.get(root, root)
    with pytest.raises(ValueError, match="holds vTeam's own data folder"):
        repos.check_root(given, (str(layout["home"]),))


def test_a_local_path_swapped_for_a_symlink_after_the_check_is_refused_on_the_recheck(layout: dict[str, Path]) -> None:
    """git opens the path by name after `vet`: the runner checks it again around git's use and notices the swap."""
    policy = _policy(layout)
    checked = _vet(str(layout["allowed"] / "app.git"), policy)
    asyncio.run(repos.recheck(checked, policy, field="repos[0].input.url"))
    (layout["allowed"] / "app.git").rename(layout["allowed"] / "moved.git")
    (layout["allowed"] / "app.git").symlink_to(layout["allowed"] / "moved.git")
    with pytest.raises(RepositoryRefused, match="local path changed"):
        asyncio.run(repos.recheck(checked, policy, field="repos[0].input.url"))
    (layout["allowed"] / "app.git").unlink()
    (layout["allowed"] / "app.git").symlink_to(layout["elsewhere"])
    with pytest.raises(RepositoryRefused, match="platform admin allows"):
        asyncio.run(repos.recheck(checked, policy, field="repos[0].input.url"))


# --- network addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address refused, not one bound to
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(RepositoryRefused, match=reason):
        check_addresses("git.example", [address], RepoPolicy(), field="repos[0].input.url")


def test_one_bad_address_among_good_ones_is_enough() -> None:
    with pytest.raises(RepositoryRefused, match="loopback"):
        check_addresses("git.example", ["140.82.112.3", "127.0.0.1"], RepoPolicy())
    check_addresses("git.example", ["140.82.112.3", "2606:50c0:8000::153"], RepoPolicy())


def test_an_operator_allows_by_name_address_or_range_but_not_the_service_network() -> None:
    policy = RepoPolicy(
        allow_hosts=("git.internal", "127.0.0.1", "10.0.0.0/8", "fd12::/16"),
        service_ranges=("10.96.0.0/12",),
    )
    check_addresses("git.internal", ["10.96.0.1"], policy)
    check_addresses("localhost", ["127.0.0.1"], policy)
    check_addresses("gitlab.corp", ["10.1.2.3", "fd12::5"], policy)
    with pytest.raises(RepositoryRefused, match="service network"):
        check_addresses("kubernetes.default", ["10.96.0.1"], policy)
    with pytest.raises(RepositoryRefused, match="loopback"):
        check_addresses("localhost", ["::1"], policy)
    assert (
        RepoPolicy(allow_hosts=("10.96.0.1",), service_ranges=("10.96.0.0/12",)).address_refusal(
            ipaddress.ip_address("10.96.0.1")
        )
        is None
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8080/x.git",
        "http://[::1]/x.git",
        "http://[::ffff:127.0.0.1]/x.git",
        "https://localhost/x.git",
        "git://10.0.0.1/x.git",
        "ssh://git@192.168.0.10/x.git",
        "git@127.0.0.1:x.git",
    ],
)
def test_vet_refuses_urls_aimed_inside(url: str) -> None:
    with pytest.raises(RepositoryRefused, match=r"^repos\[0\]\.input\.url: host .* VTEAM_REPO_ALLOW_HOSTS"):
        _vet(url, RepoPolicy())


def test_the_api_lets_an_unresolvable_name_through_and_the_runner_does_not() -> None:
    unresolvable = "https://no-such-host.invalid/x.git"
    assert asyncio.run(vet(unresolvable, RepoPolicy(), field="f", resolved_only=False)).address is None
    with pytest.raises(RepositoryRefused, match="could not be resolved"):
        _vet(unresolvable, RepoPolicy())


def test_git_is_pinned_to_the_address_that_was_checked() -> None:
    policy = RepoPolicy(allow_hosts=("127.0.0.0/8", "::1"))
    http = _vet("http://localhost:8080/x.git", policy)
    assert http.address in ("127.0.0.1", "::1")
    shown = ",".join(f"[{a}]" if ":" in a else a for a in http.addresses)
    assert http.git_config() == [
        "-c",
        "http.followRedirects=false",
        "-c",
        f"http.curloptResolve=localhost:8080:{shown}",
    ]
    ssh = _vet("git@localhost:x.git", policy)
    assert ssh.ssh_options() == ["-o", f"HostName={ssh.address}", "-o", "HostKeyAlias=localhost"]
    plain = _vet("git://127.0.0.1:9418/x.git", policy)
    assert plain.url == "git://127.0.0.1:9418/x.git"
    assert policy.git_protocols == "http:https:ssh:git"
    assert RepoPolicy(any_local=True).git_protocols == "http:https:ssh:git:file"


def test_a_session_stored_under_the_old_rules_still_loads_and_the_runner_refuses_it() -> None:
    """`https://user@host` was accepted before; a stored one must not break a project's listing."""
    body = {"prompt": "x", "repos": [{"input": {"url": "https://olduser@github.com/o/r"}}]}
    with pytest.raises(ValidationError):
        SessionSpec.model_validate(body)
    assert SessionSpec.model_validate(body, context=STORED).repos[0].input.url == "https://olduser@github.com/o/r"
    with pytest.raises(RepositoryRefused, match="user name, password or token"):
        _vet("https://olduser@github.com/o/r", RepoPolicy())


def test_a_remote_failure_is_told_in_vteams_words() -> None:
    answer = "fatal: unable to access 'http://h/x/': The requested URL returned error: 401\nremote: SECRET-BODY"
    assert remote_failure(answer) == "repository not found or access denied"
    assert remote_failure("fatal: unable to access: Failed to connect to 10.0.0.1 port 80") == "could not connect"
    assert "SECRET-BODY" not in remote_failure("remote: SECRET-BODY")
