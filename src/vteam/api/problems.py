"""Every error leaves the API as RFC 9457 problem details; never a stack trace."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from vteam.errors import RateLimited, VteamError
from vteam.services.session_body import validation_errors

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

BODY_UNREADABLE = "There was an error parsing the body"
"""FastAPI's detail for a body it could not decode (not UTF-8, or nested past the JSON parser's depth)."""


def problem(status: int, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": request.url.path}
    body.update({k: v for k, v in extra.items() if v})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def deny(websocket: WebSocket, exc: VteamError) -> None:
    """Refuse a WebSocket in its handshake with the status and problem details an HTTP route would answer."""
    await _deny(websocket, exc.status, exc.title, exc.detail, errors=exc.extra.get("errors"))


async def _deny(websocket: WebSocket, status: int, title: str, detail: str, **extra: Any) -> None:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": websocket.url.path}
    body.update({k: v for k, v in extra.items() if v})
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=status, media_type=MEDIA_TYPE))
    except RuntimeError:  # a server without the denial extension: close with the status in the code
        await websocket.close(code=4000 + status, reason=detail[:120])


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path: the router names only the first route's in its 405,
    where a path's GET and POST are often two routes. A mount (static files) takes any method: not counted."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method, "path_params": {}}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def summary(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in errors]
    return "; ".join(parts) or "request is not valid"


def install(app: FastAPI) -> None:
    @app.exception_handler(VteamError)
    async def _vteam(request: Request, exc: VteamError) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.detail, request, errors=exc.extra.get("errors"))
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()))
        return problem(422, "Invalid input", summary(errors), request, errors=errors)

    @app.exception_handler(WebSocketRequestValidationError)
    async def _socket(websocket: WebSocket, exc: WebSocketRequestValidationError) -> None:
        """A WebSocket's bad query is refused in its handshake as the 422 an HTTP route would answer."""
        errors = validation_errors(list(exc.errors()))
        await _deny(websocket, 422, "Invalid input", summary(errors), errors=errors)

    @app.exception_handler(ValidationError)
    async def _model(request: Request, exc: ValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()))
        return problem(422, "Invalid input", summary(errors), request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own refusals as problems, keeping their headers (a 405's `Allow`)."""
        if exc.status_code == 400 and exc.detail == BODY_UNREADABLE:
            # FastAPI answers 400 for a body it cannot decode but 422 for one that is not JSON: one status for both.
            detail = "the body is not valid JSON: it must be UTF-8 text holding one JSON value"
            return problem(422, "Invalid input", detail, request, errors=[{"loc": ["body"], "msg": detail}])
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        response = problem(exc.status_code, detail if exc.status_code != 404 else "Not found", detail, request)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405 and (allowed := allowed_methods(request)):
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server hit an unexpected error; see its log", request)
