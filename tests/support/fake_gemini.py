"""A scripted fake of Google's Gemini API (generativelanguage, `v1beta`) on 127.0.0.1, so real clients run offline.

Real clients (the official `google-genai` SDK, Google's Gemini CLI) are pointed at `.url`, the base URL *without*
the API version, which is what those clients take (`HttpOptions(base_url=...)`, `GOOGLE_GEMINI_BASE_URL`). The fake
plays a *script*: a list of replies, each a list of parts built with `text()`, `function_call()` and `thought()`.
Each request to `POST /v1beta/models/<model>:streamGenerateContent` (or `/v1/…`) (server-sent events with `?alt=sse`) or
`POST /v1beta/models/<model>:generateContent` (JSON) takes the next reply; once the script is used up it answers
`FINAL_TEXT`. A request the `side` rule picks (default: those asking for JSON, see `json_requests`) gets a
canned answer instead and leaves the script alone.
`POST /v1beta/models/<model>:countTokens` counts about four bytes a token; any other route is a recorded 404.
The API key goes in the `x-goog-api-key` header (or `?key=`); a wrong one gets Google's 400 `API_KEY_INVALID`.

Every response and streamed chunk is checked against the SDK's `GenerateContentResponse` (its models forbid fields
they do not declare, so a misspelt field is caught too), and every request body against the SDK's `Content`,
`Tool`, `GenerationConfig`, ... types in their wire (camelCase) form; mismatches land in `.errors`, which tests
assert stays empty. Every request is kept in `.requests`, secrets removed.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
from google.genai import _common, types

from tests.support.scripted_server import (
    ScriptedServer,
    adapter,
    end_chunks,
    pieces,
    read_body,
    send_json,
    summary,
    tokens,
    write_chunk,
)

Part = dict[str, Any]
Reply = list[Part]

FINAL_TEXT = "Done."
SIDE_TEXT = "Scripted session"
SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization", "cookie", "proxy-authorization"})
API_VERSIONS = ("v1beta", "v1")
"""Gemini CLI uses `v1beta`; the google-genai SDK 3.x defaults to `v1`. Both serve the same methods."""
METHODS = frozenset({"streamGenerateContent", "generateContent", "countTokens"})
PIECE_SIZE = 16


def text(value: str) -> Part:
    """Text the model writes."""
    return {"text": value}


def function_call(name: str, args: dict[str, Any], *, call_id: str | None = None) -> Part:
    """A call of function `name` with `args` (an object, as the API sends it); `call_id` only when given."""
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id:
        call["id"] = call_id
    return {"functionCall": call}


def thought(value: str) -> Part:
    """A thought summary: a text part marked `thought` (sent as the real API does only with `includeThoughts`)."""
    return {"text": value, "thought": True}


def no_side_requests(body: dict[str, Any]) -> bool:
    """An opt-in rule: every generate request is a turn of the agent loop and consumes the script."""
    return False


def json_requests(body: dict[str, Any]) -> bool:
    """The default rule: a request that asks for JSON (`responseMimeType`) is housekeeping, not a turn of the agent
    loop: Gemini CLI's model router asks a small model to score the prompt's complexity that way (when no model is
    chosen), and its next-speaker and loop checks ask in JSON too."""
    return bool(_field(_field(body, "generationConfig"), "responseMimeType") == "application/json")


def side_answer(body: dict[str, Any]) -> Reply:
    """A harmless answer to a side request; for a JSON schema, an object with every required field, of its type."""
    config = _field(body, "generationConfig") or {}
    if _field(config, "responseMimeType") != "application/json":
        return [text(SIDE_TEXT)]
    schema = _field(config, "responseJsonSchema") or _field(config, "responseSchema") or {}
    properties = schema.get("properties") or {}
    answer = {name: _sample(properties.get(name) or {}) for name in schema.get("required", [])}
    return [text(json.dumps(answer))]


def _sample(schema: dict[str, Any]) -> Any:
    """A value of a (Gemini or JSON) schema's type: the first enum value, 1 for numbers, and so on."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type") or "string").lower()
    samples: dict[str, Any] = {"integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}
    return samples.get(kind, SIDE_TEXT)


class _Request(_common.BaseModel):
    """The body of `generateContent` / `streamGenerateContent` on the wire (the SDK builds it from its own types;
    it has no model for the whole body). Unknown keys are errors, as for the SDK's models."""

    contents: list[types.Content]
    system_instruction: types.Content | None = None
    tools: list[types.Tool] | None = None
    tool_config: types.ToolConfig | None = None
    safety_settings: list[types.SafetySetting] | None = None
    generation_config: types.GenerationConfig | None = None
    cached_content: str | None = None
    labels: dict[str, str] | None = None
    model: str | None = None
    """Sent inside a countTokens' `generateContentRequest`."""


class _CountRequest(_common.BaseModel):
    contents: list[types.Content] | None = None
    generate_content_request: _Request | None = None


class _ErrorDetail(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] = []


class _ErrorBody(pydantic.BaseModel):
    """Google's error envelope, which the SDK reads into `errors.APIError` (code, status, message)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    error: _ErrorDetail


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it. `kind` is "script", "side", "count", "unauthorized", "bad_request" or
    "not_found"; `method` is the API method (e.g. "streamGenerateContent"), "" for unknown routes."""

    path: str
    model: str
    method: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    kind: str


class FakeGemini(ScriptedServer[Reply, Recorded]):
    """The fake server; a context manager that serves on a free port of 127.0.0.1 while open."""

    name = "fake-gemini"
    secret_headers = SECRET_HEADERS

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        *,
        api_key: str = "test-gemini-key",
        final_text: str = FINAL_TEXT,
        side: Callable[[dict[str, Any]], bool] = json_requests,
    ) -> None:
        super().__init__(replies, api_key=api_key, final_reply=[text(final_text)])
        self.final_text = final_text
        self.side = side

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. http://127.0.0.1:40123 (no API version, no trailing slash)."""
        return self.address

    # --- request handling (runs on the server's threads) ---

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw, body = read_body(http)
        prefix = next((f"/{v}/models/" for v in API_VERSIONS if split.path.startswith(f"/{v}/models/")), None)
        model, _, method = split.path.removeprefix(prefix or "").rpartition(":")
        if not (http.command == "POST" and prefix and model and "/" not in model and method in METHODS):
            model, method = "", ""
        status, kind, schema, payload = self._answer(http, method, model, query, body, raw)
        recorded_query = {k: v for k, v in query.items() if k != "key"}
        headers = self.recorded_headers(http)
        self._record(Recorded(split.path, model, method, recorded_query, headers, body, status, kind))
        where = f"{http.command} {split.path}"
        if kind in ("script", "side") and method == "streamGenerateContent":
            self._send_stream(http, payload, sse=query.get("alt") == ["sse"], where=where)
        else:
            self._check_response(schema, payload, where)
            send_json(http, status, payload, content_type="application/json; charset=UTF-8")

    def _answer(
        self, http: BaseHTTPRequestHandler, method: str, model: str, query: dict[str, list[str]], body: Any, raw: bytes
    ) -> tuple[int, str, Any, Any]:
        """Status, kind (see `Recorded`), the type the answer must match, and the answer."""
        if not method:
            path = urlsplit(http.path).path
            return 404, "not_found", _ErrorBody, _error(404, f"Method not found: {http.command} {path}.", "NOT_FOUND")
        if not self.authorized(http.headers.get("x-goog-api-key") or (query.get("key") or [""])[0]):
            message = "API key not valid. Please pass a valid API key."
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            return 400, "unauthorized", _ErrorBody, _error(400, message, "INVALID_ARGUMENT", details)
        if not isinstance(body, dict):
            message = "Invalid JSON payload received. The body must be a JSON object."
            return 400, "bad_request", _ErrorBody, _error(400, message, "INVALID_ARGUMENT")
        if method == "countTokens":
            self._check_request(_CountRequest, body, method)
            return 200, "count", types.CountTokensResponse, {"totalTokens": tokens(raw)}
        if not self._check_request(_Request, body, method):
            message = "Invalid JSON payload received: the request does not match GenerateContentRequest."
            return 400, "bad_request", _ErrorBody, _error(400, message, "INVALID_ARGUMENT")
        side = self.side(body)
        parts = side_answer(body) if side else self._next_reply()
        if not _wants_thoughts(body):
            parts = [p for p in parts if not p.get("thought")]
        return 200, "side" if side else "script", types.GenerateContentResponse, _response(model, parts, raw)

    def _send_stream(self, http: BaseHTTPRequestHandler, response: dict[str, Any], *, sse: bool, where: str) -> None:
        """The response in chunks: server-sent events with `alt=sse`, else (as the API does) one JSON array."""
        chunks = list(_chunks(response))
        for index, chunk in enumerate(chunks):
            self._check_response(types.GenerateContentResponse, chunk, f"{where} chunk {index}")
        http.send_response(200)
        http.send_header("content-type", "text/event-stream" if sse else "application/json; charset=UTF-8")
        http.send_header("transfer-encoding", "chunked")
        http.end_headers()
        if sse:
            for chunk in chunks:
                write_chunk(http, f"data: {json.dumps(chunk)}\r\n\r\n")
        else:
            write_chunk(http, json.dumps(chunks))
        end_chunks(http)

    def _check_request(self, schema: type[pydantic.BaseModel], body: dict[str, Any], where: str) -> bool:
        try:
            schema.model_validate_json(json.dumps(body), strict=True)
        except pydantic.ValidationError as exc:
            self._error(f"request to {where}: {summary(exc)}")
            return False
        return True

    def _check_response(self, schema: Any, payload: Any, where: str) -> None:
        try:
            adapter(schema).validate_json(json.dumps(payload), strict=True)
        except pydantic.ValidationError as exc:
            self._error(f"response of {where}: {summary(exc)}")


def _field(value: Any, name: str) -> Any:
    """A field by its camelCase name or its snake_case one: the API (proto JSON) takes both, and the SDK sends some
    nested fields snake_case (`thinkingConfig.include_thoughts`)."""
    if not isinstance(value, dict):
        return None
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return value.get(name, value.get(snake))


def _wants_thoughts(body: dict[str, Any]) -> bool:
    return bool(_field(_field(_field(body, "generationConfig"), "thinkingConfig"), "includeThoughts"))


def _response(model: str, parts: Reply, raw: bytes) -> dict[str, Any]:
    """A whole GenerateContentResponse for `parts`, with the finish reason and usage the real API gives."""
    prompt = tokens(raw)
    thoughts = sum(len(p.get("text", "")) // 4 for p in parts if p.get("thought"))
    visible = max(1, len(json.dumps([p for p in parts if not p.get("thought")])) // 4)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": visible,
        "totalTokenCount": prompt + visible + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return {
        "candidates": [
            {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0},
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": _new_id(),
    }


def _chunks(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """What the real API streams: text in pieces, a function call whole in its own chunk, the finish reason and
    the usage on the last chunk (earlier chunks carry the usage so far without candidate tokens)."""
    parts = response["candidates"][0]["content"]["parts"] or [text("")]
    split: list[Part] = []
    for part in parts:
        if "text" in part:
            split += [{**part, "text": piece} for piece in pieces(part["text"], PIECE_SIZE)]
        else:
            split.append(part)
    usage = response["usageMetadata"]
    early = {k: usage[k] for k in ("promptTokenCount", "totalTokenCount", "promptTokensDetails")}
    early["totalTokenCount"] = usage["promptTokenCount"]
    for index, piece in enumerate(split):
        last = index == len(split) - 1
        candidate: dict[str, Any] = {"content": {"parts": [piece], "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = "STOP"
        yield {
            "candidates": [candidate],
            "usageMetadata": usage if last else early,
            "modelVersion": response["modelVersion"],
            "responseId": response["responseId"],
        }


def _error(code: int, message: str, status: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


_ids = itertools.count(1)


def _new_id() -> str:
    return f"{next(_ids):04d}{secrets.token_urlsafe(12)}"
