"""Pushes that answer honestly: a re-run with the same target branch updates it, as docs/forges.md says;
a pull request that could not be opened because its push failed says why.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.git import rev, show

pytestmark = pytest.mark.integration


def _run(api: httpx.Client, project: str, prompt: str, output: dict[str, object], repo: Path) -> dict[str, object]:
    name = f"s-{uuid.uuid4().hex[:8]}"
    create_session(api, project, name=name, prompt=prompt, repos=[{"input": {"url": str(repo)}, "output": output}])
    return wait_phase(api, project, name, timeout=60)


def test_a_second_session_with_the_same_target_branch_from_main_updates_it(
    api: httpx.Client, project: str, repo: Path
) -> None:
    output = {"url": str(repo), "targetBranch": "vteam/shared"}
    first = _run(api, project, "echo one > one.txt", output, repo)
    assert first["status"]["phase"] == "Completed", first["status"]  # type: ignore[index]
    second = _run(api, project, "echo two > two.txt", output, repo)
    status = second["status"]  # type: ignore[index]
    assert status["phase"] == "Completed", status
    assert status["repos"][0]["pushed"] is True
    assert show(repo, "vteam/shared", "two.txt") == "two\n"
    assert rev(repo, "vteam/shared") == status["repos"][0]["commitSha"]


def test_a_pull_request_whose_push_failed_says_why(api: httpx.Client, project: str, repo: Path) -> None:
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    hook.chmod(0o755)
    session = _run(api, project, "echo x > x.txt", {"url": str(repo), "createPullRequest": True}, repo)
    name = session["metadata"]["name"]  # type: ignore[index]
    answer = api.get(sessions_path(project, name) + "/pull-requests")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["items"] == []
    [note] = body["notOpened"]
    assert note["repo"] == 0
    assert "failed" in note["note"]
    assert "the push was rejected" in note["note"]
