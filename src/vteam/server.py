"""The whole application `vteam up` serves: the API with the web UI's pages and files on top. The one module
that knows both doors; neither knows the other."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from vteam import api, web


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """The API app (`vteam.api.create_app`, same arguments) with the web UI mounted on it."""
    return web.mount(api.create_app(*args, **kwargs))
