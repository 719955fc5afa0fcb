"""The project page (the sessions table, its filters, pages and live partial) and the new-session form,
as a browser sees them: HTML from a real server, signed in with the session cookie /signin sets."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.api import create_session, get_session, wait_phase
from tests.support.browser import Browser
from tests.support.server import Server
from vteam.web.sessions_page import RepoForm, SessionForm, ago, field_errors, short_repo

pytestmark = pytest.mark.integration

PHASE_BADGE = re.compile(r'<span class="badge phase phase-(\w+)" data-phase="(\w+)">(\w+)</span>')
ROW_LINK = re.compile(r'href="/projects/[\w-]+/sessions/([\w-]+)"')


def _person(server: Server, api: httpx.Client, project: str, role: str | None) -> tuple[str, str]:
    """A user with `role` in the project (none when None), and an API token of theirs."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    created = api.post("/api/users", json={"name": name})
    assert created.status_code == 201, created.text
    link = parse_qs(urlsplit(created.json()["loginLink"]).query)["token"][0]
    with httpx.Client(base_url=server.url) as http:
        login = http.post("/api/login", json={"token": link})
    assert login.status_code == 200, login.text
    if role is not None:
        bound = api.post(
            f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": name, "role": role}
        )
        assert bound.status_code == 201, bound.text
    return name, str(login.json()["token"])


@contextlib.contextmanager
def _browser(server: Server, token: str) -> Iterator[httpx.Client]:
    """A cookie-holding client signed in the way a person is: the /signin form."""
    with Browser(server.url, timeout=30) as client:
        response = client.post("/signin", data={"token": token})
        assert response.status_code == 303, response.text
        assert client.cookies.get("vteam_session")
        yield client


@pytest.fixture
def owner(server: Server, api: httpx.Client, project: str) -> Iterator[tuple[str, httpx.Client]]:
    """A project admin's browser, and their user name."""
    name, token = _person(server, api, project, "admin")
    with _browser(server, token) as browser:
        yield name, browser


def _rows(html: str) -> list[str]:
    """Session names in the table, in order."""
    table = html.split('aria-label="Sessions"', 1)[1].split("</table>", 1)[0] if 'aria-label="Sessions"' in html else ""
    return ROW_LINK.findall(table)


def test_table_lists_sessions_with_phase_badges_and_links(
    api: httpx.Client, project: str, owner: tuple[str, httpx.Client]
) -> None:
    me, browser = owner
    first = create_session(api, project, prompt="true", displayName="First one")["metadata"]["name"]
    time.sleep(1.1)  # creation times have whole seconds
    second = create_session(api, project, prompt="true", repos=[{"input": {"url": "https://example.com/org/app.git"}}])
    second_name = second["metadata"]["name"]
    wait_phase(api, project, first)

    page = browser.get(f"/projects/{project}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Test project</h1>" in html
    assert f'href="/projects/{project}/sessions/new">New session</a>' in html
    assert f'href="/projects/{project}/settings">Settings</a>' in html
    assert '<table aria-label="Sessions">' in html
    for column in ("Name", "Phase", "Age", "Framework / model", "Creator", "Repos", "Pull requests", "Cost"):
        assert f">{column}</th>" in html
    assert _rows(html) == [second_name, first], "newest first"
    badges = PHASE_BADGE.findall(html)
    assert len(badges) == 2
    assert all(a == b == c for a, b, c in badges)
    assert ("Completed",) * 3 in badges
    assert "First one" in html
    assert "org/app" in html
    assert re.search(r'<time datetime="[^"]+">(just now|\d+ min ago)</time>', html)
    assert 'hx-trigger="every 3s"' in html
    assert f'hx-get="/projects/{project}/sessions-table"' in html
    assert f'<td class="optional">{me}</td>' not in html, "the API's admin created these, not the page's viewer"


def test_empty_project_says_so(project: str, owner: tuple[str, httpx.Client]) -> None:
    html = owner[1].get(f"/projects/{project}").text
    assert "No sessions yet" in html
    assert 'id="sessions-table"' in html


def test_filters_and_search_narrow_the_table(
    server: Server, api: httpx.Client, project: str, owner: tuple[str, httpx.Client]
) -> None:
    _me, browser = owner
    editor_name, token = _person(server, api, project, "edit")
    with server.client(token=token) as editor:
        alpha = create_session(editor, project, prompt="echo alpha", labels={"team": "a"})["metadata"]["name"]
    beta = create_session(api, project, prompt="echo beta", labels={"team": "b"}, displayName="Beta work")
    beta_name = beta["metadata"]["name"]
    for name in (alpha, beta_name):
        wait_phase(api, project, name)

    def shown(**params: str) -> list[str]:
        response = browser.get(f"/projects/{project}", params=params)
        assert response.status_code == 200
        return _rows(response.text)

    assert sorted(shown()) == sorted([alpha, beta_name])
    assert shown(q="ALPHA") == [alpha], "the search matches the prompt, ignoring case"
    assert shown(q="beta work") == [beta_name], "and the display name"
    assert shown(q=alpha) == [alpha], "and the name"
    assert shown(label="team=b") == [beta_name]
    assert shown(label="team in (a,b)", q="echo") == shown()
    assert shown(creator=editor_name) == [alpha]
    assert sorted(shown(phase="Completed")) == sorted([alpha, beta_name])
    assert shown(phase="Running") == []
    html = browser.get(f"/projects/{project}", params={"phase": "Running"}).text
    assert "No session matches these filters." in html
    assert '<option value="Running" selected>' in html

    bad = browser.get(f"/projects/{project}", params={"label": "team in (a"})
    assert bad.status_code == 200
    assert 'role="alert">Label:' in bad.text
    assert 'id="filter-label"' in bad.text
    assert 'aria-invalid="true"' in bad.text


def test_pagination_keeps_filters(api: httpx.Client, project: str, owner: tuple[str, httpx.Client]) -> None:
    browser = owner[1]
    names = [create_session(api, project, prompt="true")["metadata"]["name"] for _ in range(30)]

    first = browser.get(f"/projects/{project}", params={"q": "true"}).text
    page_one = _rows(first)
    assert len(page_one) == 25
    assert ">Newer</a>" not in first
    older = re.search(r'<a rel="next" href="([^"]+)">Older</a>', first)
    assert older is not None
    target = older.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(target).query) == {"q": ["true"], "page": ["2"]}
    assert "1\u201325 of 30" in first

    second = browser.get(target).text
    page_two = _rows(second)
    assert len(page_two) == 5
    assert ">Older</a>" not in second
    newer = re.search(r'<a rel="prev" href="([^"]+)">Newer</a>', second)
    assert newer is not None
    assert parse_qs(urlsplit(newer.group(1).replace("&amp;", "&")).query) == {"q": ["true"]}
    assert sorted(page_one + page_two) == sorted(names)
    listed = api.get(f"/api/projects/{project}/agentic-sessions").json()["items"]
    created = {s["metadata"]["name"]: s["metadata"]["creationTimestamp"] for s in listed}
    stamps = [created[name] for name in page_one + page_two]
    assert stamps == sorted(stamps, reverse=True), "newest first, across pages"
    assert f'hx-get="/projects/{project}/sessions-table?q=true&amp;page=2"' in second, "the refresh stays on page 2"


def test_partial_is_only_the_table_container(api: httpx.Client, project: str, owner: tuple[str, httpx.Client]) -> None:
    name = create_session(api, project, prompt="true")["metadata"]["name"]
    response = owner[1].get(f"/projects/{project}/sessions-table", params={"q": "tru"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text.strip()
    assert html.startswith('<div id="sessions-table"')
    assert html.endswith("</div>")
    assert "<html" not in html
    assert "<h1" not in html
    assert "<form" not in html
    assert f'hx-get="/projects/{project}/sessions-table?q=tru"' in html
    assert 'hx-trigger="every 3s"' in html
    assert 'hx-swap="outerHTML"' in html
    assert _rows(html) == [name]


def test_the_framework_picker_offers_only_ready_frameworks(
    api: httpx.Client, project: str, owner: tuple[str, httpx.Client]
) -> None:
    """Each option agrees with GET /api/runner-types: a framework not ready (still installing) is disabled and
    says why. Where the tests run every framework is installed, so each must be offered."""
    html = owner[1].get(f"/projects/{project}/sessions/new").text
    for framework in api.get("/api/runner-types").json():
        option = re.search(f'<option value="{framework["name"]}"[^>]*>[^<]*</option>', html)
        assert option is not None, framework["name"]
        assert (" disabled" in option.group(0)) is not framework["ready"], option.group(0)
        assert (f"({framework['status']})" in option.group(0)) is not framework["ready"], option.group(0)


def test_new_session_form_has_its_fields(server: Server, project: str, owner: tuple[str, httpx.Client]) -> None:
    browser = owner[1]
    html = browser.get(f"/projects/{project}/sessions/new").text
    for label in ("Prompt", "Framework", "Repository URL", "Branch", "Output URL", "Output branch"):
        assert f">{label}</label>" in html
    for label in ("Create pull request", "Timeout (seconds)", "Interactive", "Name", "Display name"):
        assert f">{label}</label>" in html
    assert ">Add repository</button>" in html
    assert ">Start session</button>" in html
    assert "Main repository" not in html, "one repository: nothing to choose"
    for framework in ("script", "claude-code", "codex", "gemini", "mini-swe-agent"):
        assert f'<option value="{framework}"' in html
    assert 'value="1800"' in html

    codex = browser.get(f"/projects/{project}/session-form/framework", params={"framework": "codex"}).text
    assert ">Model</label>" in codex
    assert 'list="model-options"' in codex
    assert '<option value="gpt-5-codex">' in codex
    assert "OPENAI_API_KEY" in codex
    assert f'href="/projects/{project}/settings#secrets">Add secrets</a>' in codex

    more = browser.get(f"/projects/{project}/session-form/repo", params={"index": 1}).text
    assert 'name="repo-1-url"' in more
    assert "Repository 2" in more
    assert ">Main repository</label>" in more
    assert more.count('hx-swap-oob="true"') == 2
    assert "session-form/repo?index=2" in more


def test_form_prefills_project_defaults(api: httpx.Client, project: str, owner: tuple[str, httpx.Client]) -> None:
    patched = api.patch(
        f"/api/projects/{project}", json={"defaults": {"framework": "codex", "model": "gpt-5.5", "timeout": 600}}
    )
    if patched.status_code in (404, 405):
        pytest.skip("this build has no project defaults")
    assert patched.status_code == 200, patched.text
    html = owner[1].get(f"/projects/{project}/sessions/new").text
    assert '<option value="codex" selected>' in html
    assert 'value="gpt-5.5"' in html
    assert 'id="timeout" name="timeout" inputmode="numeric" value="600"' in html


def test_invalid_form_comes_back_with_inline_errors(project: str, owner: tuple[str, httpx.Client]) -> None:
    browser = owner[1]
    form = {
        "prompt": "echo kept",
        "framework": "script",
        "repo-0-url": "ftp://x",
        "repo-0-branch": "main",
        "timeout": "1800",
    }
    response = browser.post(f"/projects/{project}/sessions", data=form)
    assert response.status_code == 422
    html = response.text
    assert re.search(r'id="repo-0-url" name="repo-0-url" value="ftp://x"[^>]*aria-invalid="true"', html)
    error = re.search(r'<p id="repo-0-url-error" class="error" role="alert">([^<]+)</p>', html)
    assert error is not None
    assert "uses scheme &#39;ftp&#39;" in error.group(1)
    assert html.index('id="repo-0-url"') < html.index("repo-0-url-error") < html.index('id="repo-0-branch"')
    assert ">echo kept</textarea>" in html
    assert 'name="repo-0-branch" value="main"' in html

    empty = browser.post(f"/projects/{project}/sessions", data={**form, "prompt": "", "repo-0-url": ""})
    assert empty.status_code == 422
    assert 'id="prompt-error" class="error" role="alert">String should have at least 1 character' in empty.text

    model = browser.post(
        f"/projects/{project}/sessions", data={"prompt": "x", "framework": "gemini", "model": "nope", "timeout": "x"}
    )
    assert model.status_code == 422
    assert 'id="timeout-error" class="error" role="alert">Input should be a valid integer' in model.text

    unknown = browser.post(
        f"/projects/{project}/sessions", data={"prompt": "x", "framework": "gemini", "model": "nope"}
    )
    assert unknown.status_code == 422
    assert re.search(r'id="model-error" class="error" role="alert">unknown model &#39;nope&#39;', unknown.text)

    same = browser.post(
        f"/projects/{project}/sessions",
        data={
            "prompt": "x",
            "framework": "script",
            "repo-0-url": "/r",
            "repo-0-branch": "main",
            "repo-0-output-branch": "main",
        },
    )
    assert same.status_code == 422
    assert 'id="repo-0-output-branch-error"' in same.text


def test_valid_form_creates_the_session_and_redirects(
    api: httpx.Client, project: str, repo: Path, owner: tuple[str, httpx.Client]
) -> None:
    me, browser = owner
    # A project admin is no platform admin: the platform admin lets the project use the repo's folder.
    allowed = api.put(f"/api/admin/projects/{project}/repository-policy", json={"localRoots": [str(repo.parent)]})
    assert allowed.status_code == 200, allowed.text
    name = f"from-web-{uuid.uuid4().hex[:6]}"
    form = {
        "prompt": "true",
        "framework": "script",
        "repo-0-url": str(repo),
        "repo-1-url": "",
        "main_repo": "0",
        "timeout": "900",
        "name": name,
        "display_name": "Made in the browser",
    }
    response = browser.post(f"/projects/{project}/sessions", data=form)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/projects/{project}/sessions/{name}"
    session = get_session(api, project, name)
    assert session["metadata"]["annotations"]["vteam.ambient-code/created-by"] == me
    assert session["spec"]["timeout"] == 900
    assert session["spec"]["displayName"] == "Made in the browser"
    assert session["spec"]["repos"] == [{"input": {"url": str(repo)}}]
    records = api.get("/api/audit", params={"project": project, "action": "session.create"}).json()["items"]
    assert [(r["actor"], r["target"]) for r in records] == [(me, f"session/{name}")]

    again = browser.post(f"/projects/{project}/sessions", data=form)
    assert again.status_code == 409
    assert 'id="name-error" class="error" role="alert"' in again.text


def test_viewer_sees_no_new_session_link_and_cannot_create(server: Server, api: httpx.Client, project: str) -> None:
    _, token = _person(server, api, project, "view")
    with _browser(server, token) as viewer:
        page = viewer.get(f"/projects/{project}")
        assert page.status_code == 200
        assert "New session" not in page.text
        assert ">Settings</a>" in page.text
        refused = viewer.post(f"/projects/{project}/sessions", data={"prompt": "true", "framework": "script"})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "<h1>Forbidden</h1>" in refused.text
        assert viewer.get(f"/projects/{project}/sessions/new").status_code == 403
    assert api.get(f"/api/projects/{project}/agentic-sessions").json()["items"] == []


def test_no_role_gets_not_found_and_signed_out_goes_to_sign_in(server: Server, api: httpx.Client, project: str) -> None:
    _, token = _person(server, api, project, None)
    with _browser(server, token) as stranger:
        for path in (
            f"/projects/{project}",
            f"/projects/{project}/sessions-table",
            f"/projects/{project}/sessions/new",
        ):
            response = stranger.get(path)
            assert response.status_code == 404, path
            assert "<h1>Not found</h1>" in response.text
    with httpx.Client(base_url=server.url) as anonymous:
        page = anonymous.get(f"/projects/{project}")
        assert page.status_code == 303
        assert page.headers["location"] == f"/signin?next=/projects/{project}"
        poll = anonymous.get(f"/projects/{project}/sessions-table", headers={"HX-Request": "true"})
        assert poll.status_code == 204
        assert poll.headers["HX-Redirect"] == f"/signin?next=/projects/{project}"


def test_helpers() -> None:
    now = datetime.now(UTC)
    assert ago(now - timedelta(seconds=5), now) == "just now"
    assert ago(now - timedelta(minutes=3), now) == "3 min ago"
    assert ago(now - timedelta(hours=2), now) == "2 h ago"
    assert short_repo("https://github.com/org/repo.git") == "org/repo"
    assert short_repo("git@github.com:org/repo.git") == "org/repo"
    assert short_repo("/srv/git/thing.git") == "thing"
    form = SessionForm(repos=[RepoForm(0), RepoForm(1, url="ftp://x")])
    errors = field_errors([{"loc": ["repos", "0", "input", "url"], "msg": "bad"}], form)
    assert errors == {"repo-1-url": "bad"}, "a blank fieldset is skipped, so body position 0 is fieldset 1"
    assert form.body()["repos"] == [{"input": {"url": "ftp://x"}}]
