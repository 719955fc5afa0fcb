"""Runs one turn of mini-swe-agent in its own process: `python mini_swe_driver.py` with a JSON request on stdin.

It runs in mini-swe-agent's own virtual environment (litellm pins `openai<3`, which vTeam's environment cannot
share), so it imports nothing from vTeam. The request: {"prompt", "workdir", "model", "api_base", "step_limit",
"cost_limit", "conversation" (the file the conversation is saved to), "previous" (a saved conversation to continue,
or null)}; the API key comes in the environment (OPENAI_API_KEY), which it removes before any command runs.

Stdout carries only the protocol, one JSON object a line: {"type": "message", "message": {...}} for each message
the agent adds (mini-swe-agent's own dicts), then {"type": "result", ...}. Whatever mini-swe-agent or litellm print
goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

PROTOCOL_FD = os.dup(1)
os.dup2(2, 1)  # From here on, prints (mini-swe-agent's "Loading global config", litellm's notices) go to stderr.
sys.stdout = sys.stderr

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MSWEA_CONFIGURED", "true")
os.environ.setdefault("MSWEA_COST_TRACKING", "ignore_errors")

_out = os.fdopen(PROTOCOL_FD, "w", encoding="utf-8", buffering=1)


def send(line: dict[str, Any]) -> None:
    _out.write(json.dumps(line, default=repr, ensure_ascii=False) + "\n")
    _out.flush()


def main() -> int:
    request = json.loads(sys.stdin.read())
    api_key = os.environ.pop("OPENAI_API_KEY", "")
    import yaml
    from minisweagent.agents.default import AgentConfig, DefaultAgent
    from minisweagent.config import builtin_config_dir
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.litellm_model import LitellmModel

    config = yaml.safe_load((Path(builtin_config_dir) / "mini.yaml").read_text())
    agent_config = {k: v for k, v in config.get("agent", {}).items() if k in AgentConfig.model_fields}
    agent_config.update(
        step_limit=int(request.get("step_limit") or 0), cost_limit=float(request.get("cost_limit") or 0)
    )
    model_config = {k: v for k, v in config.get("model", {}).items() if k != "model_kwargs"}
    model_kwargs = dict(config.get("model", {}).get("model_kwargs") or {})
    model_kwargs.update(api_key=api_key or "none", num_retries=0)
    if request.get("api_base"):
        model_kwargs["api_base"] = request["api_base"]
    model_name = request.get("model") or "gpt-5-mini"
    if "/" not in model_name:
        model_name = f"openai/{model_name}"
    model = LitellmModel(
        model_name=model_name, model_kwargs=model_kwargs, cost_tracking="ignore_errors", **model_config
    )
    env_config = config.get("environment", {}) or {}
    env = LocalEnvironment(cwd=request["workdir"], env=env_config.get("env") or {})

    previous: list[dict[str, Any]] = []
    if request.get("previous") and Path(request["previous"]).is_file():
        saved = json.loads(Path(request["previous"]).read_text(encoding="utf-8"))
        previous = [m for m in saved.get("messages", []) if m.get("role") != "exit"]
        answered = {m.get("tool_call_id") for m in previous if m.get("role") == "tool"}
        submission = next(
            (m.get("content") for m in reversed(saved.get("messages", [])) if m.get("role") == "exit"), ""
        )
        for call in (previous[-1].get("tool_calls") or []) if previous else []:
            if call.get("id") not in answered:  # the submitting command: the API wants every call answered
                previous.append({"role": "tool", "tool_call_id": call.get("id"), "content": str(submission or "")})

    class Agent(DefaultAgent):  # type: ignore[misc]
        def add_messages(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
            if previous and not self.messages and messages and messages[0].get("role") == "system":
                # A follow-up: the saved conversation, then the new message, instead of a fresh system + task.
                self.messages.extend(previous)
                messages = (self.model.format_message(role="user", content=request["prompt"]),)
            for message in messages:
                send({"type": "message", "message": message})
            return list(super().add_messages(*messages))

    agent = Agent(model, env, **agent_config)
    conversation = Path(request["conversation"])
    error = None
    try:
        info = agent.run(request["prompt"])
    except Exception as e:  # mini-swe-agent added an exit message with the error; report it.
        info = agent.messages[-1].get("extra", {}) if agent.messages else {}
        error = f"{type(e).__name__}: {e}"
    finally:
        conversation.parent.mkdir(parents=True, exist_ok=True)
        conversation.write_text(json.dumps({"messages": agent.messages}, default=repr), encoding="utf-8")
    usage: dict[str, float] = {}
    for message in agent.messages[len(previous) :]:
        response = (message.get("extra") or {}).get("response")
        counts = response.get("usage") if isinstance(response, dict) else None
        for key, value in (counts or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                usage[key] = usage.get(key, 0.0) + float(value)
    send(
        {
            "type": "result",
            "exit_status": info.get("exit_status", ""),
            "submission": info.get("submission", ""),
            "usage": usage,
            "cost": agent.cost,
            "api_calls": agent.n_calls,
            "error": error,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
