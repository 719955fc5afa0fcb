"""The rules behind issue 24's "accepted, then failing later": text a process is handed, role-binding subjects,
vTeam's reserved keys, and a scope's room in the vault (on a real SQLite database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.tasks import no_leftover_tasks  # noqa: F401 - autouse fixture
from vteam.api.schemas import parse_session_body
from vteam.api.secrets import SecretIn
from vteam.auth.vault import Room, SecretsFull, Vault
from vteam.db import Database, open_database
from vteam.errors import InvalidInput
from vteam.resources import SessionSpec
from vteam.resources.meta import reserved
from vteam.resources.validation import check_subject_name, check_text


def test_text_for_a_process_has_no_nul_and_no_lone_surrogate() -> None:
    check_text("echo 'ok'\n\ttabs are fine ✓", "prompt")
    for bad in ("a\x00b", "\ud800"):
        with pytest.raises(ValueError, match="prompt"):
            check_text(bad, "prompt")


def test_a_session_spec_refuses_nul_in_what_reaches_argv_or_environment() -> None:
    for fields in ({"prompt": "a\x00"}, {"displayName": "x\x00"}, {"model": "m\x00"}, {"environment": {"A": "\x00"}}):
        with pytest.raises(ValidationError):
            SessionSpec.model_validate({"prompt": "echo", **fields})
    with pytest.raises(ValidationError, match="100,000"):
        SessionSpec.model_validate({"prompt": "echo", "environment": {"A": "x" * 60_000, "B": "y" * 60_000}})


@pytest.mark.parametrize("name", ["a/b", "", " lead", "trail ", ".", "..", "tab\t", "nl\n", "nul\x00", "x" * 201])
def test_no_subject_that_a_path_cannot_name_or_that_holds_control_characters(name: str) -> None:
    for kind in ("user", "group"):
        with pytest.raises(ValueError, match=f"{kind} name"):
            check_subject_name(kind, name)


def test_users_are_user_names_where_vteam_keeps_the_only_accounts() -> None:
    for name in ("alice@example.com", "system:serviceaccount:ns:bot", "Kube Admin"):
        check_subject_name("user", name)
        check_subject_name("group", name, local_users=True)
        with pytest.raises(ValueError, match="DNS-1123"):
            check_subject_name("user", name, local_users=True)
    check_subject_name("user", "alice-2", local_users=True)


def test_reserved_keys_are_vteams_group_and_its_subdomains() -> None:
    assert reserved("vteam.ambient-code/parent")
    assert reserved("jobs.vteam.ambient-code/session")
    assert not reserved("team")
    assert not reserved("example.com/vteam.ambient-code")
    assert not reserved("notvteam.ambient-code/x")


def test_either_body_shape_may_not_claim_a_parent_or_a_reserved_key() -> None:
    bodies = [
        ({"prompt": "x", "parentSession": "p"}, ["parentSession"]),
        ({"prompt": "x", "labels": {"vteam.ambient-code/parent": "p"}}, ["labels", "vteam.ambient-code/parent"]),
        ({"spec": {"prompt": "x", "parentSession": "p"}}, ["spec", "parentSession"]),
        (
            {"metadata": {"annotations": {"vteam.ambient-code/created-by": "me"}}, "spec": {"prompt": "x"}},
            ["metadata", "annotations", "vteam.ambient-code/created-by"],
        ),
    ]
    for body, loc in bodies:
        with pytest.raises(InvalidInput) as refused:
            parse_session_body(body, "proj")
        assert [e["loc"] for e in refused.value.errors] == [loc]
    session = parse_session_body({"metadata": {"labels": {"team": "a"}}, "spec": {"prompt": "x"}}, "proj")
    assert session.metadata.labels == {"team": "a"}


def test_a_secret_value_fits_one_environment_string_and_is_never_quoted() -> None:
    SecretIn(value="é" * 64_000)
    for value, words in (("sk-\x00-x", "NUL"), ("😀" * 40_000, "160,000 bytes")):
        with pytest.raises(ValidationError) as refused:
            SecretIn(value=value)
        assert words in str(refused.value)
        assert value[:4] not in str(refused.value)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(tmp_path / "vault.sqlite", synchronous="NORMAL")
    yield database
    await database.close()


async def test_a_scope_past_its_room_refuses_the_write_and_keeps_what_it_has(db: Database) -> None:
    vault = Vault(db, [b"key-A" * 8])
    room = Room(max_count=3, max_bytes=1_000)
    await vault.put("project:p", "A", "a" * 600, room=room)
    await vault.put("project:p", "B", "é" * 200, room=room)
    with pytest.raises(SecretsFull, match="1,001 bytes"):
        await vault.put("project:p", "C", "c", room=room)
    with pytest.raises(SecretsFull, match="1,000"):
        await vault.put("project:p", "A", "a" * 601, room=room)
    await vault.put("project:p", "A", "a" * 500, room=room)
    await vault.put("project:p", "C", "c" * 100, room=room)
    with pytest.raises(SecretsFull, match="3 secrets"):
        await vault.put("project:p", "D", "d", room=room)
    await vault.put("project:other", "D", "d" * 1_000, room=room)
    assert await vault.get("project:p", "A") == "a" * 500
    assert [s.name for s in await vault.list("project:p")] == ["A", "B", "C"]


async def test_a_value_no_key_opens_counts_at_the_most_it_can_hold(db: Database) -> None:
    await Vault(db, [b"old-key" * 8]).put("project:p", "OLD", "o" * 500)
    vault = Vault(db, [b"new-key" * 8])
    with pytest.raises(SecretsFull):
        await vault.put("project:p", "NEW", "n" * 500, room=Room(max_count=10, max_bytes=1_000))
    await vault.put("project:p", "NEW", "n" * 480, room=Room(max_count=10, max_bytes=1_000))
