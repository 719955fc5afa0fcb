"""The HTTP API: FastAPI app, one router per resource, problem details at the edge."""

from vteam.api.app import allow_head, create_app
from vteam.api.platform import Platform

__all__ = ["Platform", "allow_head", "create_app"]
