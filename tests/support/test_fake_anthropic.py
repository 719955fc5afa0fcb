"""The fake Messages API speaks the real wire format: the official `anthropic` client parses all it sends.

Agent tests trust the fake in place of Anthropic, so these tests hold it to the official SDK first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ToolParam

from tests.support.fake_anthropic import FINAL_TEXT, FakeAnthropic, text, thinking, tool_use

KEY = "sk-ant-unit-test"
MODEL = "claude-opus-5-5"
HELLO: list[MessageParam] = [{"role": "user", "content": "Hello"}]
WRITE_TOOL: ToolParam = {
    "name": "Write",
    "description": "Write a file.",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}},
}


@contextmanager
def client_of(fake: FakeAnthropic, api_key: str = KEY) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key=api_key, max_retries=0, timeout=5) as client:
        yield client


def test_non_streaming_create_returns_the_scripted_text() -> None:
    with FakeAnthropic([[text("Hi from the script.")]], api_key=KEY) as fake, client_of(fake) as client:
        message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=[WRITE_TOOL])

    assert message.content[0].type == "text"
    assert message.content[0].text == "Hi from the script."
    assert (message.stop_reason, message.model, message.role) == ("end_turn", MODEL, "assistant")
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    [request] = fake.requests
    assert (request.method, request.path, request.kind, request.status) == ("POST", "/v1/messages", "script", 200)
    assert request.body["messages"] == HELLO
    assert "x-api-key" not in request.headers
    assert fake.errors == []


def test_stream_delivers_text_deltas_thinking_and_a_tool_call() -> None:
    arguments = {"file_path": "/repo/NOTES.md", "content": 'notes with "quotes" and\nnewlines, long enough to split'}
    reply = [thinking("Plan: write the notes."), text("Writing the notes file now."), tool_use("Write", arguments)]
    with (
        FakeAnthropic([reply], api_key=KEY) as fake,
        client_of(fake) as client,
        client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO, tools=[WRITE_TOOL]) as stream,
    ):
        deltas = list(stream.text_stream)
        message = stream.get_final_message()

    assert len(deltas) > 1
    assert "".join(deltas) == "Writing the notes file now."
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    thought, _, call = message.content
    assert thought.type == "thinking"
    assert thought.thinking == "Plan: write the notes."
    assert thought.signature == reply[0]["signature"]
    assert call.type == "tool_use"
    assert (call.name, call.input, call.id) == ("Write", arguments, reply[2]["id"])
    assert call.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens > 1
    assert fake.errors == []


def test_wrong_key_is_an_authentication_error_and_consumes_nothing() -> None:
    with (
        FakeAnthropic([[text("never sent")]], api_key=KEY) as fake,
        client_of(fake, api_key="sk-wrong") as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO, tools=[WRITE_TOOL])

    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert fake.remaining == 1
    assert [r.kind for r in fake.requests] == ["unauthorized"]
    assert fake.errors == []


def test_bearer_token_is_accepted_like_an_api_key() -> None:
    with (
        FakeAnthropic(api_key=KEY) as fake,
        anthropic.Anthropic(base_url=fake.url, auth_token=KEY, api_key=None, max_retries=0) as client,
    ):
        message = client.messages.create(model=MODEL, max_tokens=10, messages=HELLO, tools=[WRITE_TOOL])

    assert message.content[0].type == "text"
    assert "authorization" not in fake.requests[0].headers


def test_side_request_without_tools_does_not_consume_the_script() -> None:
    title_format: Any = {
        "type": "json_schema",
        "schema": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
    }
    with FakeAnthropic([[text("scripted")]], api_key=KEY) as fake, client_of(fake) as client:
        title = client.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, tools=[], output_config={"format": title_format}
        )
        plain = client.messages.create(model=MODEL, max_tokens=1, messages=HELLO)
        main = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=[WRITE_TOOL])
        after = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=[WRITE_TOOL])

    assert title.content[0].type == "text"
    assert title.content[0].text == '{"title": "Scripted session"}'
    assert plain.content[0].type == "text"
    assert main.content[0].type == "text"
    assert main.content[0].text == "scripted"
    assert after.content[0].type == "text"
    assert after.content[0].text == FINAL_TEXT
    assert [r.kind for r in fake.requests] == ["side", "side", "script", "script"]
    assert fake.errors == []


def test_beta_query_and_count_tokens() -> None:
    """Claude Code calls `/v1/messages?beta=true`; the query must not change the route."""
    with FakeAnthropic([[text("beta reply")]], api_key=KEY) as fake, client_of(fake) as client:
        message = client.beta.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": "Hello"}],
            tools=[{"name": "Write", "input_schema": {"type": "object"}}],
            extra_query={"beta": "true"},
        )
        count = client.messages.count_tokens(model=MODEL, messages=HELLO)

    assert message.content[0].type == "text"
    assert message.content[0].text == "beta reply"
    assert count.input_tokens > 0
    assert [(r.path, r.query, r.kind) for r in fake.requests] == [
        ("/v1/messages", {"beta": ["true"]}, "script"),
        ("/v1/messages/count_tokens", {}, "count_tokens"),
    ]
    assert fake.errors == []


def test_unknown_path_is_a_recorded_404_in_anthropics_error_shape() -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        response = httpx.get(f"{fake.url}/v1/models?limit=1", headers={"x-api-key": KEY})

    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "not_found_error"
    assert [(r.method, r.path, r.query, r.status) for r in fake.requests] == [
        ("GET", "/v1/models", {"limit": ["1"]}, 404)
    ]
    assert fake.errors == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", "100"),
        ("messages", [{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        ("tools", [{"name": "Write", "input_schema": "not an object"}]),
    ],
)
def test_a_request_body_of_the_wrong_shape_is_an_error(field: str, value: object) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "tools": [WRITE_TOOL], "a_new_beta_key": 1}
    with FakeAnthropic(api_key=KEY) as fake:
        assert httpx.post(f"{fake.url}/v1/messages", json=body, headers={"x-api-key": KEY}).status_code == 200
        assert fake.errors == []  # unknown keys are tolerated
        httpx.post(f"{fake.url}/v1/messages?beta=true", json={**body, field: value}, headers={"x-api-key": KEY})

    assert len(fake.errors) == 1
    assert fake.errors[0].startswith("request to /v1/messages:")
