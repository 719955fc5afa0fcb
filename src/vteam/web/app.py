"""The whole application `vteam up` serves: the API and, on top of it, the web UI's pages and files."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from vteam.api import allow_head
from vteam.api import create_app as create_api
from vteam.web import assets, pages, session_page, sessions_page, settings_page

# sessions_page before session_page: /projects/P/sessions/new must match before /sessions/{name}.
PAGE_ROUTERS = (pages.router, sessions_page.router, session_page.router, settings_page.router)


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """The API app (same arguments), with the pages first and then the package's static files, so the
    vendor route under /static wins over the mount."""
    app = create_api(*args, **kwargs)
    app.state.html_refusal = pages.html_refusal  # the web edge's refusals of page requests, as pages
    for router in PAGE_ROUTERS:
        allow_head(router.routes)
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=assets.STATIC), name="static")
    return app
