"""A property-based fuzz of the whole HTTP API against a real server with seeded data (schemathesis): no input,
as the platform admin or as a project's `edit` key, gets a 5xx, a torn stream or an answer the OpenAPI
document does not declare (status, media type, body schema)."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case, HookContext

from tests.support.api import create_session, sessions_path, wait_phase
from tests.support.git import bare_repo
from tests.support.server import Server
from vteam.api.app import create_app
from vteam.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.alone,
    pytest.mark.timeout(600),
]

PROJECTS = ("fz-a", "fz-b")
"""Seeded projects: the fuzz may delete one (DELETE /api/projects/{project}) and still reach the other; the
editor's key is for the first, which the path parameters name most often."""
SESSIONS = ("done", "running", "stopped", "failed")
SECRETS = ("S0", "S1")
MEMBER = "fz-member"
DOOMED_PROJECT = "fz-doomed"
DOOMED = "doomed"
DOOMED_SECRET = "DOOMED"
"""What the DELETE operations may remove: a project, and in each project a session, a secret and a binding."""
MISSING = {"name": "zz-missing", "secret": "ZZ_MISSING"}
"""A well-formed name of nothing, which the seeded pools mix in so that routes also answer for what is not."""

MAX_EXAMPLES = 50
SEED = 24

EXCLUDED_PATHS = {
    # The runner's own endpoints answer a session's runner token only; anyone else gets 403 before input matters.
    "/api/projects/{project}/agentic-sessions/{name}/runner/status": "runner token only",
    "/api/projects/{project}/agentic-sessions/{name}/runner/push-targets": "runner token only",
    # Redirects to github.com (an App's install page, or its OAuth callback's exchange): no forge in this test.
    "/api/user/forges/github/install": "redirects to github.com",
    "/api/user/forges/github/callback": "exchanges a code with github.com",
}
"""Operations that cannot be fuzzed meaningfully here, each with its reason. WebSocket routes are not in the
OpenAPI document; the SSE stream is fuzzed with `follow=false` (a live stream never ends on its own)."""


SPARE_KEYS: list[str] = []
"""Ids of seeded keys that DELETE …/keys/{key_id} may revoke (never the key the fuzz runs as)."""


def _seed(server: Server, tmp: Path) -> None:
    """Projects, a member, a key, secrets and sessions in several phases, so that path parameters resolve."""
    repo = bare_repo(tmp, files={"README.md": "hello\n"})
    with server.client() as api:
        user = api.post("/api/users", json={"name": MEMBER, "displayName": "Fuzz member"})
        assert user.status_code == 201, user.text
        created = api.post("/api/projects", json={"name": DOOMED_PROJECT})
        assert created.status_code == 201, created.text
        for project in PROJECTS:
            created = api.post("/api/projects", json={"name": project, "displayName": "Fuzz"})
            assert created.status_code == 201, created.text
            for subject in (MEMBER, DOOMED):
                bound = api.post(
                    f"/api/projects/{project}/permissions",
                    json={"subjectType": "user", "subjectName": subject, "role": "view"},
                )
                assert bound.status_code == 201, bound.text
            for secret in (*SECRETS, DOOMED_SECRET):
                stored = api.put(f"/api/projects/{project}/secrets/{secret}", json={"value": "fuzz-secret"})
                assert stored.status_code == 200, stored.text
            repos = [{"input": {"url": str(repo)}}]
            create_session(api, project, name="done", prompt="echo done", repos=repos)
            create_session(api, project, name="failed", prompt="exit 3")
            create_session(api, project, name=DOOMED, prompt="echo doomed")
            create_session(api, project, name="stopped", prompt="sleep 600")
            create_session(api, project, name="running", prompt="sleep 600")
            wait_phase(api, project, "stopped", "Running")
            assert api.post(sessions_path(project, "stopped") + "/stop").status_code == 202
            for name in ("done", "failed", "stopped", DOOMED):
                wait_phase(api, project, name)
            wait_phase(api, project, "running", "Running")
        spare = api.post(f"/api/projects/{PROJECTS[0]}/keys", json={"name": "spare", "role": "view"})
        assert spare.status_code == 201, spare.text
        SPARE_KEYS[:] = [spare.json()["id"]]


REACHED: dict[str, set[str]] = {}
"""Per server, the operations that answered a 2xx: the seeded data is what makes the fuzz reach past 404."""
LEAST_REACHED = {"admin": 30, "editor": 10}
"""An `edit` key is refused the admin's operations (403), so it reaches fewer."""


@pytest.fixture(scope="module", params=["admin", "editor"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str, str]]:
    """One fresh server per identity: the admin's fuzz deletes and revokes what the editor's needs."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    server = Server(home).start()
    try:
        _seed(server, home.parent)
        token = server.token if request.param == "admin" else _fresh_key(server)
        yield server, token, request.param
    finally:
        server.close()


def _fresh_key(server: Server) -> str:
    """A new `edit` key of the first project: the editor's identity, and one for each of its logouts (a logout
    revokes the key it comes with)."""
    with server.client() as api:
        issued = api.post(f"/api/projects/{PROJECTS[0]}/keys", json={"name": "fuzz-logout", "role": "edit"})
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    return token


def _pick(pool: tuple[str, ...], drawn: Any, missing: str = MISSING["name"]) -> str:
    """A seeded value chosen deterministically from what Hypothesis drew, or now and then the drawn value."""
    choices = (pool[0], *pool, missing)
    index = zlib.crc32(repr(drawn).encode()) % (len(choices) + 1)
    return choices[index] if index < len(choices) else str(drawn)


def _map_path(ctx: HookContext, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Seeded names for the path; a DELETE gets the seeded things kept for it, so what later operations read
    stays (operations run in the document's order)."""
    if not path_parameters or ctx.operation is None:
        return path_parameters
    path = ctx.operation.path
    delete = ctx.operation.method.upper() == "DELETE"
    out = dict(path_parameters)
    if "project" in out:
        out["project"] = _pick(
            (DOOMED_PROJECT,) if path == "/api/projects/{project}" and delete else PROJECTS, out["project"]
        )
    if "name" in out and "/secrets/" in path:
        out["name"] = _pick((DOOMED_SECRET,) if delete else SECRETS, out["name"], MISSING["secret"])
    elif "name" in out:
        out["name"] = _pick((DOOMED,) if delete else SESSIONS, out["name"])
    if "user" in out:
        out["user"] = _pick((MEMBER,), out["user"])
    if "key_id" in out and SPARE_KEYS:
        out["key_id"] = _pick(tuple(SPARE_KEYS), out["key_id"])
    if "subject_name" in out:
        out["subject_name"] = _pick((DOOMED,) if delete else (MEMBER,), out["subject_name"])
    return out


def _map_query(ctx: HookContext, query: dict[str, Any] | None) -> dict[str, Any] | None:
    if ctx.operation is not None and ctx.operation.path.endswith("/events"):
        return {**(query or {}), "follow": "false"}
    return query


def _document() -> dict[str, Any]:
    """The OpenAPI document as the server builds it; `test_the_fuzzed_document_is_the_served_one` ties the two."""
    return create_app(Settings()).openapi()


ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""What schema-valid data may get: schemathesis's default for `positive_data_acceptance` (`not_a_server_error`
judges the 5xx)."""
SESSIONS_PATH = "/api/projects/{project}/agentic-sessions"
REPO_PATH = "/api/projects/{project}/repo/"
SEMANTIC = {
    # Rules of content that JSON Schema cannot say, so a schema-valid request may still get a 422:
    ("GET", "/api/projects"): "the label selector's grammar",
    ("GET", SESSIONS_PATH): "the label selector's grammar",
    ("POST", SESSIONS_PATH): "a repository the policy refuses, a model of another framework, mainRepoIndex past "
    "the repos, a secret the framework needs",
    ("PATCH", "/api/projects/{project}"): "a default model needs a default framework and must match its pattern",
    ("POST", "/api/projects/{project}/permissions"): "subject names: printable, no '/', a local user's a DNS-1123 "
    "label",
    ("PUT", "/api/admin/projects/{project}/repository-policy"): "a local root may not hold vTeam's own data folder",
    **{("GET", REPO_PATH + part): "the repository policy refuses the URL" for part in ("branches", "tree", "blob")},
}
UPSTREAM = ("/api/user/forges/{forge}/token", REPO_PATH, "/pull-requests")
"""Operations that call a forge: none is reachable here, so their declared 502 naming it is the right answer."""

CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            *(
                {
                    "include-path": path,
                    "include-method": method,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
                }
                for method, path in SEMANTIC
            ),
            {
                "include-path-regex": "|".join(re.escape(part) for part in UPSTREAM),
                "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502"]}},
            },
        ],
        "seed": SEED,
        "request-timeout": 30,
        "max-redirects": 0,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The test sends the real credentials; generated ones would be replaced, and so judged wrongly.
            "with-security-parameters": False,
        },
        "checks": {"enabled": True},
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)
for _path in EXCLUDED_PATHS:
    schema = schema.exclude(path=_path)
schema.hook("map_path_parameters")(_map_path)
schema.hook("map_query")(_map_query)


def test_the_fuzzed_document_is_the_served_one(fuzzed: tuple[Server, str, str]) -> None:
    """The fuzz reads the document in-process (to parametrize at collection); it is the one the server serves."""
    server, token, _who = fuzzed
    with server.client(token=token) as api:
        served = api.get("/api/openapi.json").json()
    local = _document()
    assert {p: sorted(ops) for p, ops in served["paths"].items()} == {
        p: sorted(ops) for p, ops in local["paths"].items()
    }
    assert served["components"]["schemas"]["Problem"] == local["components"]["schemas"]["Problem"]
    create = served["paths"]["/api/projects/{project}/agentic-sessions"]["post"]
    assert create["responses"]["422"]["content"]["application/problem+json"]
    assert {s["$ref"] for s in create["requestBody"]["content"]["application/json"]["schema"]["anyOf"]} == {
        "#/components/schemas/SessionCreate",
        "#/components/schemas/SessionCreateFull",
    }


@schema.parametrize()
def test_no_input_gets_a_server_error_or_an_undeclared_answer(case: Case, fuzzed: tuple[Server, str, str]) -> None:
    server, token, _who = fuzzed
    started = time.monotonic()
    if case.operation.path == "/api/logout" and token != server.token:
        token = _fresh_key(server)
    response = case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code < 300:
        REACHED.setdefault(server.url, set()).add(case.operation.label)
    assert time.monotonic() - started < 30


def test_the_fuzz_reached_past_not_found(fuzzed: tuple[Server, str, str]) -> None:
    """Runs after the fuzz of its identity (pytest groups a module-scoped parameter's tests)."""
    server, _token, who = fuzzed
    assert len(REACHED.get(server.url, ())) >= LEAST_REACHED[who], sorted(REACHED.get(server.url, ()))
