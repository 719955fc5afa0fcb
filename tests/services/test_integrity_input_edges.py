"""Input that used to be accepted and then fail the session later (issue 24, "Accepted, then failing later"):
NUL bytes, the longest prompt, a project's secrets past what an environment holds, role bindings no route can
revoke, and a create that claims vTeam's own labels or a parent session. Each is refused at once, naming the
field, or it runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.support.api import create_session, read_events, sessions_path, text_of, wait_phase, wait_turns
from tests.support.browser import Browser
from tests.support.server import Server

pytestmark = [pytest.mark.integration, pytest.mark.alone]

MAX_BYTES = 100_000
MAX_COUNT = 4
FINAL = {"Completed", "Failed", "Stopped", "TimedOut"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("integrity-input") / "home"
    env = {
        "VTEAM_PROJECT_SECRETS_MAX_BYTES": str(MAX_BYTES),
        "VTEAM_PROJECT_SECRETS_MAX_COUNT": str(MAX_COUNT),
        "VTEAM_MAX_RUNNING_SESSIONS": "8",
    }
    srv = Server(home, env=env)
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        yield client


@pytest.fixture
def project(api: httpx.Client) -> str:
    name = f"in-{uuid.uuid4().hex[:10]}"
    assert api.post("/api/projects", json={"name": name}).status_code == 201
    return name


def _refused(response: httpx.Response, *loc: str) -> dict[str, object]:
    """A 422 problem whose errors name the field at `loc`."""
    assert response.status_code == 422, response.text
    problem: dict[str, object] = response.json()
    locs = [e["loc"] for e in problem["errors"]]  # type: ignore[attr-defined]
    assert list(loc) in locs, problem
    return problem


# NUL bytes and the longest prompt


def test_nul_in_prompts_and_other_text_for_a_process_is_refused_naming_the_field(
    api: httpx.Client, project: str
) -> None:
    path = sessions_path(project)
    _refused(api.post(path, json={"prompt": "echo a\x00b"}), "prompt")
    _refused(api.post(path, json={"spec": {"prompt": "echo a\x00b"}}), "spec", "prompt")
    _refused(api.post(path, json={"prompt": "echo", "displayName": "x\x00"}), "displayName")
    _refused(api.post(path, json={"prompt": "echo", "environment": {"A": "1\x002"}}), "environment")
    _refused(api.post(path, json={"prompt": "echo", "environment": {"BIG": "x" * 150_000}}), "environment")
    lone = api.post(path, content=b'{"prompt": "echo \\ud800"}', headers={"Content-Type": "application/json"})
    _refused(lone, "prompt")
    assert api.get(path).json()["items"] == [], "nothing was created"

    create_session(api, project, name="parent", prompt="echo parent")
    assert wait_phase(api, project, "parent")["status"]["phase"] == "Completed"
    _refused(api.post(sessions_path(project, "parent") + "/continue", json={"prompt": "a\x00"}), "prompt")


def test_the_documented_longest_prompt_runs(api: httpx.Client, project: str) -> None:
    """200,000 characters, 400,000 bytes in UTF-8: more than Linux lets one argument hold (128 KiB). The
    script's own stdin stays empty, as under `bash -c`."""
    tail = '\nread -r line; echo "got[$line]"; echo ok-$((40 + 2))'
    prompt = "# " + "é" * (200_000 - 2 - len(tail)) + tail
    assert len(prompt) == 200_000
    create_session(api, project, name="longest", prompt=prompt)
    done = wait_phase(api, project, "longest", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert text_of(read_events(api, project, "longest")) == "got[]\nok-42\n"


def test_an_interactive_session_refuses_a_nul_message_and_runs_a_long_one(api: httpx.Client, project: str) -> None:
    create_session(api, project, name="talk", prompt="echo ready", interactive=True)
    wait_turns(api, project, "talk", 1)
    messages = sessions_path(project, "talk") + "/messages"
    _refused(api.post(messages, json={"text": "echo a\x00b"}), "text")
    long = "# " + "é" * 99_980 + "\necho long-ok"
    assert len(long) <= 100_000
    assert api.post(messages, json={"text": long}).status_code == 202
    wait_turns(api, project, "talk", 2)
    assert "long-ok" in text_of(read_events(api, project, "talk"))
    assert api.post(sessions_path(project, "talk") + "/end").status_code == 202
    assert wait_phase(api, project, "talk", timeout=60)["status"]["phase"] == "Completed"


# Project secrets


def test_secrets_past_the_projects_cap_are_refused_and_the_ones_there_still_work(
    api: httpx.Client, project: str
) -> None:
    secrets = f"/api/projects/{project}/secrets"
    assert api.put(f"{secrets}/BIG_A", json={"value": "a" * 60_000}).status_code == 200
    assert api.put(f"{secrets}/BIG_B", json={"value": "b" * 40_000}).status_code == 200, "exactly the cap"

    over = api.put(f"{secrets}/ONE_MORE", json={"value": "c"})
    assert over.status_code == 422, over.text
    assert f"{MAX_BYTES:,}" in over.json()["detail"], "the problem names the limit"
    grown = api.put(f"{secrets}/BIG_A", json={"value": "a" * 60_001})
    assert grown.status_code == 422, grown.text
    assert api.put(f"{secrets}/BIG_A", json={"value": "a" * 59_000}).status_code == 200, "shrinking fits"
    assert api.put(f"{secrets}/SMALL", json={"value": "s" * 1_000}).status_code == 200
    names = [s["name"] for s in api.get(secrets).json()["items"]]
    assert names == ["BIG_A", "BIG_B", "SMALL"]

    create_session(api, project, name="uses", prompt='echo "len ${#BIG_A} ${#BIG_B} ${#SMALL}"')
    done = wait_phase(api, project, "uses", timeout=60)
    assert done["status"]["phase"] == "Completed", done["status"]
    assert "len 59000 40000 1000" in text_of(read_events(api, project, "uses"))


def test_a_projects_number_of_secrets_is_capped(api: httpx.Client, project: str) -> None:
    secrets = f"/api/projects/{project}/secrets"
    for index in range(MAX_COUNT):
        assert api.put(f"{secrets}/S{index}", json={"value": "v"}).status_code == 200
    extra = api.put(f"{secrets}/S{MAX_COUNT}", json={"value": "v"})
    assert extra.status_code == 422, extra.text
    assert f"{MAX_COUNT} secrets" in extra.json()["detail"]
    assert api.put(f"{secrets}/S0", json={"value": "changed"}).status_code == 200, "an update adds none"


def test_a_secret_value_no_environment_can_carry_is_refused_without_echoing_it(api: httpx.Client, project: str) -> None:
    secrets = f"/api/projects/{project}/secrets"
    nul = api.put(f"{secrets}/NUL", json={"value": "sk-a\x00b"})
    _refused(nul, "value")
    assert "sk-a" not in nul.text
    wide = api.put(f"{secrets}/WIDE", json={"value": "😀" * 40_000})
    _refused(wide, "value")
    assert "160,000 bytes" in wide.text
    assert api.get(secrets).json()["items"] == []


def test_the_settings_page_says_why_a_secret_or_a_member_is_refused(
    server: Server, api: httpx.Client, project: str
) -> None:
    secrets = f"/api/projects/{project}/secrets"
    assert api.put(f"{secrets}/FULL", json={"value": "f" * 60_000}).status_code == 200
    assert api.put(f"{secrets}/FULLER", json={"value": "f" * (MAX_BYTES - 60_000)}).status_code == 200
    made = api.post("/api/users", json={"name": f"adm-{uuid.uuid4().hex[:6]}"})
    assert made.status_code == 201, made.text
    bound = {"subjectType": "user", "subjectName": made.json()["name"], "role": "admin"}
    assert api.post(f"/api/projects/{project}/permissions", json=bound).status_code == 201
    link = parse_qs(urlsplit(made.json()["loginLink"]).query)["token"][0]
    token = api.post("/api/login", json={"token": link}).json()["token"]
    with Browser(server.url, timeout=30) as browser:
        assert browser.post("/signin", data={"token": token}).status_code == 303
        page = browser.post(f"/projects/{project}/settings/secrets", data={"name": "MORE", "value": "m" * 10})
        member = {"subject_type": "group", "subject_name": "a/b", "role": "view"}
        members = browser.post(f"/projects/{project}/settings/members", data=member)
    assert page.status_code == 422, page.text
    assert f"{MAX_BYTES:,} bytes" in page.text
    assert members.status_code == 422, members.text
    assert "printable characters without" in members.text
    assert "a/b" not in str(api.get(f"/api/projects/{project}/permissions").json())
    assert [s["name"] for s in api.get(secrets).json()["items"]] == ["FULL", "FULLER"]


# Role bindings


BAD_SUBJECTS = [
    ("user", "a/b"),
    ("group", "a/b"),
    ("group", "tab\there"),
    ("group", "nul\x00"),
    ("user", "new\nline"),
    ("group", ".."),
    ("user", "Not-A-User-Name"),
    ("user", "alice@example.com"),
]


def test_a_binding_no_route_or_user_can_match_is_refused_and_a_group_with_a_space_is_revocable(
    api: httpx.Client, project: str
) -> None:
    path = f"/api/projects/{project}/permissions"
    for kind, name in BAD_SUBJECTS:
        _refused(api.post(path, json={"subjectType": kind, "subjectName": name, "role": "view"}), "subjectName")
    assert [b["subjectName"] for b in api.get(path).json()["items"]] == ["admin"]
    body = {"subjectType": "group", "subjectName": "Domain Users", "role": "view"}
    assert api.post(path, json=body).status_code == 201
    assert api.delete(f"{path}/group/{quote('Domain Users')}").status_code == 204
    assert [b["subjectName"] for b in api.get(path).json()["items"]] == ["admin"]


# Reserved labels and parentSession


def test_a_create_may_not_claim_vteams_labels_or_a_parent(api: httpx.Client, project: str) -> None:
    path = sessions_path(project)
    create_session(api, project, name="real-parent", prompt="echo parent")
    assert wait_phase(api, project, "real-parent")["status"]["phase"] == "Completed"
    spec = {"prompt": "echo hi"}
    parent_label = "vteam.ambient-code/parent"
    _refused(
        api.post(path, json={"metadata": {"labels": {parent_label: "real-parent"}}, "spec": spec}),
        "metadata",
        "labels",
        parent_label,
    )
    created_by = "vteam.ambient-code/created-by"
    _refused(
        api.post(path, json={"metadata": {"annotations": {created_by: "someone"}}, "spec": spec}),
        "metadata",
        "annotations",
        created_by,
    )
    _refused(api.post(path, json={"spec": {**spec, "parentSession": "real-parent"}}), "spec", "parentSession")
    _refused(api.post(path, json={**spec, "parentSession": "real-parent"}), "parentSession")
    _refused(
        api.post(path, json={**spec, "labels": {"x.vteam.ambient-code/role": "admin"}}),
        "labels",
        "x.vteam.ambient-code/role",
    )
    names = {s["metadata"]["name"] for s in api.get(path).json()["items"]}
    assert names == {"real-parent"}

    mine = api.post(path, json={"metadata": {"name": "own", "labels": {"team": "a"}}, "spec": spec})
    assert mine.status_code == 201, mine.text
    assert mine.json()["metadata"]["labels"] == {"team": "a"}
    child = api.post(sessions_path(project, "real-parent") + "/continue", json={"prompt": "echo child", "name": "kid"})
    assert child.status_code == 201, child.text
    assert child.json()["spec"]["parentSession"] == "real-parent"
    assert child.json()["metadata"]["labels"][parent_label] == "real-parent"
    assert wait_phase(api, project, "kid")["status"]["phase"] == "Completed"


def test_secrets_larger_than_a_pipe_reach_a_runner_started_without_the_zygote(tmp_path: Path) -> None:
    """A runner started as a new process gets its secrets over a pipe (64 KiB), written only once it runs to
    read them and never from the event loop: with 200 KiB of them the server answers throughout the start."""
    server = Server(tmp_path / "home", env={"VTEAM_RUNNER_PREFORK": "false"})
    server.start()
    try:
        with server.client(timeout=30) as api:
            assert api.post("/api/projects", json={"name": "piped"}).status_code == 201
            for name in ("PIPE_A", "PIPE_B", "PIPE_C", "PIPE_D"):  # 200 KiB: a secret holds at most 64,000
                put = api.put(f"/api/projects/piped/secrets/{name}", json={"value": "p" * 51_200})
                assert put.status_code == 200, put.text
            create_session(api, "piped", name="big", prompt='echo "len ${#PIPE_A} ${#PIPE_D}"')
            slowest, deadline = 0.0, time.monotonic() + 60
            while api.get(sessions_path("piped", "big")).json()["status"].get("phase") not in FINAL:
                assert time.monotonic() < deadline, "the session did not finish"
                began = time.monotonic()
                assert api.get("/readyz", timeout=5).status_code == 200
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.05)
            assert slowest < 2.0, f"/readyz took {slowest:.1f} s while the runner started"
            done = wait_phase(api, "piped", "big", timeout=60)
            assert done["status"]["phase"] == "Completed", done["status"]
            assert "len 51200 51200" in text_of(read_events(api, "piped", "big"))
    finally:
        server.close()
