"""Which URLs may become links: http(s) with a host, nothing a browser would run or read differently."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vteam.api.schemas import RunnerReport
from vteam.policy.links import MAX_LINK_LENGTH, check_link, is_safe_link, link_problem
from vteam.resources import PullRequestStatus, RepoStatus
from vteam.web.pages import safe_href

LINKS = [
    "https://github.com/acme/app/pull/7",
    "http://127.0.0.1:8099/acme/app/-/merge_requests/3",
    "HTTPS://gitlab.example.com/group/sub/app/-/merge_requests/1",
    "https://[::1]:8443/pr/1",
]
NOT_LINKS = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript\n:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/pr/1",
    "/relative/pr/1",
    "https:/no-host",
    "https://",
    "https:\\\\evil.example\\pr",
    "https://evil.example/a b",
    "https://evil.example/\x00",
    "https://user:pass@evil.example/pr/1",
    "https://evil.example:notaport/",
    "",
    "https://e.example/" + "a" * MAX_LINK_LENGTH,
]


@pytest.mark.parametrize("url", LINKS)
def test_web_urls_become_links(url: str) -> None:
    assert link_problem(url) is None
    assert is_safe_link(url)
    assert check_link(url) == url
    assert safe_href(url) == url


@pytest.mark.parametrize("url", NOT_LINKS)
def test_anything_else_is_refused_with_a_reason(url: str) -> None:
    assert link_problem(url)
    assert not is_safe_link(url)
    with pytest.raises(ValueError, match="only http and https"):
        check_link(url)
    assert safe_href(url) == ""


def test_non_strings_are_never_links() -> None:
    assert not is_safe_link(None)
    assert not is_safe_link(42)
    assert safe_href(None) == ""


def test_a_pull_request_record_refuses_a_script_url() -> None:
    with pytest.raises(ValidationError):
        PullRequestStatus(url="javascript:alert(1)", number=1, forge="github", repo="a/b", head="x", base="main")


def test_a_stored_repo_status_drops_urls_that_may_not_be_links() -> None:
    """A status written before the check (or by an old runner) loads, without the link."""
    status = RepoStatus.model_validate(
        {
            "url": "https://github.com/a/b",
            "pullRequestUrl": "javascript:alert(1)",
            "pullRequest": {
                "url": "data:text/html,x",
                "number": 1,
                "forge": "github",
                "repo": "a/b",
                "head": "x",
                "base": "m",
            },
        }
    )
    assert status.pull_request_url is None
    assert status.pull_request is None


def test_a_runner_report_cannot_set_pull_request_fields() -> None:
    report = RunnerReport.model_validate(
        {
            "final": True,
            "repos": [
                {
                    "url": "https://github.com/a/b",
                    "pushed": True,
                    "pullRequestUrl": "https://evil.example/pr/1",
                    "pullRequest": {
                        "url": "https://evil.example/pr/1",
                        "number": 1,
                        "forge": "github",
                        "repo": "a/b",
                        "head": "x",
                        "base": "main",
                    },
                }
            ],
        }
    )
    assert report.repos is not None
    assert report.repos[0].pushed
    assert report.repos[0].pull_request is None
    assert report.repos[0].pull_request_url is None
