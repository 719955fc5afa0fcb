"""A project secret scoped to frameworks reaches only their agents; an unscoped one reaches every agent.

The one rule, seen from outside: through the API, the CLI and the settings page, on a real `vteam up` whose
`script` sessions print what they got, and in cluster mode, where the operator leaves a scoped-away key out of
the runner Job altogether.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.services import test_cluster_mode as cluster_mode
from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase
from tests.support.browser import Browser, signed_in
from tests.support.cli import vteam
from tests.support.server import Server

pytestmark = pytest.mark.integration

SCOPED_VALUE = "scoped-to-codex-" + uuid.uuid4().hex
OPEN_VALUE = "open-to-all-" + uuid.uuid4().hex
PROBE = 'echo "scoped=${SCOPED:-absent} open=${OPEN:-absent} mine=${MINE:-absent}"'

cluster = cluster_mode.cluster
"""The cluster-mode platform of tests/services/test_cluster_mode.py, started once for this module."""


def _put(api: httpx.Client, project: str, name: str, value: str, frameworks: list[str] | None = None) -> httpx.Response:
    body: dict[str, object] = {"value": value}
    if frameworks is not None:
        body["frameworks"] = frameworks
    return api.put(f"/api/projects/{project}/secrets/{name}", json=body)


def test_a_scoped_secret_reaches_only_its_frameworks_agents(server: Server, api: httpx.Client, project: str) -> None:
    put = _put(api, project, "SCOPED", SCOPED_VALUE, ["codex"])
    assert put.status_code == 200, put.text
    assert put.json()["frameworks"] == ["codex"]
    assert _put(api, project, "OPEN", OPEN_VALUE).status_code == 200
    assert _put(api, project, "MINE", "for-script", ["script", "codex"]).status_code == 200
    listed = api.get(f"/api/projects/{project}/secrets").json()["items"]
    assert [(s["name"], s["frameworks"]) for s in listed] == [
        ("MINE", ["codex", "script"]),
        ("OPEN", None),
        ("SCOPED", ["codex"]),
    ]
    create_session(api, project, name="probe", prompt=PROBE, framework="script")
    done = wait_phase(api, project, "probe", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    output = text_of(read_events(api, project, "probe"))
    assert "scoped=absent open=*** mine=***" in output, output
    audit = api.get("/api/audit", params={"project": project, "action": "secret.write"}).json()["items"]
    assert {r["target"]: r["details"] for r in audit} == {
        "secret/SCOPED": {"frameworks": ["codex"]},
        "secret/OPEN": None,
        "secret/MINE": {"frameworks": ["codex", "script"]},
    }
    for text in (json.dumps(listed), json.dumps(audit), server.log()):
        assert SCOPED_VALUE not in text
        assert OPEN_VALUE not in text


def test_a_secret_scoped_away_does_not_satisfy_a_frameworks_secret_check(api: httpx.Client, project: str) -> None:
    assert _put(api, project, "ANTHROPIC_API_KEY", "sk-ant-scoped", ["codex"]).status_code == 200
    body = {"name": "agent", "framework": "claude-code", "prompt": "hello"}
    refused = api.post(sessions_path(project), json=body)
    assert refused.status_code == 422, refused.text
    assert "ANTHROPIC_API_KEY" in refused.json()["detail"]
    assert _put(api, project, "ANTHROPIC_API_KEY", "sk-ant-scoped", ["claude-code"]).status_code == 200
    created = api.post(sessions_path(project), json=body)
    assert created.status_code == 201, created.text
    assert api.delete(sessions_path(project, "agent")).status_code == 204


@pytest.mark.parametrize(
    ("frameworks", "says"),
    [
        (["codex", "no-such-agent"], "unknown framework 'no-such-agent'; valid frameworks: claude-code, codex"),
        ([], "at least 1 item"),
        ("codex", "valid list"),
    ],
    ids=["unknown", "empty", "not-a-list"],
)
def test_a_bad_scope_is_refused_naming_the_field(
    api: httpx.Client, project: str, frameworks: object, says: str
) -> None:
    answer = api.put(f"/api/projects/{project}/secrets/SCOPED", json={"value": SCOPED_VALUE, "frameworks": frameworks})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert [e["loc"][0] for e in problem["errors"]] == ["frameworks"]
    assert says in problem["detail"]
    assert SCOPED_VALUE not in answer.text
    assert api.get(f"/api/projects/{project}/secrets").json()["items"] == [], "nothing was stored"


def test_git_token_takes_no_frameworks(api: httpx.Client, project: str) -> None:
    answer = _put(api, project, "GIT_TOKEN", "ghp_x", ["codex"])
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [{"loc": ["frameworks"], "msg": "GIT_TOKEN takes no frameworks"}]
    assert _put(api, project, "GIT_TOKEN", "ghp_x").status_code == 200


def test_the_cli_sets_and_lists_a_scope(server: Server, project: str) -> None:
    scoped = vteam(
        server, "secret", "set", "SCOPED", "-p", project, "--framework", "codex", "--framework", "claude-code",
        stdin=SCOPED_VALUE + "\n",
    )  # fmt: skip
    assert scoped.returncode == 0, scoped.stderr
    assert scoped.stdout.strip() == "secret SCOPED set (frameworks: claude-code,codex)"
    opened = vteam(server, "secret", "set", "OPEN", "-p", project, stdin=OPEN_VALUE + "\n")
    assert opened.stdout.strip() == "secret OPEN set (frameworks: all)"
    listed = vteam(server, "secret", "list", "-p", project)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.splitlines()]
    assert rows == [["NAME", "FRAMEWORKS"], ["OPEN", "all"], ["SCOPED", "claude-code,codex"]]
    as_json = json.loads(vteam(server, "secret", "list", "-p", project, "--json").stdout)
    assert {s["name"]: s["frameworks"] for s in as_json} == {"OPEN": None, "SCOPED": ["claude-code", "codex"]}
    bad = vteam(server, "secret", "set", "SCOPED", "-p", project, "--framework", "kodex", stdin="v\n")
    assert bad.returncode == 1
    assert "unknown framework 'kodex'" in bad.stderr
    again = vteam(server, "secret", "set", "SCOPED", "-p", project, stdin=SCOPED_VALUE + "\n")
    assert again.stdout.strip() == "secret SCOPED set (frameworks: all)", "a write replaces the scope"
    for out in (scoped, opened, listed, bad, again):
        assert SCOPED_VALUE not in out.stdout + out.stderr


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    with signed_in(server.url, server.token, timeout=30) as signed:
        yield signed


def test_the_settings_page_shows_and_sets_a_scope(api: httpx.Client, browser: Browser, project: str) -> None:
    base = f"/projects/{project}/settings/secrets"
    form = browser.get(f"/projects/{project}/settings")
    assert re.search(r'<input id="secret-framework-codex" name="frameworks" type="checkbox" value="codex">', form.text)
    saved = browser.post(base, data={"name": "SCOPED", "value": SCOPED_VALUE, "frameworks": ["codex", "gemini"]})
    assert saved.status_code == 303, saved.text
    assert browser.post(base, data={"name": "OPEN", "value": OPEN_VALUE}).status_code == 303
    page = browser.get(saved.headers["location"]).text
    assert re.search(r"<code>SCOPED</code></td>\s*<td>[^<]*UTC</td>\s*<td[^>]*>codex, gemini</td>", page)
    assert re.search(r"<code>OPEN</code></td>\s*<td>[^<]*UTC</td>\s*<td[^>]*>all</td>", page)
    listed = {s["name"]: s["frameworks"] for s in api.get(f"/api/projects/{project}/secrets").json()["items"]}
    assert listed == {"SCOPED": ["codex", "gemini"], "OPEN": None}
    bad = browser.post(base, data={"name": "BAD", "value": SCOPED_VALUE, "frameworks": ["codex", "kodex"]})
    assert bad.status_code == 422
    assert "unknown framework" in bad.text
    assert re.search(r'value="codex" checked', bad.text), "the ticked frameworks come back with the error"
    for text in (form.text, page, bad.text):
        assert SCOPED_VALUE not in text


def test_in_cluster_mode_a_scoped_away_key_never_enters_the_runner_pod(cluster: cluster_mode.Cluster) -> None:
    project = f"scope-{uuid.uuid4().hex[:6]}"
    with cluster.person("carol") as carol, cluster.kube() as kube:
        assert carol.post("/api/projects", json={"name": project}).status_code == 201
        assert _put(carol, project, "SCOPED", SCOPED_VALUE, ["codex"]).status_code == 200
        assert _put(carol, project, "OPEN", OPEN_VALUE).status_code == 200
        stored = kube.get(f"/api/v1/namespaces/{project}/secrets/vteam-runner-secrets").json()
        assert sorted(stored["data"]) == ["OPEN", "SCOPED"]
        assert stored["metadata"]["annotations"]["frameworks.vteam.ambient-code/SCOPED"] == '["codex"]'
        created = carol.post(sessions_path(project), json={"prompt": PROBE, "framework": "script"})
        assert created.status_code == 201, created.text
        name = created.json()["metadata"]["name"]
        cluster_mode.wait_for(
            lambda: cluster_mode.phase_of(carol, project, name) == "Completed", "the session to complete"
        )
        job = kube.get(f"/apis/batch/v1/namespaces/{project}/jobs/{name}").json()
        output = text_of(cluster_mode.events(carol, project, name))
        # Unscoped again: the annotation goes, and the next Job takes the whole Secret.
        assert _put(carol, project, "SCOPED", SCOPED_VALUE).status_code == 200
        widened = kube.get(f"/api/v1/namespaces/{project}/secrets/vteam-runner-secrets").json()
    assert "scoped=absent open=*** mine=absent" in output, output
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container.get("envFrom") in (None, [])
    names = [e["name"] for e in container["env"]]
    assert "VTEAM_SECRET_OPEN" in names
    assert "VTEAM_SECRET_SCOPED" not in names
    assert "frameworks.vteam.ambient-code/SCOPED" not in (widened["metadata"].get("annotations") or {})
