"""The project settings page, through a browser-like client against a real server: members, access keys,
secrets and defaults change through the API's own logic, a key's secret is shown once, a secret's value
never, and each role sees and may do only what the API lets it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.api import sessions_path
from tests.support.browser import Browser
from tests.support.server import Server

pytestmark = pytest.mark.integration

SECRET_VALUE = "sk-ant-web-settings-never-shown-42"
LAST_ADMIN = "is the project's last admin"
SECTIONS = ("members", "keys", "secrets", "defaults")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Runners that only sleep: sessions here are looked at, not run."""
    home = tmp_path_factory.mktemp("web-settings") / "home"
    srv = Server(home, env={"VTEAM_RUNNER_COMMAND": '["sleep", "600"]', "VTEAM_MAX_RUNNING_SESSIONS": "100"})
    srv.start()
    yield srv
    srv.close()


@dataclass
class Person:
    name: str
    token: str
    browser: httpx.Client
    """Signed in through the sign-in page: it holds the session cookie, as a browser would."""


def _person(server: Server, api: httpx.Client, prefix: str) -> Iterator[Person]:
    made = api.post("/api/users", json={"name": f"{prefix}-{uuid.uuid4().hex[:6]}"})
    assert made.status_code == 201, made.text
    link = parse_qs(urlsplit(made.json()["loginLink"]).query)["token"][0]
    login = api.post("/api/login", json={"token": link})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    with Browser(server.url, timeout=30) as browser:
        signed = browser.post("/signin", data={"token": token})
        assert signed.status_code == 303, signed.text
        yield Person(made.json()["name"], token, browser)


@pytest.fixture
def alice(server: Server, api: httpx.Client) -> Iterator[Person]:
    yield from _person(server, api, "alice")


@pytest.fixture
def bob(server: Server, api: httpx.Client) -> Iterator[Person]:
    yield from _person(server, api, "bob")


@pytest.fixture
def project(alice: Person, api: httpx.Client) -> str:
    """A project alice made, so she is its one admin."""
    name = f"w-{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": f"Bearer {alice.token}"}) as own:
        assert own.post("/api/projects", json={"name": name}).status_code == 201
    return name


def _bind(api: httpx.Client, project: str, who: Person, role: str) -> None:
    body = {"subjectType": "user", "subjectName": who.name, "role": role}
    assert api.post(f"/api/projects/{project}/permissions", json=body).status_code == 201


def _roles(api: httpx.Client, project: str) -> dict[str, str]:
    items = api.get(f"/api/projects/{project}/permissions").json()["items"]
    return {b["subjectName"]: b["role"] for b in items}


def _post(person: Person, path: str, data: dict[str, str], *, anchor: str) -> httpx.Response:
    """A form POST that must succeed: a 303 back to its section, then the page it leads to."""
    answer = person.browser.post(path, data=data)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.endswith(f"#{anchor}"), location
    page = person.browser.get(location)
    assert page.status_code == 200, page.text
    return page


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}".*?</section>', html, re.DOTALL)
    assert found, f"no section #{name}"
    return found.group(0)


def test_the_page_has_its_sections(alice: Person, project: str) -> None:
    page = alice.browser.get(f"/projects/{project}/settings")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert re.search(r"<h1>\s*Settings\s*</h1>", page.text)
    for name in SECTIONS:
        assert f'<section id="{name}"' in page.text
    for label in ("Subject type", "Name", "Role", "Key name", "Expires in days", "Secret name", "Value"):
        assert f">{label}</label>" in page.text, label
    for label in ("Default framework", "Default model", "Default timeout (seconds)"):
        assert f">{label}</label>" in page.text, label
    for button in ("Add member", "Create key", "Save secret", "Save defaults"):
        assert f">{button}</button>" in page.text, button


def test_members_are_added_changed_and_removed_but_the_last_admin_stays(
    api: httpx.Client, alice: Person, bob: Person, project: str
) -> None:
    base = f"/projects/{project}/settings/members"
    page = _post(alice, base, {"subject_type": "user", "subject_name": bob.name, "role": "edit"}, anchor="members")
    assert bob.name in _section(page.text, "members")
    assert _roles(api, project)[bob.name] == "edit"

    _post(alice, f"{base}/role", {"subject_type": "user", "subject_name": bob.name, "role": "admin"}, anchor="members")
    assert _roles(api, project)[bob.name] == "admin"
    _post(alice, f"{base}/remove", {"subject_type": "user", "subject_name": bob.name}, anchor="members")
    assert bob.name not in _roles(api, project)

    refused = alice.browser.post(f"{base}/remove", data={"subject_type": "user", "subject_name": alice.name})
    assert refused.status_code == 409
    members = _section(refused.text, "members")
    assert LAST_ADMIN in unescape(members), "the API's message, inline"
    assert 'role="alert"' in members
    demoted = alice.browser.post(
        f"{base}/role", data={"subject_type": "user", "subject_name": alice.name, "role": "view"}
    )
    assert demoted.status_code == 409
    assert LAST_ADMIN in unescape(_section(demoted.text, "members"))
    assert _roles(api, project) == {alice.name: "admin"}

    bad = alice.browser.post(base, data={"subject_type": "group", "subject_name": "x" * 201, "role": "view"})
    assert bad.status_code == 422
    members = _section(bad.text, "members")
    assert 'value="' + "x" * 201 + '"' in members, "the input is kept"
    assert re.search(r'<option value="group" selected>', members)

    records = api.get("/api/audit", params={"project": project, "action": "role."}).json()["items"]
    assert [(r["action"], r["actor"]) for r in records][-3:] == [
        ("role.bind", alice.name),
        ("role.bind", alice.name),
        ("role.unbind", alice.name),
    ]


def test_a_new_keys_secret_is_shown_once_and_the_key_can_be_revoked(
    server: Server, api: httpx.Client, alice: Person, bob: Person, project: str
) -> None:
    _bind(api, project, bob, "view")
    made = alice.browser.post(
        f"/projects/{project}/settings/keys", data={"name": "ci", "role": "edit", "expires_in_days": "30"}
    )
    assert made.status_code == 303
    location = made.headers["location"]
    assert location.endswith("#keys")
    assert "vt_key_" not in location
    assert bob.browser.get(location).text.count("new-key-secret") == 0, "only its maker sees it"
    page = alice.browser.get(location)
    shown = re.search(r'id="new-key-secret">([^<]+)<', page.text)
    assert shown, "the new key's secret is on the page"
    secret = shown.group(1).strip()
    assert secret.startswith("vt_key_")
    assert "won't be shown again" in unescape(page.text)
    for again in (alice.browser.get(location), alice.browser.get(f"/projects/{project}/settings")):
        assert again.status_code == 200
        assert secret not in again.text, "shown once only"
        assert "new-key-secret" not in again.text

    with server.client(token=secret) as key:
        assert key.get(sessions_path(project)).status_code == 200
    listed = api.get(f"/api/projects/{project}/keys").json()["items"]
    assert [(k["name"], k["role"], k["createdBy"]) for k in listed] == [("ci", "edit", alice.name)]
    keys = _section(page.text, "keys")
    assert "ci" in keys
    assert alice.name in keys
    assert ">Revoke</button>" in keys

    page = _post(alice, f"/projects/{project}/settings/keys/{listed[0]['id']}/revoke", {}, anchor="keys")
    assert api.get(f"/api/projects/{project}/keys").json()["items"][0]["revoked"]
    assert ">Revoke</button>" not in _section(page.text, "keys")
    with server.client(token=secret) as key:
        assert key.get(sessions_path(project)).status_code == 401
    actions = [
        r["action"] for r in api.get("/api/audit", params={"project": project, "action": "key."}).json()["items"]
    ]
    assert actions == ["key.issue", "key.revoke"]


def test_editors_make_keys_up_to_their_role_and_revoke_only_their_own(
    api: httpx.Client, alice: Person, bob: Person, project: str
) -> None:
    _bind(api, project, bob, "edit")
    _post(alice, f"/projects/{project}/settings/keys", {"name": "alices", "role": "admin"}, anchor="keys")
    page = bob.browser.get(f"/projects/{project}/settings")
    keys = _section(page.text, "keys")
    assert '<option value="admin"' not in keys
    assert '<option value="edit"' in keys
    assert ">Revoke</button>" not in keys, "not someone else's key"
    assert "Add member" not in page.text
    assert "Save secret" not in page.text
    assert "Save defaults" not in page.text
    alices = api.get(f"/api/projects/{project}/keys").json()["items"][0]["id"]
    assert bob.browser.post(f"/projects/{project}/settings/keys/{alices}/revoke").status_code == 403
    too_high = bob.browser.post(f"/projects/{project}/settings/keys", data={"name": "x", "role": "admin"})
    assert too_high.status_code == 403
    assert "text/html" in too_high.headers["content-type"]

    _post(
        bob,
        f"/projects/{project}/settings/keys",
        {"name": "bobs", "role": "edit", "expires_in_days": ""},
        anchor="keys",
    )
    bobs = next(k for k in api.get(f"/api/projects/{project}/keys").json()["items"] if k["name"] == "bobs")
    assert bobs["expires"] is None, "an empty 'Expires in days' is a key that never expires"
    _post(bob, f"/projects/{project}/settings/keys/{bobs['id']}/revoke", {}, anchor="keys")

    bad = bob.browser.post(
        f"/projects/{project}/settings/keys", data={"name": "", "role": "view", "expires_in_days": "999"}
    )
    assert bad.status_code == 422
    assert 'role="alert"' in _section(bad.text, "keys")
    assert 'value="999"' in _section(bad.text, "keys"), "the input is kept"


def test_a_secrets_value_is_never_rendered(api: httpx.Client, alice: Person, project: str) -> None:
    base = f"/projects/{project}/settings/secrets"
    pages = [alice.browser.get(f"/projects/{project}/settings")]
    assert re.search(r"ANTHROPIC_API_KEY</code></td>\s*<td>claude-code</td>\s*<td>not set</td>", pages[0].text)

    saved = alice.browser.post(base, data={"name": "ANTHROPIC_API_KEY", "value": SECRET_VALUE})
    assert saved.status_code == 303
    assert saved.headers["location"].endswith("#secrets")
    pages += [saved, alice.browser.get(saved.headers["location"])]
    secrets = _section(pages[-1].text, "secrets")
    assert re.search(r"<code>ANTHROPIC_API_KEY</code></td>\s*<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", secrets)
    assert re.search(r"ANTHROPIC_API_KEY</code></td>\s*<td>claude-code</td>\s*<td>set</td>", secrets)
    assert 'type="password"' in secrets
    assert [s["name"] for s in api.get(f"/api/projects/{project}/secrets").json()["items"]] == ["ANTHROPIC_API_KEY"]

    bad = alice.browser.post(base, data={"name": "lower_case", "value": SECRET_VALUE})
    assert bad.status_code == 422
    assert 'value="lower_case"' in bad.text
    assert 'role="alert"' in _section(bad.text, "secrets")
    pages.append(bad)
    pages.append(alice.browser.post(base, data={"name": "EMPTY", "value": ""}))
    assert pages[-1].status_code == 422

    deleted = _post(alice, f"{base}/ANTHROPIC_API_KEY/delete", {}, anchor="secrets")
    pages.append(deleted)
    assert api.get(f"/api/projects/{project}/secrets").json()["items"] == []
    for page in pages:
        assert SECRET_VALUE not in page.text
    actions = [
        r["action"] for r in api.get("/api/audit", params={"project": project, "action": "secret."}).json()["items"]
    ]
    assert actions == ["secret.write", "secret.delete"]


def test_saved_defaults_reach_new_sessions(api: httpx.Client, alice: Person, project: str) -> None:
    alice.browser.post(f"/projects/{project}/settings/secrets", data={"name": "ANTHROPIC_API_KEY", "value": "sk-x"})
    form = {"framework": "claude-code", "model": "sonnet", "timeout_seconds": "900"}
    page = _post(alice, f"/projects/{project}/settings/defaults", form, anchor="defaults")
    defaults = _section(page.text, "defaults")
    assert '<option value="claude-code" selected>' in defaults
    assert 'value="sonnet"' in defaults
    assert 'value="900"' in defaults
    assert api.get(f"/api/projects/{project}").json()["spec"]["defaults"] == {
        "framework": "claude-code",
        "model": "sonnet",
        "timeout": 900,
    }

    created = api.post(sessions_path(project), json={"prompt": "hello"})
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert (spec["framework"], spec["model"], spec["timeout"]) == ("claude-code", "sonnet", 900)
    explicit = api.post(sessions_path(project), json={"prompt": "echo hi", "framework": "script", "timeout": 5})
    assert (explicit.json()["spec"]["framework"], explicit.json()["spec"]["timeout"]) == ("script", 5)

    for bad, says in (
        ({"framework": "claude-code", "model": "gpt-5.5", "timeout_seconds": "900"}, "unknown model"),
        ({"framework": "claude-code", "model": "", "timeout_seconds": "soon"}, "valid integer"),
        ({"framework": "nope", "model": "", "timeout_seconds": ""}, "unknown framework"),
    ):
        refused = alice.browser.post(f"/projects/{project}/settings/defaults", data=bad)
        assert refused.status_code == 422, refused.text
        section = _section(refused.text, "defaults")
        assert says in unescape(section)
        assert 'role="alert"' in section
        assert f'value="{bad["timeout_seconds"]}"' in section, "the input is kept"
    assert api.get(f"/api/projects/{project}").json()["spec"]["defaults"]["model"] == "sonnet", "unchanged"
    _post(
        alice,
        f"/projects/{project}/settings/defaults",
        {"framework": "", "model": "", "timeout_seconds": ""},
        anchor="defaults",
    )
    assert "defaults" not in api.get(f"/api/projects/{project}").json()["spec"]


def test_a_viewer_sees_the_lists_but_no_write_controls_and_is_refused(
    api: httpx.Client, alice: Person, bob: Person, project: str
) -> None:
    _bind(api, project, bob, "view")
    api.put(f"/api/projects/{project}/secrets/HIDDEN_NAME", json={"value": "x"})
    page = bob.browser.get(f"/projects/{project}/settings")
    assert page.status_code == 200
    assert alice.name in _section(page.text, "members")
    assert bob.name in _section(page.text, "members")
    for name in SECTIONS:
        assert f'<section id="{name}"' in page.text
    assert f'action="/projects/{project}/settings' not in page.text
    for control in (
        "Add member",
        "Create key",
        "Save secret",
        "Save defaults",
        ">Save<",
        ">Remove<",
        ">Revoke<",
        ">Delete<",
    ):
        assert control not in page.text, control
    assert "HIDDEN_NAME" not in page.text, "secret names are the admins' (as in the API)"

    keys = api.post(f"/api/projects/{project}/keys", json={"name": "k"}).json()["id"]
    base = f"/projects/{project}/settings"
    for path, data in (
        (f"{base}/members", {"subject_type": "user", "subject_name": bob.name, "role": "admin"}),
        (f"{base}/members/role", {"subject_type": "user", "subject_name": bob.name, "role": "admin"}),
        (f"{base}/members/remove", {"subject_type": "user", "subject_name": alice.name}),
        (f"{base}/keys", {"name": "sneaky", "role": "view"}),
        (f"{base}/keys/{keys}/revoke", {}),
        (f"{base}/secrets", {"name": "SNEAKY", "value": "x"}),
        (f"{base}/secrets/HIDDEN_NAME/delete", {}),
        (f"{base}/defaults", {"framework": "script", "model": "", "timeout_seconds": "5"}),
    ):
        answer = bob.browser.post(path, data=data)
        assert answer.status_code == 403, f"POST {path}: {answer.status_code}"
        assert "text/html" in answer.headers["content-type"]
        assert "Forbidden" in answer.text
    assert _roles(api, project) == {alice.name: "admin", bob.name: "view"}
    assert [s["name"] for s in api.get(f"/api/projects/{project}/secrets").json()["items"]] == ["HIDDEN_NAME"]
    assert "defaults" not in api.get(f"/api/projects/{project}").json()["spec"]


def test_no_role_is_not_found_and_no_sign_in_goes_to_sign_in(server: Server, bob: Person, project: str) -> None:
    page = bob.browser.get(f"/projects/{project}/settings")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "Not found" in page.text
    assert bob.browser.post(f"/projects/{project}/settings/defaults", data={"framework": "script"}).status_code == 404
    missing = bob.browser.get("/projects/no-such-project/settings")
    assert missing.status_code == 404
    assert unescape(missing.text).replace("no-such-project", project) == unescape(page.text)
    with httpx.Client(base_url=server.url) as anonymous:
        answer = anonymous.get(f"/projects/{project}/settings")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/signin?next=/projects/{project}/settings"
