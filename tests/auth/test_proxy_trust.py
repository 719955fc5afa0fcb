"""A proxy is trusted because it proves itself with VTEAM_PROXY_SECRET, never because of its address: an agent
on the same host reaches loopback too, and must not become whoever it names in X-Forwarded-User."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import create_session, read_events, text_of, wait_phase
from tests.support.server import FOREIGN, Server

pytestmark = pytest.mark.integration

SECRET = "proxy-proof-" + uuid.uuid4().hex
MALLORY = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "vteam-admins"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("proxy") / "home"
    env = {"VTEAM_TRUST_PROXY_HEADERS": "true", "VTEAM_PROXY_SECRET": SECRET, "VTEAM_MAX_RUNNING_SESSIONS": "4"}
    srv = Server(home, env=env).start()
    yield srv
    srv.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _me(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers=headers, timeout=30)


@pytest.mark.parametrize(
    "proof",
    [
        {},
        {"X-Vteam-Proxy-Secret": "guessed"},
        {"X-Vteam-Proxy-Secret": SECRET[:-1]},
        {"X-Vteam-Proxy-Secret": ""},
    ],
    ids=["none", "wrong", "truncated", "empty"],
)
def test_forwarded_identity_from_loopback_without_the_secret_is_anonymous(
    server: Server, proof: dict[str, str]
) -> None:
    response = _me(server, MALLORY | proof)
    assert response.status_code == 401, response.text


def test_two_secret_headers_prove_nothing(server: Server) -> None:
    """A client cannot add its guess beside the proxy's header and hope one of them is read."""
    headers = [*MALLORY.items(), ("X-Vteam-Proxy-Secret", "guessed"), ("X-Vteam-Proxy-Secret", SECRET)]
    response = httpx.get(f"{server.url}/api/me", headers=headers, timeout=30)
    assert response.status_code == 401, response.text


def test_the_proxy_that_proves_itself_names_the_person_and_groups(server: Server) -> None:
    by_header = _me(server, MALLORY | {"X-Vteam-Proxy-Secret": SECRET})
    assert by_header.status_code == 200, by_header.text
    assert by_header.json() | {"groups": []} == {"name": "mallory", "kind": "user", "admin": True, "groups": []}
    assert by_header.json()["groups"] == ["vteam-admins"]
    # OpenShift's oauth-proxy proves itself with --basic-auth-password; the Basic credentials are its, not a
    # caller's, so they do not reach the authenticator (which takes only Bearer).
    by_basic = _me(server, MALLORY | {"Authorization": _basic("mallory", SECRET)})
    assert by_basic.status_code == 200, by_basic.text
    assert by_basic.json()["name"] == "mallory"


def test_an_agent_forging_proxy_headers_on_loopback_gets_nothing(server: Server) -> None:
    """A `script` session of project A calls the API on 127.0.0.1 as 'mallory' of 'vteam-admins'; it must
    neither list project B's sessions nor overwrite B's secret."""
    with server.client() as admin:
        a, b = f"proxy-a-{uuid.uuid4().hex[:6]}", f"proxy-b-{uuid.uuid4().hex[:6]}"
        for project in (a, b):
            assert admin.post("/api/projects", json={"name": project}).status_code == 201
        put = admin.put(f"/api/projects/{b}/secrets/DEPLOY_TOKEN", json={"value": "b-original"})
        assert put.status_code == 200, put.text
        before = admin.get(f"/api/projects/{b}/secrets").json()["items"]
        forged = " ".join(f"-H '{k}: {v}'" for k, v in MALLORY.items())
        api = f"{server.url}/api"
        calls = [
            f"curl -s -o /dev/null -w 'me=%{{http_code}}\\n' {forged} {api}/me",
            f"curl -s -o /dev/null -w 'list-b=%{{http_code}}\\n' {forged} {api}/projects/{b}/agentic-sessions",
            f"curl -s -o /dev/null -w 'put-b=%{{http_code}}\\n' -X PUT {forged} -H 'Content-Type: application/json' "
            f"""-d '{{"value": "pwned"}}' {api}/projects/{b}/secrets/DEPLOY_TOKEN""",
            f"curl -s -o /dev/null -w 'admin=%{{http_code}}\\n' {forged} {api}/users",
        ]
        created = create_session(admin, a, prompt="; ".join(calls), framework="script")
        name = created["metadata"]["name"]
        wait_phase(admin, a, name, "Completed", "Failed", timeout=60)
        output = text_of(read_events(admin, a, name))
        for call in ("me", "list-b", "put-b", "admin"):
            assert f"{call}=000" in output, "the sandboxed agent cannot even connect to the API on loopback"
        # What an agent without the sandbox (VTEAM_ISOLATION=none) on the same host would get:
        on_host = subprocess.run(["bash", "-c", "; ".join(calls)], capture_output=True, text=True, check=False)
        for call in ("me", "list-b", "put-b", "admin"):
            assert f"{call}=401" in on_host.stdout, on_host.stdout
        assert admin.get(f"/api/projects/{b}/secrets").json()["items"] == before, "B's secret was not rewritten"


def test_vteam_up_refuses_proxy_headers_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env |= {"VTEAM_HOME": str(tmp_path / "home"), "VTEAM_TRUST_PROXY_HEADERS": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "vteam", "up", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: VTEAM_TRUST_PROXY_HEADERS=true needs VTEAM_PROXY_SECRET")
    assert "vTeam is up" not in done.stderr


def test_the_banner_says_which_trust_mode_is_in_force(server: Server) -> None:
    log = server.log()
    assert "identity: also a proxy proving VTEAM_PROXY_SECRET (from 127.0.0.1, ::1)" in log
    assert SECRET not in log


def test_a_browser_behind_the_proxy_needs_the_own_origin_and_the_pages_token(server: Server) -> None:
    """Behind the proxy the browser's credential is the proxy's cookie, which a page on another port of the
    same site also makes the browser send: its writes need vTeam's origin and the token of vTeam's pages,
    and it cannot mint bearer tokens for a script to carry away."""
    person = {"X-Forwarded-User": f"pat-{uuid.uuid4().hex[:6]}", "X-Vteam-Proxy-Secret": SECRET}
    own = server.url
    project = {"name": f"p-{uuid.uuid4().hex[:8]}"}
    page = httpx.get(f"{own}/projects", headers=person | {"Sec-Fetch-Site": "same-origin"}, timeout=30)
    assert page.status_code == 200, page.text
    token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    assert token

    def post(path: str, extra: dict[str, str], **kwargs: object) -> httpx.Response:
        return httpx.post(f"{own}{path}", headers=person | extra, timeout=30, **kwargs)  # type: ignore[arg-type]

    elsewhere = post("/api/projects", {"Origin": "http://127.0.0.1:1", "X-CSRF-Token": token}, json=project)
    assert elsewhere.status_code == 403, elsewhere.text
    tokenless = post("/api/projects", {"Origin": own, "Sec-Fetch-Site": "same-origin"}, json=project)
    assert tokenless.status_code == 403, tokenless.text
    forged = post("/api/projects", {"Origin": own, "X-CSRF-Token": token + "x"}, json=project)
    assert forged.status_code == 403, forged.text
    from_page = post(
        "/api/projects", {"Origin": own, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token}, json=project
    )
    assert from_page.status_code == 201, from_page.text
    minted = post("/api/tokens", {"Origin": own, "X-CSRF-Token": token}, json={"name": "carried-away"})
    assert minted.status_code == 403, minted.text
    assert "vteam login" in minted.json()["detail"]
