"""Every page of the web UI passes through the pages' one authentication check, so none skips sign-in."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from vteam.web import PAGE_ROUTERS
from vteam.web.pages import authorize_page


def _dependencies(router: APIRouter, route: APIRoute) -> set[object]:
    found = {dep.dependency for dep in router.dependencies}
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        found.add(dep.call)
        stack.extend(dep.dependencies)
    return found


def test_every_page_route_depends_on_authorize_page() -> None:
    routes = [(router, r) for router in PAGE_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 6
    unguarded = sorted(
        f"{sorted(r.methods)} {r.path}" for router, r in routes if authorize_page not in _dependencies(router, r)
    )
    assert unguarded == []


def test_page_routes_stay_out_of_the_api_description() -> None:
    for router in PAGE_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            assert not route.path.startswith("/api/"), route.path
            assert route.include_in_schema is False or router.include_in_schema is False, route.path
