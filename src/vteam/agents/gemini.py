"""Gemini CLI, Google's coding agent, run headless as `gemini -p … --output-format stream-json` (npm
`@google/gemini-cli`).

Tools are approved without asking (`--yolo`, with the workspace trusted, else Gemini quietly downgrades it), update
checks, usage statistics and telemetry are off, each session has its own GEMINI_CLI_HOME (settings and chats), and
the key reaches only the Gemini process, in its environment (API-key auth, so a custom GOOGLE_GEMINI_BASE_URL keeps
it). The session id is kept so that follow-up turns resume the same chat (`--resume <id>`); a continued session
copies its parent's chats and resumes the parent's chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

from vteam.agents.base import AgentResult, Emit, FrameworkInfo, Resume, TurnContext
from vteam.agents.cli_process import Exit, run_jsonl
from vteam.agents.gemini_events import GeminiEvents

VERSION = "0.61.0"
"""The pinned `@google/gemini-cli` version; `make setup` installs it into `.agents/`."""
MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
"""Some current model ids; any other `gemini-…` id works too."""
KEY_VARIABLE = "GEMINI_API_KEY"
BASE_URL_VARIABLE = "GOOGLE_GEMINI_BASE_URL"
MAX_ATTEMPTS_VARIABLE = "GEMINI_MAX_ATTEMPTS"
"""vTeam's setting: how often Gemini tries a failed model request (tests use 1), else `DEFAULT_MAX_ATTEMPTS`."""
DEFAULT_MAX_ATTEMPTS = 3
NOISE = (
    re.compile(r"256-color support not detected"),
    re.compile(r"^YOLO mode is enabled"),
    re.compile(r"^Ripgrep is not available"),
    re.compile(r"^\[STARTUP\]"),
)
"""Harmless stderr lines that would only clutter a failure message."""


def gemini_binary() -> Path | None:
    """The `gemini` executable: the one `make setup` installs into `<repo>/.agents/`, else one on PATH."""
    repo = Path(__file__).resolve().parents[3]
    installed = repo / ".agents" / "node_modules" / ".bin" / "gemini"
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed
    found = shutil.which("gemini")
    return Path(found) if found else None


class GeminiAdapter:
    info: ClassVar[FrameworkInfo] = FrameworkInfo(
        name="gemini",
        description="Google's Gemini CLI agent: reads, edits and runs code in the repository.",
        models=MODELS,
        model_pattern=r"gemini-[A-Za-z0-9._-]+",
        secrets=(KEY_VARIABLE,),
        settings=(BASE_URL_VARIABLE, MAX_ATTEMPTS_VARIABLE),
        interactive=True,
        resume=True,
        keep=(
            ".gemini/projects.json",
            ".gemini/tmp/*/chats/session-*.json*",
            ".gemini/tmp/*/.project_root",
            ".gemini/history/*/.project_root",
        ),
    )

    def __init__(self) -> None:
        self.conversation_id: str | None = None
        """The Gemini session id, resumed by later turns."""

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult:
        binary = gemini_binary()
        if binary is None:
            return AgentResult(
                success=False,
                error="Gemini CLI is not installed: run `make setup` (it installs @google/gemini-cli)",
            )
        resume = ctx.resume
        if resume and self.conversation_id is None and await asyncio.to_thread(_adopt, resume, ctx.home, ctx.workdir):
            self.conversation_id = resume.conversation_id
        await asyncio.to_thread(write_settings, ctx)
        events = GeminiEvents()
        # Gemini relaunches itself as a child node process: the loop kills the whole tree when the turn ends.
        end = await run_jsonl(
            ctx,
            [str(binary), *command(ctx, self.conversation_id)],
            env=environment(ctx),
            events=events,
            emit=emit,
            noise=NOISE,
            close=events.close,
        )
        return self._result(events, end)

    def _result(self, events: GeminiEvents, end: Exit) -> AgentResult:
        if events.session_id:
            self.conversation_id = events.session_id
        usage = events.usage or {}
        if end.code == 0 and not events.failed:
            return AgentResult(success=True, text=events.text, usage=usage)
        reasons = [readable(error) for error in events.errors]
        reason = "; ".join(dict.fromkeys(reasons)) or f"gemini exited with status {end.code}"
        message = f"Gemini failed: {reason}"
        if end.code != 0 and not events.errors and end.stderr:
            message += "; last output:\n" + "\n".join(end.stderr)
        return AgentResult(success=False, text=events.text, usage=usage, error=message)


def command(ctx: TurnContext, session_id: str | None) -> list[str]:
    """The arguments of `gemini` for a turn: a new session, or `--resume <session_id>`.

    `--prompt=<text>` in one argument, so that a prompt starting with "-" is still the prompt.
    """
    args = [f"--prompt={ctx.prompt}", "--output-format", "stream-json", "--yolo"]
    if ctx.model:
        args += ["--model", ctx.model]
    if session_id:
        args += ["--resume", session_id]
    return args


def settings(max_attempts: int) -> dict[str, Any]:
    """Gemini's user settings: API-key auth (the key from the environment), no statistics, telemetry or updates."""
    return {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {
            "disableAutoUpdate": True,
            "disableUpdateNag": True,
            "maxAttempts": max_attempts,
            "retryFetchErrors": max_attempts > 1,
        },
    }


def max_attempts(ctx: TurnContext) -> int:
    value = ctx.settings.get(MAX_ATTEMPTS_VARIABLE, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_ATTEMPTS


def write_settings(ctx: TurnContext) -> None:
    """Write `<home>/.gemini/settings.json` (GEMINI_CLI_HOME is the session's agent HOME)."""
    folder = ctx.home / ".gemini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings(max_attempts(ctx)), indent=2) + "\n", encoding="utf-8")


def environment(ctx: TurnContext) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env.update(ctx.environment)
    env.update(ctx.secrets)  # the project's secrets reach its agent, whichever framework
    env.update(
        {
            "HOME": str(ctx.home),
            "GEMINI_CLI_HOME": str(ctx.home),
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "NO_COLOR": "1",
            KEY_VARIABLE: ctx.secrets.get(KEY_VARIABLE, ""),
        }
    )
    base_url = ctx.settings.get(BASE_URL_VARIABLE)
    if base_url:
        env[BASE_URL_VARIABLE] = base_url.rstrip("/")
    return env


def readable(error: str) -> str:
    """Gemini's `[API Error: {json}]` as the API's own words: "API key not valid… (400 INVALID_ARGUMENT)"."""
    start, end = error.find("{"), error.rfind("}")
    if start < 0 or end < start:
        return error
    try:
        body = json.loads(error[start : end + 1])
    except ValueError:
        return error
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict) or not inner.get("message"):
        return error
    status = " ".join(str(inner[k]) for k in ("code", "status") if inner.get(k))
    return f"{inner['message']} ({status})" if status else str(inner["message"])


def _adopt(resume: Resume, home: Path, workdir: Path) -> bool:
    """Copy the parent's `.gemini` (its chats) into this session's home, the parent's project now this workdir's.

    Gemini keeps chats per project (`tmp/<id>/chats/`), the id found by the project's path in `projects.json`:
    the parent's chat becomes this workdir's by pointing this path at the parent's project id.
    """
    parent = resume.home / ".gemini"
    target = home / ".gemini"
    if not parent.is_dir() or target.exists():
        return False
    suffix = resume.conversation_id.split("-")[0]
    chats = list(parent.glob(f"tmp/*/chats/session-*-{suffix}*.json*"))
    if not chats:
        return False
    project = chats[0].parents[1].name
    shutil.copytree(parent, target, symlinks=True)
    registry = target / "projects.json"
    projects: dict[str, str] = {}
    with contextlib.suppress(ValueError, OSError, AttributeError):
        projects = dict(json.loads(registry.read_text(encoding="utf-8")).get("projects") or {})
    projects = {path: name for path, name in projects.items() if name != project}
    projects[str(workdir)] = project
    registry.write_text(json.dumps({"projects": projects}, indent=2), encoding="utf-8")
    for marker in (target / "tmp" / project / ".project_root", target / "history" / project / ".project_root"):
        if marker.exists():
            marker.write_text(str(workdir), encoding="utf-8")
    return True
