"""Frameworks by name: what the API validates against and what the runner instantiates."""

from __future__ import annotations

from vteam.agents.base import Adapter, FrameworkInfo
from vteam.agents.script import ScriptAdapter
from vteam.errors import InvalidInput

ADAPTERS: dict[str, type[Adapter]] = {
    ScriptAdapter.info.name: ScriptAdapter,
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
    if model not in info.models:
        raise InvalidInput(
            f"unknown model {model!r} for framework {framework!r}; valid models: {', '.join(info.models)}",
            errors=[{"loc": ["model"], "msg": f"unknown model {model!r}"}],
        )
