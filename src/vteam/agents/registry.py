"""Frameworks by name: what the API validates against and what the runner instantiates."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Iterable

from vteam.agents.base import Adapter, FrameworkInfo
from vteam.agents.claude import ClaudeCodeAdapter
from vteam.agents.codex import CodexAdapter
from vteam.agents.gemini import GeminiAdapter
from vteam.agents.installs import Installs, Readiness
from vteam.agents.mini_swe import MiniSweAdapter
from vteam.agents.script import ScriptAdapter
from vteam.errors import InvalidInput

ADAPTERS: dict[str, type[Adapter]] = {
    ScriptAdapter.info.name: ScriptAdapter,
    ClaudeCodeAdapter.info.name: ClaudeCodeAdapter,
    CodexAdapter.info.name: CodexAdapter,
    GeminiAdapter.info.name: GeminiAdapter,
    MiniSweAdapter.info.name: MiniSweAdapter,
}


def infos() -> list[FrameworkInfo]:
    return [adapter.info for adapter in ADAPTERS.values()]


def get(name: str) -> type[Adapter]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown framework {name!r}; valid frameworks: {', '.join(sorted(ADAPTERS))}",
            errors=[{"loc": ["framework"], "msg": f"unknown framework {name!r}"}],
        ) from None


def check(framework: str, model: str | None, *, interactive: bool = False) -> None:
    """Raise InvalidInput naming the valid choices when framework or model is unknown."""
    info = get(framework).info
    if interactive and not info.interactive:
        talkers = sorted(name for name, adapter in ADAPTERS.items() if adapter.info.interactive)
        raise InvalidInput(
            f"framework {framework!r} cannot hold an interactive session; interactive frameworks: {', '.join(talkers)}",
            errors=[{"loc": ["interactive"], "msg": "this framework is not interactive"}],
        )
    if model is None:
        return
    if not info.models:
        raise InvalidInput(
            f"framework {framework!r} takes no model, but model {model!r} was given",
            errors=[{"loc": ["model"], "msg": "this framework takes no model"}],
        )
    if model not in info.models and not (info.model_pattern and re.fullmatch(info.model_pattern, model)):
        also = f", or any model id matching {info.model_pattern}" if info.model_pattern else ""
        raise InvalidInput(
            f"unknown model {model!r} for framework {framework!r}; valid models: {', '.join(info.models)}{also}",
            errors=[{"loc": ["model"], "msg": f"unknown model {model!r}"}],
        )


async def readiness(installs: Installs | None = None) -> dict[str, Readiness]:
    """Each framework's readiness here: `make run` installs the CLIs in the background, after the platform starts.
    (It looks at files and a lock, off the event loop.)"""
    return await asyncio.to_thread((installs or Installs()).all, list(ADAPTERS))


async def check_ready(framework: str, installs: Installs | None = None) -> None:
    """Raise InvalidInput naming the framework and what to do when its CLI is not installed (yet), so that a
    session is refused at creation rather than failing when it starts."""
    name = get(framework).info.name
    state = await asyncio.to_thread((installs or Installs()).readiness, name)
    if not state.ready:
        raise InvalidInput(
            f"framework {framework!r} is not ready here: {state.status}",
            errors=[{"loc": ["framework"], "msg": f"framework not ready: {state.status}", "type": "not_ready"}],
        )


def unknown_frameworks(names: Iterable[str]) -> list[str]:
    """The names in `names` that are no framework's, in order (a secret's scope is checked with it)."""
    return [name for name in names if name not in ADAPTERS]


def reaches(scope: Collection[str] | None, framework: str) -> bool:
    """The one rule for project secrets: a secret with no scope reaches every framework's agent, a scoped one
    only the agents of the frameworks it names."""
    return scope is None or framework in scope


def check_secrets(framework: str, available: set[str]) -> None:
    """Raise InvalidInput naming each secret the framework needs that the platform does not hold."""
    info = get(framework).info
    if any(name in available for name in info.secret_alternatives):
        return
    missing = [name for name in info.secrets if name not in available]
    if missing:
        raise InvalidInput(
            f"framework {framework!r} needs the secret {', '.join(missing)}; set it as a project secret "
            f"(vteam secret set {missing[0]} --project P) or in the environment of vteam up",
            errors=[{"loc": ["framework"], "msg": f"missing secret {name}"} for name in missing],
        )


def agent_environment(framework: str, environ: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The framework's secrets and settings found in `environ`."""
    info = get(framework).info
    secrets = {name: environ[name] for name in info.secrets if environ.get(name)}
    settings = {name: environ[name] for name in info.settings if environ.get(name)}
    return secrets, settings
