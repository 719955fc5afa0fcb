"""Turns of an agent, and for interactive sessions the conversation between them.

Each turn is one AG-UI run (its own run id) inside the session's thread. While a turn runs, an
interrupt or end cancels it (adapters clean up their processes on cancellation) and user messages
wait for it to finish. Between turns an interactive session waits for input, up to its idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from ag_ui.core import RunErrorEvent, RunFinishedEvent, RunStartedEvent

from vteam.agents import Adapter, AgentResult, TurnContext
from vteam.events.agui import END, INTERRUPT, USER_MESSAGE
from vteam.runner.client import RunnerApi
from vteam.runner.stream import EventStream


class Conversation:
    def __init__(
        self,
        adapter: Adapter,
        stream: EventStream,
        api: RunnerApi,
        context_for: Callable[[str], TurnContext],
        *,
        thread_id: str,
    ) -> None:
        self._adapter = adapter
        self._stream = stream
        self._api = api
        self._context_for = context_for
        self._thread_id = thread_id
        self._waiting: deque[dict[str, Any]] = deque()
        self.results: list[AgentResult] = []
        self.ended: str | None = None
        """Why the conversation ended early (a person ended it, or it idled out); None otherwise."""

    async def turn(self, prompt: str) -> AgentResult:
        run_id = f"{self._thread_id}-{len(self.results) + 1}"
        await self._stream.emit(RunStartedEvent(thread_id=self._thread_id, run_id=run_id))
        await self._api.report(agentStatus="working")
        work = asyncio.create_task(self._adapter.run_turn(self._context_for(prompt), self._stream.emit))
        stopped_by: str | None = None
        while not work.done():
            control = asyncio.create_task(self._stream.controls.get())
            await asyncio.wait({work, control}, return_when=asyncio.FIRST_COMPLETED)
            if not control.done():
                control.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await control
                break
            value = control.result()
            if value["type"] == USER_MESSAGE:
                self._waiting.append(value)
                continue
            stopped_by = _sender(value)
            if value["type"] == END:
                self.ended = f"ended by {stopped_by}"
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        if stopped_by is not None:
            result = AgentResult(success=False, error=f"interrupted by {stopped_by}")
            await self._stream.emit(RunErrorEvent(message=result.error or "", code="INTERRUPTED"))
        else:
            result = work.result()
            if result.success:
                summary = {"text": (result.text or "")[-2000:]}
                await self._stream.emit(RunFinishedEvent(thread_id=self._thread_id, run_id=run_id, result=summary))
            else:
                await self._stream.emit(RunErrorEvent(message=result.error or "the agent failed"))
        self.results.append(result)
        return result

    async def converse(self, idle_timeout: float) -> None:
        """Take user messages turn by turn until a person ends the session or it idles out."""
        while self.ended is None:
            await self._api.report(agentStatus="waiting_input")
            if self._waiting:
                control = self._waiting.popleft()
            else:
                try:
                    control = await asyncio.wait_for(self._stream.controls.get(), idle_timeout)
                except TimeoutError:
                    self.ended = f"no input for {idle_timeout:g} s (idle timeout)"
                    return
            if control["type"] == END:
                self.ended = f"ended by {_sender(control)}"
            elif control["type"] == USER_MESSAGE:
                await self.turn(str(control["data"]["value"]["text"]))
            elif control["type"] != INTERRUPT:
                continue

    def combined(self) -> AgentResult:
        """The session's result: the last turn's text, every turn's usage and cost added up."""
        last = self.results[-1]
        usage: dict[str, float] = {}
        for result in self.results:
            for key, value in result.usage.items():
                usage[key] = usage.get(key, 0) + value
        costs = [r.cost_usd for r in self.results if r.cost_usd is not None]
        return AgentResult(
            success=last.success,
            text=last.text,
            turns=sum(r.turns for r in self.results),
            usage=usage,
            cost_usd=sum(costs) if costs else None,
            error=last.error,
        )


def _sender(control: dict[str, Any]) -> str:
    return str(control["data"].get("value", {}).get("user") or "a user")
