"""Secret redaction in runner output: text, events and reports."""

from __future__ import annotations

from typing import Any

import pytest

from vteam.runner.redact import MASK, Redactor


def test_secret_replaced_in_text() -> None:
    redactor = Redactor(["ghp_abcdef123456"])
    assert redactor.text("cloning with ghp_abcdef123456 now; ghp_abcdef123456") == f"cloning with {MASK} now; {MASK}"


def test_longer_secret_masked_whole_when_it_contains_a_shorter_one() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.text("x abcdefgh y abcd") == f"x {MASK} y {MASK}"


def test_secret_replaced_in_nested_data() -> None:
    redactor = Redactor(["s3cr3t-token"])
    data = {
        "type": "TOOL_CALL_RESULT",
        "content": "Authorization: Bearer s3cr3t-token",
        "nested": [{"env": {"TOKEN": "s3cr3t-token"}}, "prefix-s3cr3t-token-suffix", 42, None, True],
    }
    assert redactor.data(data) == {
        "type": "TOOL_CALL_RESULT",
        "content": f"Authorization: Bearer {MASK}",
        "nested": [{"env": {"TOKEN": MASK}}, f"prefix-{MASK}-suffix", 42, None, True],
    }


def test_secret_with_multibyte_characters_is_replaced() -> None:
    redactor = Redactor(["pässwört"])
    assert redactor.data({"m": "login pässwört"}) == {"m": f"login {MASK}"}


@pytest.mark.parametrize("short", ["", "a", "ab", "abc"])
def test_secrets_shorter_than_four_characters_are_ignored(short: str) -> None:
    redactor = Redactor([short])
    text = "a cab abc in abcd"
    assert redactor.text(text) == text
    assert redactor.data({"t": text}) == {"t": text}


def test_four_character_secret_is_redacted() -> None:
    assert Redactor(["abcd"]).text("xabcdx") == f"x{MASK}x"


def test_data_without_secrets_comes_back_unchanged() -> None:
    data: dict[str, Any] = {"a": [1, 2.5, {"b": "nothing here"}], "c": None}
    assert Redactor(["hunter2-secret"]).data(data) is data
    assert Redactor([]).data(data) is data


@pytest.mark.parametrize("secret", ['pa"ss-word', "pa\\ss-word", "line1\nline2", "tab\there"])
def test_secret_with_json_escaped_characters_is_redacted_in_data(secret: str) -> None:
    """Passwords may contain quotes or backslashes; redacting data must still hide them."""
    redactor = Redactor([secret])
    assert redactor.text(f"pw={secret}") == f"pw={MASK}"
    assert redactor.data({"pw": f"pw={secret}"}) == {"pw": f"pw={MASK}"}


@pytest.mark.parametrize(
    ("secret", "data"),
    [
        ("1234", {"pin": "pin is 1234", "count": 12345}),
        ("true", {"pw": "password=true", "ok": True}),
        ("null", {"pw": "nullable", "v": None}),
    ],
)
def test_secret_that_also_appears_in_json_syntax_does_not_crash(secret: str, data: dict[str, Any]) -> None:
    """A secret that happens to match a number or a JSON literal must not break the event."""
    redacted = Redactor([secret]).data(data)
    assert all(secret not in v for v in redacted.values() if isinstance(v, str))
    assert {k: v for k, v in redacted.items() if not isinstance(v, str)} == {
        k: v for k, v in data.items() if not isinstance(v, str)
    }, "numbers, booleans and null are kept as they are"
