"""A list filtered by phase, in every store: the right items, in pages of `limit`, continuing correctly.

Issue 24: the API filtered by phase after the store paged, asking the store one row at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vteam.errors import InvalidInput
from vteam.resources import AgenticSession, ObjectMeta, Phase, Project, SessionSpec
from vteam.store import ResourceStore

Names = Callable[[str], str]


async def seeded(store: ResourceStore, unique: Names) -> tuple[str, list[str]]:
    """A project of 12 sessions, every third one Running (s02, s05, s08, s11); the rest Pending."""
    project = unique("phase")
    await store.create(Project(metadata=ObjectMeta(name=project)))
    running = []
    for index in range(12):
        name = f"s{index:02d}"
        await store.create(
            AgenticSession(metadata=ObjectMeta(name=name, namespace=project), spec=SessionSpec(prompt="p"))
        )
        if index % 3 == 2:
            await store.patch_status(AgenticSession, name, project, {"phase": Phase.RUNNING.value})
            running.append(name)
    return project, running


async def pages(store: ResourceStore, project: str, phase: str, limit: int | None) -> list[list[str]]:
    out: list[list[str]] = []
    token: str | None = None
    while True:
        page = await store.list(AgenticSession, project, limit=limit, continue_token=token, phase=phase)
        assert all(s.phase.value == phase for s in page.items)
        out.append([s.name for s in page.items])
        token = page.continue_token
        if token is None:
            return out
        assert len(out) < 20, "the continue tokens never end"


@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_a_phase_filtered_list_pages_through_exactly_the_matches(
    store: ResourceStore, unique: Names, limit: int
) -> None:
    project, running = await seeded(store, unique)
    got = await pages(store, project, Phase.RUNNING.value, limit)
    assert [name for page in got for name in page] == running
    assert all(len(page) == limit for page in got[:-1])
    assert 1 <= len(got[-1]) <= limit or got[-1] == []


async def test_a_phase_filter_without_limit_returns_every_match_in_one_page(
    store: ResourceStore, unique: Names
) -> None:
    project, running = await seeded(store, unique)
    page = await store.list(AgenticSession, project, phase=Phase.RUNNING.value)
    assert [s.name for s in page.items] == running
    assert page.continue_token is None
    pending = await store.list(AgenticSession, project, phase=Phase.PENDING.value, limit=100)
    assert len(pending.items) == 8
    assert (await store.list(AgenticSession, project, phase=Phase.FAILED.value, limit=1)).items == []


async def test_the_phase_and_the_label_selector_both_apply(store: ResourceStore, unique: Names) -> None:
    project = unique("phase")
    await store.create(Project(metadata=ObjectMeta(name=project)))
    for name, team in (("a", "x"), ("b", "y"), ("c", "x")):
        meta = ObjectMeta(name=name, namespace=project, labels={"team": team})
        await store.create(AgenticSession(metadata=meta, spec=SessionSpec(prompt="p")))
    await store.patch_status(AgenticSession, "c", project, {"phase": Phase.RUNNING.value})
    first = await store.list(AgenticSession, project, label_selector="team=x", phase="Pending", limit=1)
    assert [s.name for s in first.items] == ["a"]
    assert (
        first.continue_token is None
        or not (
            await store.list(
                AgenticSession,
                project,
                label_selector="team=x",
                phase="Pending",
                limit=1,
                continue_token=first.continue_token,
            )
        ).items
    )


async def test_a_forged_continue_token_is_invalid_input(store: ResourceStore, unique: Names) -> None:
    project, _ = await seeded(store, unique)
    with pytest.raises(InvalidInput):
        await store.list(AgenticSession, project, limit=1, continue_token="not-a-token!", phase="Running")
