"""Cluster mode's access answers are reused briefly and bounded; RoleBinding names stay valid and distinct."""

from __future__ import annotations

import asyncio
import re

from vteam.auth.cluster import TtlCache
from vteam.services.cluster import binding_name

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.calls


async def test_an_answer_is_reused_until_it_expires() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0.2)
    ask = Counter()

    first = await cache.get("alice/team", ask)
    again = await cache.get("alice/team", ask)
    await asyncio.sleep(0.25)
    later = await cache.get("alice/team", ask)

    assert (first, again, later) == (1, 1, 2)


async def test_a_zero_ttl_asks_every_time() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0)
    ask = Counter()

    assert [await cache.get("k", ask) for _ in range(3)] == [1, 2, 3]


async def test_the_oldest_answers_go_first_past_the_size() -> None:
    cache: TtlCache[str] = TtlCache(ttl=60, size=2)

    async def answer(value: str) -> str:
        return value

    await cache.get("a", lambda: answer("a1"))
    await cache.get("b", lambda: answer("b1"))
    await cache.get("a", lambda: answer("a2"))
    await cache.get("c", lambda: answer("c1"))

    assert await cache.get("a", lambda: answer("a3")) == "a1"
    assert await cache.get("b", lambda: answer("b2")) == "b2"


def test_binding_names_are_valid_and_keep_lookalike_subjects_apart() -> None:
    names = {
        binding_name("user", "alice@example.com"),
        binding_name("user", "alice-example-com"),
        binding_name("group", "alice@example.com"),
        binding_name("user", "system:serviceaccount:team:bot"),
        binding_name("user", "Ünïcode Person"),
    }

    assert len(names) == 5
    assert all(DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 63 for name in names)
