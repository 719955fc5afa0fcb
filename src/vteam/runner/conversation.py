"""Turns of an agent, and for interactive sessions the conversation between them.

Each turn is one AG-UI run (its own run id) inside the session's thread. While a turn runs, an
interrupt or end cancels it (adapters clean up their processes on cancellation) and user messages
wait for it to finish. Between turns an interactive session waits for input, up to its idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ag_ui.core import BaseEvent, RunErrorEvent, RunFinishedEvent, RunStartedEvent

from vteam.agents import Adapter, AgentResult, TurnContext
from vteam.events.agui import END, INTERRUPT, USER_MESSAGE
from vteam.protocol import RunnerReport
from vteam.runner.client import RunnerApi
from vteam.runner.stream import EventStream, StreamClosed

TAIL_TYPES = frozenset({"TEXT_MESSAGE_CONTENT", "TOOL_CALL_RESULT"})
TAIL_CHARS = 2000


class TurnFailed(Exception):
    """A turn raised; its run has already ended with a RUN_ERROR saying so."""


class Conversation:
    def __init__(
        self,
        adapter: Adapter,
        stream: EventStream,
        api: RunnerApi,
        context_for: Callable[[str], TurnContext],
        *,
        thread_id: str,
        stall_timeout: float,
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
        self.stalled: str | None = None
        """Set when the agent went silent for longer than the stall timeout; the session then fails."""
        self._stall_timeout = stall_timeout
        self._last_activity = time.monotonic()
        self._tail = ""
        self._open_run: str | None = None

    async def _emit(self, event: BaseEvent) -> None:
        """Emit, noting the time (for stall detection) and the latest output (for failure messages)."""
        self._last_activity = time.monotonic()
        data = event.model_dump()
        piece = data.get("delta") if isinstance(data.get("delta"), str) else data.get("content")
        if isinstance(piece, str) and str(event.type.value) in TAIL_TYPES:
            self._tail = (self._tail + piece)[-TAIL_CHARS:]
        await self._stream.emit(event)

    async def turn(self, prompt: str) -> AgentResult:
        """One AG-UI run; it ends with exactly one RUN_FINISHED or RUN_ERROR however it ends, a stop included."""
        run_id = f"{self._thread_id}-{len(self.results) + 1}"
        await self._stream.emit(RunStartedEvent(thread_id=self._thread_id, run_id=run_id))
        self._open_run = run_id
        work = asyncio.create_task(self._adapter.run_turn(self._context_for(prompt), self._emit))
        try:
            await self._api.report(RunnerReport(agent_status="working"))
            result, ending = await self._watch(work, run_id)
        except asyncio.CancelledError:
            await _cancel(work)
            await self._end_run(RunErrorEvent(message="stopped: the session was stopped or timed out", code="STOPPED"))
            raise
        except Exception as exc:
            await _cancel(work)
            message = f"{type(exc).__name__}: {exc}"
            await self._end_run(RunErrorEvent(message=message, code="FAILED"))
            raise TurnFailed(message) from exc
        await self._end_run(ending)
        self.results.append(result)
        return result

    async def _end_run(self, event: RunFinishedEvent | RunErrorEvent) -> None:
        """The one place a run ends: once, and only if one is open."""
        if self._open_run is None:
            return
        self._open_run = None
        with contextlib.suppress(StreamClosed):
            await self._stream.emit(event)

    async def _watch(
        self, work: asyncio.Task[AgentResult], run_id: str
    ) -> tuple[AgentResult, RunFinishedEvent | RunErrorEvent]:
        """Wait for the turn, taking interrupts, ends and queued messages meanwhile; its result and run ending."""
        self._last_activity = time.monotonic()
        stopped_by: str | None = None
        while not work.done():
            control = asyncio.create_task(self._stream.controls.get())
            quiet_for = time.monotonic() - self._last_activity
            try:
                await asyncio.wait(
                    {work, control},
                    timeout=max(0.0, self._stall_timeout - quiet_for),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                if not control.done():
                    await _cancel(control)
            if not control.done() or control.cancelled():
                if work.done():
                    break
                if time.monotonic() - self._last_activity >= self._stall_timeout:
                    self.stalled = f"the agent stalled: no output for {self._stall_timeout:g} s"
                    stopped_by = "the stall timeout"
                    await _cancel(work)
                    break
                continue
            value = control.result()
            if value["type"] == USER_MESSAGE:
                self._waiting.append(value)
                continue
            stopped_by = _sender(value)
            if value["type"] == END:
                self.ended = f"ended by {stopped_by}"
            await _cancel(work)
        if self.stalled is not None:
            last = f"; last output:\n{self._tail}" if self._tail else ""
            result = AgentResult(success=False, error=self.stalled + last)
            return result, RunErrorEvent(message=result.error or "", code="STALLED")
        if stopped_by is not None:
            result = AgentResult(success=False, error=f"interrupted by {stopped_by}")
            return result, RunErrorEvent(message=result.error or "", code="INTERRUPTED")
        result = work.result()
        if result.success:
            summary = {"text": (result.text or "")[-2000:]}
            return result, RunFinishedEvent(thread_id=self._thread_id, run_id=run_id, result=summary)
        return result, RunErrorEvent(message=result.error or "the agent failed")

    async def converse(self, idle_timeout: float) -> None:
        """Take user messages turn by turn until a person ends the session or it idles out."""
        while self.ended is None and self.stalled is None:
            await self._api.report(RunnerReport(agent_status="waiting_input"))
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


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has cleaned up (an adapter kills its processes)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _sender(control: dict[str, Any]) -> str:
    return str(control["data"].get("value", {}).get("user") or "a user")
