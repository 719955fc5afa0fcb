"""The fake Gemini API speaks the real wire format: the official `google-genai` client parses all it sends.

Agent tests trust the fake in place of Google's API, so these tests hold it to the official SDK first: generate,
streamed and not, function calls, thoughts, token counts, the errors, and the checks behind an empty `.errors`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.support.fake_gemini import FINAL_TEXT, SIDE_TEXT, FakeGemini, function_call, text, thought

KEY = "AIza-unit-test"
MODEL = "gemini-2.5-flash"
WRITE = types.FunctionDeclaration(
    name="write_file",
    description="Write a file.",
    parameters_json_schema={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
)
CONFIG = types.GenerateContentConfig(
    system_instruction="You write files.",
    tools=[types.Tool(function_declarations=[WRITE])],
    thinking_config=types.ThinkingConfig(include_thoughts=True),
    temperature=0.5,
)
ARGS = {"path": "NOTES.md", "content": 'notes with "quotes" and\nnewlines, long enough to split'}


_clients: list[genai.Client] = []
"""Clients stay referenced: a client that is garbage-collected closes its HTTP client under a running request."""


def client(fake: FakeGemini, key: str = KEY) -> genai.Client:
    _clients.append(genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.url)))
    return _clients[-1]


def test_generate_returns_text_function_calls_and_thoughts() -> None:
    reply = [thought("Think first."), text("Writing."), function_call("write_file", ARGS)]
    with FakeGemini([reply], api_key=KEY) as fake:
        response = client(fake).models.generate_content(model=MODEL, contents="Write notes.", config=CONFIG)
    assert fake.errors == []
    assert fake.url.startswith("http://127.0.0.1:")
    assert fake.url.count("/") == 2
    parts = response.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts is not None
    assert parts[0].thought is True
    assert parts[0].text == "Think first."
    assert response.text == "Writing."
    assert response.function_calls is not None
    assert response.function_calls[0].name == "write_file"
    assert response.function_calls[0].args == ARGS
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count
    assert usage.thoughts_token_count
    (request,) = fake.requests
    assert (request.kind, request.method, request.model) == ("script", "generateContent", MODEL)
    assert request.body["systemInstruction"]["parts"][0]["text"] == "You write files."
    assert request.body["tools"][0]["functionDeclarations"][0]["name"] == "write_file"
    assert "x-goog-api-key" not in request.headers, "secrets are not recorded"


def test_streaming_arrives_in_pieces_and_adds_up() -> None:
    long_text = "A longer answer that the fake splits into several pieces."
    with FakeGemini([[text(long_text), function_call("write_file", ARGS)]], api_key=KEY) as fake:
        chunks = list(client(fake).models.generate_content_stream(model=MODEL, contents="Write notes.", config=CONFIG))
    assert fake.errors == []
    assert len(chunks) > 2
    assert "".join(c.text or "" for c in chunks) == long_text
    calls = [call for c in chunks for call in c.function_calls or []]
    assert [(call.name, call.args) for call in calls] == [("write_file", ARGS)]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count
    (request,) = fake.requests
    assert request.method == "streamGenerateContent"
    assert request.query["alt"] == ["sse"]


def test_a_function_response_turn_and_the_end_of_the_script() -> None:
    with FakeGemini([[function_call("write_file", ARGS)]], api_key=KEY) as fake:
        c = client(fake)
        first = c.models.generate_content(model=MODEL, contents="Write notes.", config=CONFIG)
        call = first.candidates[0].content  # type: ignore[index]
        assert call is not None
        answer = types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="write_file", response={"output": "written"})],
        )
        history = [types.Content(role="user", parts=[types.Part(text="Write notes.")]), call, answer]
        second = c.models.generate_content(model=MODEL, contents=history, config=CONFIG)
    assert second.text == FINAL_TEXT
    assert fake.remaining == 0
    assert fake.errors == [], "the function response is a valid request"
    assert len(fake.requests[1].body["contents"]) == 3


def test_thoughts_are_sent_only_when_asked_for() -> None:
    with FakeGemini([[thought("hidden"), text("shown")]], api_key=KEY) as fake:
        response = client(fake).models.generate_content(model=MODEL, contents="hi")
    assert response.candidates[0].content.parts == [types.Part(text="shown")]  # type: ignore[index,union-attr]
    assert fake.errors == []


def test_json_requests_are_side_requests_and_keep_the_script() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"reason": {"type": "STRING"}, "score": {"type": "INTEGER"}},
        "required": ["reason", "score"],
    }
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    with FakeGemini([[text("scripted")]], api_key=KEY) as fake:
        response = client(fake).models.generate_content(model=MODEL, contents="Score this.", config=config)
    assert json.loads(response.text or "") == {"reason": SIDE_TEXT, "score": 1}
    assert fake.remaining == 1
    assert fake.requests[0].kind == "side"
    assert fake.errors == []


def test_count_tokens() -> None:
    with FakeGemini(api_key=KEY) as fake:
        counted = client(fake).models.count_tokens(model=MODEL, contents="How many tokens is this?")
    assert counted.total_tokens is not None
    assert counted.total_tokens > 0
    assert fake.requests[0].kind == "count"
    assert fake.errors == []


def test_a_wrong_key_is_a_client_error_in_googles_shape() -> None:
    with FakeGemini([[text("never")]], api_key=KEY) as fake, pytest.raises(errors.ClientError) as caught:
        client(fake, key="wrong").models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "API key not valid" in str(caught.value.message)
    assert fake.requests[0].kind == "unauthorized"
    assert fake.remaining == 1
    assert fake.errors == []


def test_unknown_routes_are_404s() -> None:
    with FakeGemini(api_key=KEY) as fake, httpx.Client(timeout=5) as http:
        response = http.get(f"{fake.url}/v1beta/models", headers={"x-goog-api-key": KEY})
        other = http.post(f"{fake.url}/v1beta/models/{MODEL}:embedContent", headers={"x-goog-api-key": KEY}, json={})
    assert response.status_code == 404
    assert other.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    assert [r.kind for r in fake.requests] == ["not_found", "not_found"]
    assert fake.errors == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"contents": [{"role": "user", "parts": [{"txt": "typo"}]}]}, "txt"),
        (
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": "hot"}},
            "temperature",
        ),
        ({"contents": [], "unknownField": 1}, "unknownField"),
        ({"messages": []}, "contents"),
    ],
)
def test_malformed_bodies_land_in_errors(body: dict[str, Any], expected: str) -> None:
    with FakeGemini(api_key=KEY) as fake, httpx.Client(timeout=5) as http:
        response = http.post(
            f"{fake.url}/v1beta/models/{MODEL}:generateContent", headers={"x-goog-api-key": KEY}, json=body
        )
    assert response.status_code == 400
    assert fake.requests[0].kind == "bad_request"
    assert len(fake.errors) == 1, fake.errors
    assert expected in fake.errors[0]


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    with FakeGemini(api_key=KEY) as fake, httpx.Client(timeout=5) as http:
        response = http.post(
            f"{fake.url}/v1beta/models/{MODEL}:generateContent", headers={"x-goog-api-key": KEY}, content=b"[1, 2"
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400
    assert fake.requests[0].kind == "bad_request"


def test_a_malformed_scripted_reply_lands_in_errors() -> None:
    with FakeGemini([[{"txt": "a typo in the script"}]], api_key=KEY) as fake, httpx.Client(timeout=5) as http:
        http.post(
            f"{fake.url}/v1beta/models/{MODEL}:generateContent",
            headers={"x-goog-api-key": KEY},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
    assert fake.errors
    assert "txt" in fake.errors[0], fake.errors
