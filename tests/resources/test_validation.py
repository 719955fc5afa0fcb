"""Name, label, repository URL, branch and environment checks shared by every resource."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vteam.resources.validation import (
    check_branch,
    check_env_name,
    check_labels,
    check_name,
    check_repo_url,
    split_repo_arg,
)


@pytest.mark.parametrize("name", ["a", "0", "my-project-1", "a" * 63, "x1-2-3y"])
def test_check_name_accepts_dns1123_labels(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize("name", ["A", "Project", "-a", "a-", "a_b", "a.b", "a b", "ü", "a/b"])
def test_check_name_rejects_non_dns1123(name: str) -> None:
    with pytest.raises(ValueError, match="DNS-1123"):
        check_name(name)


def test_check_name_rejects_empty_and_too_long_with_reason() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        check_name("")
    with pytest.raises(ValueError, match="longer than 63"):
        check_name("a" * 64)


def test_check_name_uses_the_callers_word() -> None:
    with pytest.raises(ValueError, match=r"^project name 'Bad'"):
        check_name("Bad", "project name")


def test_check_labels_accepts_kubernetes_style_labels() -> None:
    check_labels(
        {
            "app": "web",
            "team.example.com/owner": "a-b_c.D9",
            "Empty_ok": "",
            "x" * 63: "y" * 63,
        }
    )


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [
        ({"-app": "x"}, "label key '-app'"),
        ({"app-": "x"}, "label key 'app-'"),
        ({"a" * 64: "x"}, "label key"),
        ({"example.com/": "x"}, "label key 'example.com/'"),
        ({"Example.com/app": "x"}, "label prefix of 'Example.com/app'"),
        ({"my_team.io/app": "x"}, "label prefix"),
        ({"app": "has space"}, "label value 'has space' of 'app'"),
        ({"app": "-x"}, "label value '-x'"),
        ({"app": "v" * 64}, "label value"),
    ],
)
def test_check_labels_rejects_bad_keys_and_values(labels: dict[str, str], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        check_labels(labels)


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/repo",
        "/tmp/repo.git",
        "file:///srv/git/repo",
        "https://github.com/org/repo.git",
        "http://git.example:8080/org/repo",
        "ssh://git@github.com/org/repo.git",
        "ssh://github.com:2222/org/repo",
        "git://git.example/repo",
        "git@github.com:org/repo.git",
        "github.com:org/repo",
    ],
)
def test_check_repo_url_accepts_clonable_urls(url: str) -> None:
    check_repo_url(url)


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("", "must not be empty"),
        (" /srv/repo", "surrounding spaces"),
        ("/srv/repo\n", "surrounding spaces"),
        ("relative/path", "not a URL vTeam can clone"),
        ("./repo", "not a URL vTeam can clone"),
        ("repo", "not a URL vTeam can clone"),
        ("file://relative", "needs an absolute path"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("fd::17", "remote helper"),
        ("--upload-pack=touch /tmp/pwned", "must not start with '-'"),
        ("-https://github.com/org/repo", "must not start with '-'"),
        ("https://user:hunter2@github.com/org/repo", "password or token"),
        ("https://user@github.com/org/repo", "user name, password or token"),
        ("ftp://ftp.example/repo", "scheme 'ftp'"),
        ("svn+ssh://host/repo", r"scheme 'svn\+ssh'"),
        ("https://github.com/org/re\x00po", "control characters"),
        ("https://github.com/org/\trepo", "control characters"),
        ("https://github.com/org/re\x7fpo", "control characters"),
        ("https:///org/repo", "has no host"),
        ("https://github.com", "no repository path"),
        ("https://github.com/", "no repository path"),
        ("ssh://git@host:/", "no repository path"),
    ],
)
def test_check_repo_url_rejects_unsafe_or_unclonable(url: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        check_repo_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@github.com/org/repo",
        "https://user:hunter2@github.com",
        "https://user:hunter2@/org/repo",
        "ftp://user:hunter2@ftp.example/repo",
    ],
)
def test_check_repo_url_error_never_echoes_a_password(url: str) -> None:
    """The message goes back to API callers and into logs; a rejected token must not travel with it."""
    with pytest.raises(ValueError, match=r".") as caught:
        check_repo_url(url)
    assert "hunter2" not in str(caught.value)


BRANCH_NAMES = [
    "main",
    "feature/x",
    "a/b/c",
    "ok-name_1.2",
    "v1.0",
    "fëature",
    "🎉",
    "x.lock.y",
    "a@b",
    "a@",
    "@@",
    "x/@",
    "a{b",
    "a;b",
    "a'b",
    "x/HEAD",
    "refs/heads/x",
    "a/-b",
    "a..b",
    "..",
    "a.lock",
    "a.lock/b",
    "x/.lock",
    ".hidden",
    "a/.b",
    "a/./b",
    ".",
    "x//y",
    "/x",
    "x/",
    "x.",
    "a@{b",
    "a@{-1}",
    "with space",
    "tab\tname",
    "new\nline",
    "del\x7fete",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "-x",
    "-",
    "HEAD",
]


@pytest.fixture(scope="module")
def outside_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("not-a-repo")


@pytest.mark.parametrize("name", BRANCH_NAMES)
def test_check_branch_agrees_with_git(name: str, outside_repo: Path) -> None:
    """`git check-ref-format --branch` is the reference; it is run outside any repository."""
    git_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    git_env["GIT_CEILING_DIRECTORIES"] = str(outside_repo.parent)
    git = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        cwd=outside_repo,
        env=git_env,
        capture_output=True,
        check=False,
    )
    git_accepts = git.returncode == 0
    try:
        check_branch(name)
        vteam_accepts = True
    except ValueError:
        vteam_accepts = False
    assert vteam_accepts == git_accepts, f"git {'accepts' if git_accepts else 'rejects'} branch {name!r}"


def test_check_branch_refuses_at_sign_alone_although_git_accepts_it() -> None:
    """git reads a lone '@' as HEAD in most commands, so vTeam is deliberately stricter here."""
    with pytest.raises(ValueError, match="current commit"):
        check_branch("@")


@pytest.mark.parametrize("name", ["", "nul\x00byte"])
def test_check_branch_rejects_names_git_cannot_even_be_given(name: str) -> None:
    with pytest.raises(ValueError, match="is not valid"):
        check_branch(name)


def test_check_branch_message_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"branch name 'a\.\.b' is not valid: it contains '\.\.'"):
        check_branch("a..b")


@pytest.mark.parametrize("name", ["FOO", "_private", "MY_VAR2", "vteam_lowercase", "HOMEDIR", "PATHS"])
def test_check_env_name_accepts_ordinary_names(name: str) -> None:
    check_env_name(name)


@pytest.mark.parametrize("name", ["VTEAM_TOKEN", "VTEAM_", "GIT_ASKPASS", "HOME", "PATH"])
def test_check_env_name_rejects_reserved_names(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_env_name(name)


@pytest.mark.parametrize("name", ["", "1ABC", "A-B", "A B", "A=B", "É"])
def test_check_env_name_rejects_malformed_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"must match \[A-Za-z_\]"):
        check_env_name(name)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("/tmp/r@main", ("/tmp/r", "main")),
        ("/tmp/r", ("/tmp/r", None)),
        ("/tmp/r@feature/x", ("/tmp/r", "feature/x")),
        ("file:///tmp/r@dev", ("file:///tmp/r", "dev")),
        ("git@github.com:org/repo.git", ("git@github.com:org/repo.git", None)),
        ("git@github.com:org/repo.git@dev", ("git@github.com:org/repo.git", "dev")),
        ("ssh://git@host.example/repo", ("ssh://git@host.example/repo", None)),
        ("ssh://git@host.example/repo@v1.0", ("ssh://git@host.example/repo", "v1.0")),
        ("https://host.example/repo@feature/x", ("https://host.example/repo", "feature/x")),
        ("https://user@host.example/repo@v1.0", ("https://user@host.example/repo@v1.0", None)),
        ("/tmp/r@a..b", ("/tmp/r@a..b", None)),
    ],
)
def test_split_repo_arg(arg: str, expected: tuple[str, str | None]) -> None:
    assert split_repo_arg(arg) == expected
