"""Fail an async test that leaves asyncio tasks running behind it (as kopf's suite does).

`tests/conftest.py` gives this fixture to every coroutine test of the suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture
async def no_leftover_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in leftover:
        task.cancel()
    assert not leftover, f"the test left tasks running: {[t.get_coro() for t in leftover]}"
