"""mini-swe-agent (PyPI `mini-swe-agent`), a small agent whose one tool is bash, run through litellm.

Each turn runs `mini_swe_driver.py` in its own process with mini-swe-agent's own virtual environment
(`.agents/mini-swe-agent`, which `make setup` creates: litellm pins `openai<3`, which vTeam's dev tools cannot
share). The model is any litellm id; a bare id goes to an OpenAI-compatible Chat Completions API at OPENAI_BASE_URL.
The conversation is saved in the session's HOME, so follow-up turns (and continued sessions) carry it on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import ClassVar

from vteam.agents.base import AgentResult, Emit, FrameworkInfo, TurnContext
from vteam.agents.cli_process import Exit, run_jsonl
from vteam.agents.mini_swe_events import MiniSweEvents

VERSION = "2.4.6"
"""The pinned `mini-swe-agent` version; `make setup` installs it into `.agents/mini-swe-agent`."""
MODELS = ("gpt-5-mini", "gpt-5.5", "openai/gpt-5.5")
KEY_VARIABLE = "OPENAI_API_KEY"
DRIVER = Path(__file__).with_name("mini_swe_driver.py")
CONVERSATIONS = ".mini-swe-agent-vteam"
"""Where in a session's HOME the conversations are saved."""


def mini_swe_python() -> Path | None:
    """The Python of mini-swe-agent's virtual environment (`make setup`), else this one if it has the package."""
    repo = Path(__file__).resolve().parents[3]
    installed = repo / ".agents" / "mini-swe-agent" / "bin" / "python"
    if installed.is_file():
        return installed
    import importlib.util

    return Path(sys.executable) if importlib.util.find_spec("minisweagent") else None


class MiniSweAdapter:
    info: ClassVar[FrameworkInfo] = FrameworkInfo(
        name="mini-swe-agent",
        description="mini-swe-agent: a minimal agent that solves the task with bash commands in the repository.",
        models=MODELS,
        model_pattern=r"[A-Za-z0-9][A-Za-z0-9._:/-]*",
        secrets=(KEY_VARIABLE,),
        settings=("OPENAI_BASE_URL",),
        interactive=True,
        resume=True,
        keep=(f"{CONVERSATIONS}/*.json",),
    )

    def __init__(self) -> None:
        self.conversation_id: str | None = None

    async def run_turn(self, ctx: TurnContext, emit: Emit) -> AgentResult:
        python = mini_swe_python()
        if python is None:
            return AgentResult(
                success=False, error="mini-swe-agent is not installed: run `make setup` (it installs mini-swe-agent)"
            )
        folder = ctx.home / CONVERSATIONS
        previous: Path | None = None
        # mini-swe-agent has no resume of its own: the driver saves each conversation and reloads it, for
        # follow-ups in a session and for a continued session (the parent's file is copied over).
        if self.conversation_id is not None:
            previous = folder / f"{self.conversation_id}.json"
        elif ctx.resume is not None:
            parent = ctx.resume.home / CONVERSATIONS / f"{ctx.resume.conversation_id}.json"
            if await asyncio.to_thread(parent.is_file):
                previous = folder / f"{ctx.resume.conversation_id}.json"
                await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
                await asyncio.to_thread(shutil.copyfile, parent, previous)
                self.conversation_id = ctx.resume.conversation_id
        if self.conversation_id is None:
            self.conversation_id = uuid.uuid4().hex
        request = {
            "prompt": ctx.prompt,
            "workdir": str(ctx.workdir),
            "model": ctx.model,
            "api_base": ctx.settings.get("OPENAI_BASE_URL"),
            "step_limit": ctx.max_turns or 0,
            "cost_limit": ctx.budget_usd or 0,
            "conversation": str(folder / f"{self.conversation_id}.json"),
            "previous": str(previous) if previous else None,
        }
        events = MiniSweEvents()
        end = await run_jsonl(
            ctx,
            # -I, isolated: neither this folder (codex.py, …) nor user site-packages on its sys.path
            [str(python), "-I", str(DRIVER)],
            env=environment(ctx),
            events=events,
            emit=emit,
            stdin=json.dumps(request).encode(),
            readonly=(DRIVER,),
        )
        return _result(events, end)


def _result(events: MiniSweEvents, end: Exit) -> AgentResult:
    result = events.result or {}
    usage = {k: float(v) for k, v in (result.get("usage") or {}).items() if isinstance(v, int | float)}
    cost = float(result.get("cost") or 0.0) or None
    turns = max(1, events.steps)
    if end.code == 0 and events.submitted:
        return AgentResult(success=True, text=events.text, turns=turns, usage=usage, cost_usd=cost)
    reason = result.get("error") or (f"the run ended with {events.exit_status}" if events.exit_status else None)
    message = f"mini-swe-agent failed: {reason or f'the driver exited with status {end.code}'}"
    if (end.code != 0 or not events.result) and end.stderr:
        message += "; last output:\n" + "\n".join(end.stderr)
    return AgentResult(success=False, text=events.text, turns=turns, usage=usage, cost_usd=cost, error=message)


def environment(ctx: TurnContext) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTEAM_") and k != KEY_VARIABLE}
    env.update(ctx.environment)
    env.update(ctx.secrets)  # the project's secrets reach its agent, whichever framework
    env.update(
        {
            "HOME": str(ctx.home),
            KEY_VARIABLE: ctx.secrets.get(KEY_VARIABLE, ""),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "MSWEA_CONFIGURED": "true",
            "MSWEA_COST_TRACKING": "ignore_errors",
            "MSWEA_SILENT_STARTUP": "1",
            "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
