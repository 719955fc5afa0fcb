"""`vteam runner`: run one session's framework in its workspace and stream everything to the API.

`main` is a plain function with its imports done at module load, so a warm parent can fork it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass

from ag_ui.core import RunErrorEvent

from vteam import logs
from vteam.agents import AgentResult, TurnContext, registry
from vteam.protocol import RunnerReport
from vteam.resources import REPORTED, AgenticSession, RepoStatus
from vteam.runner import confine, workspace
from vteam.runner.client import RunnerApi
from vteam.runner.config import RunnerConfig, scrub_environment
from vteam.runner.conversation import Conversation, TurnFailed
from vteam.runner.redact import Redactor
from vteam.runner.stream import EventStream, StreamClosed

log = logging.getLogger("vteam.runner")

EXIT_FILE = "runner.exit"


@dataclass(frozen=True)
class Outcome:
    result: AgentResult
    repos: list[RepoStatus]
    ok: bool
    message: str
    conversation_id: str | None = None


def main() -> None:
    config = RunnerConfig.from_env()
    scrub_environment()
    logs.configure("INFO")
    code = asyncio.run(run(config))
    with contextlib.suppress(OSError):
        (config.workspace / EXIT_FILE).write_text(str(code))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is reported and flushed; skipping interpreter teardown saves ~300 ms per session.
    os._exit(code)


async def run(config: RunnerConfig) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    redactor = Redactor(config.secrets)
    api = RunnerApi(config, redactor)
    ws_url = "ws" + config.server.removeprefix("http") + config.session_path + "/runner/ws"
    stream = EventStream(ws_url, config.token, redactor, reconnect_seconds=config.reconnect_seconds)
    stream.start()
    try:
        return await _run_session(config, api, stream, redactor)
    except asyncio.CancelledError:
        log.info("stopped by signal")
        await stream.flush(timeout=1.0)
        return 143
    finally:
        await stream.close()
        await api.close()


async def _run_session(config: RunnerConfig, api: RunnerApi, stream: EventStream, redactor: Redactor) -> int:
    session = await api.get_session()
    await api.report(RunnerReport(phase="Running", agent_status="working"))
    try:
        await stream.ready()
        outcome = await _work(config, session, api, stream, redactor)
    except Exception as exc:
        known = isinstance(exc, workspace.WorkspaceError | TurnFailed | StreamClosed)
        message = redactor.text(str(exc) if known else f"{type(exc).__name__}: {exc}")
        log.error("session failed: %s", message)
        if not isinstance(exc, TurnFailed | StreamClosed):
            await stream.emit(RunErrorEvent(message=message))
        await stream.flush()
        await api.report(RunnerReport.model_validate(_final(message)))
        return 1
    result, statuses, ok, message = outcome.result, outcome.repos, outcome.ok, outcome.message
    if not await stream.flush():
        ok = False
        pushed = "; its pushes did happen" if any(s.pushed for s in statuses) else ""
        message = f"the server did not acknowledge every event of the session{pushed}"
        log.error(message)
    await api.report(
        RunnerReport.model_validate(
            _final(
                message,
                result={"text": result.text, "turns": result.turns, "usage": result.usage, "costUsd": result.cost_usd},
                repos=[s.wire() for s in statuses],
                conversationId=outcome.conversation_id,
            )
        )
    )
    return 0 if ok else 1


async def _work(
    config: RunnerConfig, session: AgenticSession, api: RunnerApi, stream: EventStream, redactor: Redactor
) -> Outcome:
    repos = await workspace.prepare(
        session, config.workspace, config.credentials, redactor, stream.emit, policy=config.repo_policy
    )
    main_repo = repos[session.spec.main_repo_index].path if repos else config.workspace / "repos"
    adapter = registry.get(session.spec.framework)()
    async with confine.confined(config) as sandbox:

        def context_for(prompt: str) -> TurnContext:
            return TurnContext(
                session=session.name,
                prompt=prompt,
                workdir=main_repo,
                home=config.workspace / "home",
                model=session.spec.model,
                environment=session.spec.environment,
                secrets=config.agent_secrets,
                settings=config.agent_settings,
                max_turns=session.spec.max_turns,
                budget_usd=session.spec.budget_usd,
                resume=config.resume,
                sandbox=sandbox,
            )

        conversation = Conversation(
            adapter,
            stream,
            api,
            context_for,
            thread_id=session.metadata.uid or session.name,
            stall_timeout=config.stall_timeout,
        )
        await conversation.turn(session.spec.prompt)
        if session.spec.interactive:
            await conversation.converse(session.spec.idle_timeout or config.idle_timeout)
    result = conversation.combined()
    # An interactive session's work is kept however its last turn went: a person ended it.
    keep = (result.success or session.spec.interactive) and conversation.stalled is None
    statuses = await workspace.publish(
        session,
        repos,
        config.credentials,
        redactor,
        stream.emit,
        author=(config.author_name, config.author_email),
        push=keep,
        planner=api.push_targets,
        policy=config.repo_policy,
        confine=confine.for_git(config),
    )
    errors = [f"repos[{i}]: {s.error}" for i, s in enumerate(statuses) if s.error]
    conversation_id = getattr(adapter, "conversation_id", None)
    if not keep:
        return Outcome(result, statuses, False, result.error or "the agent failed", conversation_id)
    if errors:
        return Outcome(result, statuses, False, "; ".join(errors), conversation_id)
    pushed = sum(s.pushed for s in statuses)
    done = conversation.ended or "completed"
    message = f"{done}; pushed {pushed} of {len(statuses)} repos" if statuses else done
    return Outcome(result, statuses, True, message, conversation_id)


def _final(message: str, **fields: object) -> dict[str, object]:
    """The last report of a runner, in the wire's spelling: idle, with its message and the finished condition."""
    conditions = [{"type": REPORTED, "status": "True", "reason": "RunnerFinished"}]
    return {"final": True, "agentStatus": "idle", "message": message, "conditions": conditions, **fields}
