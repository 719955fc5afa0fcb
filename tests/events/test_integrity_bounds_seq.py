"""The one parser of event ids from outside: only ASCII digits naming a seq SQLite can hold (issue 24)."""

from __future__ import annotations

import pytest

from vteam.events import MAX_SEQ, parse_seq, resume_from


@pytest.mark.parametrize(
    "text", [None, "", "²", "¹²", "٣", "-1", "+1", " 1", "1 ", "1e3", "0x10", "9" * 5000, str(2**63)]
)
def test_a_malformed_or_out_of_range_event_id_names_no_seq(text: str | None) -> None:
    assert parse_seq(text) is None


@pytest.mark.parametrize(("text", "seq"), [("0", 0), ("7", 7), ("007", 7), (str(MAX_SEQ), 2**63 - 1)])
def test_a_valid_event_id_is_its_seq(text: str, seq: int) -> None:
    assert parse_seq(text) == seq


def test_a_reader_resumes_after_the_later_of_after_and_last_event_id() -> None:
    assert resume_from(None, None) == 0
    assert resume_from(5, "3") == 5
    assert resume_from(5, "9") == 9
    assert resume_from(5, "²") == 5
