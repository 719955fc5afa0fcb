"""The web UI's part of the application `vteam up` serves: its pages and files, mounted on an app built below
(`vteam.server` puts them on top of the API)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from vteam.edge.routing import allow_head
from vteam.web import assets, pages, session_page, sessions_page, settings_page

# sessions_page before session_page: /projects/P/sessions/new must match before /sessions/{name}.
PAGE_ROUTERS = (pages.router, sessions_page.router, session_page.router, settings_page.router)


def mount(app: FastAPI) -> FastAPI:
    """Add the pages and then the package's static files, so the vendor route under /static wins over the
    mount; the app's edge answers refused page requests as pages."""
    app.state.html_refusal = pages.html_refusal
    for router in PAGE_ROUTERS:
        allow_head(router.routes)
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=assets.STATIC), name="static")
    return app
