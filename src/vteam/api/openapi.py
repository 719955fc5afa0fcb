"""The OpenAPI document as the server really answers: every problem answer and the request schemas it enforces.

FastAPI's generated document knows only the success status and a 422 of its own shape. This module adds, per
operation, the `application/problem+json` answers that `vteam.api.problems` and the middleware give (401,
403, 404, 409, 413, 422, 429, and 502 where a forge answers, as each route can answer) and the credentials
it takes, and tightens the request schemas where the server checks more than the types: names are DNS-1123
labels, frameworks are the registered ones, and the session create body is its real model. The property-based
fuzz in tests/api/test_integrity_fuzz_api.py holds the server to it.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from vteam.agents import registry
from vteam.api.problems import MEDIA_TYPE
from vteam.api.schemas import SessionCreate, SessionCreateFull

PROBLEM = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM,
    "description": "RFC 9457 problem details, as every error leaves the API.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

DESCRIPTIONS = {
    "401": "Not signed in, or the credentials are not valid.",
    "403": "Signed in, but this needs another role or credential.",
    "404": "No such resource, or a project the caller cannot see.",
    "409": "The write conflicts with the resource's state (exists, stale, or a phase that forbids it).",
    "413": "The request body is larger than VTEAM_MAX_BODY_BYTES.",
    "422": "The request is not valid; `errors` names each field.",
    "429": "Too many writes from this caller (VTEAM_WRITE_RATE_PER_MINUTE); see Retry-After.",
    "502": "A forge (GitHub, GitLab) failed or could not be reached; the detail names it.",
}
UPSTREAM = ("/api/user/forges/{forge}/token", "/repo/", "/pull-requests")
"""Paths whose answers come from a forge, and so may be its failure (502)."""
WRITES = frozenset({"post", "put", "patch", "delete"})
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Answer anyone with 200, whatever the credentials."""
PUBLIC_PATHS = OPEN_PATHS | {"/api/login"}
"""Need no credentials (docs/api.md, "Signing in")."""
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (vt_api_…), a project's access key (vt_key_…) or VTEAM_ADMIN_TOKEN.",
    },
    "cookie": {"type": "apiKey", "in": "cookie", "name": "vteam_session", "description": "A browser's sign-in."},
}

NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 63,
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "description": "A DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit.",
}
TIMES = frozenset({"since", "until"})
"""Query parameters that are ISO 8601 times."""
SESSION_CREATE_PATH = "/api/projects/{project}/agentic-sessions"
EVENTS_SUFFIX = "/agentic-sessions/{name}/events"
"""The session's event stream: server-sent events, not JSON."""
SSE_EVENT: dict[str, Any] = {
    "description": "One server-sent event: `id` is the event's seq, `data` the event envelope as JSON.",
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, generated once and kept, as FastAPI does."""
    if app.openapi_schema is None:
        with warnings.catch_warnings():
            # Routes that answer HEAD beside GET give both one operation id; `describe` drops the HEAD.
            warnings.filterwarnings("ignore", message="Duplicate Operation ID ", category=UserWarning)
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
        describe(spec)
        app.openapi_schema = spec
    return app.openapi_schema


def describe(spec: dict[str, Any]) -> None:
    """Add the problem answers and the enforced request schemas to a generated document, in place."""
    spec["components"] = {**spec.get("components", {}), "securitySchemes": SECURITY_SCHEMES}
    spec["security"] = [{"bearer": []}, {"cookie": []}]
    components = spec["components"].setdefault("schemas", {})
    components[PROBLEM] = PROBLEM_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for operations in spec.get("paths", {}).values():
        # HEAD is answered wherever GET is (RFC 9110); listed, it would repeat each GET under the same id.
        if "get" in operations:
            operations.pop("head", None)
            get = operations["get"]
            if get.get("operationId", "").endswith("_head"):
                get["operationId"] = get["operationId"].removesuffix("_head") + "_get"
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            _tighten_parameters(path, operation)
            if method == "post" and path == SESSION_CREATE_PATH:
                _session_body(operation, components)
            if method == "get" and path.endswith(EVENTS_SUFFIX):
                operation["responses"]["200"]["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
    _tighten_bodies(components)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if path in PUBLIC_PATHS:
                operation["security"] = []
            for status in _problems(path, method, operation):
                operation.setdefault("responses", {})[status] = {
                    "description": DESCRIPTIONS[status],
                    "content": {MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}},
                }


def _problems(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    if path in OPEN_PATHS:
        return []
    statuses = ["401", "403", "404"]
    parameters = operation.get("parameters", [])
    if method in WRITES:
        statuses += ["409", "429"]
    if "requestBody" in operation:
        statuses.append("413")
    if parameters or "requestBody" in operation or "422" in operation.get("responses", {}):
        statuses.append("422")
    if any(part in path for part in UPSTREAM):
        statuses.append("502")
    return statuses


def _tighten_parameters(path: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and _is_name(path, parameter["name"]):
            parameter["schema"] = {**NAME_SCHEMA, "title": parameter.get("schema", {}).get("title", "")}
        elif parameter.get("in") == "query" and parameter["name"] in TIMES:
            _as_time(parameter["schema"])


def _tighten_bodies(components: dict[str, Any]) -> None:
    """What the server checks of a body beyond its types: the names of projects, users and sessions, a known
    framework, a secret without NUL and scoped to known frameworks, a policy's absolute local roots."""
    frameworks = [info.name for info in registry.infos()]
    for model in ("ProjectDefaults", "SessionSpec", "SessionCreate"):
        framework = components.get(model, {}).get("properties", {}).get("framework")
        for option in [] if framework is None else framework.get("anyOf", [framework]):
            if option.get("type") == "string":
                option["enum"] = frameworks
    secret = components.get("SecretIn", {}).get("properties", {}).get("value")
    if secret is not None:
        secret["pattern"] = "^[^\\u0000]*$"
    scope = components.get("SecretIn", {}).get("properties", {}).get("frameworks")
    for option in [] if scope is None else scope.get("anyOf", [scope]):
        if option.get("type") == "array":
            option["items"] = {**option.get("items", {}), "enum": frameworks}
    for model in ("ProjectCreate", "UserIn"):
        if model in components:
            components[model]["properties"]["name"] = {**NAME_SCHEMA, "title": "Name"}
    for model in ("SessionCreate", "SessionMetadataIn", "ContinueIn"):
        name = components.get(model, {}).get("properties", {}).get("name")
        for option in [] if name is None else name.get("anyOf", [name]):
            if option.get("type") == "string":  # empty, as null: the server picks a name
                option.update({"maxLength": 63, "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"})
    policy = components.get("RepositoryPolicyIn", {}).get("properties", {}).get("localRoots")
    if policy is not None:
        for option in policy.get("anyOf", [policy]):
            if option.get("type") == "array":
                option["items"] = {**option.get("items", {}), "pattern": "^/"}


def _is_name(path: str, parameter: str) -> bool:
    return parameter == "project" or (parameter == "name" and "/agentic-sessions/{name}" in path)


def _as_time(schema: dict[str, Any]) -> None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["format"] = "date-time"


def _session_body(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """The create body as its two real shapes, rather than a free-form object (a body with `spec` is the
    second)."""
    schemas: dict[str, Any] = {}
    for model in (SessionCreate, SessionCreateFull):
        generated = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(generated.pop("$defs", {}))
        schemas[model.__name__] = generated
    for name, schema in schemas.items():
        components.setdefault(name, schema)
    content = operation["requestBody"]["content"]["application/json"]
    content["schema"] = {
        "anyOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in (SessionCreate, SessionCreateFull)],
        "description": content.get("schema", {}).get("description", ""),
    }
