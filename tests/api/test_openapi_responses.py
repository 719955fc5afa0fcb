"""Every successful answer in the OpenAPI document has a schema that says what it holds, since the SDK and the
web UI are generated from it: an empty or free-form object would tell them nothing. The fuzz
(tests/api/test_integrity_fuzz_api.py) holds the real answers to these schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from vteam.api.app import create_app
from vteam.settings import Settings

PENDING: dict[tuple[str, str], str] = {}
"""Routes whose modules have not been given response models yet, each with who adds them: remove an entry
when its route is described (the test fails on an entry that no longer needs excusing)."""
NO_BODY = frozenset({"204"})
"""Answers that have no body at all."""
STREAMS = {("get", "/api/audit/export"): "JSON Lines, one AuditEntry a line: a stream, not one JSON document"}
"""Answers that are streams rather than one JSON document (the SSE event stream has its own schema; WebSockets
are not in the document)."""


@cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings()).openapi()
    return document


def operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (method, path, status, answer)
        for path, ops in spec()["paths"].items()
        for method, operation in ops.items()
        for status, answer in operation["responses"].items()
        if status.startswith("2")
    ]


def described(schema: dict[str, Any]) -> bool:
    """Whether a schema says what a body holds: a model (by reference), an object with properties, a list of
    described items, a scalar, or alternatives that each say so. `{}` and a free-form object do not."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return described(spec()["components"]["schemas"][name])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return all(described(option) for option in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return described(schema.get("items", {}))
    if kind == "object":
        return bool(schema.get("properties"))
    return kind in {"string", "integer", "number", "boolean", "null"}


def test_every_successful_answer_has_a_described_schema() -> None:
    vague = []
    for method, path, status, answer in operations():
        if status in NO_BODY or (method, path) in PENDING or (method, path) in STREAMS:
            continue
        content = answer.get("content") or {}
        if not content or not all(described(media.get("schema", {})) for media in content.values()):
            vague.append(f"{method.upper()} {path} {status}")
    assert vague == []


def test_no_exclusion_outlives_its_reason() -> None:
    """An excused route that is described now, or no longer exists, leaves the list, so the list only shrinks."""
    present = {(method, path) for method, path, _, _ in operations()}
    stale = [key for key in {**PENDING, **STREAMS} if key not in present]
    assert stale == []
    now_described = [
        key
        for method, path, status, answer in operations()
        if (key := (method, path)) in PENDING
        and status not in NO_BODY
        and all(described(media.get("schema", {})) for media in (answer.get("content") or {"": {}}).values())
    ]
    assert now_described == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({}, False),
        ({"type": "object", "additionalProperties": True}, False),
        ({"type": "array", "items": {"type": "object"}}, False),
        ({"type": "object", "properties": {"a": {}}}, True),
        ({"type": "array", "items": {"type": "string"}}, True),
        ({"anyOf": [{"type": "string"}, {}]}, False),
    ],
)
def test_the_check_tells_a_free_form_body_from_a_described_one(schema: dict[str, Any], expected: bool) -> None:
    assert described(schema) is expected
