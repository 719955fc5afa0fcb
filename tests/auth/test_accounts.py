"""Accounts and the embedded authenticator on a real SQLite database: tokens, roles, identities."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from vteam.auth import Accounts, EmbeddedAuthenticator, Role, RunnerTokens
from vteam.db import Database, open_database
from vteam.errors import AlreadyExists, NotFound, Unauthorized


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "vteam.db")
    yield database
    await database.close()


@pytest.fixture
def accounts(db: Database) -> Accounts:
    return Accounts(db)


async def test_a_token_is_shown_once_and_only_its_hash_is_stored(accounts: Accounts, db: Database) -> None:
    await accounts.create_user("bob")
    record, secret = await accounts.issue("api", name="laptop", created_by="bob", user="bob")
    assert secret.startswith(f"vt_api_{record.id}_")
    assert (await accounts.verify(secret)).user == "bob"
    with sqlite3.connect(db.path) as raw:
        stored = raw.execute("SELECT hash FROM tokens WHERE id = ?", (record.id,)).fetchone()[0]
        raw.execute("PRAGMA wal_checkpoint(FULL)")
    assert secret.rsplit("_", 1)[-1] not in stored
    for file in db.path.parent.glob("vteam.db*"):
        assert secret.encode() not in file.read_bytes()


@pytest.mark.parametrize(
    "forged",
    ["", "vt_api_", "vt_api_0123456789abcdef_short", "vt_nope_0123456789abcdef_" + "a" * 43, "ghp_" + "a" * 36],
)
async def test_malformed_or_unknown_tokens_are_refused_without_echo(accounts: Accounts, forged: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        await accounts.verify(forged)
    assert forged not in caught.value.detail or not forged


async def test_a_token_with_the_right_id_and_a_wrong_secret_is_refused(accounts: Accounts) -> None:
    record, secret = await accounts.issue("api", name="x", created_by="a", user="a")
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized, match="not one vTeam issued"):
        await accounts.verify(wrong)
    with pytest.raises(Unauthorized):
        await accounts.verify(secret.replace("vt_api_", "vt_key_"))
    assert (await accounts.verify(secret)).id == record.id


async def test_revoked_and_expired_tokens_stop_working(accounts: Accounts, db: Database) -> None:
    record, secret = await accounts.issue("api", name="x", created_by="a", user="a")
    await accounts.revoke(record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await accounts.verify(secret)
    old, stale = await accounts.issue("api", name="y", created_by="a", user="a", ttl=timedelta(days=1))
    with sqlite3.connect(db.path) as raw:
        raw.execute("UPDATE tokens SET expires = '2020-01-01T00:00:00+00:00' WHERE id = ?", (old.id,))
    with pytest.raises(Unauthorized, match="expired"):
        await accounts.verify(stale)


async def test_a_login_link_works_once(accounts: Accounts) -> None:
    _, link = await accounts.issue("login", name="first", created_by="vteam up", user="admin")
    assert (await accounts.redeem(link)).user == "admin"
    with pytest.raises(Unauthorized, match="already been used"):
        await accounts.redeem(link)
    _, api = await accounts.issue("api", name="x", created_by="a", user="a")
    with pytest.raises(Unauthorized):
        await accounts.redeem(api)


async def test_last_used_is_recorded(accounts: Accounts) -> None:
    record, secret = await accounts.issue("key", name="ci", created_by="a", project="p", role=Role.EDIT)
    assert record.last_used is None
    await accounts.verify(secret)
    assert (await accounts.get_token(record.id)).last_used is not None


async def test_users_are_unique(accounts: Accounts) -> None:
    await accounts.create_user("bob", display_name="Bob")
    with pytest.raises(AlreadyExists):
        await accounts.create_user("bob")
    assert [u.name for u in await accounts.list_users()] == ["bob"]


async def test_the_highest_role_across_user_and_groups_wins(accounts: Accounts) -> None:
    await accounts.bind("p", "user", "ann", Role.VIEW, created_by="x")
    await accounts.bind("p", "group", "devs", Role.EDIT, created_by="x")
    await accounts.bind("q", "group", "ops", Role.ADMIN, created_by="x")
    assert await accounts.role_of("p", "ann") == Role.VIEW
    assert await accounts.role_of("p", "ann", ("devs",)) == Role.EDIT
    assert await accounts.role_of("q", "ann", ("devs",)) is None
    assert await accounts.projects_of("ann", ("ops",)) == {"p", "q"}
    await accounts.bind("p", "user", "ann", Role.ADMIN, created_by="x")
    assert await accounts.role_of("p", "ann") == Role.ADMIN
    await accounts.unbind("p", "user", "ann")
    with pytest.raises(NotFound):
        await accounts.unbind("p", "user", "ann")


async def test_forgetting_a_project_drops_its_bindings_and_revokes_its_keys(accounts: Accounts) -> None:
    await accounts.bind("p", "user", "ann", Role.ADMIN, created_by="x")
    _, key = await accounts.issue("key", name="ci", created_by="ann", project="p", role=Role.VIEW)
    await accounts.forget_project("p")
    assert await accounts.role_of("p", "ann") is None
    with pytest.raises(Unauthorized, match="revoked"):
        await accounts.verify(key)


@pytest.fixture
def authenticator(accounts: Accounts) -> EmbeddedAuthenticator:
    return EmbeddedAuthenticator(RunnerTokens(b"k" * 32), accounts, admin_token="seeded-admin-token-value")


async def test_no_credentials_is_anonymous(authenticator: EmbeddedAuthenticator) -> None:
    identity = await authenticator.authenticate({}, None)
    assert identity.is_anonymous


@pytest.mark.parametrize("header", ["Basic xyz", "Bearer", "Bearer ", "Token abc"])
async def test_other_schemes_are_unauthorized(authenticator: EmbeddedAuthenticator, header: str) -> None:
    with pytest.raises(Unauthorized, match="Bearer <token>"):
        await authenticator.authenticate({"authorization": header}, None)


async def test_the_seeded_admin_token_is_a_platform_admin(authenticator: EmbeddedAuthenticator) -> None:
    identity = await authenticator.authenticate({"authorization": "bearer seeded-admin-token-value"}, None)
    assert identity.admin
    with pytest.raises(Unauthorized):
        await authenticator.authenticate({"authorization": "Bearer seeded-admin-token-valuE"}, None)


async def test_runner_keys_and_people_are_told_apart(authenticator: EmbeddedAuthenticator, accounts: Accounts) -> None:
    runner = RunnerTokens(b"k" * 32).mint("team-a", "fix", "uid-1")
    identity = await authenticator.authenticate({"authorization": f"Bearer {runner}"}, None)
    assert (identity.kind, identity.project, identity.session) == ("runner", "team-a", "fix")
    foreign = RunnerTokens(b"other" * 8).mint("team-a", "fix", "uid-1")
    with pytest.raises(Unauthorized):
        await authenticator.authenticate({"authorization": f"Bearer {foreign}"}, None)

    _, key = await accounts.issue("key", name="ci", created_by="ann", project="team-a", role=Role.EDIT)
    as_key = await authenticator.authenticate({"authorization": f"Bearer {key}"}, None)
    assert (as_key.kind, as_key.project, as_key.role) == ("key", "team-a", Role.EDIT)

    await accounts.create_user("ann")
    _, session = await accounts.issue("session", name="browser", created_by="ann", user="ann")
    assert (await authenticator.authenticate({}, session)).name == "ann"
    with pytest.raises(Unauthorized):
        await authenticator.authenticate({"authorization": f"Bearer {session}"}, None)
    _, api = await accounts.issue("api", name="cli", created_by="ann", user="ann")
    with pytest.raises(Unauthorized):
        await authenticator.authenticate({}, api)


async def test_forwarded_identity_only_from_a_trusted_proxy(accounts: Accounts) -> None:
    headers = {"x-forwarded-user": "olga", "x-forwarded-groups": "ops, devs", "x-forwarded-access-token": "sha256~t"}
    untrusted = EmbeddedAuthenticator(RunnerTokens(b"k" * 32), accounts)
    assert (await untrusted.authenticate(headers, None)).is_anonymous
    trusted = EmbeddedAuthenticator(RunnerTokens(b"k" * 32), accounts, trust_proxy=True, admin_groups=("ops",))
    identity = await trusted.authenticate(headers, None)
    assert (identity.name, identity.groups, identity.admin) == ("olga", ("ops", "devs"), True)
    assert identity.access_token == "sha256~t"
    assert "sha256~t" not in repr(identity)
