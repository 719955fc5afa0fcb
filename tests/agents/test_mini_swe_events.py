"""The driver's lines (mini-swe-agent 2.4.6's own message dicts) become AG-UI events."""

from __future__ import annotations

import json

from vteam.agents.mini_swe_events import MiniSweEvents

RUN = """\
{"type": "message", "message": {"role": "system", "content": "You are a helpful assistant."}}
{"type": "message", "message": {"content": "hi", "role": "assistant", "tool_calls": [{"function": {"arguments": "{\\"command\\": \\"echo x > f\\"}", "name": "bash"}, "id": "call_1", "type": "function"}]}}
{"type": "message", "message": {"content": "{\\n  \\"returncode\\": 2,\\n  \\"output\\": \\"oops\\"\\n}", "extra": {"raw_output": "oops", "returncode": 2, "exception_info": ""}, "tool_call_id": "call_1", "role": "tool"}}
{"type": "message", "message": {"content": null, "role": "assistant", "tool_calls": [{"function": {"arguments": "{\\"command\\": \\"echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && echo done\\"}", "name": "bash"}, "id": "call_2", "type": "function"}]}}
{"type": "message", "message": {"role": "exit", "content": "done\\n", "extra": {"exit_status": "Submitted", "submission": "done\\n"}}}
{"type": "result", "exit_status": "Submitted", "submission": "done\\n", "usage": {"prompt_tokens": 1754.0}, "cost": 0.01, "api_calls": 2, "error": null}
"""  # noqa: E501 (the lines as the driver prints them)


def test_a_run_with_commands_and_a_submission() -> None:
    t = MiniSweEvents(prefix="r")
    out = [e for line in RUN.splitlines() for e in t.feed(json.loads(line))]
    assert [str(e.type.value) for e in out] == [
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
    ]
    result = out[6].model_dump()
    assert result["tool_call_id"] == "r-call_1"
    assert result["content"] == "error: exit code 2\noops"
    assert t.submitted
    assert t.text == "done\n"
    assert t.steps == 2
    assert t.result is not None
    assert t.result["usage"] == {"prompt_tokens": 1754.0}
