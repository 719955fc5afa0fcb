"""Accounts' invariants held inside their own write: the last-admin rule under concurrent removals, a revoke
that reports whether it changed anything, and a new project that inherits nothing from an old one's name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vteam.auth import Accounts, Role
from vteam.db import open_database
from vteam.errors import Conflict, Unauthorized


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    database = await open_database(tmp_path / "vteam.db")
    yield Accounts(database)
    await database.close()


async def _admins(accounts: Accounts, project: str) -> list[str]:
    return [b.subject_name for b in await accounts.bindings(project) if b.role == Role.ADMIN]


@pytest.mark.parametrize("demote", [False, True], ids=["unbind", "demote"])
async def test_two_concurrent_removals_of_two_admins_leave_one(accounts: Accounts, demote: bool) -> None:
    for attempt in range(15):
        project = f"p{attempt}"
        for who in ("a", "b"):
            await accounts.bind(project, "user", who, Role.ADMIN, created_by="x")

        async def remove(who: str, project: str = project) -> None:
            if demote:
                await accounts.bind(project, "user", who, Role.VIEW, created_by="x", keep_an_admin=True)
            else:
                await accounts.unbind(project, "user", who, keep_an_admin=True)

        results = await asyncio.gather(remove("a"), remove("b"), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
        assert len(await _admins(accounts, project)) == 1


async def test_the_last_admin_may_still_be_re_bound_as_admin(accounts: Accounts) -> None:
    await accounts.bind("p", "user", "a", Role.ADMIN, created_by="x")
    await accounts.bind("p", "user", "a", Role.ADMIN, created_by="x", keep_an_admin=True)
    with pytest.raises(Conflict):
        await accounts.bind("p", "user", "a", Role.EDIT, created_by="x", keep_an_admin=True)
    assert await _admins(accounts, "p") == ["a"]


async def test_only_the_first_revoke_counts(accounts: Accounts) -> None:
    record, _ = await accounts.issue("api", name="x", created_by="a", user="a")
    assert await asyncio.gather(*(accounts.revoke_live(record.id) for _ in range(5))) == [True] + [False] * 4
    assert not await accounts.revoke_live("0000000000000000")


async def test_claiming_a_name_wipes_what_a_deleted_project_left(accounts: Accounts) -> None:
    await accounts.bind("p", "user", "old", Role.ADMIN, created_by="old")
    _, live = await accounts.issue("key", name="ci", created_by="old", project="p", role=Role.ADMIN)
    await accounts.claim_project("p", "new")
    assert [(b.subject_name, b.role) for b in await accounts.bindings("p")] == [("new", Role.ADMIN)]
    assert await accounts.list_tokens(project="p", kind="key") == []
    with pytest.raises(Unauthorized):
        await accounts.verify(live)
