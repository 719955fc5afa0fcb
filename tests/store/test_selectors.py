"""Kubernetes-style label selectors."""

from __future__ import annotations

import pytest

from vteam.errors import InvalidInput
from vteam.store.selectors import parse

WEB_PROD = {"app": "web", "env": "prod"}
WEB_DEV = {"app": "web", "env": "dev"}
DB = {"app": "db"}
NOTHING: dict[str, str] = {}
ALL = [WEB_PROD, WEB_DEV, DB, NOTHING]


def matching(selector: str | None) -> list[dict[str, str]]:
    match = parse(selector)
    return [labels for labels in ALL if match(labels)]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, ALL),
        ("", ALL),
        ("   ", ALL),
        ("app=web", [WEB_PROD, WEB_DEV]),
        ("app==web", [WEB_PROD, WEB_DEV]),
        ("app = web", [WEB_PROD, WEB_DEV]),
        ("app!=web", [DB, NOTHING]),
        ("env", [WEB_PROD, WEB_DEV]),
        ("!env", [DB, NOTHING]),
        ("env in (prod, dev)", [WEB_PROD, WEB_DEV]),
        ("env in (prod)", [WEB_PROD]),
        ("env notin (prod)", [WEB_DEV, DB, NOTHING]),
        ("app=web,env=dev", [WEB_DEV]),
        ("app=web, env notin (dev)", [WEB_PROD]),
        ("env in (prod,dev),app=web", [WEB_PROD, WEB_DEV]),
        ("app,!env", [DB]),
        ("app=web,app=db", []),
        ("team.example.com/owner=alice", []),
    ],
)
def test_selector_matches(selector: str | None, expected: list[dict[str, str]]) -> None:
    assert matching(selector) == expected


def test_prefixed_key() -> None:
    match = parse("team.example.com/owner=alice")
    assert match({"team.example.com/owner": "alice"})
    assert not match({"owner": "alice"})


@pytest.mark.parametrize(
    ("selector", "bad_part"),
    [
        ("a=b=c", "a=b=c"),
        ("in (x)", "in (x)"),
        ("app=web,a=b=c", "a=b=c"),
        ("env in (prod", "env in (prod"),
        ("app=web,", ""),
        ("a b", "a b"),
        ("=b", "=b"),
    ],
)
def test_garbage_raises_invalid_input_naming_the_bad_part(selector: str, bad_part: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(selector)
    assert f"label selector part {bad_part!r} is not understood" in caught.value.detail
    assert caught.value.status == 422


def test_negated_set_requirement_is_rejected_not_read_as_positive() -> None:
    """`!env in (prod)` is not selector syntax; today the `!` is dropped and it selects exactly prod."""
    with pytest.raises(InvalidInput, match=r"'!env in \(prod\)' negates a set"):
        parse("!env in (prod)")
