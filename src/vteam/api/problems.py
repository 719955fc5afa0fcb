"""Every error leaves the API as RFC 9457 problem details; never a stack trace."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vteam.errors import RateLimited, VteamError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": request.url.path}
    body.update({k: v for k, v in extra.items() if v})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def deny(websocket: WebSocket, exc: VteamError) -> None:
    """Refuse a WebSocket in its handshake with the status and problem details an HTTP route would answer."""
    body = {
        "type": "about:blank",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": websocket.url.path,
    }
    try:
        await websocket.send_denial_response(JSONResponse(body, status_code=exc.status, media_type=MEDIA_TYPE))
    except RuntimeError:  # a server without the denial extension: close with the status in the code
        await websocket.close(code=4000 + exc.status, reason=exc.detail[:120])


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        out.append({"loc": loc, "msg": msg})
    return out


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

    @app.exception_handler(ValidationError)
    async def _model(request: Request, exc: ValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()))
        return problem(422, "Invalid input", summary(errors), request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        return problem(exc.status_code, detail if exc.status_code != 404 else "Not found", detail, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server hit an unexpected error; see its log", request)
