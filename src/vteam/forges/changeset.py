"""A session's change set: one pull request per changed repo, each linking the session and its siblings."""

from __future__ import annotations

import re

from vteam.resources import AgenticSession, PullRequestStatus

MARKER = "<!-- vteam:change-set -->"
TITLE_LIMIT = 72


def title_for(session: AgenticSession, result_text: str | None) -> str:
    """The session's display name, else the first line of the agent's summary, else of the prompt."""
    for source in (session.spec.display_name, result_text, session.spec.prompt):
        for line in (source or "").splitlines():
            line = re.sub(r"^[#>*\-\s]+", "", line)
            line = re.sub(r"(\*\*|__|`)", "", line).strip()
            if line:
                return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1].rstrip() + "…"
    return f"vteam: {session.name}"


def body_for(
    session: AgenticSession,
    result_text: str | None,
    session_url: str,
    siblings: list[PullRequestStatus],
    note: str | None = None,
) -> str:
    prompt = next((line.strip() for line in session.spec.prompt.splitlines() if line.strip()), "")
    summary = (result_text or "").strip() or f"Changes made by vTeam session `{session.name}` for:\n\n> {prompt[:500]}"
    lines = [
        summary,
        "",
        MARKER,
        "---",
        f"Opened by vTeam session [{session.namespace}/{session.name}]({session_url}).",
    ]
    if siblings:
        lines += ["", "This change set also includes:"]
        lines += [f"- {pr.repo}: {pr.url}" for pr in siblings]
    if note:
        lines += ["", f"Merge method: {note}."]
    return "\n".join(lines)
