"""A session's events as HTML: the whole conversation for a page, or one fragment per event for its stream.

One `Conversation` is fed envelopes in seq order. It keeps the page's blocks (messages, tool calls,
status lines) so a page can be rendered from the stored events, and for each event it also returns
the fragment a live page needs: new blocks to append to `#conversation`, deltas appended into an
open block, and out-of-band replacements (by element id) when a block is finished. Every event is
carried by exactly one element with its `data-seq`, on the page or in the stream, so a page and the
stream after its last seq together show each event once: a reload resumes without gaps or repeats.

Everything an agent or a user wrote is escaped; agent text is markdown rendered with raw HTML off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from vteam.events import Envelope
from vteam.policy.links import is_safe_link

FOLD_LINES = 40
"""Outputs longer than this show their first lines, with the rest behind a "Show all N lines" fold."""

# `breaks`: agents write line by line (a script's output, a list of steps); a newline stays a line break.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)


def markdown(text: str) -> Markup:
    """Agent text as HTML: raw HTML in it is escaped, and markdown-it drops javascript: links."""
    return Markup(_markdown.render(text))  # noqa: S704 - markdown-it escapes the text, raw HTML is off


def _dom_id(prefix: str, key: str) -> str:
    """An element id from an agent's message or tool call id, which may hold any characters."""
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_-]", "_", key)[:80]


def _short(sha: Any) -> str:
    return str(sha or "")[:7]


def _pretty(raw: str) -> str:
    """Tool arguments as indented JSON where they parse, else as sent."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return raw


def folded_pre(text: str, css: str = "output") -> Markup:
    """Preformatted text; past FOLD_LINES lines the rest is behind a fold, so one output cannot bury the page."""
    lines = text.splitlines()
    if len(lines) <= FOLD_LINES:
        return Markup('<pre class="{}">{}</pre>').format(css, text)
    head = "\n".join(lines[:FOLD_LINES])
    return Markup(
        '<pre class="{css}">{head}</pre><details class="fold"><summary>Show all {n} lines</summary>'
        '<pre class="{css}">{text}</pre></details>'
    ).format(css=css, head=head, n=len(lines), text=text)


def folded_markdown(text: str) -> Markup:
    """Rendered markdown, folded like `folded_pre` when the text is long."""
    lines = text.splitlines()
    if len(lines) <= FOLD_LINES:
        return markdown(text)
    return Markup('{head}<details class="fold"><summary>Show all {n} lines</summary>{full}</details>').format(
        head=markdown("\n".join(lines[:FOLD_LINES])), n=len(lines), full=markdown(text)
    )


@dataclass
class Block:
    """One visible item of the conversation and the seqs of the events it shows."""

    id: str
    kind: str
    seqs: list[int]
    data: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    _grown: dict[str, list[str]] = field(default_factory=dict)

    def grow(self, key: str, delta: str) -> None:
        """Append to a text field in constant time; `text` joins the pieces once, when it is read."""
        self._grown.setdefault(key, [str(self.data.get(key, ""))]).append(delta)

    def text(self, key: str) -> str:
        pieces = self._grown.pop(key, None)
        if pieces is not None:
            self.data[key] = "".join(pieces)
        return str(self.data.get(key, ""))


@dataclass
class DiffView:
    repo: int
    path: str | None
    diff: str
    truncated: bool


PHASE_MARK = "phase"
AGENT_MARK = "agent-status"


class Conversation:
    """The renderer's state: fed every event of a session in order, renders the page or a fragment."""

    def __init__(self, *, interactive: bool = False, scope: str = "") -> None:
        self.interactive = interactive
        self.scope = scope
        """Prefixes element ids, so an earlier page of a conversation never repeats an id of the page."""
        self.blocks: dict[str, Block] = {}
        self.diffs: dict[tuple[int, str | None], DiffView] = {}
        self.phase: str | None = None
        self.final = False
        self.agent_status: str | None = None
        self.last_seq = 0
        self._counter = 0

    # ---- feeding ----

    def feed(self, env: Envelope) -> str:
        """Take one event; return its stream fragment (HTML with `data-seq`, maybe out-of-band swaps)."""
        self.last_seq = max(self.last_seq, env.seq)
        handler = getattr(self, "_on_" + env.type.replace(".", "_").lower(), None)
        data = env.data
        if env.type.startswith("vteam.") and handler is None:
            return self._new(env.seq, "status", text=str(data.get("name") or env.type))
        if handler is None:
            return self._marker(env.seq)
        out: str = handler(env.seq, data, (data.get("value") or {}) if data.get("type") == "CUSTOM" else {})
        return out

    def page(self) -> Markup:
        """Every block with the seqs it carries, for a page's server-side render."""
        return Markup("").join(self._block(b, b.seqs) for b in self.blocks.values())

    def _id(self, prefix: str, key: str) -> str:
        return self.scope + _dom_id(prefix, key)

    # ---- fragments ----

    def _marker(self, seq: int) -> str:
        """An event with nothing to show still carries its seq, so the page + stream account for it."""
        self.blocks[f"{self.scope}ev-{seq}"] = Block(f"{self.scope}ev-{seq}", "marker", [seq], done=True)
        return str(Markup('<span class="seq" data-seq="{}" hidden></span>').format(seq))

    def _new(self, seq: int, kind: str, *, block_id: str | None = None, done: bool = True, **data: Any) -> str:
        block = Block(block_id or f"{self.scope}ev-{seq}", kind, [seq], data, done)
        self.blocks[block.id] = block
        return str(self._block(block, [seq]))

    def _append(self, seq: int, block: Block, target: str, delta: str) -> str:
        """A delta for an open block: appended raw (escaped) into its body until the block is finished."""
        block.seqs.append(seq)
        return str(
            Markup('<div hx-swap-oob="beforeend:#{target}"><span data-seq="{seq}">{delta}</span></div>').format(
                target=target, seq=seq, delta=delta
            )
        )

    def _replace(self, seq: int, block: Block) -> str:
        """The finished block, swapped in by id over what the deltas built."""
        block.seqs.append(seq)
        return str(self._block(block, [seq], oob=True))

    def _block(self, block: Block, seqs: list[int], *, oob: bool = False) -> Markup:
        if block.kind == "marker":
            return Markup('<span class="seq" data-seq="{}" hidden></span>').format(seqs[0])
        inner = getattr(self, "_html_" + block.kind.replace("-", "_"))(block)
        extra = Markup("").join(Markup('<span class="seq" data-seq="{}" hidden></span>').format(s) for s in seqs[1:])
        swap = Markup(' hx-swap-oob="outerHTML"') if oob else Markup("")
        return Markup(
            '<div id="{id}" class="event {kind}{error}" data-seq="{seq}"{role}{swap}>{inner}{extra}</div>'
        ).format(
            id=block.id,
            kind=block.kind,
            error=" error" if block.kind == "run-error" else "",
            seq=seqs[0],
            role=Markup(' role="alert"') if block.kind == "run-error" else Markup(""),
            swap=swap,
            inner=inner,
            extra=extra,
        )

    def _html_message(self, block: Block) -> Markup:
        text = block.text("text")
        who = "Agent" if block.data.get("role", "assistant") == "assistant" else str(block.data.get("role"))
        body = folded_markdown(text) if block.done else Markup("{}").format(text)
        cls = "markdown" if block.done else "streaming"
        return Markup('<div class="who">{who}</div><div id="{id}-body" class="body {cls}">{body}</div>').format(
            who=who, id=block.id, cls=cls, body=body
        )

    def _html_reasoning(self, block: Block) -> Markup:
        text = block.text("text")
        return Markup(
            '<details class="reasoning"><summary>Reasoning</summary>'
            '<pre id="{id}-body" class="thinking">{text}</pre></details>'
        ).format(id=block.id, text=text)

    def _html_tool(self, block: Block) -> Markup:
        d = block.data
        args = _pretty(block.text("args")) if block.done else block.text("args")
        result = d.get("result")
        state = "done" if result is not None else ("running" if not block.done else "called")
        parts = [
            Markup(
                '<details class="tool"><summary>Tool <code>{name}</code> <span class="muted">{state}</span></summary>'
            ).format(name=d.get("name") or "tool", state=state),
            Markup('<div class="label">Arguments</div><pre id="{id}-args" class="args">{args}</pre>').format(
                id=block.id, args=args
            ),
        ]
        if result is not None:
            parts.append(Markup('<div class="label">Result</div>{}').format(folded_pre(str(result))))
        parts.append(Markup("</details>"))
        return Markup("").join(parts)

    def _html_status(self, block: Block) -> Markup:
        d = block.data
        link = d.get("link")
        if link:
            return Markup(
                '<p class="status-line">{text} <a href="{link}" rel="noopener noreferrer">{label}</a></p>'
            ).format(
                text=d.get("text", ""),
                link=link if is_safe_link(link) else "#",
                label=d.get("label") or link,
            )
        return Markup('<p class="status-line">{}</p>').format(d.get("text", ""))

    def _html_user(self, block: Block) -> Markup:
        return Markup('<div class="who">{user}</div><div class="body markdown">{body}</div>').format(
            user=block.data.get("user") or "user", body=markdown(str(block.data.get("text", "")))
        )

    def _html_run_error(self, block: Block) -> Markup:
        code = block.data.get("code")
        return Markup("<p><strong>Error</strong>{code}: {message}</p>").format(
            code=Markup(" <code>{}</code>").format(code) if code else "", message=block.data.get("message", "")
        )

    # ---- live header values ----

    def _agent(self, status: str) -> str:
        self.agent_status = status
        return str(agent_badge(status, oob=True))

    # ---- AG-UI events ----

    def _on_run_started(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._marker(seq) + self._agent("working")

    def _on_run_finished(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        after = "waiting_input" if self.interactive and not self.final else "idle"
        return self._marker(seq) + self._agent(after)

    def _on_run_error(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        after = "waiting_input" if self.interactive and not self.final else "idle"
        return self._new(seq, "run-error", message=data.get("message", ""), code=data.get("code")) + self._agent(after)

    def _delta(self, seq: int, key: str, delta: str, kind: str, prefix: str) -> str:
        block_id = self._id(prefix, key)
        if block_id not in self.blocks:
            return self._new(seq, kind, block_id=block_id, done=False, text=delta, role="assistant")
        block = self.blocks[block_id]
        block.grow("text", delta)
        return self._append(seq, block, f"{block_id}-body", delta)

    def _finish(self, seq: int, key: str, kind: str, prefix: str) -> str:
        block_id = self._id(prefix, key)
        if block_id not in self.blocks:
            return self._marker(seq)
        block = self.blocks[block_id]
        block.done = True
        return self._replace(seq, block)

    def _on_text_message_start(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        key = str(data.get("messageId", seq))
        block_id = self._id("msg", key)
        if block_id in self.blocks:
            return self._marker(seq)
        return self._new(seq, "message", block_id=block_id, done=False, text="", role=data.get("role", "assistant"))

    def _on_text_message_content(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._delta(seq, str(data.get("messageId", "")), str(data.get("delta", "")), "message", "msg")

    _on_text_message_chunk = _on_text_message_content

    def _on_text_message_end(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._finish(seq, str(data.get("messageId", "")), "message", "msg")

    def _on_reasoning_message_start(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        key = str(data.get("messageId", seq))
        block_id = self._id("think", key)
        if block_id in self.blocks:
            return self._marker(seq)
        return self._new(seq, "reasoning", block_id=block_id, done=False, text="")

    def _on_reasoning_message_content(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._delta(seq, str(data.get("messageId", "")), str(data.get("delta", "")), "reasoning", "think")

    _on_reasoning_message_chunk = _on_reasoning_message_content

    def _on_reasoning_message_end(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._finish(seq, str(data.get("messageId", "")), "reasoning", "think")

    # Older AG-UI names for the same thing.
    _on_thinking_text_message_start = _on_reasoning_message_start
    _on_thinking_text_message_content = _on_reasoning_message_content
    _on_thinking_text_message_end = _on_reasoning_message_end

    def _on_tool_call_start(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        block_id = self._id("tool", str(data.get("toolCallId", seq)))
        if block_id in self.blocks:
            return self._marker(seq)
        return self._new(seq, "tool", block_id=block_id, done=False, name=data.get("toolCallName"), args="")

    def _on_tool_call_args(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        block_id = self._id("tool", str(data.get("toolCallId", "")))
        delta = str(data.get("delta", ""))
        if block_id not in self.blocks:
            return self._new(seq, "tool", block_id=block_id, done=False, name=data.get("toolCallName"), args=delta)
        block = self.blocks[block_id]
        block.grow("args", delta)
        if data.get("toolCallName"):
            block.data["name"] = data["toolCallName"]
        return self._append(seq, block, f"{block_id}-args", delta)

    _on_tool_call_chunk = _on_tool_call_args

    def _on_tool_call_end(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._finish(seq, str(data.get("toolCallId", "")), "tool", "tool")

    def _on_tool_call_result(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        block_id = self._id("tool", str(data.get("toolCallId", "")))
        content = data.get("content", "")
        text = content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False)
        if block_id not in self.blocks:
            return self._new(seq, "tool", block_id=block_id, name="tool", args="", result=text)
        block = self.blocks[block_id]
        block.done = True
        block.data["result"] = text
        return self._replace(seq, block)

    def _on_step_started(self, seq: int, data: dict[str, Any], _v: dict[str, Any]) -> str:
        return self._new(seq, "status", text=f"Step {data.get('stepName', '')}")

    # ---- vteam's own events ----

    def _on_vteam_phase(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        phase = str(v.get("phase", ""))
        self.phase = phase
        self.final = bool(v.get("final"))
        text = f"Phase: {phase}" + (f" ({v['message']})" if v.get("message") else "")
        out = self._new(seq, "status", text=text) + str(phase_badge(phase, oob=True))
        if self.final:
            out += self._agent("idle")
        return out

    def _on_vteam_clone(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        text = f"Cloned {v.get('url', '')} ({v.get('branch', '')} at {_short(v.get('commit'))})"
        if v.get("submodules"):
            text += f"; {v['submodules']}"
        return self._new(seq, "status", text=text)

    def _on_vteam_branch(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        return self._new(seq, "status", text=f"Working on branch {v.get('branch', '')} (from {v.get('base', '')})")

    def _on_vteam_commit(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        where = f" in submodule {v['submodule']}" if v.get("submodule") else ""
        text = f"Committed {_short(v.get('commit'))} on {v.get('branch', '')}{where}: {v.get('message', '')}"
        return self._new(seq, "status", text=text)

    def _on_vteam_push(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        where = f" (submodule {v['submodule']})" if v.get("submodule") else ""
        return self._new(seq, "status", text=f"Pushed {v.get('branch', '')} to {v.get('url', '')}{where}")

    def _on_vteam_pull_request(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        state = "draft" if v.get("draft") else v.get("state", "open")
        return self._new(
            seq,
            "status",
            text=f"Pull request ({state}):",
            link=v.get("url"),
            label=f"#{v.get('number', '')} {v.get('title', '')}".strip(),
        )

    def _on_vteam_diff(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        repo = int(v.get("repo", 0))
        path = v.get("path")
        self.diffs[(repo, path)] = DiffView(repo, path, str(v.get("diff", "")), bool(v.get("truncated")))
        where = f"submodule {path} of repository {repo + 1}" if path else f"repository {repo + 1}"
        return self._new(seq, "status", text=f"Diff of {where} is under Repositories")

    def _on_vteam_truncated(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        if v.get("reason") == "session":
            text = f"vTeam stored no more of this session's output: it reached the limit of {v.get('limit', 0):,} bytes"
        else:
            text = f"vTeam left out one event ({v.get('bytes', 0):,} bytes, over the limit of {v.get('limit', 0):,})"
        return self._new(seq, "status", text=text)

    def _on_vteam_user_message(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        return self._new(seq, "user", user=v.get("user"), text=v.get("text", ""))

    def _on_vteam_interrupt(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        return self._new(seq, "status", text=f"Interrupted by {v.get('user') or 'someone'}")

    def _on_vteam_end(self, seq: int, data: dict[str, Any], v: dict[str, Any]) -> str:
        return self._new(seq, "status", text=f"Ended by {v.get('user') or 'someone'}")


AGENT_LABELS = {"working": "Working", "waiting_input": "Waiting for input", "idle": "Idle"}


def phase_badge(phase: str, *, oob: bool = False) -> Markup:
    """The header's phase badge; the stream swaps it by id when the phase changes."""
    return Markup('<span class="badge phase phase-{p}" data-phase="{p}" id="phase"{oob}>{p}</span>').format(
        p=phase, oob=Markup(' hx-swap-oob="true"') if oob else ""
    )


def agent_badge(status: str | None, *, oob: bool = False) -> Markup:
    label = AGENT_LABELS.get(status or "", status or "—")
    return Markup('<span id="agent-status" class="agent-status" data-status="{s}"{oob}>{label}</span>').format(
        s=status or "", label=label, oob=Markup(' hx-swap-oob="true"') if oob else ""
    )


__all__ = ["Conversation", "DiffView", "agent_badge", "folded_markdown", "folded_pre", "markdown", "phase_badge"]
