"""A scripted fake of OpenAI's Chat Completions and Responses APIs on 127.0.0.1, so real clients run offline in tests.

Real clients (the official `openai` SDK, OpenAI's Codex CLI, agents that speak "OpenAI-compatible") are pointed at
`.url`, the base URL *including* `/v1`, which is what those clients take (`base_url`, `OPENAI_BASE_URL`). The fake
plays a *script*: a list of replies, each a list of blocks built with `text()`, `tool_call()` (alias
`function_call()`) and `reasoning()`. One script serves both APIs: each main-loop request to
`POST /v1/chat/completions` or `POST /v1/responses` takes the next reply and renders it in that API's shape, plain
JSON or server-sent events as asked; once the script is used up it answers `FINAL_TEXT`. `GET /v1/models` lists
`models`; any other route is a recorded 404 in OpenAI's error shape.

It is only worth having if it is faithful, so every response and stream event it sends is checked against the
official SDK's pydantic types (wrong types, missing fields and fields the SDK does not know), and every request body
against `CompletionCreateParams` / `ResponseCreateParams`; mismatches land in `.errors` (tests assert it stays
empty). Every request is kept in `.requests`, secrets removed, for assertions.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pydantic
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, CompletionCreateParams
from openai.types.responses import FunctionTool, Response, ResponseCreateParams, ResponseStreamEvent
from openai.types.shared import ErrorObject
from typing_extensions import TypedDict

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
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"})
DEFAULT_MODEL = "gpt-5.5"
DEFAULT_MODELS = ("gpt-5.5", "gpt-5.1-codex", "gpt-5-mini")
CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
MODELS_PATH = "/v1/models"
PIECE_SIZE = 8
"""Characters a streamed delta carries: a couple of tokens, as the real stream splits."""


def text(value: str) -> Block:
    """Text the model writes: the message content in Chat Completions, a `message` output item in Responses."""
    return {"type": "text", "text": value}


def function_call(name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None) -> Block:
    """A call of tool `name`; the client runs it and sends the result back under the same `call_id`.

    `arguments` is normally a dict, sent as its JSON; a string is sent verbatim, so a test can script the
    malformed arguments a real model sometimes writes.
    """
    return {"type": "function_call", "call_id": call_id or _new_id("call_"), "name": name, "arguments": arguments}


def tool_call(name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None) -> Block:
    """The same block as `function_call()`: Chat Completions calls it a tool call, Responses a function call."""
    return function_call(name, arguments, call_id=call_id)


def reasoning(summary: str, *, encrypted_content: str | None = None) -> Block:
    """A reasoning item (Responses only: Chat Completions has no field for it, it only counts reasoning tokens).

    Its `encrypted_content` is opaque to clients, which only echo it back; it is sent only when the request asks
    for it with `include: ["reasoning.encrypted_content"]`, as Codex does when it runs with `store: false`.
    """
    return {"type": "reasoning", "summary": summary, "encrypted_content": encrypted_content or secrets.token_hex(24)}


def no_side_requests(body: dict[str, Any]) -> bool:
    """The default rule: every request is a turn of the agent loop and consumes the script.

    Unlike Anthropic's fake, "no tools" does not mark housekeeping here: an agent (or a test) may legitimately run
    a turn without tools, and the clients we point at this fake have no housekeeping call known to us that could be
    told apart reliably. A test whose agent does make one passes its own `side=` rule, e.g. `without_tools`.
    """
    return False


def without_tools(body: dict[str, Any]) -> bool:
    """An opt-in rule: a request that offers the model no tools is housekeeping (titles, summaries)."""
    return not body.get("tools")


def side_answer(body: dict[str, Any]) -> Reply:
    """A harmless answer to a side request; when it asks for a JSON schema, an object with every required field."""
    # Chat Completions asks with `response_format`, Responses with `text.format`; the schema sits a level apart.
    chat_format = body.get("response_format") or {}
    output_format = (body.get("text") or {}).get("format") or chat_format
    if output_format.get("type") == "json_object":
        return [text("{}")]
    if output_format.get("type") != "json_schema":
        return [text(SIDE_TEXT)]
    schema = output_format.get("schema") or (output_format.get("json_schema") or {}).get("schema") or {}
    return [text(json.dumps(dict.fromkeys(schema.get("required", []), SIDE_TEXT)))]


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it, and what it did with it.

    `kind` is "script" (consumed a scripted reply), "side" (canned housekeeping answer), "models",
    "unauthorized", "bad_request" or "not_found".
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    kind: str


class FakeOpenAI(ScriptedServer[Reply, Recorded]):
    """The fake server; a context manager that serves on a free port of 127.0.0.1 while open."""

    name = "fake-openai"
    secret_headers = SECRET_HEADERS

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        *,
        api_key: str = "sk-test-key",
        final_text: str = FINAL_TEXT,
        models: Sequence[str] = DEFAULT_MODELS,
        side: Callable[[dict[str, Any]], bool] = no_side_requests,
    ) -> None:
        super().__init__(replies, api_key=api_key, final_reply=[text(final_text)])
        self.final_text = final_text
        self.models = list(models)
        self.side = side

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. http://127.0.0.1:40123/v1 (with `/v1`, no trailing slash)."""
        return f"{self.address}/v1"

    # --- request handling (runs on the server's threads) ---

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        split = urlsplit(http.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw, body = read_body(http)
        status, kind, schema, payload = self._answer(http, split.path, body, raw)
        # Recorded before the answer goes out, so a client that has its answer finds its request here.
        self._record(Recorded(http.command, split.path, query, self.recorded_headers(http), body, status, kind))
        if kind in ("script", "side") and body.get("stream") is True:
            if split.path == CHAT_PATH:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_stream(http, ChatCompletionChunk, _chat_chunks(payload, include_usage), named=False)
            else:
                self._send_stream(http, ResponseStreamEvent, _response_events(payload), named=True)
        else:
            self._check_response(schema, payload, f"{http.command} {split.path}")
            send_json(http, status, payload, content_type="application/json", headers={"x-request-id": _new_id("req_")})

    def _answer(
        self, http: BaseHTTPRequestHandler, path: str, body: Any, raw: bytes
    ) -> tuple[int, str, Any, dict[str, Any]]:
        """Status, kind (see `Recorded`), the SDK type the answer must match, and the answer itself."""
        method = http.command
        model_path = method == "GET" and path.startswith(f"{MODELS_PATH}/")
        routes = {("POST", CHAT_PATH), ("POST", RESPONSES_PATH), ("GET", MODELS_PATH)}
        if (method, path) not in routes and not model_path:
            # Before the key check, as in the Anthropic fake: a wrong base URL then shows as what it is.
            return 404, "not_found", _ErrorBody, _error(f"Invalid URL ({method} {path})", "invalid_request_error")
        if not self.authorized(http.headers.get("authorization"), scheme="Bearer "):
            message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/api-keys."
            return 401, "unauthorized", _ErrorBody, _error(message, "invalid_request_error", code="invalid_api_key")
        if model_path:
            name = path.removeprefix(f"{MODELS_PATH}/")
            if name not in self.models:
                message = f"The model `{name}` does not exist or you do not have access to it."
                return 404, "models", _ErrorBody, _error(message, "invalid_request_error", code="model_not_found")
            return 200, "models", Model, _model(name)
        if path == MODELS_PATH:
            return 200, "models", _ModelList, {"object": "list", "data": [_model(name) for name in self.models]}
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request: it must be a JSON object."
            return 400, "bad_request", _ErrorBody, _error(message, "invalid_request_error")
        chat = path == CHAT_PATH
        self._check_request(adapter(CompletionCreateParams if chat else ResponseCreateParams), body, path)
        side = self.side(body)
        blocks = side_answer(body) if side else self._next_reply()
        kind = "side" if side else "script"
        if chat:
            return 200, kind, ChatCompletion, _chat_completion(body, blocks, input_tokens=tokens(raw))
        return 200, kind, Response, _response(body, blocks, input_tokens=tokens(raw))

    def _send_stream(
        self, http: BaseHTTPRequestHandler, schema: Any, events: Iterable[dict[str, Any]], *, named: bool
    ) -> None:
        """Server-sent events: Responses names each event after its `type`; Chat Completions ends with [DONE]."""
        http.send_response(200)
        http.send_header("content-type", "text/event-stream; charset=utf-8")
        http.send_header("cache-control", "no-cache")
        http.send_header("transfer-encoding", "chunked")
        http.send_header("x-request-id", _new_id("req_"))
        http.end_headers()
        where = f"{http.command} {urlsplit(http.path).path}"
        for event in events:
            name = event.get("type") or event["object"]
            self._check_response(schema, event, f"{where} event {name}")
            data = f"data: {json.dumps(event)}\n\n"
            write_chunk(http, f"event: {name}\n{data}" if named else data)
        if not named:
            write_chunk(http, "data: [DONE]\n\n")
        end_chunks(http)

    def _check_request(self, adapter: pydantic.TypeAdapter[Any], body: dict[str, Any], where: str) -> None:
        """Strict, so a string where an int belongs is caught; extra keys (newer clients' fields) are ignored.

        Python mode on the parsed body, not JSON mode: for `Union[str, Iterable[...]]` JSON mode picks the
        iterable and then fails on the string's characters.
        """
        try:
            _drain(adapter.validate_python(_without_accepted_nulls(body), strict=True))
        except pydantic.ValidationError as exc:
            self._error(f"request to {where}: {summary(exc)}")

    def _check_response(self, schema: Any, payload: dict[str, Any], where: str) -> None:
        """Strict JSON mode, on exactly the text that goes out on the wire; then no field the SDK does not know.

        The SDK's models allow extra fields (the real API adds fields before the SDK catches up), so validation
        alone would let a misspelt optional field through: `_unknown_fields` catches those.
        """
        try:
            value = adapter(schema).validate_json(json.dumps(payload), strict=True)
        except pydantic.ValidationError as exc:
            self._error(f"response of {where}: {summary(exc)}")
            return
        for field in _unknown_fields(value):
            self._error(f"response of {where}: a field the SDK does not know: {field}")


class _ErrorBody(TypedDict):
    """OpenAI's error envelope: `{"error": {...}}`; the SDK reads it into `APIStatusError.body`/`code`."""

    error: ErrorObject


class _ModelList(TypedDict):
    """What `GET /v1/models` answers; the SDK pages through `data`."""

    object: Literal["list"]
    data: list[Model]


# --- Chat Completions ---


def _chat_completion(request: dict[str, Any], blocks: Reply, *, input_tokens: int) -> dict[str, Any]:
    """A complete ChatCompletion for `blocks`, with the ids, finish reason and usage the real API gives.

    Chat Completions has a single content string, so text blocks are joined by a blank line and the tool calls
    follow it; reasoning blocks only count as reasoning tokens.
    """
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    calls = [b for b in blocks if b["type"] == "function_call"]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "\n\n".join(texts) if texts else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:  # the real API leaves the key out, rather than null, when there are none
        message["tool_calls"] = [
            {"id": c["call_id"], "type": "function", "function": {"name": c["name"], "arguments": _arguments(c)}}
            for c in calls
        ]
    output_tokens, reasoning_tokens = _output_tokens(blocks)
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or DEFAULT_MODEL,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _chat_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chunks the real API streams for `completion`.

    The role, the content in pieces, then each tool call: its index, id, type and name on its first chunk only,
    its arguments split over the following ones, keyed by index alone. Then an empty delta with the finish reason,
    and with `stream_options.include_usage` a last chunk with the usage and no choices (earlier chunks then carry
    `usage: null`).
    """
    keys = ("id", "created", "model", "service_tier", "system_fingerprint")
    base = {"object": "chat.completion.chunk", **{k: completion[k] for k in keys}}
    choice = completion["choices"][0]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        return {**base, "choices": choices, **({"usage": None} if include_usage else {})}

    message = choice["message"]
    calls = message.get("tool_calls", [])
    # The role comes first: alone with empty content before any text, else with null content on the first call.
    role: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if message["content"] or not calls:
        yield chunk({**role, "content": ""})
        role = {}
    if message["content"]:
        for piece in pieces(message["content"], PIECE_SIZE):
            yield chunk({"content": piece})
    for index, call in enumerate(calls):
        function = {"name": call["function"]["name"], "arguments": ""}
        opening = {"index": index, "id": call["id"], "type": "function", "function": function}
        yield chunk({**role, "tool_calls": [opening]})
        role = {}
        for piece in pieces(call["function"]["arguments"], PIECE_SIZE):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**base, "choices": [], "usage": completion["usage"]}


# --- Responses ---


def _response(request: dict[str, Any], blocks: Reply, *, input_tokens: int) -> dict[str, Any]:
    """A completed Response for `blocks`: one output item per block, settings echoed from the request as the
    real API does (with its defaults where the request leaves them out)."""
    encrypted = "reasoning.encrypted_content" in (request.get("include") or [])
    output_tokens, reasoning_tokens = _output_tokens(blocks)
    now = int(time.time())
    reasoning_config = request.get("reasoning") or {}
    text_config = request.get("text") or {}
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": now,
        "status": "completed",
        "background": False,
        "completed_at": now,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": request.get("model") or DEFAULT_MODEL,
        "output": [_output_item(block, encrypted=encrypted) for block in blocks],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning_config.get("effort"), "summary": reasoning_config.get("summary")},
        "safety_identifier": None,
        "service_tier": "default",
        "temperature": _given(request.get("temperature"), 1.0),
        "text": {
            "format": text_config.get("format") or {"type": "text"},
            "verbosity": text_config.get("verbosity") or "medium",
        },
        "tool_choice": _given(request.get("tool_choice"), "auto"),
        "tools": [_echo_tool(tool) for tool in request.get("tools") or []],
        "top_logprobs": 0,
        "top_p": _given(request.get("top_p"), 1.0),
        "truncation": request.get("truncation") or "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def _output_item(block: Block, *, encrypted: bool) -> dict[str, Any]:
    if block["type"] == "text":
        part = {"type": "output_text", "text": block["text"], "annotations": [], "logprobs": []}
        return {"id": _new_id("msg_"), "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    if block["type"] == "function_call":
        return {
            "id": _new_id("fc_"),
            "type": "function_call",
            "status": "completed",
            "call_id": block["call_id"],
            "name": block["name"],
            "arguments": _arguments(block),
        }
    if block["type"] == "reasoning":
        summary = [{"type": "summary_text", "text": block["summary"]}] if block["summary"] else []
        item = {"id": _new_id("rs_"), "type": "reasoning", "summary": summary}
        return {**item, "encrypted_content": block["encrypted_content"]} if encrypted else item
    raise ValueError(f"not a scripted block: {block!r}")


def _response_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events the real API streams for `response`, in its order, deltas split in small pieces.

    Every item is announced (`output_item.added`, in progress and empty), filled by deltas framed by their own
    added/done events, and closed (`output_item.done`, complete); `response.completed` carries the whole response
    with its usage. `sequence_number` counts every event from 0.
    """
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    pending = {**response, "status": "in_progress", "completed_at": None, "output": [], "usage": None}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        at: dict[str, Any] = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            yield event(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            for content_index, part in enumerate(item["content"]):
                ids = {**at, "content_index": content_index}
                yield event("response.content_part.added", **ids, part={**part, "text": ""})
                for piece in pieces(part["text"], PIECE_SIZE):
                    yield event("response.output_text.delta", **ids, delta=piece, logprobs=[])
                yield event("response.output_text.done", **ids, text=part["text"], logprobs=[])
                yield event("response.content_part.done", **ids, part=part)
        elif item["type"] == "function_call":
            added = {**item, "status": "in_progress", "arguments": ""}
            yield event("response.output_item.added", output_index=index, item=added)
            for piece in pieces(item["arguments"], PIECE_SIZE):
                yield event("response.function_call_arguments.delta", **at, delta=piece)
            yield event("response.function_call_arguments.done", **at, arguments=item["arguments"])
        else:
            yield event("response.output_item.added", output_index=index, item={**item, "summary": []})
            for summary_index, part in enumerate(item["summary"]):
                ids = {**at, "summary_index": summary_index}
                yield event("response.reasoning_summary_part.added", **ids, part={**part, "text": ""})
                for piece in pieces(part["text"], PIECE_SIZE):
                    yield event("response.reasoning_summary_text.delta", **ids, delta=piece)
                yield event("response.reasoning_summary_text.done", **ids, text=part["text"])
                yield event("response.reasoning_summary_part.done", **ids, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response)


def _echo_tool(tool: Any) -> Any:
    """A request's tool as the Response echoes it: function tools get the real API's defaults (strict unless
    asked otherwise) and lose the request-only keys; other tool types are echoed as sent."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    known = {field.alias or name for name, field in FunctionTool.model_fields.items()}
    return {"description": None, "parameters": None, **{k: v for k, v in tool.items() if k in known}} | {
        "strict": _given(tool.get("strict"), True)
    }


# --- shared ---


ACCEPTED_NULLS: dict[Any, tuple[str, ...]] = {"reasoning": ("content",)}
"""Input item fields the real Responses API takes as null where the SDK's param types only allow leaving them out:
Codex echoes a reasoning item back with `"content": null`."""


def _without_accepted_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """The request body with the nulls of `ACCEPTED_NULLS` left out, so only real mismatches are errors."""
    items = body.get("input")
    if not isinstance(items, list):
        return body
    cleaned = [
        {k: v for k, v in item.items() if not (v is None and k in ACCEPTED_NULLS.get(item.get("type"), ()))}
        if isinstance(item, dict)
        else item
        for item in items
    ]
    return {**body, "input": cleaned}


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}


def _arguments(block: Block) -> str:
    arguments = block["arguments"]
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _output_tokens(blocks: Reply) -> tuple[int, int]:
    """Plausible (output, reasoning) token counts: about four characters a token, reasoning included in output."""
    reasoning_tokens = sum(len(b["summary"]) // 4 for b in blocks if b["type"] == "reasoning")
    visible = [b for b in blocks if b["type"] != "reasoning"]
    return max(1, len(json.dumps(visible)) // 4) + reasoning_tokens, reasoning_tokens


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _error(message: str, kind: str, *, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


_ids = itertools.count(1)
_FINGERPRINT = f"fp_{secrets.token_hex(5)}"


def _new_id(prefix: str) -> str:
    """Ids shaped like the real ones (prefix + 24 base62-ish chars), unique within the process."""
    return f"{prefix}01{next(_ids):06d}{secrets.token_hex(8)}"


def _drain(value: Any) -> None:
    """Walk a validated value: pydantic checks `Iterable[...]` fields lazily, only when they are iterated."""
    items: Any = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple | Iterator):
        for item in items:
            _drain(item)


def _unknown_fields(value: Any, location: str = "") -> Iterator[str]:
    """Where a validated response holds keys its SDK model does not declare (they land in `model_extra`)."""
    if isinstance(value, pydantic.BaseModel):
        for key in value.model_extra or {}:
            yield f"{location}.{key}".lstrip(".")
        for name in type(value).model_fields:
            yield from _unknown_fields(getattr(value, name), f"{location}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, f"{location}.{index}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown_fields(item, f"{location}.{key}")
