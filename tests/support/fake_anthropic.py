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

import functools
import itertools
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anthropic.types as api
import anthropic.types.beta.message_count_tokens_params as beta_count_params
import anthropic.types.beta.message_create_params as beta_create_params
import pydantic

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


class FakeAnthropic:
    """The fake server; a context manager that serves on a free port of 127.0.0.1 while open."""

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        *,
        api_key: str = "sk-ant-test-key",
        final_text: str = FINAL_TEXT,
        side: Callable[[dict[str, Any]], bool] = is_side_request,
    ) -> None:
        self.api_key = api_key
        self.final_text = final_text
        self.side = side
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self._script = list(replies)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. http://127.0.0.1:40123 (no trailing slash)."""
        assert self._server is not None, "FakeAnthropic is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, *replies: Reply) -> None:
        """Append scripted replies (a test may script after the server has started)."""
        with self._lock:
            self._script.extend(replies)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        with self._lock:
            return len(self._script)

    def of_kind(self, kind: str) -> list[Recorded]:
        """The recorded requests of one kind, e.g. the "script" ones that drove the agent loop."""
        return [r for r in self.requests if r.kind == kind]

    def start(self) -> FakeAnthropic:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll interval, so that close() (shutdown waits for a poll) costs tests little time.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- request handling (runs on the server's threads) ---

    def _handle(self, http: _Handler) -> None:
        split = urlsplit(http.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw = http.rfile.read(int(http.headers.get("content-length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        status, kind, payload = self._answer(http, split.path, query.get("beta") == ["true"], body, raw)
        headers = {k.lower(): v for k, v in http.headers.items() if k.lower() not in SECRET_HEADERS}
        # Recorded before the answer goes out, so a client that has its answer finds its request here.
        with self._lock:
            self.requests.append(Recorded(http.command, split.path, query, headers, body, status, kind))
        if kind in ("script", "side") and body.get("stream"):
            self._send_stream(http, payload)
        else:
            self._check_response(api.ErrorResponse if status >= 400 else _SCHEMAS[kind], payload, split.path)
            _send_json(http, status, payload)

    def _answer(self, http: _Handler, path: str, beta: bool, body: Any, raw: bytes) -> tuple[int, str, dict[str, Any]]:
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
            return 200, "count_tokens", {"input_tokens": _tokens(raw)}
        self._check_request(_create_params(beta), body, path)
        side = self.side(body)
        blocks = side_answer(body) if side else self._next_reply()
        return 200, "side" if side else "script", _message(body, blocks, input_tokens=_tokens(raw))

    def _authorized(self, http: _Handler) -> bool:
        return http.headers.get("x-api-key") == self.api_key or (
            http.headers.get("authorization") == f"Bearer {self.api_key}"
        )

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else [text(self.final_text)]

    def _send_stream(self, http: _Handler, message: dict[str, Any]) -> None:
        http.send_response(200)
        http.send_header("content-type", "text/event-stream; charset=utf-8")
        http.send_header("cache-control", "no-cache")
        http.send_header("transfer-encoding", "chunked")
        http.send_header("request-id", _new_id("req_"))
        http.end_headers()
        for name, event in _stream_events(message):
            if name != "ping":  # the real API pings too; clients skip it, and the SDK types have no ping
                self._check_response(api.RawMessageStreamEvent, event, f"/v1/messages event {name}")
            chunk = f"event: {name}\ndata: {json.dumps(event)}\n\n".encode()
            http.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            http.wfile.flush()
        http.wfile.write(b"0\r\n\r\n")
        http.wfile.flush()

    def _check_request(self, adapter: pydantic.TypeAdapter[Any], body: dict[str, Any], where: str) -> None:
        """Strict, so a string where an int belongs is caught; extra keys (new betas) are ignored.

        Python mode on the parsed body, not JSON mode: for `Union[str, Iterable[...]]` JSON mode picks the
        iterable and then fails on the string's characters.
        """
        try:
            _drain(adapter.validate_python(body, strict=True))
        except pydantic.ValidationError as exc:
            self._error(f"request to {where}: {_summary(exc)}")

    def _check_response(self, schema: Any, payload: dict[str, Any], where: str) -> None:
        """Strict JSON mode, on exactly the text that goes out on the wire."""
        try:
            _adapter(schema).validate_json(json.dumps(payload), strict=True)
        except pydantic.ValidationError as exc:
            self._error(f"response of {where}: {_summary(exc)}")

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


_SCHEMAS: dict[str, Any] = {"script": api.Message, "side": api.Message, "count_tokens": api.MessageTokensCount}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAnthropic


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the fake; HTTP/1.1 so clients keep connections alive as with the real API."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def do_POST(self) -> None:
        try:
            self.server.fake._handle(self)
        except ConnectionError:
            self.close_connection = True  # the client went away mid-answer, e.g. an interrupted agent
        except Exception as exc:
            self.server.fake._error(f"the fake failed on {self.command} {self.path}: {exc!r}")
            raise

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `.requests` instead."""


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
            opening, deltas = {"type": "text", "text": ""}, [("text_delta", "text", _pieces(block["text"]))]
        elif block["type"] == "tool_use":
            opening = {**block, "input": {}}
            deltas = [("input_json_delta", "partial_json", _pieces(json.dumps(block["input"])))]
        else:
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                ("thinking_delta", "thinking", _pieces(block["thinking"])),
                ("signature_delta", "signature", [block["signature"]]),
            ]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        for delta_type, field, pieces in deltas:
            for piece in pieces:
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


def _pieces(value: str, size: int = 16) -> list[str]:
    """Split like the real stream does: a few tokens per delta, never zero deltas."""
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": _new_id("req_")}


def _send_json(http: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    http.send_response(status)
    http.send_header("content-type", "application/json")
    http.send_header("content-length", str(len(data)))
    http.send_header("request-id", payload.get("request_id") or _new_id("req_"))
    http.end_headers()
    if http.command != "HEAD":
        http.wfile.write(data)


_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    """Ids shaped like the real ones (prefix + 24 base62-ish chars), unique within the process."""
    return f"{prefix}01{next(_ids):06d}{secrets.token_hex(8)}"


def _tokens(raw: bytes) -> int:
    """A plausible token count: about four bytes a token."""
    return max(1, len(raw) // 4)


@functools.cache
def _adapter(schema: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(schema)


def _create_params(beta: bool) -> pydantic.TypeAdapter[Any]:
    """`?beta=true` means the client called the beta endpoint, whose params are a superset of the GA ones."""
    return _adapter(beta_create_params.MessageCreateParams if beta else api.MessageCreateParams)


def _count_params(beta: bool) -> pydantic.TypeAdapter[Any]:
    return _adapter(beta_count_params.MessageCountTokensParams if beta else api.MessageCountTokensParams)


def _drain(value: Any) -> None:
    """Walk a validated value: pydantic checks `Iterable[...]` fields lazily, only when they are iterated."""
    items: Any = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple | Iterator):
        for item in items:
            _drain(item)


def _summary(exc: pydantic.ValidationError, limit: int = 5) -> str:
    """The first few errors: a union mismatch lists every variant's complaint, which drowns the useful one."""
    lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']} ({e['input']!r:.80})" for e in exc.errors()[:limit]]
    return f"{exc.error_count()} errors: " + "; ".join(lines)
