"""Codex CLI, OpenAI's coding agent, run as `codex exec --json` (the npm package `@openai/codex`).

Approvals and the sandbox are bypassed (the session runs unattended in its own workspace), update checks,
analytics, plugins and web search are off, each session has its own CODEX_HOME, and the API is a custom
provider (the Responses API at OPENAI_BASE_URL) whose key only the Codex process gets, in its environment. The
thread id is kept so that follow-up turns resume the same thread (`codex exec resume <id>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import ClassVar

from vteam.agents.base import AgentResult, Emit, FrameworkInfo, Resume, TurnContext
from vteam.agents.cli_process import Exit, run_jsonl
from vteam.agents.codex_events import CodexEvents, usage_delta

VERSION = "0.169.0"
"""The pinned `@openai/codex` version; `make setup` installs it into `.agents/`."""
MODELS = ("gpt-5-codex", "gpt-5.1-codex", "gpt-5.5")
"""Some current model ids; any other model id the provider serves works too."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLE = "OPENAI_API_KEY"
NOISE = (
    re.compile(r"Refusing to create helper binaries under temporary dir"),
    re.compile(r"^Reading additional input from stdin"),
)
"""Harmless stderr lines that would only clutter a failure message."""


def codex_binary() -> Path | None:
    """The `codex` executable: the one `make setup` installs into `<repo>/.agents/`, else one on PATH."""
    repo = Path(__file__).resolve().parents[3]
    installed = repo / ".agents" / "node_modules" / ".bin" / "codex"
    if installed.is_file() and os.access(installed, os.X_OK):
        return installed
    found = shutil.which("codex")
    return Path(found) if found else None


class CodexAdapter:
    info: ClassVar[FrameworkInfo] = FrameworkInfo(
        name="codex",
        description="OpenAI's Codex CLI agent: reads, edits and runs code in the repository.",
        models=MODELS,
        model_pattern=r"[A-Za-z0-9][A-Za-z0-9._:/-]*",
        secrets=(KEY_VARIABLE,),
        settings=("OPENAI_BASE_URL",),
        interactive=True,
        resume=True,
        keep=(".codex/sessions/*/*/*/rollout-*.jsonl",),
    )

    def __init__(self) -> None:
        self.conversation_id: str | None = None
        """The Codex thread id, resumed by later turns."""
        self.usage_so_far: dict[str, float] = {}
        """The thread's usage so far: Codex reports it cumulatively over a resumed thread."""

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult:
        binary = codex_binary()
        if binary is None:
            return AgentResult(
                success=False, error="Codex CLI is not installed: run `make setup` (it installs @openai/codex)"
            )
        codex_home = ctx.home / ".codex"
        resume = ctx.resume
        if resume and self.conversation_id is None and await asyncio.to_thread(_adopt, resume, codex_home):
            self.conversation_id = resume.conversation_id
            self.usage_so_far = await asyncio.to_thread(thread_usage, codex_home, resume.conversation_id)
        await asyncio.to_thread(codex_home.mkdir, parents=True, exist_ok=True)
        events = CodexEvents()
        end = await run_jsonl(
            ctx,
            [str(binary), *command(ctx, self.conversation_id)],
            env=environment(ctx, codex_home),
            events=events,
            emit=emit,
            noise=NOISE,
        )
        return self._result(events, end)

    def _result(self, events: CodexEvents, end: Exit) -> AgentResult:
        if events.thread_id:
            self.conversation_id = events.thread_id
        usage: dict[str, float] = {}
        if events.usage is not None:
            usage = usage_delta(events.usage, self.usage_so_far)
            self.usage_so_far = events.usage
        turns = max(1, events.turns)
        if end.code == 0 and not events.failed:
            return AgentResult(success=True, text=events.text, turns=turns, usage=usage)
        reason = "; ".join(dict.fromkeys(events.errors)) or f"codex exited with status {end.code}"
        message = f"Codex failed: {reason}"
        if end.code != 0 and end.stderr:
            message += "; last output:\n" + "\n".join(end.stderr)
        return AgentResult(success=False, text=events.text, turns=turns, usage=usage, error=message)


def command(ctx: TurnContext, thread_id: str | None) -> list[str]:
    """The arguments of `codex` for a turn: a new thread, or `resume <thread_id>`."""
    base_url = ctx.settings.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    provider = (
        f"{{name={json.dumps('vteam')},base_url={json.dumps(base_url.rstrip('/'))},env_key={json.dumps(KEY_VARIABLE)},"
        'wire_api="responses",request_max_retries=0,stream_max_retries=0}'
    )
    args = [
        "exec",
        "--json",
        "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check",
        "-C",
        str(ctx.workdir),
        *(["-m", ctx.model] if ctx.model else []),
        *("--disable", "plugins", "--disable", "apps", "--disable", "unbounded_connection_retries"),
        *("-c", "analytics.enabled=false", "-c", "check_for_update_on_startup=false", "-c", "web_search=disabled"),
        *("-c", "model_provider=vteam", "-c", f"model_providers.vteam={provider}"),
    ]
    if thread_id:
        args += ["resume", thread_id]
    # After "--", a prompt starting with "-" is still the prompt.
    return [*args, "--", ctx.prompt]


def environment(ctx: TurnContext, codex_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_")}
    env.update(ctx.environment)
    env.update(ctx.secrets)  # the project's secrets reach its agent, whichever framework
    env.update(
        {
            "HOME": str(ctx.home),
            "CODEX_HOME": str(codex_home),
            KEY_VARIABLE: ctx.secrets.get(KEY_VARIABLE, ""),
        }
    )
    return env


def _adopt(resume: Resume, codex_home: Path) -> bool:
    """Copy the parent's CODEX_HOME (its thread's rollout and state databases) into this session's HOME."""
    parent = resume.home / ".codex"
    if not parent.is_dir() or codex_home.exists():
        return False
    shutil.copytree(parent, codex_home, ignore=shutil.ignore_patterns("thread-writer-locks", "*.lock"), symlinks=True)
    return True


def thread_usage(codex_home: Path, thread_id: str) -> dict[str, float]:
    """A thread's usage so far, from the last `token_count` event of its rollout file (how Codex resumes it)."""
    usage: dict[str, float] = {}
    for rollout in (codex_home / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl"):
        with rollout.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if '"token_count"' not in line:
                    continue
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    total = json.loads(line)["payload"]["info"]["total_token_usage"]
                    usage = {k: float(v) for k, v in total.items() if isinstance(v, int | float)}
    return usage
