"""Where the UI's files come from: its own stylesheet and script in the package, front-end libraries
(htmx and its SSE extension) from the npm packages `make` installs; nothing from a CDN."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).parent
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates"

VENDOR = {
    "htmx.min.js": Path("htmx.org/dist/htmx.min.js"),
    "sse.js": Path("htmx-ext-sse/dist/sse.min.js"),
}
"""Files served under /static/vendor/, each found inside node_modules."""


def node_modules(configured: Path | None) -> Path:
    """`VTEAM_WEB_MODULES`, else the `.web/node_modules` that `make` fills next to the source tree."""
    return configured if configured is not None else PACKAGE.parents[2] / ".web" / "node_modules"


def vendor_file(configured: Path | None, name: str) -> Path | None:
    relative = VENDOR.get(name)
    if relative is None:
        return None
    found = node_modules(configured) / relative
    return found if found.is_file() else None
