"""Issue 24: the per-event and per-session caps on what a session stores, and how the page shows them."""

from __future__ import annotations

from vteam.events import Envelope
from vteam.events.quota import TRUNCATED, SessionQuota, cut, size_of
from vteam.web.conversation import Conversation

TS = "2026-01-01T00:00:00.000000Z"


def _env(seq: int, type: str, **data: object) -> Envelope:
    return Envelope(seq=seq, ts=TS, type=type, data={"type": type, **data})


def test_a_large_text_is_cut_to_the_limit_with_a_note_at_its_end() -> None:
    data = {"type": "TOOL_CALL_RESULT", "toolCallId": "t", "content": 'ö"\n' * 50_000}
    type, kept = cut("TOOL_CALL_RESULT", data, 10_000)
    assert type == "TOOL_CALL_RESULT"
    assert size_of(kept) <= 10_000
    assert kept["toolCallId"] == "t"
    assert kept["content"].startswith('ö"\nö')
    assert kept["content"].endswith("over the limit of 10,000 bytes per event]")
    assert data["content"] == 'ö"\n' * 50_000, "the runner's event is not changed in place"


def test_an_event_large_without_one_large_text_becomes_a_truncated_event() -> None:
    data = {"type": "CUSTOM", "name": "x", "value": {f"k{i}": "v" * 20 for i in range(2000)}}
    type, kept = cut("x", data, 10_000)
    assert type == TRUNCATED
    assert kept["value"] == {"reason": "event", "type": "x", "bytes": size_of(data), "limit": 10_000}


def test_past_the_session_cap_output_is_dropped_after_one_marker_and_lifecycle_kept() -> None:
    quota = SessionQuota(used=0, event_limit=10_000, session_limit=50_000)
    kept = [quota.admit(_env(seq, "TEXT_MESSAGE_CONTENT", messageId="m", delta="a" * 9_000)) for seq in range(1, 11)]
    stored = [k for k in kept if k is not None]
    assert [k.type for k in stored].count("TEXT_MESSAGE_CONTENT") == 5
    assert [k.type for k in stored].count(TRUNCATED) == 1
    marker = next(k for k in stored if k.type == TRUNCATED)
    assert marker.seq == 6, "the marker stands in the place of the first dropped event"
    end = quota.admit(_env(11, "TEXT_MESSAGE_END", messageId="m"))
    assert end is not None
    assert end.type == "TEXT_MESSAGE_END"


def test_a_session_already_past_its_cap_gets_no_second_marker() -> None:
    quota = SessionQuota(used=60_000, event_limit=10_000, session_limit=50_000)
    assert quota.admit(_env(1, "TEXT_MESSAGE_CONTENT", messageId="m", delta="a" * 9_000)) is None


def _marker(seq: int, **value: object) -> Envelope:
    return Envelope(seq=seq, ts=TS, type=TRUNCATED, data={"type": "CUSTOM", "name": TRUNCATED, "value": value})


def test_the_page_says_what_was_not_stored() -> None:
    conv = Conversation()
    conv.feed(_marker(1, reason="session", limit=67_108_864))
    conv.feed(_marker(2, reason="event", bytes=2_000_000, limit=1_048_576))
    html = str(conv.page())
    assert "vTeam stored no more of this session" in html
    assert "67,108,864 bytes" in html
    assert "left out one event (2,000,000 bytes" in html


def test_an_earlier_page_has_its_own_element_ids() -> None:
    """The page's tail and an earlier page may both show part of one message: their ids must differ."""
    tail, earlier = Conversation(), Conversation(scope="e40-")
    for conv, seq in ((tail, 41), (earlier, 39)):
        conv.feed(_env(seq, "TEXT_MESSAGE_CONTENT", messageId="m1", delta="part"))
    assert 'id="msg-m1"' in str(tail.page())
    assert 'id="e40-msg-m1"' in str(earlier.page())
    assert 'id="msg-m1"' not in str(earlier.page())


def test_many_deltas_make_one_text() -> None:
    conv = Conversation()
    conv.feed(_env(1, "TEXT_MESSAGE_START", messageId="m", role="assistant"))
    for seq in range(2, 20_002):
        conv.feed(_env(seq, "TEXT_MESSAGE_CONTENT", messageId="m", delta="ab"))
    conv.feed(_env(20_002, "TEXT_MESSAGE_END", messageId="m"))
    assert conv.blocks["msg-m"].text("text") == "ab" * 20_000
