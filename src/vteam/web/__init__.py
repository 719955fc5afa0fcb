"""The web UI: server-rendered pages (Jinja2), htmx for partial updates, SSE for live streams; a sibling of the
API over the services (neither imports the other)."""

from vteam.web.app import PAGE_ROUTERS, mount

__all__ = ["PAGE_ROUTERS", "mount"]
