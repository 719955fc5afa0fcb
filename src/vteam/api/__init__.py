"""The HTTP API: FastAPI app, one router per resource, problem details at the edge."""

from vteam.api.app import create_app
from vteam.edge.routing import allow_head
from vteam.services.platform import Platform

__all__ = ["Platform", "allow_head", "create_app"]
