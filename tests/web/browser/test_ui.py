"""The web UI in a real browser: sign in, projects, sessions live, settings, roles, phones and keyboards.

Every test drives Debian's Chromium against a real `vteam up` through accessible names (labels, roles), and
saves a full-page screenshot in test-artifacts/screenshots; the main pages also land in docs/screenshots.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.git import bare_repo
from tests.support.ui import PHONE, expect_console_error, make_user, screenshot, sign_in

pytestmark = pytest.mark.integration

LIVE_PROMPT = "for i in 1 2 3; do echo step $i; sleep 1; done; echo changed-by-vteam >> README.md"

UNLABELLED = """() => {
  const closed = [...document.querySelectorAll("details:not([open])")];
  for (const d of closed) d.open = true;
  const out = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.closest("[hidden], template")) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (box.width === 0 && box.height === 0 && style.position !== "fixed") continue;
    if (style.visibility === "hidden" || style.display === "none") continue;
    const labelledBy = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    const named = labelledBy.some((id) => (document.getElementById(id)?.textContent || "").trim());
    if ((el.getAttribute("aria-label") || "").trim() || named) continue;
    if ([...(el.labels || [])].some((label) => label.textContent.trim())) continue;
    out.push(el.outerHTML.slice(0, 160));
  }
  for (const d of closed) d.open = false;
  return out;
}"""

NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"


def assert_labelled(page: Page) -> None:
    """Every visible form control (with every <details> opened, then closed again) has a label or an aria-label."""
    assert page.evaluate(UNLABELLED) == [], f"form controls without a label on {page.url}"


def section(page: Page, heading: str) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name=heading, exact=True))


def conversation_text(page: Page) -> str:
    return page.locator("#conversation").inner_text()


def wait_for_text(page: Page, pattern: str, timeout: float = 30.0) -> None:
    """Until the conversation log shows `pattern` (a regular expression), without reloading the page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, conversation_text(page)):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{pattern!r} never appeared in the conversation:\n{conversation_text(page)}")


def mark_page(page: Page) -> None:
    """A flag that a reload would lose: the tests check it is still there to prove updates came live."""
    page.evaluate("() => { window.__vteamNoReload = true; }")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.__vteamNoReload === true"), "the page reloaded"


@pytest.fixture
def repo(tmp_path: Path, admin: httpx.Client, project: str) -> Path:
    """A bare repo in a folder the platform admin lets the project's sessions use (the repository policy)."""
    allowed = admin.put(f"/api/admin/projects/{project}/repository-policy", json={"localRoots": [str(tmp_path)]})
    assert allowed.status_code == 200, allowed.text
    return bare_repo(tmp_path, files={"README.md": "hello\n"})


def open_new_session_form(page: Page, project: str) -> None:
    page.goto(f"/projects/{project}")
    page.get_by_role("link", name="New session").click()
    page.wait_for_url(f"**/projects/{project}/sessions/new")


def choose_script(page: Page) -> None:
    page.get_by_label("Framework", exact=True).select_option("script")


def start_session(page: Page, project: str) -> str:
    """Click "Start session" and land on the new session's page; the session's name."""
    page.get_by_role("button", name="Start session").click()
    page.wait_for_url(re.compile(rf"/projects/{project}/sessions/(?!new\b)[^/?#]+$"))
    return page.url.rsplit("/", 1)[1]


# --- sign in ---------------------------------------------------------------------------------------------


def test_sign_in_shows_the_account_menu_and_signs_out(page: Page, user: tuple[str, str]) -> None:
    name, token = user
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/signin\?next=/projects$"))
    screenshot(page, "signin", docs="signin")
    sign_in(page, token)
    expect(page).to_have_url(re.compile(r"/projects$"))
    menu = page.locator("details.user-menu")
    summary = page.get_by_label(f"Account menu for {name}")
    expect(summary).to_be_visible()
    summary.click()
    expect(menu).to_have_attribute("open", "")
    screenshot(page, "account-menu")
    menu.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_a_wrong_token_is_refused_in_place(page: Page) -> None:
    expect_console_error(page, "status of 401")
    page.goto("/signin")
    page.get_by_label("API token or login link").fill("vt_not_a_token")
    with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("API token or login link")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "signin-refused")


# --- projects ---------------------------------------------------------------------------------------------


def test_create_search_and_delete_a_project(page: Page, user: tuple[str, str]) -> None:
    sign_in(page, user[1])
    name = f"ui-{uuid.uuid4().hex[:6]}"
    page.goto("/projects")
    form = page.get_by_role("form", name="New project")
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Display name").fill("UI project")
    form.get_by_label("Description").fill("Made in the browser")
    form.get_by_role("button", name="Create project").click()
    page.wait_for_url(f"**/projects/{name}")
    expect(page.get_by_role("heading", level=1)).to_have_text("UI project")

    page.goto("/projects")
    expect(page.get_by_role("link", name="UI project")).to_be_visible()
    screenshot(page, "projects", docs="projects")
    mark_page(page)
    page.get_by_label("Search projects").fill("no-such-project-anywhere")
    expect(page.get_by_role("link", name="UI project")).to_have_count(0)
    page.get_by_label("Search projects").fill(name)
    expect(page.get_by_role("link", name="UI project")).to_be_visible()
    assert_not_reloaded(page)

    card = page.locator("li", has=page.get_by_role("link", name="UI project"))
    card.locator("summary", has_text="Delete…").click()
    card.get_by_role("textbox").fill(name)
    card.get_by_role("button", name="Delete project").click()
    page.wait_for_url(re.compile(r"/projects$"))
    expect(page.get_by_role("link", name="UI project")).to_have_count(0)


# --- sessions ---------------------------------------------------------------------------------------------


def test_a_script_session_streams_live_from_the_form(
    page: Page, user: tuple[str, str], project: str, repo: Path
) -> None:
    sign_in(page, user[1])
    open_new_session_form(page, project)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    choose_script(page)
    page.get_by_label("Prompt").fill(LIVE_PROMPT)
    page.get_by_label("Repository URL").first.fill(str(repo))
    page.get_by_label("Output URL").first.fill(str(repo))
    page.get_by_label("Output branch").first.fill("vteam/live")
    assert_labelled(page)
    screenshot(page, "new-session", docs="new-session")
    name = start_session(page, project)

    mark_page(page)
    expect(page.locator("#conversation[role=log]")).to_be_visible()
    wait_for_text(page, r"step 1")
    early = page.locator("#phase").get_attribute("data-phase")
    assert early != "Completed", "the first step showed only once the session had completed"
    expect(page.locator("#phase")).to_have_attribute("data-phase", "Completed", timeout=30_000)
    wait_for_text(page, r"step 3")
    assert_not_reloaded(page)

    repos = section(page, "Repositories")
    expect(repos).to_be_visible()
    expect(repos).to_contain_text(str(repo), timeout=10_000)
    diff = repos.locator("details", has=page.locator("summary", has_text="Diff")).first
    diff.locator("summary").click()
    expect(diff).to_contain_text("README.md", timeout=10_000)
    expect(diff).to_contain_text("changed-by-vteam")
    screenshot(page, "session", docs="session")

    page.goto(f"/projects/{project}")
    table = page.locator("table[aria-label=Sessions]")
    expect(table.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(
        table.locator("tr", has=page.get_by_role("link", name=name, exact=True)).locator("[data-phase]")
    ).to_have_attribute("data-phase", "Completed")


def test_the_project_page_lists_filters_and_refreshes_itself(
    page: Page, user: tuple[str, str], alice: httpx.Client, project: str
) -> None:
    create_session(alice, project, name="first", prompt="echo first", labels={"team": "red"})
    wait_phase(alice, project, "first")
    sign_in(page, user[1])
    page.goto(f"/projects/{project}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Demo project")
    expect(page.get_by_role("link", name="New session")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_be_visible()
    for label in ("Phase", "Creator", "Label", "Search sessions"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    assert_labelled(page)
    table = page.locator("table[aria-label=Sessions]")
    expect(table.get_by_role("link", name="first", exact=True)).to_be_visible()

    mark_page(page)
    create_session(alice, project, name="second", prompt="sleep 600")
    expect(table.get_by_role("link", name="second", exact=True)).to_be_visible(timeout=10_000)
    expect(
        table.locator("tr", has=page.get_by_role("link", name="second", exact=True)).locator("[data-phase]")
    ).to_have_attribute("data-phase", re.compile("Pending|Creating|Running"), timeout=10_000)
    assert_not_reloaded(page)
    screenshot(page, "project", docs="project")

    page.get_by_label("Search sessions").fill("second")
    expect(table.get_by_role("link", name="first", exact=True)).to_have_count(0, timeout=10_000)
    expect(table.get_by_role("link", name="second", exact=True)).to_be_visible()
    page.get_by_label("Search sessions").fill("")
    page.get_by_label("Label", exact=True).fill("team=red")
    page.get_by_label("Label", exact=True).press("Enter")
    expect(table.get_by_role("link", name="second", exact=True)).to_have_count(0, timeout=10_000)
    expect(table.get_by_role("link", name="first", exact=True)).to_be_visible()
    alice.post(sessions_path(project, "second") + "/stop")


def test_an_interactive_session_answers_a_follow_up(page: Page, user: tuple[str, str], project: str) -> None:
    sign_in(page, user[1])
    open_new_session_form(page, project)
    choose_script(page)
    page.get_by_label("Prompt").fill("echo hi")
    page.get_by_label("Interactive").check()
    start_session(page, project)
    mark_page(page)
    wait_for_text(page, r"(?m)^\s*hi\s*$")
    message = page.get_by_label("Message")
    expect(message).to_be_enabled(timeout=15_000)
    expect(page.get_by_role("button", name="Interrupt")).to_be_visible()
    message.fill("echo again")
    page.get_by_role("button", name="Send").click()
    wait_for_text(page, r"(?<!echo )\bagain\b")
    expect(page.locator("#phase")).to_have_attribute("data-phase", "Running")
    assert_not_reloaded(page)
    assert_labelled(page)
    screenshot(page, "session-interactive", docs="session-interactive")
    # The summary beside the badge tells the same phase.
    expect(page.locator("#summary div", has=page.locator("dt", has_text="Phase")).locator("dd")).to_have_text("Running")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#phase")).to_have_attribute("data-phase", re.compile("Stopped|Completed"), timeout=20_000)


def test_stop_continue_and_delete_a_running_session(
    page: Page, user: tuple[str, str], alice: httpx.Client, project: str
) -> None:
    create_session(alice, project, name="long", prompt="sleep 600")
    sign_in(page, user[1])
    page.goto(f"/projects/{project}/sessions/long")
    phase = page.locator("#phase")
    expect(phase).to_have_attribute("data-phase", "Running", timeout=20_000)
    expect(page.get_by_role("button", name="Interrupt")).to_have_count(0)  # only interactive sessions have it
    mark_page(page)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Stop").click()
    expect(phase).to_have_attribute("data-phase", "Stopped", timeout=20_000)
    screenshot(page, "session-stopped")

    page.locator("summary", has_text="Continue…").click()
    page.get_by_role("textbox", name="Prompt").fill("echo continued-$((6*7))")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(rf"/projects/{project}/sessions/(?!long$)[^/?#]+$"))
    wait_for_text(page, r"continued-42")
    expect(page.locator("#phase")).to_have_attribute("data-phase", "Completed", timeout=20_000)

    page.goto(f"/projects/{project}/sessions/long")
    page.locator("summary", has_text="Delete…").click()
    page.get_by_role("button", name="Delete session").click()
    page.wait_for_url(re.compile(rf"/projects/{project}$"))
    expect(page.locator("table[aria-label=Sessions]").get_by_role("link", name="long", exact=True)).to_have_count(0)
    assert alice.get(sessions_path(project, "long")).status_code == 404


def test_the_new_session_form_follows_the_framework_and_adds_repositories(
    page: Page, user: tuple[str, str], project: str
) -> None:
    sign_in(page, user[1])
    open_new_session_form(page, project)
    for label in ("Prompt", "Framework", "Timeout (seconds)", "Interactive"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    for label in ("Repository URL", "Branch", "Output URL", "Output branch", "Create pull request"):
        expect(page.get_by_label(label, exact=True)).to_have_count(1)
    page.get_by_label("Framework", exact=True).select_option("claude-code")
    expect(page.get_by_label("Model", exact=True)).to_be_visible()
    choose_script(page)
    expect(page.get_by_label("Model", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Add repository").click()
    expect(page.get_by_label("Repository URL", exact=True)).to_have_count(2)
    expect(page.get_by_label("Output branch", exact=True)).to_have_count(2)
    assert_labelled(page)


def test_a_bad_repository_url_is_shown_next_to_the_field(page: Page, user: tuple[str, str], project: str) -> None:
    sign_in(page, user[1])
    open_new_session_form(page, project)
    choose_script(page)
    expect_console_error(page, "status of 422")
    page.get_by_label("Prompt").fill("echo never")
    url = page.get_by_label("Repository URL").first
    url.fill("ftp://example.com/x")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Start session").click()
    assert answer.value.status == 422
    alert = page.get_by_role("alert").first
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(re.compile("ftp|URL|url|scheme", re.IGNORECASE))
    expect(url).to_have_value("ftp://example.com/x")
    expect(url).to_have_attribute("aria-invalid", "true")
    described = url.get_attribute("aria-describedby") or ""
    assert described, "the invalid field does not point at its error"
    expect(page.get_by_label("Prompt")).to_have_value("echo never")
    screenshot(page, "new-session-error", docs="new-session-error")


# --- settings ---------------------------------------------------------------------------------------------


def test_settings_members_keys_secrets_and_defaults(
    page: Page, user: tuple[str, str], admin: httpx.Client, alice: httpx.Client, project: str
) -> None:
    bob, _ = make_user(admin)
    sign_in(page, user[1])
    page.goto(f"/projects/{project}")
    page.get_by_role("link", name="Settings").click()
    page.wait_for_url(f"**/projects/{project}/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    assert_labelled(page)

    members = page.locator("#members")
    members.get_by_label("Subject type").select_option("user")
    members.get_by_label("Name", exact=True).fill(bob)
    members.get_by_label("Role").select_option("edit")
    members.get_by_role("button", name="Add member").click()
    expect(page.locator("#members")).to_contain_text(bob, timeout=10_000)
    bindings = alice.get(f"/api/projects/{project}/permissions").json()
    assert any(b.get("subjectName") == bob and b.get("role") == "edit" for b in bindings.get("items", bindings))

    keys = page.locator("#keys")
    keys.get_by_label("Key name").fill("ci-key")
    keys.get_by_label("Role").select_option("edit")
    keys.get_by_label("Expires in days").fill("30")
    keys.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret")
    expect(secret).to_be_visible(timeout=10_000)
    value = (secret.input_value() if secret.evaluate("e => 'value' in e") else secret.inner_text()).strip()
    assert len(value) >= 20, value
    with httpx.Client(base_url=str(alice.base_url), headers={"Authorization": f"Bearer {value}"}) as key_client:
        assert key_client.get(f"/api/projects/{project}/agentic-sessions").status_code == 200
    expect(page.locator("#keys")).to_contain_text("ci-key")

    secrets_section = page.locator("#secrets")
    secrets_section.get_by_label("Secret name").fill("MY_SECRET")
    secrets_section.get_by_label("Value").fill("s3cret-value-never-shown")
    secrets_section.get_by_role("button", name="Save secret").click()
    expect(page.locator("#secrets")).to_contain_text("MY_SECRET", timeout=10_000)

    defaults = page.locator("#defaults")
    defaults.get_by_label("Default framework").select_option("script")
    defaults.get_by_label("Default timeout (seconds)").fill("900")
    defaults.get_by_role("button", name="Save defaults").click()
    page.wait_for_load_state()
    screenshot(page, "settings", docs="settings")

    page.goto(f"/projects/{project}/settings")
    expect(page.locator("#new-key-secret")).to_have_count(0)
    assert value not in page.content(), "the key's secret is shown again"
    assert "s3cret-value-never-shown" not in page.content(), "a secret's value is shown"
    expect(page.locator("#defaults").get_by_label("Default framework")).to_have_value("script")
    expect(page.locator("#defaults").get_by_label("Default timeout (seconds)")).to_have_value("900")
    expect(page.locator("#members")).to_contain_text(bob)
    expect(page.locator("#secrets")).to_contain_text("MY_SECRET")


# --- roles ------------------------------------------------------------------------------------------------


def test_a_view_only_member_sees_no_write_controls_and_is_refused(
    page: Page, admin: httpx.Client, alice: httpx.Client, project: str
) -> None:
    viewer, token = make_user(admin)
    bound = admin.post(
        f"/api/projects/{project}/permissions", json={"subjectType": "user", "subjectName": viewer, "role": "view"}
    )
    assert bound.status_code in (200, 201), bound.text
    create_session(alice, project, name="watched", prompt="sleep 600")
    sign_in(page, token)

    page.goto(f"/projects/{project}")
    expect(page.locator("table[aria-label=Sessions]").get_by_role("link", name="watched", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New session")).to_have_count(0)
    screenshot(page, "project-view-only")

    page.goto(f"/projects/{project}/sessions/watched")
    expect(page.locator("#phase")).to_have_attribute("data-phase", re.compile("Pending|Creating|Running"))
    for button in ("Stop", "Interrupt", "Send", "Continue", "Delete session"):
        expect(page.get_by_role("button", name=button, exact=True)).to_have_count(0)
    screenshot(page, "session-view-only")

    settings = page.goto(f"/projects/{project}/settings")
    assert settings is not None
    if settings.status == 200:
        for button in ("Add member", "Create key", "Save secret", "Save defaults"):
            expect(page.get_by_role("button", name=button)).to_have_count(0)
    else:
        assert settings.status == 403

    refused = {
        f"/projects/{project}/sessions": {"prompt": "echo sneaky", "framework": "script"},
        f"/projects/{project}/sessions/watched/stop": {},
        f"/projects/{project}/sessions/watched/delete": {},
        f"/projects/{project}/sessions/watched/message": {"text": "echo sneaky"},
        f"/projects/{project}/settings/keys": {"name": "sneaky", "role": "view", "expires_in_days": "1"},
        f"/projects/{project}/settings/members": {"subject_type": "user", "subject_name": viewer, "role": "admin"},
        f"/projects/{project}/settings/secrets": {"name": "SNEAKY", "value": "x"},
        f"/projects/{project}/settings/defaults": {"framework": "script", "model": "", "timeout_seconds": "60"},
    }
    # As the viewer's own page would send them (its origin and CSRF token): the role, not the web edge, refuses.
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    origin = page.evaluate("() => window.location.origin")
    for path, form in refused.items():
        answer = page.request.post(path, form={**form, "csrf_token": csrf}, headers={"Origin": origin}, max_redirects=0)
        assert answer.status == 403, f"POST {path} as a viewer: {answer.status}"
    assert alice.get(sessions_path(project, "watched")).json()["status"]["phase"] != "Stopped"
    alice.post(sessions_path(project, "watched") + "/stop")


# --- phones and keyboards ---------------------------------------------------------------------------------


def test_phone_width_has_no_horizontal_overflow(
    page: Page, user: tuple[str, str], alice: httpx.Client, project: str
) -> None:
    create_session(alice, project, name="small", prompt="for i in 1 2 3; do echo a-rather-long-line-$i; done")
    wait_phase(alice, project, "small")
    page.set_viewport_size(PHONE)
    sign_in(page, user[1])
    for path, shot in (
        ("/projects", "phone-projects"),
        (f"/projects/{project}", "phone-project"),
        (f"/projects/{project}/sessions/small", "phone-session"),
    ):
        page.goto(path)
        assert page.evaluate(NO_OVERFLOW), f"{path} scrolls sideways at 390 px"
        screenshot(page, shot, docs="phone-session" if shot == "phone-session" else None)

    page.goto("/projects")
    summary = page.get_by_label(f"Account menu for {user[0]}")
    summary.click()
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    box = sign_out.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE["width"] + 1, box
    assert page.evaluate(NO_OVERFLOW), "the open account menu scrolls sideways"
    screenshot(page, "phone-account-menu")
    sign_out.click()
    expect(page).to_have_url(re.compile(r"/signin$"))


def test_keyboard_reaches_skip_link_first_and_every_control_is_labelled(
    page: Page, user: tuple[str, str], alice: httpx.Client, project: str
) -> None:
    create_session(alice, project, name="kb", prompt="echo keyboard")
    wait_phase(alice, project, "kb")
    sign_in(page, user[1])
    page.goto("/projects")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
    expect(page.get_by_role("link", name="Skip to content")).to_be_visible()
    page.keyboard.press("Enter")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()"))
        if reached[-1] == "q":
            break
    assert "q" in reached, f"Tab from the skip link never reached the project search: {reached}"
    assert_labelled(page)

    for path in (
        f"/projects/{project}",
        f"/projects/{project}/sessions/new",
        f"/projects/{project}/sessions/kb",
        f"/projects/{project}/settings",
    ):
        page.goto(path)
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content", path
        assert_labelled(page)

    page.goto(f"/projects/{project}/sessions/new")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    labels = []
    for _ in range(8):
        page.keyboard.press("Tab")
        labels.append(
            page.evaluate(
                "() => { const e = document.activeElement; return (e.labels && e.labels[0]"
                " ? e.labels[0].textContent : e.textContent || '').trim(); }"
            )
        )
    assert any(label.startswith("Prompt") for label in labels), f"Tab never reached the prompt: {labels}"
