"""The App's installation on a repo is looked up once, not once per credential, and forgotten when GitHub
says it is gone: the lookups count against the App's hourly rate limit. Against the fake GitHub over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.fake_github import FakeGitHub
from vteam.errors import NotFound, VteamError
from vteam.forges.base import RepoRef
from vteam.forges.cache import EtagCache
from vteam.forges.github import GitHubForge
from vteam.forges.github_app import GitHubApp


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path) as fake:
        yield fake
        fake.check()


@pytest.fixture
async def forge(github: FakeGitHub) -> AsyncIterator[GitHubForge]:
    made = GitHubForge(
        web_url=github.url, api_url=github.api_url, timeout=10, max_wait=0, fork_wait=5, cache=EtagCache()
    )
    yield made
    await made.close()


def _lookups(github: FakeGitHub, repo: str) -> int:
    return sum(
        1 for method, path, _ in github.requests if method == "GET" and path.endswith(f"/repos/{repo}/installation")
    )


async def test_the_installation_is_looked_up_once_for_many_credentials(github: FakeGitHub, forge: GitHubForge) -> None:
    github.add_user("octo")
    github.create_repo("octo", "svc", files={"README.md": "hi\n"})
    made = github.create_app(slug="vteam-test")
    installed = github.install_app(made, "octo")
    app = GitHubApp(
        forge,
        app_id=str(made.app_id),
        private_key=made.private_key_pem,
        slug=made.slug,
        client_id=None,
        client_secret=None,
        signing_key=b"k",
    )
    github.installation_token_ttl = 60.0  # shorter than vTeam's early renewal: every token() mints anew
    repo = RepoRef(kind="github", url=f"{github.url}/octo/svc.git", host="127.0.0.1", path="octo/svc")
    for _ in range(20):
        installation = await app.installation_for(repo)
        assert installation == installed
        assert await app.token(installation, (repo.name,))
    assert _lookups(github, "octo/svc") == 1

    github.uninstall_app(installed)
    with pytest.raises(VteamError) as refused:
        await app.token(installed, (repo.name,))
    assert isinstance(refused.value, NotFound)
    assert await app.installation_for(repo) is None
    assert _lookups(github, "octo/svc") == 2
