"""The FastAPI application; the platform is built in its lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from vteam import __version__
from vteam.api import (
    access,
    accounts,
    admin,
    audit,
    conversation,
    forge_accounts,
    health,
    middleware,
    openapi,
    problems,
    projects,
    pull_requests,
    repo,
    runner,
    runner_types,
    secrets,
    sessions,
    streams,
)
from vteam.api.web_edge import SWAGGER_CSS, SWAGGER_JS
from vteam.edge.deps import SignedIn
from vteam.edge.routing import allow_head
from vteam.services.platform import Platform
from vteam.settings import Settings

OPENAPI_URL = "/api/openapi.json"

ROUTERS = (
    health.router,
    projects.router,
    sessions.router,
    conversation.router,
    streams.router,
    runner.router,
    runner_types.router,
    pull_requests.router,
    repo.router,
    forge_accounts.router,
    secrets.router,
    accounts.router,
    access.router,
    admin.router,
    audit.router,
)


def create_app(settings: Settings, *, server_url: str | None = None, platform: Platform | None = None) -> FastAPI:
    """`server_url` is where runners reach this API; `vteam up` knows it once its socket is bound.

    `vteam up` opens the platform itself, so it can report a start-up problem in one line;
    otherwise the app opens it in its lifespan.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal platform
        platform = platform or await Platform.open(settings)
        app.state.platform = platform
        url = server_url or settings.public_url or f"http://{settings.host}:{settings.port}"
        await platform.start(url)
        try:
            yield
        finally:
            await platform.close()

    app = FastAPI(
        title="vTeam",
        version=__version__,
        description="Run AI coding agents as agentic sessions against git repositories.",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    middleware.install(app, settings)
    for router in ROUTERS:
        allow_head(router.routes)
        app.include_router(router)
    _describe(app)
    allow_head(app.router.routes)
    return app


def _describe(app: FastAPI) -> None:
    """The OpenAPI description and its browsable docs, for signed-in callers only, as every route but health and
    login (docs/api.md): FastAPI's own routes for them answer anyone."""

    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_json(_caller: SignedIn) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    async def docs(_caller: SignedIn) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL, title="vTeam API", swagger_js_url=SWAGGER_JS, swagger_css_url=SWAGGER_CSS
        )
