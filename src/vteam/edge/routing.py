"""Route plumbing both doors apply to their routers."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute


def allow_head(routes: Iterable[BaseRoute]) -> None:
    """Answer HEAD wherever GET is answered, as Starlette's own routes do and FastAPI's do not; the server
    sends the GET's status and headers without its body. FastAPI copies a router's routes when it is
    included, so this runs on each router before `include_router`."""
    for route in routes:
        if isinstance(route, APIRoute) and route.methods and "GET" in route.methods:
            route.methods.add("HEAD")
