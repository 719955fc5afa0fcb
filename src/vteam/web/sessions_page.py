"""The project page (its sessions, refreshed live) and the new-session form.

The page reads the store once per request and does filtering, sorting and paging in Python, so a
table of any length costs one query and no per-row look-ups. The form builds the very body the API
takes and hands it to `Sessions.create`, the one place the API creates sessions too, so the browser and the
API can never disagree about what a valid session is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from vteam.agents import registry
from vteam.agents.base import FrameworkInfo
from vteam.auth import Identity, Role
from vteam.errors import InvalidInput, IsolationRefused, NotFound, VteamError
from vteam.policy.links import is_safe_link
from vteam.resources import CREATED_BY, AgenticSession, Phase, Project, SessionSpec
from vteam.resources.session import DEFAULT_TIMEOUT
from vteam.services.session_body import validation_errors
from vteam.store import selectors
from vteam.web.deps import Platform, PlatformDep
from vteam.web.pages import Who, page, project_role, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
MAX_FIELDSETS = 20
"""The API takes at most 20 repos; the form never parses more fieldsets than that, whatever is posted."""
NONE = "\u2013"
"""The en dash a cell shows when it has nothing to show."""


# ---------------------------------------------------------------------------------------------------
# The sessions table


@dataclass(frozen=True)
class Filters:
    """What the table shows; the same query string drives the page, its live refresh and its pager."""

    phase: str = ""
    creator: str = ""
    label: str = ""
    q: str = ""
    page: int = 1

    @property
    def active(self) -> bool:
        return bool(self.phase or self.creator or self.label or self.q)

    def query(self, page: int | None = None) -> str:
        """The query string for these filters (and `page`), without empty parameters, for links."""
        number = self.page if page is None else page
        params = {"phase": self.phase, "creator": self.creator, "label": self.label, "q": self.q}
        if number > 1:
            params["page"] = str(number)
        return urlencode({k: v for k, v in params.items() if v})


def filters(
    phase: str = Query(""), creator: str = Query(""), label: str = Query(""), q: str = Query(""), page: str = Query("1")
) -> Filters:
    """Lenient on purpose: a hand-edited URL gets a page, never a JSON validation error."""
    try:
        number = max(1, int(page))
    except ValueError:
        number = 1
    known = {p.value for p in Phase}
    return Filters(
        phase=phase if phase in known else "",
        creator=creator.strip()[:200],
        label=label.strip()[:1000],
        q=q.strip()[:200],
        page=number,
    )


@dataclass(frozen=True)
class PullLink:
    url: str
    label: str
    state: str


@dataclass(frozen=True)
class Row:
    """One session as the table shows it, computed once so the template only prints."""

    name: str
    display_name: str
    phase: str
    created: str
    age: str
    framework: str
    creator: str
    repos: list[tuple[str, str]]
    pulls: list[PullLink]
    cost: str


@dataclass(frozen=True)
class Table:
    project: str
    filters: Filters
    rows: list[Row] = field(default_factory=list)
    total: int = 0
    pages: int = 1
    first: int = 0
    last: int = 0
    label_error: str | None = None

    @property
    def newer(self) -> str | None:
        return self.filters.query(self.filters.page - 1) if self.filters.page > 1 else None

    @property
    def older(self) -> str | None:
        return self.filters.query(self.filters.page + 1) if self.filters.page < self.pages else None


def ago(moment: datetime | None, now: datetime) -> str:
    """A short relative age: what people scan a table for; the exact time is in <time datetime>."""
    if moment is None:
        return NONE
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def short_repo(url: str) -> str:
    """owner/repo for a hosted URL, the last path part for a path; without the .git suffix."""
    if url.startswith("/") or url.startswith("file:"):
        return url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    path = urlsplit(url).path if "://" in url else url.split(":", 1)[-1]
    parts = [p for p in path.strip("/").removesuffix(".git").split("/") if p]
    return "/".join(parts[-2:]) or url


def _row(session: AgenticSession, now: datetime) -> Row:
    spec, status = session.spec, session.status
    pulls: list[PullLink] = []
    for repo in status.repos:
        pr = repo.pull_request
        if pr is not None and is_safe_link(pr.url):
            pulls.append(PullLink(pr.url, f"#{pr.number}", "draft" if pr.draft and pr.state == "open" else pr.state))
        elif pr is None and repo.pull_request_url and is_safe_link(repo.pull_request_url):
            pulls.append(PullLink(repo.pull_request_url, "PR", "open"))
    cost = status.result.cost_usd if status.result is not None else None
    created = session.metadata.creation_timestamp
    return Row(
        name=session.name,
        display_name=spec.display_name or "",
        phase=session.phase.value,
        created=created.isoformat() if created else "",
        age=ago(created, now),
        framework=f"{spec.framework} / {spec.model}" if spec.model else spec.framework,
        creator=session.metadata.annotations.get(CREATED_BY, ""),
        repos=[(short_repo(r.input.url), r.input.url) for r in spec.repos],
        pulls=pulls,
        cost=f"${cost:.4f}" if cost is not None else NONE,
    )


def _matches(session: AgenticSession, where: Filters) -> bool:
    if where.phase and session.phase.value != where.phase:
        return False
    if where.creator and where.creator.lower() not in session.metadata.annotations.get(CREATED_BY, "").lower():
        return False
    if where.q:
        haystack = f"{session.name}\n{session.spec.display_name or ''}\n{session.spec.prompt}".lower()
        if where.q.lower() not in haystack:
            return False
    return True


@dataclass
class _Listing:
    version: str
    sessions: dict[str, AgenticSession]
    newest: list[AgenticSession]


_LISTINGS: dict[tuple[int, str], _Listing] = {}
"""Per project, its sessions as last read, newest first, and the store version they were read at."""


async def _newest_first(platform: Platform, project: str, label: str | None) -> list[AgenticSession]:
    """The project's sessions, newest first. The first call lists them all; later ones read only what
    changed (one query of names and versions, then a get per changed session), so the table's live
    refresh stays cheap however many sessions the project holds."""
    matches = selectors.parse(label)
    store = platform.store
    key = (id(store), project)
    cached = _LISTINGS.get(key)
    version = await store.current_version()
    if cached is None:
        listing = await store.list(AgenticSession, project)
        cached = _Listing(listing.resource_version, {s.name: s for s in listing.items}, [])
        cached.newest = _sorted(cached.sessions)
    elif cached.version != version:
        current = await store.versions(AgenticSession, project)
        changed = False
        for name in list(cached.sessions):
            if name not in current:
                del cached.sessions[name]
                changed = True
        for name, rv in current.items():
            held = cached.sessions.get(name)
            if held is None or held.metadata.resource_version != rv:
                try:
                    cached.sessions[name] = await store.get(AgenticSession, name, project)
                except NotFound:
                    cached.sessions.pop(name, None)
                changed = True
        if changed:
            cached.newest = _sorted(cached.sessions)
        cached.version = version
    if len(_LISTINGS) >= 64 and key not in _LISTINGS:
        _LISTINGS.pop(next(iter(_LISTINGS)))
    _LISTINGS[key] = cached
    return [s for s in cached.newest if matches(s.metadata.labels)]


def _sorted(sessions: dict[str, AgenticSession]) -> list[AgenticSession]:
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(sessions.values(), key=lambda s: (s.metadata.creation_timestamp or epoch, s.name), reverse=True)


async def load_table(platform: Platform, project: str, where: Filters) -> Table:
    """One store list (the label selector applied there), then filter, newest first, and page."""
    try:
        newest = await _newest_first(platform, project, where.label or None)
    except InvalidInput as exc:
        return Table(project=project, filters=where, label_error=exc.detail)
    found = [s for s in newest if _matches(s, where)]
    pages = max(1, -(-len(found) // PAGE_SIZE))
    number = min(where.page, pages)
    where = Filters(where.phase, where.creator, where.label, where.q, number)
    start = (number - 1) * PAGE_SIZE
    now = datetime.now(UTC)
    shown = [_row(s, now) for s in found[start : start + PAGE_SIZE]]
    return Table(
        project=project,
        filters=where,
        rows=shown,
        total=len(found),
        pages=pages,
        first=start + 1 if shown else 0,
        last=start + len(shown),
    )


@router.get("/projects/{project}")
@page
async def project_page(
    request: Request, project: str, platform: PlatformDep, me: Identity = Who, where: Filters = Depends(filters)
) -> Response:
    role = await project_role(platform, me, project, Role.VIEW)
    found = await platform.store.get(Project, project)
    return render(
        request,
        "project.html",
        section="projects",
        project=found,
        can_edit=role.allows(Role.EDIT),
        table=await load_table(platform, project, where),
        phases=[p.value for p in Phase],
    )


@router.get("/projects/{project}/sessions-table")
@page
async def sessions_table(
    request: Request, project: str, platform: PlatformDep, me: Identity = Who, where: Filters = Depends(filters)
) -> Response:
    """The table's container alone, which the page polls; a signed-out poll sends the whole tab to sign-in
    instead of swapping the sign-in page into the table."""
    if me.is_anonymous and request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": f"/signin?next={quote(f'/projects/{project}')}"})
    await project_role(platform, me, project, Role.VIEW)
    return render(request, "partials/sessions_table.html", table=await load_table(platform, project, where))


# ---------------------------------------------------------------------------------------------------
# The new-session form


@dataclass
class RepoForm:
    """One repository fieldset as typed, kept verbatim so an invalid form comes back as the user left it."""

    index: int
    url: str = ""
    branch: str = ""
    output_url: str = ""
    output_branch: str = ""
    pull_request: bool = False

    @property
    def blank(self) -> bool:
        return not (self.url or self.branch or self.output_url or self.output_branch or self.pull_request)

    def body(self) -> dict[str, Any]:
        """The API's repo shape; an output with no URL pushes back to the repository itself."""
        repo: dict[str, Any] = {"input": {"url": self.url}}
        if self.branch:
            repo["input"]["branch"] = self.branch
        if self.output_url or self.output_branch or self.pull_request:
            output: dict[str, Any] = {"url": self.output_url or self.url}
            if self.output_branch:
                output["targetBranch"] = self.output_branch
            if self.pull_request:
                output["createPullRequest"] = True
            repo["output"] = output
        return repo


@dataclass
class SessionForm:
    prompt: str = ""
    framework: str = SessionSpec.model_fields["framework"].default
    model: str = ""
    timeout: str = str(DEFAULT_TIMEOUT)
    interactive: bool = False
    name: str = ""
    display_name: str = ""
    main_repo: int = 0
    repos: list[RepoForm] = field(default_factory=lambda: [RepoForm(0)])

    @classmethod
    def defaults(cls, project: Project) -> SessionForm:
        """The project's defaults where it has them (`spec.defaults`, read defensively: it is newer than
        this form, and may be a model or a plain mapping)."""
        form = cls()
        defaults = getattr(project.spec, "defaults", None)
        if defaults is None:
            return form

        def get(key: str) -> Any:
            return defaults.get(key) if isinstance(defaults, dict) else getattr(defaults, key, None)

        form.framework = str(get("framework") or form.framework)
        form.model = str(get("model") or "")
        form.timeout = str(get("timeout") or form.timeout)
        return form

    @classmethod
    def parse(cls, data: FormData) -> SessionForm:
        def text(key: str) -> str:
            value = data.get(key)
            return value.strip() if isinstance(value, str) else ""

        indexes = sorted({int(m[1]) for key in data for m in [re.fullmatch(r"repo-(\d{1,3})-[a-z-]+", key)] if m})
        repos = [
            RepoForm(
                index=i,
                url=text(f"repo-{i}-url"),
                branch=text(f"repo-{i}-branch"),
                output_url=text(f"repo-{i}-output-url"),
                output_branch=text(f"repo-{i}-output-branch"),
                pull_request=bool(data.get(f"repo-{i}-pr")),
            )
            for i in indexes[:MAX_FIELDSETS]
        ]
        prompt = data.get("prompt")
        try:
            main = int(text("main_repo") or 0)
        except ValueError:
            main = 0
        return cls(
            prompt=prompt if isinstance(prompt, str) else "",
            framework=text("framework"),
            model=text("model"),
            timeout=text("timeout"),
            interactive=bool(data.get("interactive")),
            name=text("name"),
            display_name=text("display_name"),
            main_repo=main,
            repos=repos or [RepoForm(0)],
        )

    def used(self) -> list[RepoForm]:
        """The fieldsets that become repos: an untouched extra fieldset is not a mistake to report."""
        return [r for r in self.repos if not r.blank]

    def body(self) -> dict[str, Any]:
        """Exactly what a client would POST to the API; every check is left to the API's own code."""
        body: dict[str, Any] = {"prompt": self.prompt, "framework": self.framework}
        if self.model:
            body["model"] = self.model
        if self.timeout:
            body["timeout"] = self.timeout
        if self.interactive:
            body["interactive"] = True
        if self.name:
            body["name"] = self.name
        if self.display_name:
            body["displayName"] = self.display_name
        used = self.used()
        if used:
            body["repos"] = [r.body() for r in used]
            positions = [r.index for r in used]
            body["mainRepoIndex"] = positions.index(self.main_repo) if self.main_repo in positions else self.main_repo
        return body


FIELDS = {
    "prompt": "prompt",
    "framework": "framework",
    "model": "model",
    "timeout": "timeout",
    "interactive": "interactive",
    "mode": "interactive",
    "name": "name",
    "displayName": "display_name",
    "display_name": "display_name",
    "mainRepoIndex": "main_repo",
    "main_repo_index": "main_repo",
}
REPO_FIELDS = {
    ("input", "url"): "url",
    ("input", "branch"): "branch",
    ("output", "url"): "output-url",
    ("output", "targetBranch"): "output-branch",
    ("output", "target_branch"): "output-branch",
    ("output", "createPullRequest"): "pr",
}
SAME_BRANCH = re.compile(r"^repos\[(\d+)\]\.output\.targetBranch")


def field_errors(errors: list[dict[str, Any]], form: SessionForm, detail: str | None = None) -> dict[str, str]:
    """The API's validation errors keyed by the form field they are about (`form` for the rest).

    A repo's position in the body is mapped back to its fieldset, since blank fieldsets are skipped.
    """
    fieldsets = [r.index for r in form.used()]
    out: dict[str, str] = {}

    def put(key: str, message: str) -> None:
        out[key] = f"{out[key]}; {message}" if key in out else message

    for error in errors:
        loc = [str(part) for part in error.get("loc", [])]
        message = detail or str(error.get("msg", ""))
        if loc and loc[0] in FIELDS:
            put(FIELDS[loc[0]], message)
        elif len(loc) >= 2 and loc[0] == "repos" and loc[1].isdigit() and int(loc[1]) < len(fieldsets):
            fieldset = fieldsets[int(loc[1])]
            suffix = REPO_FIELDS.get((loc[2], loc[3]) if len(loc) >= 4 else ("", ""), "url" if len(loc) < 4 else "")
            put(f"repo-{fieldset}-{suffix}" if suffix else "form", message)
        elif (match := SAME_BRANCH.match(message)) and int(match[1]) < len(fieldsets):
            put(f"repo-{fieldsets[int(match[1])]}-output-branch", message)
        else:
            put("form", message)
        if detail:
            break
    return out


def framework_infos() -> list[FrameworkInfo]:
    """The registry, as /api/runner-types lists it."""
    return registry.infos()


def framework_info(name: str) -> FrameworkInfo | None:
    return next((info for info in framework_infos() if info.name == name), None)


async def _form_page(
    request: Request,
    platform: Platform,
    project: Project,
    form: SessionForm,
    errors: dict[str, str],
    *,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "new_session.html",
        status_code=status_code,
        section="projects",
        project=project,
        project_name=project.name,
        form=form,
        errors=errors,
        frameworks=framework_infos(),
        readiness=await registry.readiness(),
        info=framework_info(form.framework),
        available=await platform.sessions.available_secrets(project=project.name, framework=form.framework),
        next_index=max(r.index for r in form.repos) + 1,
    )


@router.get("/projects/{project}/sessions/new")
@page
async def new_session(request: Request, project: str, platform: PlatformDep, me: Identity = Who) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    found = await platform.store.get(Project, project)
    return await _form_page(request, platform, found, SessionForm.defaults(found), {})


@router.post("/projects/{project}/sessions")
@page
async def create_session(request: Request, project: str, platform: PlatformDep, me: Identity = Who) -> Response:
    """Create from the form through `Sessions.create`, as the API does; a mistake re-renders the form (422)
    with the input kept and the message by its field."""
    await project_role(platform, me, project, Role.EDIT)
    found = await platform.store.get(Project, project)
    form = SessionForm.parse(await request.form())
    try:
        created = await platform.sessions.create(
            caller=me, project=project, body=form.body(), request_id=getattr(request.state, "request_id", None)
        )
    except ValidationError as exc:
        errors = field_errors(validation_errors(list(exc.errors())), form)
        return await _form_page(request, platform, found, form, errors, status_code=422)
    except InvalidInput as exc:
        errors = field_errors(exc.errors or [{"loc": [], "msg": exc.detail}], form, detail=exc.detail)
        return await _form_page(request, platform, found, form, errors, status_code=exc.status)
    except IsolationRefused as exc:
        return await _form_page(request, platform, found, form, {"form": exc.detail}, status_code=exc.status)
    except VteamError as exc:
        if exc.status >= 500 or exc.status in (401, 403, 404):
            raise
        errors = {"name" if exc.status == 409 else "form": exc.detail}
        return await _form_page(request, platform, found, form, errors, status_code=exc.status)
    return RedirectResponse(f"/projects/{project}/sessions/{created.name}", status_code=303)


@router.get("/projects/{project}/session-form/framework")
@page
async def framework_fields(
    request: Request, project: str, platform: PlatformDep, me: Identity = Who, framework: str = Query("")
) -> Response:
    """The Model control and the secrets note for the framework just chosen (htmx swaps them in)."""
    await project_role(platform, me, project, Role.EDIT)
    found = await platform.store.get(Project, project)
    form = SessionForm.defaults(found)
    if framework != form.framework:
        form.model = ""
    form.framework = framework
    return render(
        request,
        "partials/framework_fields.html",
        project=found,
        form=form,
        errors={},
        info=framework_info(framework),
        available=await platform.sessions.available_secrets(project=project, framework=framework),
    )


@router.get("/projects/{project}/session-form/repo")
@page
async def repo_fieldset(
    request: Request, project: str, platform: PlatformDep, me: Identity = Who, index: int = Query(1, ge=1, le=99)
) -> Response:
    """Another repository fieldset, and (out of band) the Main repository select that now has a choice."""
    await project_role(platform, me, project, Role.EDIT)
    form = SessionForm(repos=[RepoForm(i) for i in range(index + 1)])
    return render(
        request,
        "partials/repo_fieldset.html",
        project_name=project,
        repo=form.repos[-1],
        form=form,
        errors={},
        next_index=index + 1,
        oob=True,
    )
