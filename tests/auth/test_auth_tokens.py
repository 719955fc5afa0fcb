"""Per-session runner tokens and the embedded-mode authenticator."""

from __future__ import annotations

import pytest

from vteam.auth import RunnerClaim, RunnerTokens
from vteam.errors import Unauthorized

KEY = bytes(range(32))


@pytest.fixture
def tokens() -> RunnerTokens:
    return RunnerTokens(KEY)


def test_mint_and_verify_round_trip(tokens: RunnerTokens) -> None:
    token = tokens.mint("team-a", "fix-tests", "0b6f-uid")
    assert RunnerTokens.looks_like(token)
    assert tokens.verify(token) == RunnerClaim(project="team-a", session="fix-tests", uid="0b6f-uid")


def test_a_restart_with_the_same_key_rederives_the_same_token(tokens: RunnerTokens) -> None:
    assert RunnerTokens(KEY).mint("p", "s", "u") == tokens.mint("p", "s", "u")
    assert RunnerTokens(KEY).verify(tokens.mint("p", "s", "u")).session == "s"


def test_tokens_differ_per_session(tokens: RunnerTokens) -> None:
    assert tokens.mint("p", "s1", "u") != tokens.mint("p", "s2", "u")
    assert tokens.mint("p", "s", "u1") != tokens.mint("p", "s", "u2")


def _swap(char: str) -> str:
    return "B" if char == "A" else "A"


@pytest.mark.parametrize("part", ["subject", "mac"])
def test_token_with_one_character_changed_is_rejected(tokens: RunnerTokens, part: str) -> None:
    token = tokens.mint("team-a", "fix-tests", "0b6f-uid")
    prefix, subject, mac = token.split(".")
    if part == "subject":
        middle = len(subject) // 2
        subject = subject[:middle] + _swap(subject[middle]) + subject[middle + 1 :]
    else:
        middle = len(mac) // 2
        mac = mac[:middle] + _swap(mac[middle]) + mac[middle + 1 :]
    with pytest.raises(Unauthorized):
        tokens.verify(f"{prefix}.{subject}.{mac}")


def test_token_from_a_different_key_is_rejected(tokens: RunnerTokens) -> None:
    foreign = RunnerTokens(b"another platform's key").mint("team-a", "fix-tests", "0b6f-uid")
    with pytest.raises(Unauthorized, match="not valid"):
        tokens.verify(foreign)


def test_claim_swapped_onto_another_sessions_mac_is_rejected(tokens: RunnerTokens) -> None:
    mine = tokens.mint("team-a", "mine", "u1")
    theirs = tokens.mint("team-b", "theirs", "u2")
    forged = ".".join([*theirs.split(".")[:2], mine.split(".")[2]])
    with pytest.raises(Unauthorized):
        tokens.verify(forged)


@pytest.mark.parametrize(
    "garbage",
    ["", "vtr.", "vtr.abc", "vtr.a.b.c", "vtr.!!!.???", "vtr.é.é", "vtr.YQ.YQ", "not-a-token", "vtr.x.y"],
)
def test_garbage_is_unauthorized(tokens: RunnerTokens, garbage: str) -> None:
    with pytest.raises(Unauthorized):
        tokens.verify(garbage)


def test_unauthorized_maps_to_http_401(tokens: RunnerTokens) -> None:
    with pytest.raises(Unauthorized) as caught:
        tokens.verify("vtr.x.y")
    assert caught.value.status == 401
