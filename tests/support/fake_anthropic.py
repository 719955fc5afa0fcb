"""A scripted fake of Anthropic's Messages API on 127.0.0.1, so real clients run offline in tests.

Real clients (the official `anthropic` SDK, the Claude Code CLI behind `claude-agent-sdk`) are pointed at it
with `base_url` / `ANTHROPIC_BASE_URL`. The fake plays a *script*: a list of replies, each a list of content
blocks built with `text()`, `tool_use()` and `thinking()`. Each main-loop request to `POST /v1/messages` takes
the next reply; once the script is used up it answers `FINAL_TEXT`.

It is only worth having if it is faithful, so every response it sends is checked against the official SDK's
pydantic types and every request body against `MessageCreateParams`; mismatches land in `.errors` (tests assert
it stays empty). Every request is kept in `.requests`, secrets removed, for assertions.
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

import anthropic.types as api
import anthropic.types.beta.message_count_tokens_params as beta_count_params
import anthropic.types.beta.message_create_params as beta_create_params
import pydantic

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

Block = dict[str, Any]
Reply = list[Block]

FINAL_TEXT = "Done."
SIDE_TEXT = "Scripted session"
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
DEFAULT_MODEL = "claude-opus-5-5"


def text(value: str) -> Block:
    """A text block, as the model would write it."""
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict[str, Any], *, block_id: str | None = None) -> Block:
    """A call of tool `name`; the client runs the tool and sends its result in the next request."""
    return {"type": "tool_use", "id": block_id or _new_id("toolu_"), "name": name, "input": arguments}


def thinking(value: str, *, signature: str | None = None) -> Block:
    """An extended-thinking block; the signature is opaque to clients, they only echo it back."""
    return {"type": "thinking", "thinking": value, "signature": signature or secrets.token_urlsafe(32)}


def is_side_request(body: dict[str, Any]) -> bool:
    """Whether a /v1/messages request is Claude Code's housekeeping rather than a turn of the agent loop.

    The rule: a request that offers the model no tools (`tools` missing or `[]`) is a side request. Every turn
    of the agent loop offers its tools (Bash, Read, Write, ...), even the last one that just answers in text.
    The one housekeeping request Claude Code 2.1.330 sends here offers none: the session title (its debug log
    says `source=generate_session_title`; system prompt "You are naming a coding session", `tools: []`, JSON
    output asked through `output_config.format`), sent only without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1.
    Model and `max_tokens` cannot tell it apart: that CLI sends its main model and max_tokens=128000 on both.
    A test that runs the agent with no tools at all must pass its own `side=` rule to `FakeAnthropic`.
    """
    return not body.get("tools")


def side_answer(body: dict[str, Any]) -> Reply:
    """A harmless answer to a side request; when it asks for JSON, an object with every required field."""
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") != "json_schema":
        return [text(SIDE_TEXT)]
    required = output_format.get("schema", {}).get("required", [])
    return [text(json.dumps(dict.fromkeys(required, SIDE_TEXT)))]


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it, and what it did with it.

    `kind` is "script" (consumed a scripted reply), "side" (canned housekeeping answer), "count_tokens",
    "unauthorized", "bad_request" or "not_found".
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    kind: str


class FakeAnthropic(ScriptedServer[Reply, Recorded]):
    """The fake server; a context manager that serves on a free port of 127.0.0.1 while open."""

    name = "fake-anthropic"
    secret_headers = SECRET_HEADERS

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        *,
        api_key: str = "sk-ant-test-key",
        final_text: str = FINAL_TEXT,
        side: Callable[[dict[str, Any]], bool] = is_side_request,
    ) -> None:
        super().__init__(replies, api_key=api_key, final_reply=[text(final_text)])
        self.final_text = final_text
        self.side = side

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. http://127.0.0.1:40123 (no trailing slash)."""
        return self.address

    # --- request handling (runs on the server's threads) ---

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw, body = read_body(http)
        status, kind, payload = self._answer(http, split.path, query.get("beta") == ["true"], body, raw)
        # Recorded before the answer goes out, so a client that has its answer finds its request here.
        self._record(Recorded(http.command, split.path, query, self.recorded_headers(http), body, status, kind))
        if kind in ("script", "side") and body.get("stream"):
            self._send_stream(http, payload)
        else:
            self._check_response(api.ErrorResponse if status >= 400 else _SCHEMAS[kind], payload, split.path)
            request_id = payload.get("request_id") or _new_id("req_")
            send_json(http, status, payload, content_type="application/json", headers={"request-id": request_id})

    def _answer(
        self, http: BaseHTTPRequestHandler, path: str, beta: bool, body: Any, raw: bytes
    ) -> tuple[int, str, dict[str, Any]]:
        """Status, kind (see `Recorded`) and JSON payload for one request."""
        route = (http.command, path)
        if route not in {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")}:
            # Before the key check: Claude Code probes `HEAD /api/hello` without a key.
            return 404, "not_found", _error("not_found_error", f"Not found: {http.command} {path}")
        if not self._authorized(http):
            return 401, "unauthorized", _error("authentication_error", "invalid x-api-key")
        if not isinstance(body, dict):
            return 400, "bad_request", _error("invalid_request_error", "the body must be a JSON object")
        if path == "/v1/messages/count_tokens":
            self._check_request(_count_params(beta), body, path)
            return 200, "count_tokens", {"input_tokens": tokens(raw)}
        self._check_request(_create_params(beta), body, path)
        side = self.side(body)
        blocks = side_answer(body) if side else self._next_reply()
        return 200, "side" if side else "script", _message(body, blocks, input_tokens=tokens(raw))

    def _authorized(self, http: BaseHTTPRequestHandler) -> bool:
        return self.authorized(http.headers.get("x-api-key")) or self.authorized(
            http.headers.get("authorization"), scheme="Bearer "
        )

    def _send_stream(self, http: BaseHTTPRequestHandler, message: dict[str, Any]) -> None:
        http.send_response(200)
        http.send_header("content-type", "text/event-stream; charset=utf-8")
        http.send_header("cache-control", "no-cache")
        http.send_header("transfer-encoding", "chunked")
        http.send_header("request-id", _new_id("req_"))
        http.end_headers()
        for name, event in _stream_events(message):
            if name != "ping":  # the real API pings too; clients skip it, and the SDK types have no ping
                self._check_response(api.RawMessageStreamEvent, event, f"/v1/messages event {name}")
            write_chunk(http, f"event: {name}\ndata: {json.dumps(event)}\n\n")
        end_chunks(http)

    def _check_request(self, params: pydantic.TypeAdapter[Any], body: dict[str, Any], where: str) -> None:
        """Strict, so a string where an int belongs is caught; extra keys (new betas) are ignored.

        Python mode on the parsed body, not JSON mode: for `Union[str, Iterable[...]]` JSON mode picks the
        iterable and then fails on the string's characters.
        """
        try:
            _drain(params.validate_python(body, strict=True))
        except pydantic.ValidationError as exc:
            self._error(f"request to {where}: {summary(exc)}")

    def _check_response(self, schema: Any, payload: dict[str, Any], where: str) -> None:
        """Strict JSON mode, on exactly the text that goes out on the wire."""
        try:
            adapter(schema).validate_json(json.dumps(payload), strict=True)
        except pydantic.ValidationError as exc:
            self._error(f"response of {where}: {summary(exc)}")


_SCHEMAS: dict[str, Any] = {"script": api.Message, "side": api.Message, "count_tokens": api.MessageTokensCount}


def _message(request: dict[str, Any], blocks: Reply, *, input_tokens: int) -> dict[str, Any]:
    """A complete Message for `blocks`, with the ids, stop reason and usage the real API gives."""
    output = json.dumps(blocks)
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": request.get("model") or DEFAULT_MODEL,
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": max(1, len(output) // 4),
            "service_tier": "standard",
        },
    }


def _stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events the real API streams for `message`, deltas split in small pieces."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        opening: Block
        deltas: list[tuple[str, str, list[str]]]
        if block["type"] == "text":
            opening, deltas = {"type": "text", "text": ""}, [("text_delta", "text", pieces(block["text"], 16))]
        elif block["type"] == "tool_use":
            opening = {**block, "input": {}}
            deltas = [("input_json_delta", "partial_json", pieces(json.dumps(block["input"]), 16))]
        else:
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                ("thinking_delta", "thinking", pieces(block["thinking"], 16)),
                ("signature_delta", "signature", [block["signature"]]),
            ]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        for delta_type, field, parts in deltas:
            for piece in parts:
                delta = {"type": delta_type, field: piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    final_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {**final_usage, "output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": _new_id("req_")}


_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    """Ids shaped like the real ones (prefix + 24 base62-ish chars), unique within the process."""
    return f"{prefix}01{next(_ids):06d}{secrets.token_hex(8)}"


def _create_params(beta: bool) -> pydantic.TypeAdapter[Any]:
    """`?beta=true` means the client called the beta endpoint, whose params are a superset of the GA ones."""
    return adapter(beta_create_params.MessageCreateParams if beta else api.MessageCreateParams)


def _count_params(beta: bool) -> pydantic.TypeAdapter[Any]:
    return adapter(beta_count_params.MessageCountTokensParams if beta else api.MessageCountTokensParams)


def _drain(value: Any) -> None:
    """Walk a validated value: pydantic checks `Iterable[...]` fields lazily, only when they are iterated."""
    items: Any = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple | Iterator):
        for item in items:
            _drain(item)
