"""The fake OpenAI APIs speak the real wire format: the official `openai` client parses all they send.

Agent tests trust the fake in place of OpenAI, so these tests hold it to the official SDK first: Chat Completions
and Responses, plain and streamed, the errors, and the checks that make an empty `.errors` mean something.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai.types.responses import FunctionToolParam

from tests.support.fake_openai import (
    FINAL_TEXT,
    SIDE_TEXT,
    FakeOpenAI,
    function_call,
    reasoning,
    text,
    tool_call,
    without_tools,
)

KEY = "sk-unit-test"
MODEL = "gpt-5.5"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
FILE_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"],
    "additionalProperties": False,
}
CHAT_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "write_file", "description": "Write a file.", "parameters": FILE_SCHEMA},
}
RESPONSES_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "write_file",
    "parameters": FILE_SCHEMA,
    "strict": True,
}
ARGUMENTS = {"path": "/repo/NOTES.md", "content": 'notes with "quotes" and\nnewlines, long enough to split'}


@pytest.fixture(scope="module")
def pool() -> Iterator[httpx.Client]:
    """One connection pool for the raw requests of the module: each new client loads the CA bundle (~40 ms)."""
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def sdk_pool() -> Iterator[openai.DefaultHttpxClient]:
    """The same for the SDK's clients (it has its own HTTP library)."""
    with openai.DefaultHttpxClient(timeout=5) as client:
        yield client


@pytest.fixture
def connect(sdk_pool: openai.DefaultHttpxClient) -> Callable[..., openai.OpenAI]:
    """An official client of a fake; not closed after use, since closing it would close the shared pool."""

    def connect(fake: FakeOpenAI, api_key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=fake.url, api_key=api_key, max_retries=0, http_client=sdk_pool)

    return connect


def test_chat_non_streaming_returns_the_scripted_text(connect: Callable[..., openai.OpenAI]) -> None:
    with FakeOpenAI([[text("Hi from the script.")]], api_key=KEY) as fake:
        client = connect(fake)
        completion = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[CHAT_TOOL])

    assert fake.url.endswith("/v1")
    [choice] = completion.choices
    assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (
        "Hi from the script.",
        None,
        "stop",
    )
    assert (completion.object, completion.model, choice.message.role) == ("chat.completion", MODEL, "assistant")
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    [request] = fake.requests
    assert (request.method, request.path, request.kind, request.status) == (
        "POST",
        "/v1/chat/completions",
        "script",
        200,
    )
    assert request.body["messages"] == HELLO
    assert "authorization" not in request.headers
    assert fake.errors == []


def test_chat_stream_splits_tool_call_arguments_and_ends_with_usage(connect: Callable[..., openai.OpenAI]) -> None:
    reply = [text("Writing the notes file now."), tool_call("write_file", ARGUMENTS)]
    with FakeOpenAI([reply], api_key=KEY) as fake:
        client = connect(fake)
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=HELLO, tools=[CHAT_TOOL], stream=True, stream_options={"include_usage": True}
            )
        )

    *streamed, last = chunks
    assert {chunk.id for chunk in chunks} == {streamed[0].id}
    assert streamed[0].id.startswith("chatcmpl-")
    deltas = [chunk.choices[0].delta for chunk in streamed]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Writing the notes file now."
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert len(calls) > 2  # the arguments arrive in pieces
    first, *rest = calls
    assert first.function is not None
    assert (first.index, first.id, first.type, first.function.name) == (
        0,
        reply[1]["call_id"],
        "function",
        "write_file",
    )
    assert first.id is not None
    assert first.id.startswith("call_")
    assert all((c.index, c.id, c.type) == (0, None, None) for c in rest)
    assert all(c.function is not None and c.function.name is None for c in rest)
    arguments = "".join(c.function.arguments or "" for c in calls if c.function is not None)
    assert json.loads(arguments) == ARGUMENTS
    assert [chunk.choices[0].finish_reason for chunk in streamed][-1] == "tool_calls"
    assert all(chunk.usage is None for chunk in streamed)
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert fake.errors == []


def test_chat_stream_helper_of_the_sdk_accumulates_the_same_completion(connect: Callable[..., openai.OpenAI]) -> None:
    """The SDK's own accumulator (`ChatCompletionStreamState`) rebuilds the message and parses strict arguments."""
    strict_tool: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {**CHAT_TOOL["function"], "strict": True},
    }
    with FakeOpenAI([[tool_call("write_file", ARGUMENTS)]], api_key=KEY) as fake:
        client = connect(fake)
        with client.chat.completions.stream(model=MODEL, messages=HELLO, tools=[strict_tool]) as stream:
            completion = stream.get_final_completion()

    message = completion.choices[0].message
    assert message.content is None
    [call] = message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.parsed_arguments) == ("write_file", ARGUMENTS)
    assert completion.choices[0].finish_reason == "tool_calls"
    assert fake.errors == []


def test_responses_non_streaming_returns_reasoning_text_and_a_function_call(
    connect: Callable[..., openai.OpenAI],
) -> None:
    reply = [reasoning("Plan: write the notes."), text("Writing the notes."), function_call("write_file", ARGUMENTS)]
    with FakeOpenAI([reply], api_key=KEY) as fake:
        client = connect(fake)
        response = client.responses.create(
            model=MODEL,
            instructions="You are a coding agent.",
            input="Write the notes.",
            tools=[RESPONSES_TOOL],
            include=["reasoning.encrypted_content"],
            reasoning={"effort": "low", "summary": "auto"},
            store=False,
        )

    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", MODEL)
    assert response.instructions == "You are a coding agent."
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    thought, _, call = response.output
    assert thought.type == "reasoning"
    assert [part.text for part in thought.summary] == ["Plan: write the notes."]
    assert thought.encrypted_content == reply[0]["encrypted_content"]
    assert response.output_text == "Writing the notes."
    assert call.type == "function_call"
    assert (call.name, call.call_id, json.loads(call.arguments)) == ("write_file", reply[2]["call_id"], ARGUMENTS)
    assert call.call_id.startswith("call_")
    assert [tool.type for tool in response.tools] == ["function"]
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert [(r.path, r.kind) for r in fake.requests] == [("/v1/responses", "script")]
    assert fake.errors == []


def test_responses_stream_delivers_text_deltas_and_a_function_call(connect: Callable[..., openai.OpenAI]) -> None:
    reply = [text("Writing the notes file now."), function_call("write_file", ARGUMENTS)]
    with FakeOpenAI([reply], api_key=KEY) as fake:
        client = connect(fake)
        with client.responses.stream(model=MODEL, input="Write the notes.", tools=[RESPONSES_TOOL]) as stream:
            events = list(stream)
            response = stream.get_final_response()

    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text_deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(text_deltas) > 1
    assert "".join(text_deltas) == "Writing the notes file now."
    argument_deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(argument_deltas) > 1
    assert json.loads("".join(argument_deltas)) == ARGUMENTS
    assert kinds.count("response.output_item.done") == 2
    assert "response.function_call_arguments.done" in kinds
    assert response.status == "completed"
    assert response.output_text == "Writing the notes file now."
    call = response.output[1]
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.parsed_arguments) == ("write_file", reply[1]["call_id"], ARGUMENTS)
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert fake.errors == []


def test_wrong_key_is_an_authentication_error_and_consumes_nothing(connect: Callable[..., openai.OpenAI]) -> None:
    with FakeOpenAI([[text("never sent")]], api_key=KEY) as fake, pytest.raises(openai.AuthenticationError) as caught:
        connect(fake, api_key="sk-wrong").chat.completions.create(model=MODEL, messages=HELLO)

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    assert fake.remaining == 1
    assert [r.kind for r in fake.requests] == ["unauthorized"]
    assert fake.errors == []


def test_models_are_listed_and_unknown_routes_are_recorded_404s(
    connect: Callable[..., openai.OpenAI], pool: httpx.Client
) -> None:
    with FakeOpenAI(api_key=KEY, models=["gpt-5.5", "gpt-5-mini"]) as fake:
        client = connect(fake)
        listed = [model.id for model in client.models.list()]
        retrieved = client.models.retrieve("gpt-5-mini")
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("gpt-0")
        unknown = pool.get(f"{fake.url}/embeddings?limit=1", headers={"authorization": f"Bearer {KEY}"})

    assert listed == ["gpt-5.5", "gpt-5-mini"]
    assert (retrieved.id, retrieved.object) == ("gpt-5-mini", "model")
    assert missing.value.code == "model_not_found"
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {
            "message": "Invalid URL (GET /v1/embeddings)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert [(r.method, r.path, r.query, r.kind, r.status) for r in fake.requests] == [
        ("GET", "/v1/models", {}, "models", 200),
        ("GET", "/v1/models/gpt-5-mini", {}, "models", 200),
        ("GET", "/v1/models/gpt-0", {}, "models", 404),
        ("GET", "/v1/embeddings", {"limit": ["1"]}, "not_found", 404),
    ]
    assert fake.errors == []


def test_every_request_consumes_the_script_unless_a_side_rule_says_otherwise(
    connect: Callable[..., openai.OpenAI],
) -> None:
    with FakeOpenAI([[text("first")]], api_key=KEY) as fake:
        client = connect(fake)
        toolless = client.chat.completions.create(model=MODEL, messages=HELLO)
        exhausted = client.responses.create(model=MODEL, input="Hello")

    assert toolless.choices[0].message.content == "first"
    assert exhausted.output_text == FINAL_TEXT
    assert [r.kind for r in fake.requests] == ["script", "script"]

    title_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "title", "schema": {"type": "object", "required": ["title"]}},
    }
    with FakeOpenAI([[text("scripted")]], api_key=KEY, side=without_tools) as fake:
        client = connect(fake)
        title = client.chat.completions.create(model=MODEL, messages=HELLO, response_format=title_format)
        summary = list(client.responses.create(model=MODEL, input="Summarise the session.", stream=True))
        main = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[CHAT_TOOL])

    assert title.choices[0].message.content == '{"title": "Scripted session"}'
    completed = [event for event in summary if event.type == "response.completed"]
    assert [event.response.output_text for event in completed] == [SIDE_TEXT]
    assert main.choices[0].message.content == "scripted"
    assert [r.kind for r in fake.requests] == ["side", "side", "script"]
    assert fake.errors == []


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/chat/completions", "messages", [{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        ("/chat/completions", "max_completion_tokens", "100"),
        ("/chat/completions", "tools", [{"type": "function", "function": {"name": 5}}]),  # checked lazily
        ("/responses", "input", [{"type": "function_call_output", "call_id": "call_1", "output": {"ok": True}}]),
        ("/responses", "include", "reasoning.encrypted_content"),
    ],
)
def test_a_request_body_of_the_wrong_shape_is_an_error(
    path: str, field: str, value: object, pool: httpx.Client
) -> None:
    chat = {"model": MODEL, "messages": HELLO, "tools": [CHAT_TOOL]}
    responses = {"model": MODEL, "input": [{"role": "user", "content": "Hello"}], "tools": [RESPONSES_TOOL]}
    body = {**(chat if path == "/chat/completions" else responses), "a_new_key": 1}
    headers = {"authorization": f"Bearer {KEY}"}
    with FakeOpenAI(api_key=KEY) as fake:
        assert pool.post(f"{fake.url}{path}", json=body, headers=headers).status_code == 200
        assert fake.errors == []  # unknown keys are tolerated
        pool.post(f"{fake.url}{path}?api-version=1", json={**body, field: value}, headers=headers)

    assert len(fake.errors) == 1
    assert fake.errors[0].startswith(f"request to /v1{path}:")


def test_a_response_of_the_wrong_shape_is_an_error(connect: Callable[..., openai.OpenAI]) -> None:
    """The other half of the contract: what the fake sends is held to the SDK's types, unknown fields included."""
    with FakeOpenAI(api_key=KEY) as fake:
        client = connect(fake)
        good = client.chat.completions.create(model=MODEL, messages=HELLO).model_dump(mode="json", exclude_none=True)
        fake._check_response(ChatCompletion, {**good, "created": "yesterday"}, "wrong type")
        fake._check_response(ChatCompletion, {**good, "system_fingerprnt": "fp_1"}, "misspelt field")

    assert [error.split(":")[0] for error in fake.errors] == ["response of wrong type", "response of misspelt field"]
    assert "created" in fake.errors[0]
    assert fake.errors[1].endswith("a field the SDK does not know: system_fingerprnt")


def test_a_reasoning_item_echoed_with_null_content_is_accepted(pool: httpx.Client) -> None:
    """Codex sends reasoning items back as `"content": null`, which the real API takes (the SDK type omits it)."""
    echoed = {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": "abc"}
    body = {"model": MODEL, "input": [{"role": "user", "content": "Hello"}, echoed]}
    headers = {"authorization": f"Bearer {KEY}"}
    with FakeOpenAI(api_key=KEY) as fake:
        assert pool.post(f"{fake.url}/responses", json=body, headers=headers).status_code == 200
        assert fake.errors == []
        pool.post(f"{fake.url}/responses", json={**body, "input": [{**echoed, "summary": None}]}, headers=headers)
    assert len(fake.errors) == 1, "other nulls are still errors"
