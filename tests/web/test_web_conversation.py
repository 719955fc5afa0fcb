"""The conversation renderer: events in, safe HTML out, each event carried by exactly one data-seq."""

from __future__ import annotations

import re
from typing import Any

from vteam.events import Envelope
from vteam.web.conversation import FOLD_LINES, Conversation


def env(seq: int, type_: str, **data: Any) -> Envelope:
    return Envelope(seq=seq, ts="2025-01-01T00:00:00Z", type=type_, data={"type": type_, **data})


def custom(seq: int, name: str, **value: Any) -> Envelope:
    return Envelope(
        seq=seq, ts="2025-01-01T00:00:00Z", type=name, data={"type": "CUSTOM", "name": name, "value": value}
    )


def message(start: int, text: str, mid: str = "m1") -> list[Envelope]:
    return [
        env(start, "TEXT_MESSAGE_START", messageId=mid, role="assistant"),
        env(start + 1, "TEXT_MESSAGE_CONTENT", messageId=mid, delta=text),
        env(start + 2, "TEXT_MESSAGE_END", messageId=mid),
    ]


def render(events: list[Envelope], **kwargs: Any) -> str:
    conv = Conversation(**kwargs)
    for e in events:
        conv.feed(e)
    return str(conv.page())


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def test_agent_text_is_rendered_markdown() -> None:
    html = render(message(1, "hello **world**\n\n- one\n- two"))
    assert "hello <strong>world</strong>" in html
    assert "<li>one</li>" in html


def test_html_in_agent_text_is_escaped() -> None:
    html = render(message(1, "<script>alert(1)</script> [x](javascript:alert(1))"))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html


def test_streamed_deltas_append_escaped_then_the_end_replaces_the_message() -> None:
    conv = Conversation()
    conv.feed(env(1, "TEXT_MESSAGE_START", messageId="m", role="assistant"))
    delta = conv.feed(env(2, "TEXT_MESSAGE_CONTENT", messageId="m", delta="<b>**hi**</b>"))
    assert 'hx-swap-oob="beforeend:#msg-m-body"' in delta
    assert "&lt;b&gt;**hi**&lt;/b&gt;" in delta
    end = conv.feed(env(3, "TEXT_MESSAGE_END", messageId="m"))
    assert 'id="msg-m"' in end
    assert 'hx-swap-oob="outerHTML"' in end
    assert "<strong>hi</strong>" in end
    assert "<b>" not in end
    assert seqs(delta) == [2]
    assert seqs(end) == [3]


def test_tool_call_is_a_details_block_with_pretty_arguments_and_result() -> None:
    html = render(
        [
            env(1, "TOOL_CALL_START", toolCallId="t1", toolCallName="Bash"),
            env(2, "TOOL_CALL_ARGS", toolCallId="t1", delta='{"command":'),
            env(3, "TOOL_CALL_ARGS", toolCallId="t1", delta=' "ls -la"}'),
            env(4, "TOOL_CALL_END", toolCallId="t1"),
            env(5, "TOOL_CALL_RESULT", messageId="r", toolCallId="t1", content="file.txt"),
        ]
    )
    assert '<details class="tool">' in html
    assert "<code>Bash</code>" in html
    assert "{\n  &#34;command&#34;: &#34;ls -la&#34;\n}" in html
    assert "file.txt" in html
    assert sorted(seqs(html)) == [1, 2, 3, 4, 5]


def test_long_output_is_folded() -> None:
    output = "\n".join(f"line {i}" for i in range(100))
    html = render(
        [
            env(1, "TOOL_CALL_START", toolCallId="t", toolCallName="Bash"),
            env(2, "TOOL_CALL_END", toolCallId="t"),
            env(3, "TOOL_CALL_RESULT", messageId="r", toolCallId="t", content=output),
        ]
    )
    assert "Show all 100 lines" in html
    assert f"line {FOLD_LINES - 1}\n" not in html.split('<details class="fold">')[0].split("</pre>")[-1]
    short = render(message(1, "one\ntwo"))
    assert "Show all" not in short


def test_run_error_is_highlighted() -> None:
    html = render([env(1, "RUN_ERROR", message="the agent crashed", code="E1")])
    assert 'class="event run-error error"' in html
    assert 'role="alert"' in html
    assert "the agent crashed" in html


def test_reasoning_is_collapsed() -> None:
    html = render(
        [
            env(1, "REASONING_MESSAGE_START", messageId="r1", role="assistant"),
            env(2, "REASONING_MESSAGE_CONTENT", messageId="r1", delta="let me think"),
            env(3, "REASONING_MESSAGE_END", messageId="r1"),
        ]
    )
    assert '<details class="reasoning">' in html
    assert "let me think" in html


def test_vteam_events_are_status_lines_and_the_user_a_bubble() -> None:
    conv = Conversation(interactive=True)
    events = [
        custom(1, "vteam.clone", repo=0, url="/r.git", branch="main", commit="abcdef123456"),
        custom(2, "vteam.branch", repo=0, branch="vteam/s", base="main"),
        custom(3, "vteam.user_message", user="alice", text="<i>do</i> it"),
        custom(4, "vteam.pull_request", repo=0, url="https://example.com/pr/1", number=1, state="open", title="T"),
        custom(5, "vteam.phase", phase="Completed", previous="Running", final=True),
    ]
    fragments = [conv.feed(e) for e in events]
    html = str(conv.page())
    assert "Cloned /r.git (main at abcdef1)" in html
    assert "Working on branch vteam/s (from main)" in html
    assert 'class="event user"' in html
    assert "&lt;i&gt;do&lt;/i&gt; it" in html
    assert "alice" in html
    assert 'href="https://example.com/pr/1"' in html
    assert 'id="phase" hx-swap-oob="true"' in fragments[-1]
    assert 'data-phase="Completed"' in fragments[-1]
    assert conv.final


def test_every_event_has_exactly_one_data_seq_on_page_and_stream() -> None:
    events = [
        env(1, "RUN_STARTED", threadId="t", runId="r"),
        *message(2, "a"),
        env(5, "TEXT_MESSAGE_START", messageId="m2", role="assistant"),
        env(6, "TEXT_MESSAGE_CONTENT", messageId="m2", delta="b"),
        env(7, "TEXT_MESSAGE_CONTENT", messageId="m2", delta="c"),
        env(8, "TEXT_MESSAGE_END", messageId="m2"),
        env(9, "RUN_FINISHED", threadId="t", runId="r"),
        env(10, "STATE_SNAPSHOT", snapshot={}),
    ]
    for cut in range(len(events) + 1):
        page = Conversation()
        for e in events[:cut]:
            page.feed(e)
        stream = Conversation()
        for e in events[:cut]:
            stream.feed(e)
        streamed = [stream.feed(e) for e in events[cut:]]
        assert sorted(seqs(str(page.page())) + [s for f in streamed for s in seqs(f)]) == list(range(1, 11))
