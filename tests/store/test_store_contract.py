"""The ResourceStore contract: what every implementation must do, checked through the Protocol only.

Nothing here knows which implementation it talks to; the `store` fixture (conftest.py) supplies
each one in turn. Names come from `unique` so the suite also works against a shared backend, and
lists and watches are always scoped to the test's own projects. resourceVersions are treated as
opaque strings: compared for equality, never ordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vteam.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from vteam.resources import AgenticSession, ObjectMeta, Phase, Project, SessionSpec
from vteam.store import ResourceStore, WatchEvent

Names = Callable[[str], str]

EVENT_TIMEOUT = 5.0


def session(
    name: str, project: str, *, prompt: str = "fix the bug", labels: dict[str, str] | None = None
) -> AgenticSession:
    return AgenticSession(
        metadata=ObjectMeta(name=name, namespace=project, labels=labels or {}),
        spec=SessionSpec(prompt=prompt),
    )


async def make_project(store: ResourceStore, unique: Names, prefix: str = "proj") -> str:
    name = unique(prefix)
    await store.create(Project(metadata=ObjectMeta(name=name)))
    return name


@pytest.fixture
async def project(store: ResourceStore, unique: Names) -> str:
    return await make_project(store, unique)


async def next_event(watch: AsyncIterator[WatchEvent[Any]]) -> WatchEvent[Any]:
    return await asyncio.wait_for(anext(watch), timeout=EVENT_TIMEOUT)


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close a watch or reader early; the Protocols promise only an AsyncIterator."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def summary(event: WatchEvent[Any]) -> tuple[str, str, str]:
    return (event.type, event.object.metadata.namespace or "", event.object.name)


# --- create and get -------------------------------------------------------------------------------


async def test_create_then_get_round_trips_with_server_set_metadata(store: ResourceStore, project: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=60)
    spec = SessionSpec(prompt="add a README", display_name="Docs", framework="script", timeout=600)
    created = await store.create(
        AgenticSession(metadata=ObjectMeta(name="s1", namespace=project, labels={"team": "docs"}), spec=spec)
    )
    after = datetime.now(UTC) + timedelta(seconds=60)

    meta = created.metadata
    assert meta.uid
    assert meta.resource_version
    assert meta.generation == 1
    assert meta.creation_timestamp is not None
    assert before <= meta.creation_timestamp <= after
    assert meta.namespace == project
    assert meta.labels == {"team": "docs"}
    assert created.spec == spec

    fetched = await store.get(AgenticSession, "s1", project)
    assert fetched == created


async def test_create_project_round_trips_without_a_namespace(store: ResourceStore, unique: Names) -> None:
    name = unique("proj")
    created = await store.create(Project(metadata=ObjectMeta(name=name, labels={"owner": "alice"})))

    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert await store.get(Project, name) == created


async def test_each_created_resource_gets_its_own_uid(store: ResourceStore, project: str) -> None:
    first = await store.create(session("s1", project))
    second = await store.create(session("s2", project))

    assert first.metadata.uid != second.metadata.uid


async def test_create_duplicate_raises_already_exists_and_keeps_the_original(
    store: ResourceStore, project: str
) -> None:
    original = await store.create(session("dup", project, prompt="first"))

    with pytest.raises(AlreadyExists, match="dup"):
        await store.create(session("dup", project, prompt="second"))

    assert await store.get(AgenticSession, "dup", project) == original


async def test_same_name_in_two_projects_is_allowed(store: ResourceStore, unique: Names) -> None:
    one = await make_project(store, unique, "one")
    two = await make_project(store, unique, "two")

    a = await store.create(session("same", one, prompt="in one"))
    b = await store.create(session("same", two, prompt="in two"))

    assert (await store.get(AgenticSession, "same", one)).spec.prompt == "in one"
    assert (await store.get(AgenticSession, "same", two)).spec.prompt == "in two"
    assert a.metadata.uid != b.metadata.uid


async def test_session_in_missing_project_raises_not_found(store: ResourceStore, unique: Names) -> None:
    missing = unique("nowhere")

    with pytest.raises(NotFound, match=missing):
        await store.create(session("orphan", missing))


async def test_get_missing_session_raises_not_found_naming_it(store: ResourceStore, project: str) -> None:
    with pytest.raises(NotFound, match="ghost-session"):
        await store.get(AgenticSession, "ghost-session", project)


async def test_get_missing_project_raises_not_found_naming_it(store: ResourceStore, unique: Names) -> None:
    missing = unique("ghost")

    with pytest.raises(NotFound, match=missing):
        await store.get(Project, missing)


# --- list -----------------------------------------------------------------------------------------


async def test_list_is_filtered_by_namespace(store: ResourceStore, unique: Names) -> None:
    one = await make_project(store, unique, "one")
    two = await make_project(store, unique, "two")
    for name in ("a", "b"):
        await store.create(session(name, one))
    await store.create(session("c", two))

    listed_one = await store.list(AgenticSession, one)
    listed_two = await store.list(AgenticSession, two)

    assert [(s.namespace, s.name) for s in listed_one.items] == [(one, "a"), (one, "b")]
    assert [(s.namespace, s.name) for s in listed_two.items] == [(two, "c")]
    assert listed_one.resource_version
    assert listed_one.continue_token is None


async def test_list_of_project_without_sessions_is_empty(store: ResourceStore, project: str) -> None:
    listed = await store.list(AgenticSession, project)

    assert listed.items == []
    assert listed.continue_token is None


LABELLED = {
    "s-a": {"env": "prod", "tier": "web"},
    "s-b": {"env": "dev", "tier": "web"},
    "s-c": {"env": "staging"},
    "s-d": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", ["s-a"]),
        ("env==prod", ["s-a"]),
        ("env!=prod", ["s-b", "s-c", "s-d"]),
        ("env in (prod,dev)", ["s-a", "s-b"]),
        ("env in (prod, staging)", ["s-a", "s-c"]),
        ("env notin (prod,dev)", ["s-c", "s-d"]),
        ("tier", ["s-a", "s-b"]),
        ("!tier", ["s-c", "s-d"]),
        ("env=dev,tier=web", ["s-b"]),
        ("env in (prod,staging),!tier", ["s-c"]),
        ("env=nope", []),
        ("", ["s-a", "s-b", "s-c", "s-d"]),
    ],
)
async def test_label_selector_picks_the_right_items(
    store: ResourceStore, project: str, selector: str, expected: list[str]
) -> None:
    for name, labels in LABELLED.items():
        await store.create(session(name, project, labels=labels))

    listed = await store.list(AgenticSession, project, label_selector=selector)

    assert [s.name for s in listed.items] == expected


async def _walk(
    store: ResourceStore, project: str, *, limit: int, label_selector: str | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = await store.list(
            AgenticSession, project, label_selector=label_selector, limit=limit, continue_token=token
        )
        pages.append([s.name for s in page.items])
        assert len(page.items) <= limit
        token = page.continue_token
        if token is None:
            return pages
        assert len(pages) < 50, "pagination never ended"


async def test_pagination_walks_every_item_exactly_once_in_order(store: ResourceStore, project: str) -> None:
    names = [f"s-{i:02d}" for i in range(7)]
    for name in reversed(names):
        await store.create(session(name, project))

    pages = await _walk(store, project, limit=3)

    assert pages == [names[0:3], names[3:6], names[6:7]]


async def test_pagination_ends_when_items_fill_the_last_page_exactly(store: ResourceStore, project: str) -> None:
    names = [f"s-{i:02d}" for i in range(4)]
    for name in names:
        await store.create(session(name, project))

    pages = await _walk(store, project, limit=2)

    assert [name for page in pages for name in page] == names
    assert all(pages[:2])


async def test_pagination_with_label_selector_walks_only_matching_items(store: ResourceStore, project: str) -> None:
    for i in range(9):
        await store.create(session(f"s-{i}", project, labels={"parity": "even" if i % 2 == 0 else "odd"}))

    pages = await _walk(store, project, limit=2, label_selector="parity=even")

    assert [name for page in pages for name in page] == ["s-0", "s-2", "s-4", "s-6", "s-8"]
    assert all(pages)


@pytest.mark.parametrize(
    "selector",
    ["=prod", "env in prod", "env in (prod", "env=prod,", "env=pr od", "env ~ prod"],
)
async def test_bad_label_selector_raises_invalid_input(store: ResourceStore, project: str, selector: str) -> None:
    await store.create(session("s1", project, labels={"env": "prod"}))

    with pytest.raises(InvalidInput):
        await store.list(AgenticSession, project, label_selector=selector)


async def test_negated_set_selector_is_rejected_rather_than_silently_inverted(
    store: ResourceStore, project: str
) -> None:
    # `!key` only stands alone; `!env in (prod)` is not a selector. Accepting it as
    # `env in (prod)` would hand back exactly the items the caller asked to exclude.
    await store.create(session("prod-one", project, labels={"env": "prod"}))
    await store.create(session("dev-one", project, labels={"env": "dev"}))

    with pytest.raises(InvalidInput):
        await store.list(AgenticSession, project, label_selector="!env in (prod)")


async def test_bad_continue_token_raises_invalid_input(store: ResourceStore, project: str) -> None:
    await store.create(session("s1", project))

    with pytest.raises(InvalidInput):
        await store.list(AgenticSession, project, limit=1, continue_token="not-a-token!")


# --- replace --------------------------------------------------------------------------------------


async def test_replace_with_current_version_changes_spec_and_bumps_generation(
    store: ResourceStore, project: str
) -> None:
    created = await store.create(session("s1", project, prompt="v1"))
    running = await store.patch_status(AgenticSession, "s1", project, {"phase": "Creating", "message": "cloning"})

    edited = running.model_copy(deep=True)
    edited.spec.prompt = "v2"
    replaced = await store.replace(edited)

    assert replaced.spec.prompt == "v2"
    assert replaced.metadata.generation == 2
    assert replaced.metadata.resource_version != running.metadata.resource_version
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert replaced.status.phase == "Creating"
    assert replaced.status.message == "cloning"
    assert await store.get(AgenticSession, "s1", project) == replaced


async def test_replace_without_spec_change_keeps_generation_but_changes_version(
    store: ResourceStore, project: str
) -> None:
    created = await store.create(session("s1", project, labels={"team": "a"}))

    edited = created.model_copy(deep=True)
    edited.metadata.labels = {"team": "b"}
    edited.metadata.annotations = {"note": "moved"}
    replaced = await store.replace(edited)

    assert replaced.metadata.generation == 1
    assert replaced.metadata.resource_version != created.metadata.resource_version
    assert replaced.metadata.labels == {"team": "b"}
    assert replaced.metadata.annotations == {"note": "moved"}
    assert replaced.spec == created.spec
    assert (await store.list(AgenticSession, project, label_selector="team=b")).items == [replaced]


async def test_replace_ignores_status_in_the_request(store: ResourceStore, project: str) -> None:
    created = await store.create(session("s1", project))

    edited = created.model_copy(deep=True)
    edited.spec.prompt = "new prompt"
    edited.status.phase = Phase.COMPLETED
    edited.status.message = "not mine to set"
    replaced = await store.replace(edited)

    assert replaced.spec.prompt == "new prompt"
    assert replaced.status.phase == Phase.PENDING
    assert replaced.status.message is None


async def test_replace_with_stale_version_conflicts_and_changes_nothing(store: ResourceStore, project: str) -> None:
    v1 = await store.create(session("s1", project, prompt="v1"))
    first = v1.model_copy(deep=True)
    first.spec.prompt = "v2"
    v2 = await store.replace(first)

    stale = v1.model_copy(deep=True)
    stale.spec.prompt = "lost update"
    stale.metadata.labels = {"sneaky": "yes"}
    with pytest.raises(Conflict):
        await store.replace(stale)

    assert await store.get(AgenticSession, "s1", project) == v2


async def test_replace_missing_raises_not_found(store: ResourceStore, project: str) -> None:
    created = await store.create(session("s1", project))
    await store.delete(AgenticSession, "s1", project)

    with pytest.raises(NotFound, match="s1"):
        await store.replace(created)


async def test_concurrent_replaces_from_same_version_exactly_one_wins(store: ResourceStore, project: str) -> None:
    base = await store.create(session("s1", project, prompt="base"))
    left = base.model_copy(deep=True)
    left.spec.prompt = "left"
    right = base.model_copy(deep=True)
    right.spec.prompt = "right"

    results = await asyncio.gather(store.replace(left), store.replace(right), return_exceptions=True)

    winners = [r for r in results if isinstance(r, AgenticSession)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert isinstance(losers[0], Conflict)
    current = await store.get(AgenticSession, "s1", project)
    assert current == winners[0]
    assert current.metadata.generation == 2


# --- patch_status ---------------------------------------------------------------------------------


async def test_patch_status_merges_top_level_fields_and_leaves_spec(store: ResourceStore, project: str) -> None:
    created = await store.create(session("s1", project, prompt="keep me"))

    first = await store.patch_status(AgenticSession, "s1", project, {"phase": "Creating"})
    second = await store.patch_status(AgenticSession, "s1", project, {"message": "cloning", "agentStatus": "working"})

    assert first.metadata.resource_version != created.metadata.resource_version
    assert second.metadata.resource_version != first.metadata.resource_version
    assert second.status.phase == "Creating"
    assert second.status.message == "cloning"
    assert second.status.agent_status == "working"
    assert second.spec == created.spec
    assert second.metadata.generation == 1
    assert second.metadata.labels == created.metadata.labels
    assert await store.get(AgenticSession, "s1", project) == second


async def test_patch_status_with_current_version_succeeds(store: ResourceStore, project: str) -> None:
    created = await store.create(session("s1", project))

    patched = await store.patch_status(
        AgenticSession, "s1", project, {"phase": "Creating"}, resource_version=created.metadata.resource_version
    )

    assert patched.status.phase == "Creating"


async def test_patch_status_with_stale_version_conflicts_and_changes_nothing(
    store: ResourceStore, project: str
) -> None:
    created = await store.create(session("s1", project))
    current = await store.patch_status(AgenticSession, "s1", project, {"phase": "Creating"})

    with pytest.raises(Conflict):
        await store.patch_status(
            AgenticSession, "s1", project, {"phase": "Failed"}, resource_version=created.metadata.resource_version
        )

    assert await store.get(AgenticSession, "s1", project) == current


async def test_patch_status_of_missing_raises_not_found(store: ResourceStore, project: str) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await store.patch_status(AgenticSession, "ghost", project, {"phase": "Creating"})


# --- delete ---------------------------------------------------------------------------------------


async def test_delete_then_get_raises_not_found(store: ResourceStore, project: str) -> None:
    await store.create(session("s1", project))
    await store.create(session("s2", project))

    await store.delete(AgenticSession, "s1", project)

    with pytest.raises(NotFound, match="s1"):
        await store.get(AgenticSession, "s1", project)
    assert [s.name for s in (await store.list(AgenticSession, project)).items] == ["s2"]


async def test_delete_missing_raises_not_found(store: ResourceStore, project: str) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await store.delete(AgenticSession, "ghost", project)


async def test_name_can_be_reused_after_delete_with_a_new_uid(store: ResourceStore, project: str) -> None:
    old = await store.create(session("s1", project, prompt="old"))
    await store.delete(AgenticSession, "s1", project)

    new = await store.create(session("s1", project, prompt="new"))

    assert new.metadata.uid != old.metadata.uid
    assert new.metadata.generation == 1
    assert (await store.get(AgenticSession, "s1", project)).spec.prompt == "new"


async def test_deleting_a_project_removes_its_sessions_only(store: ResourceStore, unique: Names) -> None:
    doomed = await make_project(store, unique, "doomed")
    kept = await make_project(store, unique, "kept")
    await store.create(session("a", doomed))
    await store.create(session("b", doomed))
    survivor = await store.create(session("a", kept))

    await store.delete(Project, doomed)

    with pytest.raises(NotFound):
        await store.get(Project, doomed)
    for name in ("a", "b"):
        with pytest.raises(NotFound):
            await store.get(AgenticSession, name, doomed)
    assert (await store.list(AgenticSession, doomed)).items == []
    assert await store.get(AgenticSession, "a", kept) == survivor


# --- watch ----------------------------------------------------------------------------------------


async def test_watch_from_list_version_yields_later_changes_in_order(store: ResourceStore, project: str) -> None:
    await store.create(session("before", project))
    listed = await store.list(AgenticSession, project)
    watch = store.watch(AgenticSession, project, resource_version=listed.resource_version)
    try:
        added = await store.create(session("s1", project, prompt="v1"))
        edited = added.model_copy(deep=True)
        edited.spec.prompt = "v2"
        modified = await store.replace(edited)
        await store.delete(AgenticSession, "s1", project)

        events = [await next_event(watch) for _ in range(3)]
    finally:
        await aclose(watch)

    assert [summary(e) for e in events] == [
        ("ADDED", project, "s1"),
        ("MODIFIED", project, "s1"),
        ("DELETED", project, "s1"),
    ]
    assert events[0].object.metadata.resource_version == added.metadata.resource_version
    assert events[0].object.spec.prompt == "v1"
    assert events[1].object.metadata.resource_version == modified.metadata.resource_version
    assert events[1].object.spec.prompt == "v2"
    assert events[2].object.metadata.uid == added.metadata.uid


async def test_watch_sees_status_patches_as_modified(store: ResourceStore, project: str) -> None:
    created = await store.create(session("s1", project))
    watch = store.watch(AgenticSession, project, resource_version=created.metadata.resource_version)
    try:
        await store.patch_status(AgenticSession, "s1", project, {"phase": "Creating"})
        event = await next_event(watch)
    finally:
        await aclose(watch)

    assert summary(event) == ("MODIFIED", project, "s1")
    assert event.object.status.phase == "Creating"


async def test_watch_started_before_changes_waits_for_them(store: ResourceStore, project: str) -> None:
    listed = await store.list(AgenticSession, project)
    watch = store.watch(AgenticSession, project, resource_version=listed.resource_version)
    try:
        pending = asyncio.ensure_future(next_event(watch))
        await asyncio.sleep(0.05)
        await store.create(session("late", project))
        event = await pending
    finally:
        await aclose(watch)

    assert summary(event) == ("ADDED", project, "late")


async def test_watch_from_older_version_replays_changes_after_it(store: ResourceStore, project: str) -> None:
    s1 = await store.create(session("s1", project, prompt="v1"))
    edited = s1.model_copy(deep=True)
    edited.spec.prompt = "v2"
    await store.replace(edited)
    await store.create(session("s2", project))
    await store.delete(AgenticSession, "s1", project)

    watch = store.watch(AgenticSession, project, resource_version=s1.metadata.resource_version)
    try:
        replayed = [await next_event(watch) for _ in range(3)]
        await store.create(session("s3", project))
        live = await next_event(watch)
    finally:
        await aclose(watch)

    assert [summary(e) for e in replayed] == [
        ("MODIFIED", project, "s1"),
        ("ADDED", project, "s2"),
        ("DELETED", project, "s1"),
    ]
    assert replayed[0].object.spec.prompt == "v2"
    assert summary(live) == ("ADDED", project, "s3")


async def test_watch_scoped_to_a_namespace_does_not_see_other_namespaces(store: ResourceStore, unique: Names) -> None:
    mine = await make_project(store, unique, "mine")
    other = await make_project(store, unique, "other")
    listed = await store.list(AgenticSession, mine)
    watch = store.watch(AgenticSession, mine, resource_version=listed.resource_version)
    try:
        theirs = await store.create(session("theirs", other))
        await store.create(session("m1", mine))
        edited = theirs.model_copy(deep=True)
        edited.spec.prompt = "changed elsewhere"
        await store.replace(edited)
        await store.patch_status(AgenticSession, "theirs", other, {"phase": "Creating"})
        await store.delete(AgenticSession, "theirs", other)
        await store.create(session("m2", mine))

        events = [await next_event(watch) for _ in range(2)]
    finally:
        await aclose(watch)

    assert [summary(e) for e in events] == [("ADDED", mine, "m1"), ("ADDED", mine, "m2")]


async def test_watch_sees_sessions_deleted_with_their_project(store: ResourceStore, unique: Names) -> None:
    doomed = await make_project(store, unique, "doomed")
    await store.create(session("a", doomed))
    listed = await store.list(AgenticSession, doomed)
    watch = store.watch(AgenticSession, doomed, resource_version=listed.resource_version)
    try:
        await store.delete(Project, doomed)
        event = await next_event(watch)
    finally:
        await aclose(watch)

    assert summary(event) == ("DELETED", doomed, "a")


async def test_current_version_moves_with_every_write_and_matches_lists(store: ResourceStore, project: str) -> None:
    before = await store.current_version()
    listed = await store.list(AgenticSession, project)
    assert listed.resource_version == before
    created = await store.create(session("versioned", project))
    after_create = await store.current_version()
    assert after_create != before
    assert after_create == created.metadata.resource_version
    await store.delete(AgenticSession, "versioned", project)
    assert await store.current_version() not in (before, after_create)


async def test_versions_name_every_object_with_its_resource_version(store: ResourceStore, project: str) -> None:
    assert await store.versions(AgenticSession, project) == {}
    first = await store.create(session("one", project))
    second = await store.create(session("two", project))
    assert await store.versions(AgenticSession, project) == {
        "one": first.metadata.resource_version,
        "two": second.metadata.resource_version,
    }
    await store.delete(AgenticSession, "one", project)
    assert set(await store.versions(AgenticSession, project)) == {"two"}
