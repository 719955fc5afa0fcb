"""Hermetic tests: no VTEAM_* setting leaks in from the developer's shell."""

from __future__ import annotations

import inspect
import os

import pytest

from tests.support.tasks import no_leftover_tasks  # noqa: F401 - given to every coroutine test below

pytest_plugins = ["tests.support.fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every async test, in every room, must leave no asyncio task running behind it."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.append("no_leftover_tasks")


@pytest.fixture(autouse=True)
def _clean_vteam_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VTEAM_"):
            monkeypatch.delenv(key)
