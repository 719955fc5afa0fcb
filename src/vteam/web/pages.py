"""The web UI's shared machinery and its first pages: sign-in, sign-out, the project list.

Pages use the platform directly (the same store, accounts and checks as the API), render Jinja2
templates, and answer errors as HTML pages; a caller who is not signed in is sent to /signin.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from vteam.auth import NOBODY, SESSION_COOKIE, Identity, Role
from vteam.auth.csrf import FIELD as CSRF_FIELD
from vteam.auth.csrf import subject as csrf_subject
from vteam.errors import Forbidden, InvalidInput, NotFound, Unauthorized, VteamError
from vteam.policy.links import is_safe_link
from vteam.resources import Project
from vteam.services.projects import ProjectCreate
from vteam.web import assets
from vteam.web.deps import Isolation, Platform, PlatformDep, get_platform, role_in


def safe_href(url: object) -> str:
    """The template filter every stored URL goes through before it reaches an `href`: the URL when it is an
    http(s) link (`vteam.policy.links`), else "" so that the template shows it as text instead."""
    return url if isinstance(url, str) and is_safe_link(url) else ""


templates = Jinja2Templates(directory=str(assets.TEMPLATES))
templates.env.filters["safe_href"] = safe_href


def csrf_token(request: Request | None) -> str:
    """The CSRF token of the browser session (or proven proxy's person) `request` comes with; "" without one."""
    if request is None:
        return ""
    bound = csrf_subject(request.headers, request.cookies.get(SESSION_COOKIE))
    platform = getattr(request.app.state, "platform", None)
    return platform.csrf.for_session(bound) if bound and platform is not None else ""


@pass_context
def _csrf_value(context: Context) -> str:
    """`{{ csrf_value() }}`: the page's token, for `<meta name="csrf-token">` (htmx sends it as a header).
    Partials rendered without a request (the session page's live parts) get it as `csrf` instead."""
    return str(context.get("csrf") or csrf_token(context.get("request")))


@pass_context
def _csrf_field(context: Context) -> Markup:
    """`{{ csrf_field() }}`: the hidden field every `<form method="post">` carries."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, _csrf_value(context))


@pass_context
def _isolation(context: Context) -> Isolation | None:
    """`{{ isolation() }}`: how this vTeam confines agents, which every signed-in page shows in its footer."""
    request = context.get("request")
    platform = getattr(request.app.state, "platform", None) if request is not None else None
    return platform.isolation if isinstance(platform, Platform) else None


templates.env.globals["csrf_value"] = _csrf_value
templates.env.globals["isolation"] = _isolation
templates.env.globals["csrf_field"] = _csrf_field
router = APIRouter(include_in_schema=False)
P = ParamSpec("P")


class SignInRequired(Exception):
    """The page needs a signed-in caller."""


async def authorize_page(request: Request, platform: Platform = Depends(get_platform)) -> Identity:
    """The pages' one authentication check: who is asking (NOBODY when no one is signed in)."""
    try:
        identity = await platform.authenticator.authenticate(request.headers, request.cookies.get(SESSION_COOKIE))
    except Unauthorized:
        identity = NOBODY
    if identity.is_runner:
        identity = NOBODY
    request.state.identity = identity
    return identity


def signed_in(identity: Identity) -> Identity:
    if identity.is_anonymous:
        raise SignInRequired
    return identity


async def project_role(platform: Platform, identity: Identity, project: str, needed: Role) -> Role:
    """The caller's role in the project, where it allows `needed`; a project they cannot see is 'not found'."""
    role = await role_in(platform, signed_in(identity), project)
    if role is None:
        raise NotFound(f"project {project!r} not found")
    await platform.store.get(Project, project)
    if not role.allows(needed):
        raise Forbidden(f"your role in project {project!r} is {role.value}; this needs {needed.value}")
    return role


def page(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Render a page; sign-in redirects and errors come back as pages, never as JSON."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request)
        try:
            return await handler(*args, **kwargs)
        except SignInRequired:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
        except VteamError as exc:
            return render(
                request, "error.html", status_code=exc.status, title=exc.title, detail=exc.detail, me=_me(request)
            )

    return wrapper


def _me(request: Request) -> Identity | None:
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) and not identity.is_anonymous else None


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("me", _me(request))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def html_refusal(request: Request, status: int, title: str, detail: str) -> Response:
    """How the web edge (`api.web_edge`) answers a refused page request: the error page."""
    return render(request, "error.html", status_code=status, title=title, detail=detail)


def safe_next(target: str | None) -> str:
    """Only local paths: a sign-in link must not send the browser to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/projects"
    return target


Who = Depends(authorize_page)


@router.get("/")
@page
async def home(request: Request, me: Identity = Who) -> Response:
    return RedirectResponse("/projects" if not me.is_anonymous else "/signin", status_code=303)


@router.get("/signin")
@page
async def signin_form(request: Request, me: Identity = Who, next: str | None = Query(None)) -> Response:
    """The sign-in page. The session cookie is SameSite=Strict, so a signed-in person who follows a link from
    another site arrives without it (and is sent here): the page then loads itself once more from its own
    origin (app.js), which brings the cookie, and goes on to where the link pointed."""
    if not me.is_anonymous:
        return RedirectResponse(safe_next(next), status_code=303)
    cross_site = request.headers.get("sec-fetch-site") == "cross-site"
    return render(request, "signin.html", next=next, renavigate=cross_site)


@router.post("/signin")
@page
async def signin(
    request: Request,
    platform: PlatformDep,
    me: Identity = Who,
    token: str = Form(..., max_length=1000),
    next: str | None = Query(None),
) -> Response:
    """Sign in with an API token (or a pasted login link): the browser gets a session of its own."""
    value = token.strip()
    if "token=" in value:
        value = value.split("token=", 1)[1].split("&", 1)[0]
    try:
        if value.startswith("vt_login_"):
            user = (await platform.accounts.redeem(value)).user
        else:
            person = await platform.authenticator.authenticate({"authorization": f"Bearer {value}"}, None)
            if person.kind != "user":
                raise Unauthorized("sign in with a person's API token or login link, not an access key")
            user = person.name
    except Unauthorized as exc:
        await platform.audit.record(actor="anonymous", action="login", target="web", outcome="denied")
        return render(request, "signin.html", status_code=401, error=exc.detail, next=next)
    return await browser_session(request, platform, user or "", safe_next(next), via="web")


async def browser_session(request: Request, platform: Platform, user: str, target: str, *, via: str) -> Response:
    """A new browser session for `user`, and the way on to `target`. The cookie is HttpOnly, SameSite=Strict
    (no other site's page or link makes the browser send it) and Secure when served over TLS."""
    _, session = await platform.accounts.issue(
        "session",
        name="browser",
        created_by=user,
        user=user,
        ttl=timedelta(hours=platform.settings.session_hours),
    )
    await platform.audit.record(
        actor=user,
        action="login",
        target=f"user/{user}",
        details={"via": via},
        request_id=getattr(request.state, "request_id", None),
    )
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https" or (platform.settings.public_url or "").startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(platform.settings.session_hours * 3600),
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    return response


@router.get("/login")
@page
async def login_page(
    request: Request, platform: PlatformDep, me: Identity = Who, token: str = Query("", max_length=500)
) -> Response:
    """A one-time login link's page: it names whom the link signs in and asks to continue. Only the page's
    own POST redeems the link, so opening (or prefetching, or being sent to) the link signs nobody in."""
    try:
        user = (await platform.accounts.verify(token, kind="login")).user
    except Unauthorized as exc:
        detail = "the login link has already been used" if "revoked" in exc.detail else exc.detail
        detail = detail.replace("the token", "the login link")
        return render(request, "login.html", status_code=401, error=f"{detail}; ask an admin for a new one")
    return render(request, "login.html", user=user, token=token)


@router.post("/login")
@page
async def login(
    request: Request, platform: PlatformDep, me: Identity = Who, token: str = Form(..., max_length=500)
) -> Response:
    """Redeem a login link from its page (the web edge has checked that the POST came from a vTeam page)."""
    try:
        used = await platform.accounts.redeem(token)
    except Unauthorized as exc:
        await platform.audit.record(actor="anonymous", action="login", target="login link", outcome="denied")
        return render(request, "login.html", status_code=401, error=exc.detail)
    return await browser_session(request, platform, used.user or "", "/", via="link")


@router.post("/signout")
@page
async def signout(request: Request, platform: PlatformDep, me: Identity = Who) -> Response:
    if me.kind == "user" and me.token_id:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                record = await platform.accounts.verify(cookie, kind="session")
                await platform.accounts.revoke(record.id)
            except Unauthorized:
                pass
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/projects")
@page
async def projects(request: Request, platform: PlatformDep, me: Identity = Who, q: str = Query("")) -> Response:
    signed_in(me)
    return await _projects_page(request, platform, me, q=q)


async def _projects_page(
    request: Request,
    platform: Platform,
    me: Identity,
    *,
    q: str = "",
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    listing = await platform.store.list(Project)
    roles: dict[str, str] = {}
    shown = []
    needle = q.strip().lower()
    for project in listing.items:
        role = await role_in(platform, me, project.name)
        if role is None:
            continue
        haystack = f"{project.name} {project.spec.display_name or ''} {project.spec.description or ''}".lower()
        if needle and needle not in haystack:
            continue
        roles[project.name] = role.value
        shown.append(project)
    return render(
        request,
        "projects.html",
        status_code=status_code,
        section="projects",
        projects=shown,
        roles=roles,
        q=q,
        can_create=me.kind == "user",
        form=form or {},
        errors=errors or {},
    )


@router.post("/projects")
@page
async def create_project(
    request: Request,
    platform: PlatformDep,
    me: Identity = Who,
    name: str = Form(""),
    display_name: str = Form(""),
    description: str = Form(""),
) -> Response:
    signed_in(me)
    form = {"name": name, "display_name": display_name, "description": description}
    if me.kind != "user":
        raise Forbidden("access keys belong to one project and cannot create projects")
    try:
        body = ProjectCreate.model_validate(
            {"name": name.strip(), "displayName": display_name.strip() or None, "description": description or None}
        )
        created = await platform.projects.create(caller=me, project=body.resource(), request_id=_request_id(request))
    except (InvalidInput, VteamError) as exc:
        return await _projects_page(
            request, platform, me, status_code=exc.status, form=form, errors={"name": exc.detail}
        )
    except ValueError as exc:
        return await _projects_page(request, platform, me, status_code=422, form=form, errors={"name": _first(exc)})
    return RedirectResponse(f"/projects/{created.name}", status_code=303)


def _request_id(request: Request) -> str | None:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid


def _first(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", "")).removeprefix("Value error, ")
    return str(exc)


@router.post("/projects/{project}/delete")
@page
async def delete_project(
    request: Request, project: str, platform: PlatformDep, me: Identity = Who, confirm: str = Form("")
) -> Response:
    await project_role(platform, me, project, Role.ADMIN)
    if confirm.strip() != project:
        raise InvalidInput(f"type the project's name, {project}, to delete it")
    await platform.projects.delete(caller=me, project=project, request_id=_request_id(request))
    return RedirectResponse("/projects", status_code=303)


@router.get("/static/vendor/{name}")
async def vendor(name: str, platform: PlatformDep, _me: Identity = Who) -> Response:
    """A front-end library from node_modules. A missing one is answered in plain text that never repeats the
    requested name: a name in the URL must not become page content."""
    if name not in assets.VENDOR:
        return PlainTextResponse("no such file", 404)
    found = assets.vendor_file(platform.settings.web_modules, name)
    if found is None:
        return PlainTextResponse("the web UI's npm packages are not installed; run `make run` to install them", 404)
    return FileResponse(found, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})
