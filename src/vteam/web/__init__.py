"""The web UI: server-rendered pages (Jinja2), htmx for partial updates, SSE for live streams."""

from vteam.web.app import PAGE_ROUTERS, create_app

__all__ = ["PAGE_ROUTERS", "create_app"]
