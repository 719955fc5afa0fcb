"""A session's page: its conversation (rendered from the stored events, then live over SSE), its
repositories' results and diffs, and the controls an editor has over it.

The page renders the last stored events up to seq N (a long conversation's tail; `/earlier` pages
the rest on demand, in a worker thread like the page) and opens `/stream?after=N`, which sends HTML
fragments for the events after N; both come from one renderer (`vteam.web.conversation`), so a
reload shows each event exactly once. The controls call `Sessions`, as the API does, so the checks,
transitions and audit records are the same at both doors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sse_starlette import ServerSentEvent

from vteam.auth import Identity, Role
from vteam.errors import InvalidInput
from vteam.events import MAX_SEQ, Envelope, is_final, resume_from
from vteam.events.agui import PHASE
from vteam.resources import AgenticSession
from vteam.services import ContinueIn, MessageIn
from vteam.web.conversation import Conversation, DiffView, agent_badge, phase_badge
from vteam.web.deps import GuardedEventSource, Platform, PlatformDep, StreamGuard
from vteam.web.pages import Who, csrf_token, page, project_role, render, templates

router = APIRouter(include_in_schema=False)

DIFF_LINES = 3000
"""The most lines of one diff a page shows; the rest is left to git, with a note saying so."""
TAIL_EVENTS = 400
TAIL_BYTES = 512 * 1024
"""A page shows the last events of a conversation, at most this many and about this much; the earlier ones
come a page at a time from `/earlier`, so a session's size never decides how long its page takes."""


def _path(project: str, name: str) -> str:
    return f"/projects/{project}/sessions/{name}"


async def _tail(platform: Platform, uid: str, *, upto: int | None = None, floor: int = 0) -> list[Envelope]:
    """The last events up to `upto` (the newest when None) and after `floor`, in order; read backwards in
    growing steps (log seqs have no gaps) until TAIL_EVENTS or TAIL_BYTES is reached."""
    end = await platform.events.last_seq(uid) if upto is None else upto
    out: list[Envelope] = []
    size, step = 0, 8
    while end > floor and len(out) < TAIL_EVENTS and size < TAIL_BYTES:
        start = max(floor, end - step)
        for env in reversed(await platform.events.read(uid, after=start, limit=end - start)):
            out.append(env)
            size += len(json.dumps(env.data, separators=(",", ":")))
            if len(out) >= TAIL_EVENTS or size >= TAIL_BYTES:
                break
        end, step = start, min(step * 2, 128)
    out.reverse()
    return out


def _render(conv: Conversation, envs: Iterable[Envelope]) -> Markup:
    """Feed and render; called in a worker thread, so a long conversation never holds the event loop."""
    for env in envs:
        conv.feed(env)
    return conv.page()


def _earlier(base: str, envs: list[Envelope]) -> Markup:
    """The control that loads the events before the shown ones (htmx replaces it with them), if any."""
    first = envs[0].seq if envs else 1
    if first <= 1:
        return Markup("")
    return Markup(
        '<div class="earlier status-line" id="earlier-{first}"><a href="{base}/earlier?before={first}" '
        'hx-get="{base}/earlier?before={first}" hx-target="#earlier-{first}" hx-swap="outerHTML">'
        'Show earlier output</a> <span class="muted">({n:,} earlier events not shown)</span></div>'
    ).format(base=base, first=first, n=first - 1)


def _elapsed(session: AgenticSession) -> str | None:
    start = session.status.start_time
    if start is None:
        return None
    end = session.status.completion_time or datetime.now(UTC)
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else (f"{minutes}m {secs}s" if minutes else f"{secs}s")


def _diff_lines(view: DiffView) -> dict[str, Any]:
    """A diff's lines with the class that colours them, cut at DIFF_LINES."""
    lines = view.diff.splitlines()
    shown = []
    for line in lines[:DIFF_LINES]:
        if line.startswith(("+++", "---")):
            css = "file"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        elif line.startswith("diff "):
            css = "head"
        else:
            css = ""
        shown.append((css, line))
    return {"lines": shown, "total": len(lines), "cut": len(lines) > DIFF_LINES, "truncated": view.truncated}


def _context(session: AgenticSession, conv: Conversation, role: Role, project: str) -> dict[str, Any]:
    """What the page's parts (header, controls, repositories) need, also for their live replacements."""
    phase = conv.phase or session.phase.value
    ended = conv.final or session.phase.terminal
    agent = "idle" if ended else (session.status.agent_status or conv.agent_status)
    repos = []
    for index, status in enumerate(session.status.repos):
        key = (status.submodule_of, status.path) if status.submodule_of is not None else (index, None)
        view = conv.diffs.get(key)
        repos.append({"status": status, "diff": _diff_lines(view) if view else None})
    result = session.status.result
    return {
        "session": session,
        "project": project,
        "base": _path(project, session.name),
        "phase": phase,
        "phase_badge": phase_badge(phase),
        "agent_badge": agent_badge(agent),
        "ended": ended,
        "running": not ended,
        "can_edit": role.allows(Role.EDIT),
        "elapsed": _elapsed(session),
        "cost": result.cost_usd if result else None,
        "repos": repos,
    }


def _part(name: str, context: dict[str, Any], *, oob: bool = False) -> str:
    return templates.get_template(name).render({**context, "oob": oob})


@router.get("/projects/{project}/sessions/{name}")
@page
async def session_page(
    request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who
) -> Response:
    role = await project_role(platform, me, project, Role.VIEW)
    session = await platform.store.get(AgenticSession, name, project)
    conv = Conversation(interactive=session.spec.interactive)
    envs = await _tail(platform, session.metadata.uid or "")
    shown = await asyncio.to_thread(_render, conv, envs)
    if conv.final:
        # The final report's results are stored before the final event: read them now they are there.
        session = await platform.store.get(AgenticSession, name, project)
    context = _context(session, conv, role, project)
    return render(
        request,
        "session.html",
        section="projects",
        conversation=_earlier(context["base"], envs) + shown,
        after=conv.last_seq,
        since=envs[0].seq - 1 if envs else 0,
        live=not conv.final,
        **context,
    )


@router.get("/projects/{project}/sessions/{name}/earlier")
@page
async def earlier_events(
    request: Request,
    project: str,
    name: str,
    platform: PlatformDep,
    me: Identity = Who,
    before: int = Query(..., ge=1, le=MAX_SEQ, description="Show the events before this seq."),
) -> Response:
    """One page of the conversation before `before`, with the control for the page before it, for htmx."""
    await project_role(platform, me, project, Role.VIEW)
    session = await platform.store.get(AgenticSession, name, project)
    envs = await _tail(platform, session.metadata.uid or "", upto=before - 1)
    conv = Conversation(interactive=session.spec.interactive, scope=f"e{before}-")
    shown = await asyncio.to_thread(_render, conv, envs)
    return HTMLResponse(_earlier(_path(project, name), envs) + shown, headers={"Cache-Control": "no-store"})


@router.get("/projects/{project}/sessions/{name}/stream")
@page
async def session_stream(
    request: Request,
    project: str,
    name: str,
    platform: PlatformDep,
    me: Identity = Who,
    after: int = Query(0, ge=0, le=MAX_SEQ),
    since: int = Query(0, ge=0, le=MAX_SEQ),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> Response:
    """HTML fragments for the events after `after`, each with its seq as the SSE id; an `end` event last.

    The renderer first reads the page's events (after `since`, up to `after`; at most a page's tail)
    without sending them, so a message or tool call that began before the page was rendered is finished
    correctly. A reconnecting browser says what it
    last got (Last-Event-ID), and the stream goes on from there.
    """
    role = await project_role(platform, me, project, Role.VIEW)
    session = await platform.store.get(AgenticSession, name, project)
    guard = StreamGuard(request, platform, me, project)
    start = resume_from(after, last_event_id)
    conv = Conversation(interactive=session.spec.interactive)
    await asyncio.to_thread(_render, conv, await _tail(platform, session.metadata.uid or "", upto=start, floor=since))
    csrf = csrf_token(request)  # the live parts' forms are rendered without the request

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with aclosing(guard.bounded(platform.sessions.follow(session, after=start))) as envs:
            async for env in envs:
                html = conv.feed(env)
                if env.type == PHASE:
                    # Each phase change re-renders what depends on the stored status: the summary and the
                    # controls, and at the end the repositories' results too.
                    current = await platform.store.get(AgenticSession, name, project)
                    context = _context(current, conv, guard.current or role, project) | {"csrf": csrf}
                    parts = ["partials/session_summary.html", "partials/session_controls.html"]
                    if is_final(env):
                        parts.append("partials/session_repos.html")
                    html += "".join(_part(part, context, oob=True) for part in parts)
                yield ServerSentEvent(id=str(env.seq), event="message", data=html)
        yield ServerSentEvent(event="end", data="end")

    slot = platform.streams.take(me, platform.settings.max_streams_per_caller)
    return GuardedEventSource(stream(), slot=slot, ping=15, headers={"Cache-Control": "no-store"})


def _reason(exc: ValidationError) -> str:
    """Why a form's text was refused (empty, too long, a NUL character), without quoting the text."""
    return str(exc.errors()[0].get("msg", "not valid")).removeprefix("Value error, ")


def _request_id(request: Request) -> str | None:
    """The request's id, so the audit record and the log line can be matched."""
    return getattr(request.state, "request_id", None)


def _back(request: Request, project: str, name: str) -> Response:
    """htmx requests stay on the page (the stream shows the effect); plain form posts go back to it."""
    if request.headers.get("HX-Request"):
        return Response(status_code=204)
    return RedirectResponse(_path(project, name), status_code=303)


@router.post("/projects/{project}/sessions/{name}/message")
@page
async def send_message(
    request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who, text: str = Form("")
) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    try:
        message = MessageIn(text=text)
    except ValidationError as exc:
        raise InvalidInput(f"write a message (at most 100,000 characters): {_reason(exc)}") from None
    await platform.sessions.send_message(caller=me, project=project, name=name, message=message)
    if request.headers.get("HX-Request"):
        # A fresh, empty form: the message itself shows up in the conversation from the stream.
        context = {"base": _path(project, name), "sent": True, "csrf": csrf_token(request)}
        return HTMLResponse(_part("partials/session_message_form.html", context))
    return RedirectResponse(_path(project, name), status_code=303)


@router.post("/projects/{project}/sessions/{name}/interrupt")
@page
async def interrupt(request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    await platform.sessions.interrupt(caller=me, project=project, name=name, request_id=_request_id(request))
    return _back(request, project, name)


@router.post("/projects/{project}/sessions/{name}/stop")
@page
async def stop(request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    await platform.sessions.stop(caller=me, project=project, name=name, request_id=_request_id(request))
    return _back(request, project, name)


@router.post("/projects/{project}/sessions/{name}/continue")
@page
async def continue_session(
    request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who, prompt: str = Form("")
) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    try:
        change = ContinueIn(prompt=prompt)
    except ValidationError as exc:
        raise InvalidInput(f"write a prompt for the continued session: {_reason(exc)}") from None
    child = await platform.sessions.continue_(
        caller=me, project=project, name=name, change=change, request_id=_request_id(request)
    )
    return RedirectResponse(_path(project, child.name), status_code=303)


@router.post("/projects/{project}/sessions/{name}/delete")
@page
async def delete_session(
    request: Request, project: str, name: str, platform: PlatformDep, me: Identity = Who
) -> Response:
    await project_role(platform, me, project, Role.EDIT)
    await platform.sessions.delete(caller=me, project=project, name=name, request_id=_request_id(request))
    return RedirectResponse(f"/projects/{project}", status_code=303)
