"""A fake github.com on 127.0.0.1 that is held to GitHub's own OpenAPI description, backed by real git repositories.

vTeam forks repositories, pushes branches, opens and merges pull requests and reads files through GitHub's REST API
and git's smart HTTP protocol. Tests of that code are only worth something if the fake answers the way GitHub does,
so this fake:

* serves real bare repositories with `git http-backend` (clone, fetch and push go through the real protocol, HTTP
  basic auth with a token as the password, a real `pre-receive` hook for protected branches);
* reads every answer about git data (branch heads, file contents, submodules, merges) from those repositories;
* validates every REST request and response against GitHub's published OpenAPI description (npm `@octokit/openapi`,
  `api.github.com.json`) with `openapi-core`: the path and method must exist, parameters and request bodies must
  match, the status must be one the operation declares and the body must match its schema. A bad request is answered
  500 and a bad response is still sent; both are recorded in `.violations`, and `.check()` fails the test.

Layout, GitHub Enterprise style: `.url` is the web and git host (like https://github.com), `.api_url` is
`{url}/api/v3`, git repositories are at `{url}/{owner}/{repo}.git`.

Deliberate exemptions from validation, each because GitHub behaves so on every operation whatever the description
declares: 304 Not Modified on GETs (conditional requests are documented globally); 401, 403, 404 and 429 error
answers on operations that do not declare them (bad credentials, rate limits, missing repositories), which must
still match the `basic-error` schema. `POST {url}/login/oauth/access_token` is on the web host, not part of the REST
API nor of its description, so it is not validated at all.

API versions: the description `@octokit/openapi` ships as api.github.com.json is the default REST API version
(2022-11-28), and that is what the fake serves and validates whatever `X-GitHub-Api-Version` a client sends (they are
collected in `.api_versions`). githubkit 0.16 sends 2026-03-10 and its models follow that version, which drops some
fields the fake still sends (e.g. pull-request `merge_commit_sha`); extra fields do not bother it.

Known deviations: a ghu_ (user-to-server) token acts with its user's access on repositories where its App is
installed (GitHub intersects finer-grained); a "rebase" merge that cannot fast-forward is written as one commit
(like a squash); fork creation is synchronous on disk, only its visibility is delayed (`fork_delay`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.githttp import http_backend, read_body

Json = Any
Access = Literal["admin", "maintain", "write", "triage", "read", "none"]

API_PREFIX = "/api/v3"
DOCS = "https://docs.github.com/rest"
SPEC_HOST = "https://api.github.com"
GLOBAL_ERROR_STATUSES = frozenset({401, 403, 404, 429})
MULTI_SEGMENT_EXTRA = frozenset({"branch"})  # GitHub takes branch names with slashes unencoded; the spec says not
AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "vTeam Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "vTeam Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
GITHUB_ENV = {
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
}
PRE_RECEIVE = """#!/bin/sh
# Installed by the fake GitHub: refuse updates of the branches listed in protected-branches, as GitHub does.
status=0
while read -r old new ref; do
  branch="${ref#refs/heads/}"
  if [ "$branch" != "$ref" ] && grep -qxF "$branch" protected-branches 2>/dev/null; then
    echo "error: GH006: Protected branch update failed for $ref." >&2
    echo "error: Changes must be made through a pull request." >&2
    status=1
  fi
done
exit $status
"""
DEFAULT_INSTALLATION_PERMISSIONS = {"contents": "write", "pull_requests": "write", "metadata": "read"}
NOT_ACCESSIBLE = "There is at least one repository that does not exist or is not accessible to the parent installation."
MERGE_FORBIDDEN = {
    "merge": "Merge commits are not allowed on this repository.",
    "squash": "Squash merges are not allowed on this repository.",
    "rebase": "Rebase merges are not allowed on this repository.",
}
ACCESS_RANK: dict[str, int] = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


# ---------------------------------------------------------------------------------------------------------------
# The OpenAPI description: found once, loaded once per process.


@functools.cache
def openapi_path() -> Path | None:
    """GitHub's OpenAPI description: `$VTEAM_TEST_GITHUB_OPENAPI`, else the copy `make test` installs; None if absent.

    Cached: the result of the first call holds for the process (tests clear VTEAM_* variables per test).
    """
    configured = os.environ.get("VTEAM_TEST_GITHUB_OPENAPI")
    root = Path(__file__).resolve().parents[2]
    default = root / ".testdata/node_modules/@octokit/openapi/generated/api.github.com.json"
    path = Path(configured) if configured else default
    return path if path.is_file() else None


class _Spec:
    """The description, an index of its operations, and validators built from it."""

    def __init__(self, path: Path) -> None:
        from openapi_core import Config, OpenAPI  # imported here: slow, and only needed with the file

        started = time.perf_counter()
        self.document: dict[str, Any] = json.loads(path.read_bytes())
        self.openapi = OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))
        self.operations: list[tuple[re.Pattern[str], list[str], str, dict[str, Any], frozenset[str]]] = []
        for template, item in self.document["paths"].items():
            multi = self._multi_segment(item)
            pieces = list(self._split(template))
            pattern = "".join(
                ("(.*)" if name in multi else "([^/]+)") if name else re.escape(text) for text, name in pieces
            )
            names = [name for _, name in pieces if name]
            self.operations.append((re.compile(f"^{pattern}$"), names, template, item, multi))
        # literal paths first (/user/installations before /user/{x}), then by fewer parameters
        self.operations.sort(key=lambda entry: (entry[2].count("{"), -len(entry[2])))
        self.load_seconds = time.perf_counter() - started
        self._basic_error: Any = None

    @staticmethod
    def _split(template: str) -> Iterator[tuple[str, str]]:
        for match in re.finditer(r"\{([^}]+)\}|[^{]+", template):
            yield match.group(0), match.group(1) or ""

    def _multi_segment(self, item: dict[str, Any]) -> frozenset[str]:
        names: set[str] = set()
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for param in operation.get("parameters", []):
                param = self.resolve(param)
                if param.get("in") == "path" and (param.get("x-multi-segment") or param["name"] in MULTI_SEGMENT_EXTRA):
                    names.add(param["name"])
        return frozenset(names)

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def find(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str], frozenset[str]] | None:
        for pattern, names, template, item, multi in self.operations:
            match = pattern.match(path)
            if match and method.lower() in item:
                params = {name: unquote(value) for name, value in zip(names, match.groups(), strict=True)}
                if all(value for name, value in params.items() if name != "path"):
                    return template, item[method.lower()], params, multi
        return None

    def query_names(self, operation: dict[str, Any]) -> set[str]:
        params = (self.resolve(p) for p in operation.get("parameters", []))
        return {p["name"] for p in params if p.get("in") == "query"}

    def declared(self, operation: dict[str, Any], status: int) -> bool:
        responses = operation.get("responses", {})
        return str(status) in responses or "default" in responses

    def basic_error_errors(self, body: Json) -> list[str]:
        if self._basic_error is None:
            from openapi_schema_validator import OAS30Validator

            self._basic_error = OAS30Validator(self.document["components"]["schemas"]["basic-error"])
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in self._basic_error.iter_errors(body)
        ]


_spec_lock = threading.Lock()


def load_spec() -> _Spec:
    """The parsed description, once per process (about a second: 13 MB of JSON)."""
    with _spec_lock:
        return _load_spec()


@functools.cache
def _load_spec() -> _Spec:
    path = openapi_path()
    if path is None:
        raise FileNotFoundError("GitHub's OpenAPI description (npm @octokit/openapi) is not installed; run make test")
    return _Spec(path)


def _explain(exc: BaseException) -> str:
    """openapi-core's exception chain as one readable line: the schema errors, with where they are."""
    parts = [str(exc)]
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 5:
        errors = getattr(cause, "schema_errors", None)
        if errors:
            from jsonschema.exceptions import best_match

            details = []
            for error in errors[:8]:
                where = "/".join(map(str, error.absolute_path)) or "$"
                deepest = best_match(error.context) if error.context else None
                message = error.message if deepest is None else f"{error.message[:80]}… ({deepest.message})"
                details.append(f"{where}: {message[:300]}")
            return f"{str(exc)[:200]}: " + "; ".join(details)
        parts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return " / ".join(p for p in parts if p)[:1000]


# ---------------------------------------------------------------------------------------------------------------
# State


def _now() -> float:
    return time.time()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(f"0:{number}".encode()).decode().rstrip("=")


@dataclass
class _Account:
    login: str
    id: int
    type: Literal["User", "Organization", "Bot"] = "User"
    created_at: float = field(default_factory=_now)


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    path: Path
    private: bool
    default_branch: str
    allow_merge_commit: bool = True
    allow_squash_merge: bool = True
    allow_rebase_merge: bool = True
    parent: _Repo | None = None
    collaborators: dict[str, str] = field(default_factory=dict)
    hidden_polls: int = 0
    created_at: float = field(default_factory=_now)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def source(self) -> _Repo | None:
        repo = self.parent
        while repo is not None and repo.parent is not None:
            repo = repo.parent
        return repo

    @property
    def network(self) -> _Repo:
        return self.source or self


@dataclass
class _Pull:
    number: int
    id: int
    base_repo: _Repo
    head_repo: _Repo
    head_ref: str
    base_ref: str
    title: str
    body: str | None
    user: str
    draft: bool
    maintainer_can_modify: bool
    created_at: float
    updated_at: float
    state: Literal["open", "closed"] = "open"
    closed_at: float | None = None
    merged_at: float | None = None
    merge_commit_sha: str | None = None
    merged_by: str | None = None
    head_sha: str = ""


@dataclass
class App:
    """A GitHub App registered with the fake; `private_key_pem` signs its JWTs."""

    app_id: int
    slug: str
    name: str
    owner: str
    client_id: str
    client_secret: str
    private_key_pem: str
    public_key_pem: str
    created_at: float = field(default_factory=_now)


@dataclass
class _Installation:
    id: int
    app: App
    account: str
    repositories: list[str] | None
    permissions: dict[str, str]
    created_at: float = field(default_factory=_now)


@dataclass
class _Token:
    value: str
    kind: Literal["pat", "oauth", "installation"]
    login: str | None = None
    app: App | None = None
    installation: _Installation | None = None
    expires_at: float | None = None
    repositories: list[str] | None = None
    permissions: dict[str, str] = field(default_factory=dict)

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= _now()


@dataclass
class _Caller:
    kind: Literal["anonymous", "user", "installation", "app"]
    login: str | None = None
    token: _Token | None = None
    app: App | None = None


class _Reject(Exception):
    """An error answer: raised anywhere in a handler, sent as `status` with `body`."""

    def __init__(self, code: int, message: str, doc: str = DOCS, **extra: Any) -> None:
        super().__init__(message)
        self.status = code
        self.body: dict[str, Any] = {"message": message, "documentation_url": doc, **extra}
        self.headers: dict[str, str] = {}


def _not_found(doc: str = DOCS) -> _Reject:
    return _Reject(404, "Not Found", doc, status="404")


def _validation_failed(doc: str, *errors: dict[str, Any]) -> _Reject:
    return _Reject(422, "Validation Failed", doc, errors=list(errors), status="422")


@dataclass
class _Reply:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Json
    headers: dict[str, str]
    caller: _Caller


class FakeGitHub:
    """github.com for tests. Use as `with FakeGitHub(tmp_path) as fake:`; call `fake.check()` at the end."""

    def __init__(self, root: Path) -> None:
        self.spec = load_spec()
        self.root = root / "fake-github"
        self.repos_root = self.root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.violations: list[str] = []
        self.requests: list[tuple[str, str, int]] = []
        self.git_requests: list[tuple[str, str, int]] = []
        self.api_versions: set[str] = set()
        self.not_modified = 0
        self.fork_delay = 1
        self.installation_token_ttl = 3600.0
        self.rate_limit_limit = 5000
        self.rate_limit_used = 0
        self.rate_limit_reset_at = _now() + 3600
        self.rate_limited: list[float] = []
        self.resumed_at: float | None = None
        self.validation_seconds: list[float] = []
        self._rate_limit_pending = 0
        self._rate_limit_until = 0.0
        self._rate_limit_secondary = False
        self._ids = itertools.count(1001)
        self._accounts: dict[str, _Account] = {}
        self._repos: dict[str, _Repo] = {}
        self._pulls: dict[str, list[_Pull]] = {}
        self._apps: dict[int, App] = {}
        self._installations: dict[int, _Installation] = {}
        self._tokens: dict[str, _Token] = {}
        self._oauth_codes: dict[str, str] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.api_url = f"{self.url}{API_PREFIX}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def check(self) -> None:
        """Fail the test if any request or response did not match GitHub's OpenAPI description."""
        with self.lock:
            violations = list(self.violations)
        assert not violations, "the fake GitHub saw requests/responses GitHub's OpenAPI description forbids:\n" + (
            "\n".join(violations)
        )

    # -- test setup -------------------------------------------------------------------------------------------

    def add_user(self, login: str) -> str:
        """Create user `login` (if new) and return a fresh personal access token of theirs."""
        with self.lock:
            self._account(login)
            token = "ghp_" + secrets.token_hex(18)
            self._tokens[token] = _Token(token, "pat", login=login)
            return token

    def add_org(self, login: str) -> None:
        with self.lock:
            self._account(login, "Organization")

    def create_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str] | None = None,
        default_branch: str = "main",
        private: bool = False,
        allow_merge_commit: bool = True,
        allow_squash_merge: bool = True,
        allow_rebase_merge: bool = True,
        submodules: dict[str, str] | None = None,
    ) -> Path:
        """A repository with one commit on `default_branch` (fixed author and date) holding `files`.

        `submodules` maps a path to the URL of another repository: a gitlink to that repository's default-branch
        head when it is one of this fake's, else to a made-up commit, plus the `.gitmodules` entry.
        """
        with self.lock:
            self._account(owner)
            bare = self.repos_root / owner / f"{name}.git"
            _git("init", "--quiet", "--bare", "-b", default_branch, str(bare))
            self._install_hook(bare)
            content = dict(files if files is not None else {"README.md": f"# {name}\n"})
            if submodules:
                content[".gitmodules"] = "".join(
                    f'[submodule "{p}"]\n\tpath = {p}\n\turl = {u}\n' for p, u in submodules.items()
                )
            gitlinks = {p: self._gitlink_target(u) for p, u in (submodules or {}).items()}
            sha = _commit_files(bare, content, gitlinks, message="Initial commit")
            _git("--git-dir", str(bare), "update-ref", f"refs/heads/{default_branch}", sha)
            self._repos[f"{owner}/{name}".lower()] = _Repo(
                owner,
                name,
                next(self._ids),
                bare,
                private,
                default_branch,
                allow_merge_commit,
                allow_squash_merge,
                allow_rebase_merge,
            )
            return bare

    def add_collaborator(self, owner: str, repo: str, login: str, permission: str = "write") -> None:
        """Give `login` a role on the repository: read, triage, write, maintain or admin ("push"/"pull" accepted)."""
        role = {"push": "write", "pull": "read"}.get(permission, permission)
        assert role in ACCESS_RANK, permission
        assert role != "none", permission
        with self.lock:
            self._account(login)
            self._repo(owner, repo).collaborators[login] = role

    def protect_branch(self, owner: str, repo: str, branch: str) -> None:
        with self.lock:
            listing = self._repo(owner, repo).path / "protected-branches"
            names = set(listing.read_text().split()) if listing.exists() else set()
            listing.write_text("".join(f"{n}\n" for n in sorted(names | {branch})))

    def branch_sha(self, owner: str, repo: str, branch: str) -> str | None:
        with self.lock:
            return _ref_sha(self._repo(owner, repo).path, f"refs/heads/{branch}")

    def pulls(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """The repository's pull requests as GitHub renders them (as the repository's owner sees them)."""
        with self.lock:
            target = self._repo(owner, repo)
            return [self._pull_json(p, simple=False) for p in self._pulls.get(target.full_name.lower(), [])]

    def create_app(
        self,
        slug: str = "vteam",
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        name: str | None = None,
        owner: str = "app-owner",
    ) -> App:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        with self.lock:
            self._account(owner)
            self._account(f"{slug}[bot]", "Bot")
            app = App(
                app_id=next(self._ids),
                slug=slug,
                name=name or slug,
                owner=owner,
                client_id=client_id or "Iv1." + secrets.token_hex(8),
                client_secret=client_secret or secrets.token_hex(20),
                private_key_pem=private_pem,
                public_key_pem=public_pem,
            )
            self._apps[app.app_id] = app
            return app

    def install_app(
        self,
        app: App,
        account: str,
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> int:
        """Install `app` on `account` (all its repositories, or only `repositories`, "owner/name"); the id."""
        with self.lock:
            self._account(account)
            installation = _Installation(
                next(self._ids),
                app,
                account,
                [r.lower() for r in repositories] if repositories is not None else None,
                dict(permissions or DEFAULT_INSTALLATION_PERMISSIONS),
            )
            self._installations[installation.id] = installation
            return installation.id

    def uninstall_app(self, installation: int) -> None:
        """Remove an installation, as its account would on GitHub; its tokens stop working."""
        with self.lock:
            self._installations.pop(installation, None)
            for key in [k for k, t in self._tokens.items() if t.installation and t.installation.id == installation]:
                del self._tokens[key]

    def expire_installation_tokens(self) -> None:
        with self.lock:
            for token in self._tokens.values():
                if token.kind == "installation":
                    token.expires_at = _now() - 1

    def oauth_code(self, login: str) -> str:
        """A one-time code, as GitHub's web flow hands back, that `POST /login/oauth/access_token` trades for ghu_."""
        with self.lock:
            self._account(login)
            code = secrets.token_hex(10)
            self._oauth_codes[code] = login
            return code

    def rate_limit(self, count: int = 1, reset_in: float = 1.0, secondary: bool = False) -> None:
        """Reject the next `count` API requests: 403 primary rate limit until now+reset_in, or 429 secondary."""
        with self.lock:
            self._rate_limit_pending = count
            self._rate_limit_until = _now() + reset_in
            self._rate_limit_secondary = secondary
            self.resumed_at = None

    # -- internals: state -------------------------------------------------------------------------------------

    def _account(self, login: str, kind: Literal["User", "Organization", "Bot"] = "User") -> _Account:
        account = self._accounts.get(login.lower())
        if account is None:
            account = self._accounts[login.lower()] = _Account(login, next(self._ids), kind)
        return account

    def _repo(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}")
        return repo

    def _install_hook(self, bare: Path) -> None:
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)

    def _gitlink_target(self, url: str) -> str:
        match = re.fullmatch(re.escape(self.url) + r"/([^/]+)/(.+?)(?:\.git)?/?", url)
        if match and f"{match[1]}/{match[2]}".lower() in self._repos:
            repo = self._repo(match[1], match[2])
            sha = _ref_sha(repo.path, f"refs/heads/{repo.default_branch}")
            if sha:
                return sha
        return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()

    def _access(self, caller: _Caller, repo: _Repo) -> Access:
        public: Access = "none" if repo.private else "read"
        if caller.kind == "installation" and caller.token is not None:
            installation = caller.token.installation
            assert installation is not None
            if not self._covers(installation, repo) or (
                caller.token.repositories is not None and repo.full_name.lower() not in caller.token.repositories
            ):
                return public
            return "write" if caller.token.permissions.get("contents") == "write" else "read"
        if caller.kind != "user" or caller.login is None:
            return public
        if caller.token is not None and caller.token.kind == "oauth":
            app = caller.token.app
            if not any(i.app is app and self._covers(i, repo) for i in self._installations.values()):
                return public
        if caller.login.lower() == repo.owner.lower():
            return "admin"
        role = next((r for u, r in repo.collaborators.items() if u.lower() == caller.login.lower()), None)
        if role is not None:
            return role  # type: ignore[return-value]
        return public

    def _user_access(self, login: str, repo: _Repo) -> Access:
        return self._access(_Caller("user", login=login), repo)

    def _covers(self, installation: _Installation, repo: _Repo) -> bool:
        if installation.account.lower() != repo.owner.lower():
            return False
        return installation.repositories is None or repo.full_name.lower() in installation.repositories

    def _visible_repo(self, caller: _Caller, owner: str, name: str, *, poll: bool = False) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None or self._access(caller, repo) == "none":
            raise _not_found(f"{DOCS}/repos/repos#get-a-repository")
        if repo.hidden_polls > 0:
            if poll:
                repo.hidden_polls -= 1
            raise _not_found(f"{DOCS}/repos/repos#get-a-repository")
        return repo

    def _caller(self, headers: dict[str, str], path: str) -> _Caller:
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        credential = credential.strip()
        if not value:
            return _Caller("anonymous")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                raise _bad_credentials() from None
        elif scheme.lower() not in ("token", "bearer"):
            raise _bad_credentials()
        if credential.count(".") == 2:
            return self._app_caller(credential, path)
        token = self._tokens.get(credential)
        if token is None or token.expired():
            raise _bad_credentials()
        if token.kind == "installation":
            assert token.installation is not None
            return _Caller("installation", login=f"{token.installation.app.slug}[bot]", token=token)
        return _Caller("user", login=token.login, token=token, app=token.app)

    def _app_caller(self, credential: str, path: str) -> _Caller:
        """An App JWT: RS256 signed by the App's key, `iss` its id (string or number), exp at most 10 min after iat.

        Claims are checked here rather than by PyJWT, whose decoder refuses a numeric `iss` that GitHub accepts.
        """
        doc = "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app"
        undecodable = _Reject(401, "A JSON web token could not be decoded", doc, status="401")
        try:
            unverified = json.loads(
                jwt.api_jws.PyJWS().decode_complete(credential, options={"verify_signature": False})["payload"]
            )
            app = self._apps.get(int(unverified.get("iss", 0)))
            if app is None:
                raise undecodable
            signed = jwt.api_jws.PyJWS().decode_complete(credential, app.public_key_pem, algorithms=["RS256"])
            claims = json.loads(signed["payload"])
            issued, expires = float(claims["iat"]), float(claims["exp"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
            raise undecodable from None
        now = _now()
        if expires <= now - 60:
            raise _Reject(
                401, "'Expiration time' claim ('exp') must be a numeric value in the future.", doc, status="401"
            )
        if expires - issued > 600:
            raise _Reject(401, "'Expiration time' claim ('exp') is too far in the future", doc, status="401")
        if issued > now + 60:
            message = "'Issued at' claim ('iat') must be an Integer representing the time in the past."
            raise _Reject(401, message, doc, status="401")
        if not (path == "/app" or path.startswith("/app/") or path.endswith("/installation")):
            raise _Reject(403, "Resource not accessible by integration", doc, status="403")
        return _Caller("app", app=app)

    # -- internals: JSON builders -----------------------------------------------------------------------------

    def _user_json(self, login: str) -> dict[str, Any]:
        account = self._account(login)
        escaped = quote(account.login, safe="")
        base = f"{self.api_url}/users/{escaped}"
        return {
            "login": account.login,
            "id": account.id,
            "node_id": _node_id({"Bot": "BOT_", "Organization": "O_"}.get(account.type, "U_"), account.id),
            "avatar_url": f"{self.url}/avatars/u/{account.id}?v=4",
            "gravatar_id": "",
            "url": base,
            "html_url": f"{self.url}/{escaped}"
            if account.type != "Bot"
            else f"{self.url}/apps/{account.login.removesuffix('[bot]')}",
            "followers_url": f"{base}/followers",
            "following_url": f"{base}/following{{/other_user}}",
            "gists_url": f"{base}/gists{{/gist_id}}",
            "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{base}/subscriptions",
            "organizations_url": f"{base}/orgs",
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{base}/received_events",
            "type": account.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _private_user_json(self, login: str) -> dict[str, Any]:
        account = self._account(login)
        owned = [r for r in self._repos.values() if r.owner.lower() == account.login.lower()]
        return {
            **self._user_json(login),
            "user_view_type": "private",
            "name": account.login.title(),
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "notification_email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": sum(not r.private for r in owned),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": _iso(account.created_at),
            "updated_at": _iso(account.created_at),
            "private_gists": 0,
            "total_private_repos": sum(r.private for r in owned),
            "owned_private_repos": sum(r.private for r in owned),
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
        }

    def _repo_json(self, repo: _Repo, caller: _Caller | None, *, full: bool) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        html = f"{self.url}/{repo.full_name}"
        created = _iso(repo.created_at)
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("R_", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user_json(repo.owner),
            "html_url": html,
            "description": None,
            "fork": repo.parent is not None,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": created,
            "updated_at": created,
            "pushed_at": created,
            "git_url": f"git://{self.url.removeprefix('http://')}/{repo.full_name}.git",
            "ssh_url": f"git@{self.url.removeprefix('http://').split(':')[0]}:{repo.full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 1,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": sum(r.parent is repo for r in self._repos.values()),
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": sum(p.state == "open" for p in self._pulls.get(repo.full_name.lower(), [])),
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "default_branch": repo.default_branch,
        }
        data["forks"] = data["forks_count"]
        data["open_issues"] = data["open_issues_count"]
        data["watchers"] = data["watchers_count"]
        if caller is not None and caller.kind != "anonymous":
            rank = ACCESS_RANK[self._access(caller, repo)]
            data["permissions"] = {
                "admin": rank >= 5,
                "maintain": rank >= 4,
                "push": rank >= 3,
                "triage": rank >= 2,
                "pull": rank >= 1,
            }
        if full:
            data.update(
                {
                    "allow_merge_commit": repo.allow_merge_commit,
                    "allow_squash_merge": repo.allow_squash_merge,
                    "allow_rebase_merge": repo.allow_rebase_merge,
                    "allow_auto_merge": False,
                    "delete_branch_on_merge": False,
                    "allow_update_branch": False,
                    "use_squash_pr_title_as_default": False,
                    "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                    "squash_merge_commit_message": "COMMIT_MESSAGES",
                    "merge_commit_title": "MERGE_MESSAGE",
                    "merge_commit_message": "PR_TITLE",
                    "network_count": sum(r.network is repo.network for r in self._repos.values()) - 1,
                    "subscribers_count": 1,
                }
            )
            if repo.parent is not None:
                data["parent"] = self._repo_json(repo.parent, caller, full=False)
                data["source"] = self._repo_json(repo.network, caller, full=False)
        return data

    def _pull_json(self, pull: _Pull, *, simple: bool, caller: _Caller | None = None) -> dict[str, Any]:
        repo = pull.base_repo
        api = f"{self.api_url}/repos/{repo.full_name}"
        html = f"{self.url}/{repo.full_name}/pull/{pull.number}"
        head_sha = pull.head_sha
        if pull.state == "open":
            head_sha = _ref_sha(pull.head_repo.path, f"refs/heads/{pull.head_ref}") or pull.head_sha
        base_sha = _ref_sha(repo.path, f"refs/heads/{pull.base_ref}") or ""
        links = {
            "self": {"href": f"{api}/pulls/{pull.number}"},
            "html": {"href": html},
            "issue": {"href": f"{api}/issues/{pull.number}"},
            "comments": {"href": f"{api}/issues/{pull.number}/comments"},
            "review_comments": {"href": f"{api}/pulls/{pull.number}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{pull.number}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        }
        association = "OWNER" if pull.user.lower() == repo.owner.lower() else "NONE"
        if association == "NONE" and self._user_access(pull.user, repo) in ("write", "maintain", "admin", "triage"):
            association = "COLLABORATOR"

        def end(which: _Repo, ref: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{which.owner}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self._user_json(which.owner),
                "repo": self._repo_json(which, caller, full=False),
            }

        data: dict[str, Any] = {
            "url": f"{api}/pulls/{pull.number}",
            "id": pull.id,
            "node_id": _node_id("PR_", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{api}/pulls/{pull.number}/commits",
            "review_comments_url": f"{api}/pulls/{pull.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user_json(pull.user),
            "body": pull.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _iso(pull.created_at),
            "updated_at": _iso(pull.updated_at),
            "closed_at": _iso(pull.closed_at) if pull.closed_at else None,
            "merged_at": _iso(pull.merged_at) if pull.merged_at else None,
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": end(pull.head_repo, pull.head_ref, head_sha),
            "base": end(repo, pull.base_ref, base_sha),
            "_links": links,
            "author_association": association,
            "auto_merge": None,
            "draft": pull.draft,
        }
        if not simple:
            mergeable: bool | None = None
            if pull.state == "open":
                mergeable = _merge_tree(repo.path, base_sha, head_sha) is not None if base_sha and head_sha else None
            count = _count_commits(repo.path, base_sha, head_sha) if base_sha and head_sha else 0
            data.update(
                {
                    "merged": pull.merged_at is not None,
                    "mergeable": mergeable,
                    "rebaseable": mergeable,
                    "mergeable_state": {True: "clean", False: "dirty", None: "unknown"}[mergeable],
                    "merged_by": self._user_json(pull.merged_by) if pull.merged_by else None,
                    "comments": 0,
                    "review_comments": 0,
                    "maintainer_can_modify": pull.maintainer_can_modify,
                    "commits": count,
                    "additions": 0,
                    "deletions": 0,
                    "changed_files": 0,
                }
            )
        return data

    def _installation_json(self, installation: _Installation) -> dict[str, Any]:
        account = self._account(installation.account)
        return {
            "id": installation.id,
            "client_id": installation.app.client_id,
            "account": self._user_json(account.login),
            "repository_selection": "all" if installation.repositories is None else "selected",
            "access_tokens_url": f"{self.api_url}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.api_url}/installation/repositories",
            "html_url": f"{self.url}/settings/installations/{installation.id}",
            "app_id": installation.app.app_id,
            "app_slug": installation.app.slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(installation.permissions),
            "events": ["pull_request", "push"],
            "created_at": _iso(installation.created_at),
            "updated_at": _iso(installation.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def _app_json(self, app: App) -> dict[str, Any]:
        return {
            "id": app.app_id,
            "slug": app.slug,
            "client_id": app.client_id,
            "node_id": _node_id("A_", app.app_id),
            "owner": self._user_json(app.owner),
            "name": app.name,
            "description": None,
            "external_url": f"{self.url}/{app.owner}",
            "html_url": f"{self.url}/apps/{app.slug}",
            "created_at": _iso(app.created_at),
            "updated_at": _iso(app.created_at),
            "permissions": dict(DEFAULT_INSTALLATION_PERMISSIONS),
            "events": ["pull_request", "push"],
            "installations_count": sum(i.app is app for i in self._installations.values()),
        }

    def _commit_json(self, repo: _Repo, sha: str) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repo.full_name}"
        raw = _git("--git-dir", str(repo.path), "cat-file", "commit", sha)
        header, _, message = raw.partition("\n\n")
        tree = ""
        parents: list[str] = []
        people: dict[str, dict[str, str]] = {}
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key in ("author", "committer"):
                match = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
                if match:
                    people[key] = {"name": match[1], "email": match[2], "date": _iso(int(match[3]))}
        return {
            "sha": sha,
            "node_id": _node_id("C_", int(sha[:8], 16)),
            "url": f"{api}/commits/{sha}",
            "html_url": f"{self.url}/{repo.full_name}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "author": people.get("author"),
                "committer": people.get("committer"),
                "message": message.rstrip("\n"),
                "comment_count": 0,
                "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "author": {},
            "committer": {},
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{self.url}/{repo.full_name}/commit/{p}"}
                for p in parents
            ],
        }

    def _content_entry(self, repo: _Repo, ref: str, mode: str, kind: str, sha: str, size: int, path: str) -> Json:
        api = f"{self.api_url}/repos/{repo.full_name}"
        quoted = quote(path)
        entry_type = {"tree": "dir", "commit": "submodule"}.get(kind, "symlink" if mode == "120000" else "file")
        git_url = f"{api}/git/{'trees' if kind in ('tree', 'commit') else 'blobs'}/{sha}"
        html_url: str | None = f"{self.url}/{repo.full_name}/{'tree' if kind == 'tree' else 'blob'}/{ref}/{quoted}"
        download_url: str | None = None
        if entry_type in ("file", "symlink"):
            download_url = f"{self.url}/raw/{repo.full_name}/{ref}/{quoted}"
        if entry_type == "submodule":
            html_url = None
        self_url = f"{api}/contents/{quoted}?ref={quote(ref)}"
        return {
            "type": entry_type,
            "size": size,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": self_url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": download_url,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        }

    # -- internals: HTTP --------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def do_PUT(self) -> None:
                fake._serve(self)

            def do_PATCH(self) -> None:
                fake._serve(self)

            def do_DELETE(self) -> None:
                fake._serve(self)

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        body = read_body(handler)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            if parts.path == API_PREFIX or parts.path.startswith(API_PREFIX + "/"):
                status, payload, reply_headers = self._api(handler.command, parts.path, parts.query, headers, body)
            elif parts.path == "/login/oauth/access_token" and handler.command == "POST":
                status, payload, reply_headers = self._oauth_exchange(headers, body)
            elif re.match(r"^/[^/]+/[^/]+?\.git/(info/refs|git-upload-pack|git-receive-pack)$", parts.path):
                status, payload, reply_headers = self._git(handler.command, parts.path, parts.query, headers, body)
            else:
                status, payload, reply_headers = 404, b"Not Found", {"Content-Type": "text/plain"}
        except Exception as exc:  # a bug in the fake: make it loud
            with self.lock:
                self.violations.append(f"{handler.command} {parts.path}: the fake crashed: {exc!r}")
            status, payload, reply_headers = 500, repr(exc).encode(), {"Content-Type": "text/plain"}
        handler.send_response(status)
        for name, value in reply_headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    # API: validation around the handlers

    def _api(
        self, method: str, raw_path: str, query_string: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        path = raw_path[len(API_PREFIX) :] or "/"
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        found = self.spec.find(method, path)
        problems: list[str] = []
        operation: dict[str, Any] = {}
        params: dict[str, str] = {}
        template, multi = path, frozenset[str]()
        if found is None:
            problems.append("no such operation in GitHub's OpenAPI description")
        else:
            template, operation, params, multi = found
            problems += self._validate_request(method, path, template, query_string, headers, raw_body, params, multi)
            unknown = set(query) - self.spec.query_names(operation)
            if unknown:
                problems.append(f"query parameters the operation does not declare: {sorted(unknown)}")
        label = f"{method} {path}"
        if "x-github-api-version" in headers:
            with self.lock:
                self.api_versions.add(headers["x-github-api-version"])
        if problems:
            with self.lock:
                self.violations += [f"{label}: bad request: {p}" for p in problems]
                self.requests.append((method, path, 500))
            message = "fake GitHub: the request does not match GitHub's OpenAPI description: " + "; ".join(problems)
            return 500, _dump({"message": message, "documentation_url": DOCS}), {"Content-Type": "application/json"}

        with self.lock:
            reply = self._dispatch(method, path, template, params, query, headers, raw_body)
            self._rate_limit_headers(reply)
            self.requests.append((method, path, reply.status))
        self._validate_response(
            label, method, path, template, query_string, headers, raw_body, params, multi, operation, reply
        )
        payload = b"" if reply.body is None else _dump(reply.body)
        reply.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        reply.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
        reply.headers["X-GitHub-Request-Id"] = secrets.token_hex(8).upper()
        if method == "GET" and reply.status == 200:
            etag = '"' + hashlib.sha256(payload).hexdigest() + '"'
            reply.headers["ETag"] = etag
            wanted = [t.strip().removeprefix("W/") for t in headers.get("if-none-match", "").split(",")]
            if etag in wanted or "*" in wanted:
                with self.lock:
                    self.not_modified += 1
                    self.rate_limit_used -= 1  # GitHub does not count 304s against the primary rate limit
                    self.requests[-1] = (method, path, 304)
                reply.headers.pop("Content-Type")
                return 304, b"", reply.headers
        return reply.status, payload, reply.headers

    def _validate_request(
        self,
        method: str,
        path: str,
        template: str,
        query_string: str,
        headers: dict[str, str],
        raw_body: bytes,
        params: dict[str, str],
        multi: frozenset[str],
    ) -> list[str]:
        from openapi_core.testing import MockRequest

        started = time.perf_counter()
        try:
            self.spec.openapi.validate_request(
                _mock_request(MockRequest, method, path, template, query_string, headers, raw_body, params, multi)
            )
        except Exception as exc:
            return [_explain(exc)]
        finally:
            with self.lock:
                self.validation_seconds.append(time.perf_counter() - started)
        return []

    def _validate_response(
        self,
        label: str,
        method: str,
        path: str,
        template: str,
        query_string: str,
        headers: dict[str, str],
        raw_body: bytes,
        params: dict[str, str],
        multi: frozenset[str],
        operation: dict[str, Any],
        reply: _Reply,
    ) -> None:
        from openapi_core.testing import MockRequest, MockResponse

        problems: list[str] = []
        started = time.perf_counter()
        if not self.spec.declared(operation, reply.status) and reply.status in GLOBAL_ERROR_STATUSES:
            problems = self.spec.basic_error_errors(reply.body)
        elif reply.status == 304 and method == "GET":
            pass
        else:
            request = _mock_request(MockRequest, method, path, template, query_string, headers, raw_body, params, multi)
            response = MockResponse(
                _dump(reply.body) if reply.body is not None else b"",
                status_code=reply.status,
                headers=reply.headers,
                content_type="application/json" if reply.body is not None else "",
            )
            try:
                self.spec.openapi.validate_response(request, response)
            except Exception as exc:
                problems = [_explain(exc)]
                if isinstance(reply.body, list) and "discriminator" in json.dumps(operation.get("responses", {})):
                    problems = self._validate_list_without_discriminator(operation, reply)
        with self.lock:
            self.validation_seconds.append(time.perf_counter() - started)
            self.violations += [f"{label}: bad response {reply.status}: {p}" for p in problems]

    def _validate_list_without_discriminator(self, operation: dict[str, Any], reply: _Reply) -> list[str]:
        """Spec quirk: get-content's oneOf maps discriminator value "array" to content-directory, a JSON array,
        which openapi-core cannot apply (a discriminator needs an object). Validate arrays against the array branches
        of the oneOf with plain JSON Schema instead."""
        from openapi_schema_validator import OAS30Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        response = self.spec.resolve(operation["responses"][str(reply.status)])
        schema = response["content"]["application/json"]["schema"]
        branches = [b for b in schema.get("oneOf", []) if self.spec.resolve(b).get("type") == "array"]
        registry: Registry[Any] = Registry().with_resource(
            "urn:github", Resource.from_contents(self.spec.document, default_specification=DRAFT4)
        )
        problems: list[str] = []
        for branch in branches:
            validator = OAS30Validator({"$ref": "urn:github" + branch["$ref"]}, registry=registry)
            problems = [
                f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(reply.body)
            ]
            if not problems:
                return []
        return problems or ["a JSON array where the operation declares no array"]

    def _rate_limit_headers(self, reply: _Reply) -> None:
        if "x-ratelimit-remaining" in reply.headers:
            return
        self.rate_limit_used += 1
        if _now() > self.rate_limit_reset_at:
            self.rate_limit_reset_at = _now() + 3600
            self.rate_limit_used = 1
        reply.headers.update(
            {
                "x-ratelimit-limit": str(self.rate_limit_limit),
                "x-ratelimit-remaining": str(max(0, self.rate_limit_limit - self.rate_limit_used)),
                "x-ratelimit-reset": str(int(self.rate_limit_reset_at)),
                "x-ratelimit-used": str(self.rate_limit_used),
                "x-ratelimit-resource": "core",
            }
        )

    def _dispatch(
        self,
        method: str,
        path: str,
        template: str,
        params: dict[str, str],
        query: dict[str, str],
        headers: dict[str, str],
        raw_body: bytes,
    ) -> _Reply:
        if self._rate_limit_pending > 0:
            return self._rate_limited()
        if self._rate_limit_until and self.resumed_at is None and self.rate_limited:
            self.resumed_at = _now()
        try:
            caller = self._caller(headers, path)
            body = json.loads(raw_body) if raw_body.strip() else None
            route = ROUTES.get((method, template))
            if route is None:
                raise _Reject(404, "Not Found", DOCS)
            return route(self, _Request(method, path, params, query, body, headers, caller))
        except _Reject as reject:
            return _Reply(reject.status, reject.body, reject.headers)

    def _rate_limited(self) -> _Reply:
        self._rate_limit_pending -= 1
        self.rate_limited.append(_now())
        reset_in = max(0.0, self._rate_limit_until - _now())
        reset = int(self._rate_limit_until) + (0 if self._rate_limit_until.is_integer() else 1)
        headers = {
            "x-ratelimit-limit": str(self.rate_limit_limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(self.rate_limit_limit),
            "x-ratelimit-resource": "core",
        }
        if self._rate_limit_secondary:
            headers["Retry-After"] = str(max(1, int(reset_in + 0.999)))
            headers["x-ratelimit-remaining"] = str(self.rate_limit_limit - self.rate_limit_used)
            headers["x-ratelimit-used"] = str(self.rate_limit_used)
            headers["x-ratelimit-reset"] = str(int(self.rate_limit_reset_at))
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you "
                "reach out to GitHub Support for help, please include the request ID."
            )
            doc = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
            return _Reply(429, {"message": message, "documentation_url": doc}, headers)
        message = (
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the "
            "request ID."
        )
        doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        return _Reply(403, {"message": message, "documentation_url": doc}, headers)

    # OAuth web flow

    def _oauth_exchange(self, headers: dict[str, str], raw_body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if "json" in headers.get("content-type", ""):
            form = {k: str(v) for k, v in (json.loads(raw_body or b"{}") or {}).items()}
        else:
            form = {k: v[-1] for k, v in parse_qs(raw_body.decode()).items()}
        with self.lock:
            app = next((a for a in self._apps.values() if a.client_id == form.get("client_id")), None)
            if app is None or app.client_secret != form.get("client_secret"):
                answer = {
                    "error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are incorrect.",
                    "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
                }
            elif form.get("code") not in self._oauth_codes:
                answer = {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                    "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
                }
            else:
                login = self._oauth_codes.pop(form["code"])
                token = "ghu_" + secrets.token_hex(18)
                self._tokens[token] = _Token(token, "oauth", login=login, app=app)
                answer = {"access_token": token, "token_type": "bearer", "scope": ""}
        if "application/json" in headers.get("accept", ""):
            return 200, _dump(answer), {"Content-Type": "application/json; charset=utf-8"}
        return 200, urlencode(answer).encode(), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    # git smart HTTP

    def _git(
        self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        match = re.match(r"^/([^/]+)/([^/]+?)\.git/(.*)$", path)
        assert match is not None
        owner, name, rest = match[1], match[2], match[3]
        push = rest == "git-receive-pack" or parse_qs(query_string).get("service") == ["git-receive-pack"]
        challenge = {"WWW-Authenticate": 'Basic realm="GitHub"', "Content-Type": "text/plain"}

        def answer(status: int, text: str, extra: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
            with self.lock:
                self.git_requests.append((method, path, status))
            return status, text.encode(), extra or {"Content-Type": "text/plain"}

        with self.lock:
            try:
                caller = self._caller(headers, "/git") if "authorization" in headers else _Caller("anonymous")
            except _Reject:
                return answer(401, "Invalid username or token.", challenge)
            if caller.kind == "app":
                return answer(401, "Invalid username or token.", challenge)
            repo = self._repos.get(f"{owner}/{name}".lower())
            access = self._access(caller, repo) if repo is not None and repo.hidden_polls <= 0 else "none"
            if repo is None or access == "none":
                if caller.kind == "anonymous":
                    return answer(401, "Authentication required.", challenge)
                return answer(404, "Repository not found.")
            if push and caller.kind == "anonymous":
                return answer(401, "Authentication required.", challenge)
            if push and ACCESS_RANK[access] < ACCESS_RANK["write"]:
                return answer(403, f"Permission to {repo.full_name}.git denied to {caller.login}.")
            remote_user = caller.login or "anonymous"
        status, reply, payload = http_backend(
            self.repos_root,
            method,
            f"/{repo.owner}/{repo.name}.git/{rest}",
            query_string,
            headers,
            body,
            remote_user=remote_user,
            env={"HOME": str(self.root)},
        )
        reply_headers = dict(reply)
        with self.lock:
            self.git_requests.append((method, path, status))
        return status, payload, reply_headers

    # -- REST handlers ----------------------------------------------------------------------------------------

    def _get_user(self, request: _Request) -> _Reply:
        caller = request.caller
        if caller.kind == "anonymous":
            raise _Reject(
                401, "Requires authentication", f"{DOCS}/users/users#get-the-authenticated-user", status="401"
            )
        if caller.kind != "user" or caller.login is None:
            raise _Reject(
                403, "Resource not accessible by integration", f"{DOCS}/users/users#get-the-authenticated-user"
            )
        return _Reply(200, self._private_user_json(caller.login))

    def _get_repo(self, request: _Request) -> _Reply:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"], poll=True)
        return _Reply(200, self._repo_json(repo, request.caller, full=True))

    def _get_permission(self, request: _Request) -> _Reply:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        doc = f"{DOCS}/collaborators/collaborators#get-repository-permissions-for-a-user"
        if ACCESS_RANK[self._access(request.caller, repo)] < ACCESS_RANK["write"]:
            raise _Reject(403, "Must have push access to view repository collaborators.", doc, status="403")
        login = request.params["username"]
        if login.lower() not in self._accounts:
            raise _Reject(404, f"{login} is not a user", doc, status="404")
        role = self._user_access(login, repo)
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        rank = ACCESS_RANK[role]
        user = {
            **self._user_json(login),
            "role_name": role,
            "permissions": {
                "admin": rank >= 5,
                "maintain": rank >= 4,
                "push": rank >= 3,
                "triage": rank >= 2,
                "pull": rank >= 1,
            },
        }
        return _Reply(200, {"permission": permission, "role_name": role, "user": user})

    def _create_fork(self, request: _Request) -> _Reply:
        upstream = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        caller = request.caller
        if caller.kind == "anonymous":
            raise _Reject(401, "Requires authentication", f"{DOCS}/repos/forks#create-a-fork", status="401")
        if caller.kind != "user" or caller.login is None:
            raise _Reject(403, "Resource not accessible by integration", f"{DOCS}/repos/forks#create-a-fork")
        body = request.body or {}
        owner = body.get("organization") or caller.login
        if body.get("organization"):
            self._account(owner, "Organization")
        existing = next(
            (r for r in self._repos.values() if r.owner.lower() == owner.lower() and r.network is upstream.network),
            None,
        )
        if existing is not None:
            return _Reply(202, self._repo_json(existing, caller, full=True))
        name = body.get("name") or upstream.name
        while f"{owner}/{name}".lower() in self._repos:
            name = f"{name}-1"
        bare = self.repos_root / owner / f"{name}.git"
        args = ["clone", "--bare", "--quiet"]
        if body.get("default_branch_only"):
            args += ["--single-branch", "--branch", upstream.default_branch]
        _git(*args, str(upstream.path), str(bare))
        _git("--git-dir", str(bare), "remote", "remove", "origin")
        self._install_hook(bare)
        fork = _Repo(
            self._account(owner).login,
            name,
            next(self._ids),
            bare,
            upstream.private,
            upstream.default_branch,
            upstream.allow_merge_commit,
            upstream.allow_squash_merge,
            upstream.allow_rebase_merge,
            parent=upstream,
        )
        self._repos[fork.full_name.lower()] = fork
        reply = _Reply(202, self._repo_json(fork, caller, full=True))
        fork.hidden_polls = self.fork_delay
        return reply

    def _list_branches(self, request: _Request) -> _Reply:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        protected = _protected(repo)
        names = _branches(repo.path)
        if request.query.get("protected") in ("true", "false"):
            wanted = request.query["protected"] == "true"
            names = [n for n in names if (n in protected) == wanted]
        page, headers = self._page(request, names)
        api = f"{self.api_url}/repos/{repo.full_name}"
        items = [
            {
                "name": name,
                "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
                "protected": name in protected,
                "protection_url": f"{api}/branches/{quote(name, safe='')}/protection",
            }
            for name in page
            for sha in [_ref_sha(repo.path, f"refs/heads/{name}") or ""]
        ]
        return _Reply(200, items, headers)

    def _page(self, request: _Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        per_page = max(1, min(100, int(request.query.get("per_page") or 30)))
        page = max(1, int(request.query.get("page") or 1))
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(number: int, rel: str) -> str:
            query = {**request.query, "per_page": str(per_page), "page": str(number)}
            return f'<{self.api_url}{request.path}?{urlencode(query)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _get_branch(self, request: _Request) -> _Reply:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        name = request.params["branch"]
        sha = _ref_sha(repo.path, f"refs/heads/{name}")
        doc = f"{DOCS}/branches/branches#get-a-branch"
        if sha is None:
            raise _Reject(404, "Branch not found", doc, status="404")
        api = f"{self.api_url}/repos/{repo.full_name}"
        protected = name in _protected(repo)
        protection_url = f"{api}/branches/{quote(name, safe='')}/protection"
        protection: dict[str, Any] = {
            "enabled": protected,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        }
        return _Reply(
            200,
            {
                "name": name,
                "commit": self._commit_json(repo, sha),
                "_links": {
                    "self": f"{api}/branches/{quote(name, safe='')}",
                    "html": f"{self.url}/{repo.full_name}/tree/{name}",
                },
                "protected": protected,
                "protection": protection,
                "protection_url": protection_url,
            },
        )

    def _list_pulls(self, request: _Request) -> _Reply:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        state = request.query.get("state", "open")
        pulls = [p for p in self._pulls.get(repo.full_name.lower(), []) if state == "all" or p.state == state]
        if "head" in request.query:
            owner, _, branch = request.query["head"].partition(":")
            if branch:
                pulls = [p for p in pulls if p.head_repo.owner.lower() == owner.lower() and p.head_ref == branch]
            else:
                pulls = [p for p in pulls if p.head_repo.owner.lower() == owner.lower()]
        if "base" in request.query:
            pulls = [p for p in pulls if p.base_ref == request.query["base"]]
        sort = request.query.get("sort", "created")
        default_direction = "desc" if sort == "created" else "asc"
        key: Callable[[_Pull], float] = (lambda p: p.created_at) if sort == "created" else (lambda p: p.updated_at)
        pulls = sorted(pulls, key=lambda p: (key(p), p.number))
        if request.query.get("direction", default_direction) == "desc":
            pulls.reverse()
        page, headers = self._page(request, pulls)
        return _Reply(200, [self._pull_json(p, simple=True, caller=request.caller) for p in page], headers)

    def _require_pulls_write(self, caller: _Caller, doc: str) -> None:
        if caller.kind == "anonymous":
            raise _Reject(401, "Requires authentication", doc, status="401")
        if caller.kind == "installation" and caller.token is not None:
            if caller.token.permissions.get("pull_requests") != "write":
                raise _Reject(403, "Resource not accessible by integration", doc, status="403")
        elif caller.kind != "user":
            raise _Reject(403, "Resource not accessible by integration", doc, status="403")

    def _create_pull(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/pulls/pulls#create-a-pull-request"
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        self._require_pulls_write(request.caller, doc)
        body = request.body or {}
        if not body.get("title"):
            raise _validation_failed(doc, {"resource": "PullRequest", "field": "title", "code": "missing_field"})
        head = str(body.get("head", ""))
        base_ref = str(body.get("base", ""))
        head_owner, _, head_ref = head.rpartition(":")
        head_repo: _Repo | None = repo
        if head_owner and head_owner.lower() != repo.owner.lower():
            head_repo = next(
                (
                    r
                    for r in self._repos.values()
                    if r.owner.lower() == head_owner.lower() and r.network is repo.network and r.hidden_polls <= 0
                ),
                None,
            )
        head_sha = _ref_sha(head_repo.path, f"refs/heads/{head_ref}") if head_repo else None
        if head_repo is None or head_sha is None or self._access(request.caller, head_repo) == "none":
            raise _validation_failed(doc, {"resource": "PullRequest", "field": "head", "code": "invalid"})
        base_sha = _ref_sha(repo.path, f"refs/heads/{base_ref}")
        if base_sha is None:
            raise _validation_failed(doc, {"resource": "PullRequest", "field": "base", "code": "invalid"})
        label = f"{head_repo.owner}:{head_ref}"
        for pull in self._pulls.get(repo.full_name.lower(), []):
            same_head = pull.head_repo is head_repo and pull.head_ref == head_ref
            if pull.state == "open" and same_head and pull.base_ref == base_ref:
                raise _validation_failed(
                    doc,
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {label}.",
                    },
                )
        number = len(self._pulls.get(repo.full_name.lower(), [])) + 1
        ref = f"refs/pull/{number}/head"
        if head_repo is repo:
            _git("--git-dir", str(repo.path), "update-ref", ref, head_sha)
        else:
            _git(
                "--git-dir", str(repo.path), "fetch", "--quiet", "--no-tags", str(head_repo.path), f"+{head_sha}:{ref}"
            )
        if _count_commits(repo.path, base_sha, head_sha) == 0:
            _git("--git-dir", str(repo.path), "update-ref", "-d", ref)
            raise _validation_failed(
                doc,
                {"resource": "PullRequest", "code": "custom", "message": f"No commits between {base_ref} and {head}"},
            )
        now = _now()
        assert request.caller.login is not None
        pull = _Pull(
            number=number,
            id=next(self._ids),
            base_repo=repo,
            head_repo=head_repo,
            head_ref=head_ref,
            base_ref=base_ref,
            title=str(body["title"]),
            body=body.get("body"),
            user=request.caller.login,
            draft=bool(body.get("draft", False)),
            maintainer_can_modify=bool(body.get("maintainer_can_modify", head_repo is not repo)),
            created_at=now,
            updated_at=now,
            head_sha=head_sha,
        )
        self._pulls.setdefault(repo.full_name.lower(), []).append(pull)
        data = self._pull_json(pull, simple=False, caller=request.caller)
        return _Reply(201, data, {"Location": data["url"]})

    def _find_pull(self, request: _Request) -> tuple[_Repo, _Pull]:
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        number = int(request.params["pull_number"])
        for pull in self._pulls.get(repo.full_name.lower(), []):
            if pull.number == number:
                return repo, pull
        raise _not_found(f"{DOCS}/pulls/pulls#get-a-pull-request")

    def _get_pull(self, request: _Request) -> _Reply:
        _, pull = self._find_pull(request)
        return _Reply(200, self._pull_json(pull, simple=False, caller=request.caller))

    def _update_pull(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/pulls/pulls#update-a-pull-request"
        repo, pull = self._find_pull(request)
        self._require_pulls_write(request.caller, doc)
        caller_login = (request.caller.login or "").lower()
        if caller_login != pull.user.lower() and ACCESS_RANK[self._access(request.caller, repo)] < 3:
            raise _Reject(403, "Resource not accessible by integration", doc, status="403")
        body = request.body or {}
        if "base" in body and _ref_sha(repo.path, f"refs/heads/{body['base']}") is None:
            raise _validation_failed(doc, {"resource": "PullRequest", "field": "base", "code": "invalid"})
        for key in ("title", "body"):
            if key in body:
                setattr(pull, key, body[key])
        if "base" in body:
            pull.base_ref = body["base"]
        if "maintainer_can_modify" in body:
            pull.maintainer_can_modify = bool(body["maintainer_can_modify"])
        if body.get("state") == "closed" and pull.state == "open":
            pull.state, pull.closed_at = "closed", _now()
            pull.head_sha = _ref_sha(pull.head_repo.path, f"refs/heads/{pull.head_ref}") or pull.head_sha
        elif body.get("state") == "open" and pull.state == "closed":
            if pull.merged_at is not None:
                raise _validation_failed(
                    doc, {"resource": "PullRequest", "code": "custom", "message": "state cannot be changed."}
                )
            pull.state, pull.closed_at = "open", None
        pull.updated_at = _now()
        return _Reply(200, self._pull_json(pull, simple=False, caller=request.caller))

    def _merge_pull(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/pulls/pulls#merge-a-pull-request"
        repo, pull = self._find_pull(request)
        self._require_pulls_write(request.caller, doc)
        if ACCESS_RANK[self._access(request.caller, repo)] < ACCESS_RANK["write"]:
            raise _Reject(403, "Must have push access to merge this pull request.", doc, status="403")
        body = request.body or {}
        method = body.get("merge_method", "merge")
        if pull.state != "open":
            return _Reply(405, {"message": "Pull Request is not mergeable", "documentation_url": doc})
        allowed = {
            "merge": repo.allow_merge_commit,
            "squash": repo.allow_squash_merge,
            "rebase": repo.allow_rebase_merge,
        }
        if not allowed[method]:
            return _Reply(405, {"message": MERGE_FORBIDDEN[method], "documentation_url": doc})
        head_sha = _ref_sha(pull.head_repo.path, f"refs/heads/{pull.head_ref}") or pull.head_sha
        if body.get("sha") and body["sha"] != head_sha:
            return _Reply(
                409, {"message": "Head branch was modified. Review and try the merge again.", "documentation_url": doc}
            )
        ref = f"refs/pull/{pull.number}/head"
        if pull.head_repo is repo:
            _git("--git-dir", str(repo.path), "update-ref", ref, head_sha)
        else:
            _git(
                "--git-dir",
                str(repo.path),
                "fetch",
                "--quiet",
                "--no-tags",
                str(pull.head_repo.path),
                f"+{head_sha}:{ref}",
            )
        base_sha = _ref_sha(repo.path, f"refs/heads/{pull.base_ref}")
        assert base_sha is not None
        tree = _merge_tree(repo.path, base_sha, head_sha)
        if tree is None:
            return _Reply(405, {"message": "Pull Request is not mergeable", "documentation_url": doc})
        title = body.get("commit_title")
        extra = body.get("commit_message")
        if method == "merge":
            message = title or f"Merge pull request #{pull.number} from {pull.head_repo.owner}/{pull.head_ref}"
            parents = ["-p", base_sha, "-p", head_sha]
        else:
            message = title or f"{pull.title} (#{pull.number})"
            parents = ["-p", base_sha]
        if method == "rebase" and _is_ancestor(repo.path, base_sha, head_sha):
            sha = head_sha
        else:
            text = message + (f"\n\n{extra}" if extra else "")
            sha = _git("--git-dir", str(repo.path), "commit-tree", tree, *parents, "-m", text, env=GITHUB_ENV).strip()
        _git("--git-dir", str(repo.path), "update-ref", f"refs/heads/{pull.base_ref}", sha, base_sha)
        now = _now()
        pull.state, pull.closed_at, pull.merged_at, pull.updated_at = "closed", now, now, now
        pull.merge_commit_sha, pull.head_sha = sha, head_sha
        pull.merged_by = request.caller.login
        return _Reply(200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    def _get_content(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/repos/contents#get-repository-content"
        repo = self._visible_repo(request.caller, request.params["owner"], request.params["repo"])
        ref = request.query.get("ref") or repo.default_branch
        path = request.params.get("path", "").strip("/")
        commit = _resolve(repo.path, ref)
        if commit is None:
            raise _Reject(404, f"No commit found for the ref {ref}", doc, status="404")
        if path:
            listing = _ls_tree(repo.path, commit, path)
            entry = next((e for e in listing if e[4] == path), None)
            if entry is None:
                raise _not_found(doc)
            mode, kind, sha, size, _ = entry
        else:
            mode, kind, sha, size = "040000", "tree", "", 0
        if kind == "tree":
            children = _ls_tree(repo.path, commit, f"{path}/" if path else "")
            # GitHub documents that directory listings show submodules as type "file" (backwards compatibility)
            items = []
            for m, k, s, n, p in children:
                item = self._content_entry(repo, ref, m, k, s, n, p)
                if k == "commit":
                    item.update(type="file", size=0)
                items.append(item)
            return _Reply(200, items)
        entry = self._content_entry(repo, ref, mode, kind, sha, size, path)
        if kind == "commit":
            entry["submodule_git_url"] = _submodule_url(repo.path, commit, path) or ""
            entry["size"] = 0
            return _Reply(200, entry)
        blob = _git_bytes("--git-dir", str(repo.path), "cat-file", "blob", sha)
        if mode == "120000":
            entry["target"] = blob.decode()
            return _Reply(200, entry)
        encoded = base64.b64encode(blob).decode()
        entry["content"] = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
        entry["encoding"] = "base64"
        return _Reply(200, entry)

    def _get_app(self, request: _Request) -> _Reply:
        if request.caller.app is None or request.caller.kind != "app":
            raise _Reject(401, "A JSON web token could not be decoded", f"{DOCS}/apps/apps#get-the-authenticated-app")
        return _Reply(200, self._app_json(request.caller.app))

    def _get_repo_installation(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/apps/apps#get-a-repository-installation-for-the-authenticated-app"
        if request.caller.kind != "app":
            raise _Reject(401, "A JSON web token could not be decoded", doc)
        repo = self._repos.get(f"{request.params['owner']}/{request.params['repo']}".lower())
        for installation in self._installations.values():
            if repo is not None and installation.app is request.caller.app and self._covers(installation, repo):
                return _Reply(200, self._installation_json(installation))
        raise _not_found(doc)

    def _create_installation_token(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/apps/apps#create-an-installation-access-token-for-an-app"
        if request.caller.kind != "app":
            raise _Reject(401, "A JSON web token could not be decoded", doc, status="401")
        installation = self._installations.get(int(request.params["installation_id"]))
        if installation is None or installation.app is not request.caller.app:
            raise _not_found(doc)
        body = request.body or {}
        covered = [r for r in self._repos.values() if self._covers(installation, r)]
        names: list[str] | None = None
        if body.get("repositories") is not None or body.get("repository_ids") is not None:
            chosen: list[_Repo] = []
            for name in body.get("repositories") or []:
                match = next((r for r in covered if r.name.lower() == str(name).lower()), None)
                if match is None:
                    raise _validation_failed(
                        doc,
                        {
                            "resource": "Installation",
                            "code": "custom",
                            "message": NOT_ACCESSIBLE,
                        },
                    )
                chosen.append(match)
            for number in body.get("repository_ids") or []:
                match = next((r for r in covered if r.id == number), None)
                if match is None:
                    raise _validation_failed(
                        doc,
                        {
                            "resource": "Installation",
                            "code": "custom",
                            "message": NOT_ACCESSIBLE,
                        },
                    )
                chosen.append(match)
            names = sorted({r.full_name.lower() for r in chosen})
        permissions = dict(installation.permissions)
        if body.get("permissions"):
            for key, level in body["permissions"].items():
                granted = installation.permissions.get(key)
                if granted is None or (level == "write" and granted != "write"):
                    raise _validation_failed(
                        doc,
                        {
                            "resource": "Installation",
                            "code": "custom",
                            "message": "The permissions requested are not granted to this installation.",
                        },
                    )
            permissions = dict(body["permissions"])
        token = _Token(
            "ghs_" + secrets.token_hex(18),
            "installation",
            app=installation.app,
            installation=installation,
            expires_at=_now() + self.installation_token_ttl,
            repositories=names,
            permissions=permissions,
        )
        self._tokens[token.value] = token
        data: dict[str, Any] = {
            "token": token.value,
            "expires_at": _iso(token.expires_at or 0),
            "permissions": permissions,
            "repository_selection": "selected" if names is not None or installation.repositories is not None else "all",
        }
        if names is not None:
            data["repositories"] = [self._repo_json(self._repos[n], None, full=False) for n in names]
        return _Reply(201, data)

    def _list_user_installations(self, request: _Request) -> _Reply:
        doc = f"{DOCS}/apps/installations#list-app-installations-accessible-to-the-user-access-token"
        caller = request.caller
        if caller.kind == "anonymous":
            raise _Reject(401, "Requires authentication", doc, status="401")
        if caller.token is None or caller.token.kind != "oauth" or caller.login is None:
            raise _Reject(
                403,
                "You must authenticate with an access token authorized to a GitHub App in order to list installations",
                doc,
                status="403",
            )
        login = caller.login
        found = []
        for installation in self._installations.values():
            if installation.app is not caller.token.app:
                continue
            covered = [r for r in self._repos.values() if self._covers(installation, r)]
            member = installation.account.lower() == login.lower()
            if member or any(ACCESS_RANK[self._user_access(login, r)] >= 3 for r in covered):
                found.append(installation)
        page, headers = self._page(request, found)
        return _Reply(
            200,
            {"total_count": len(found), "installations": [self._installation_json(i) for i in page]},
            headers,
        )


def _bad_credentials() -> _Reject:
    reject = _Reject(401, "Bad credentials", "https://docs.github.com/rest", status="401")
    return reject


ROUTES: dict[tuple[str, str], Callable[[FakeGitHub, _Request], _Reply]] = {
    ("GET", "/user"): FakeGitHub._get_user,
    ("GET", "/repos/{owner}/{repo}"): FakeGitHub._get_repo,
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"): FakeGitHub._get_permission,
    ("POST", "/repos/{owner}/{repo}/forks"): FakeGitHub._create_fork,
    ("GET", "/repos/{owner}/{repo}/branches"): FakeGitHub._list_branches,
    ("GET", "/repos/{owner}/{repo}/branches/{branch}"): FakeGitHub._get_branch,
    ("GET", "/repos/{owner}/{repo}/pulls"): FakeGitHub._list_pulls,
    ("POST", "/repos/{owner}/{repo}/pulls"): FakeGitHub._create_pull,
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"): FakeGitHub._get_pull,
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"): FakeGitHub._update_pull,
    ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"): FakeGitHub._merge_pull,
    ("GET", "/repos/{owner}/{repo}/contents/{path}"): FakeGitHub._get_content,
    ("GET", "/app"): FakeGitHub._get_app,
    ("GET", "/repos/{owner}/{repo}/installation"): FakeGitHub._get_repo_installation,
    ("POST", "/app/installations/{installation_id}/access_tokens"): FakeGitHub._create_installation_token,
    ("GET", "/user/installations"): FakeGitHub._list_user_installations,
}


# ---------------------------------------------------------------------------------------------------------------
# helpers: HTTP and git


def _dump(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _mock_request(
    factory: Any,
    method: str,
    path: str,
    template: str,
    query_string: str,
    headers: dict[str, str],
    raw_body: bytes,
    params: dict[str, str],
    multi: frozenset[str],
) -> Any:
    """openapi-core's request; multi-segment parameters get their slashes escaped, which it cannot match."""
    if multi:
        path = re.sub(r"\{([^}]+)\}", lambda m: quote(params.get(m[1], ""), safe=""), template)
    args = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    return factory(
        SPEC_HOST,
        method.lower(),
        path,
        args=args,
        headers=headers,
        data=raw_body or None,
        content_type=headers.get("content-type", "application/json") if raw_body else "application/json",
    )


def _git_bytes(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
    full_env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", **(env or {})}
    result = subprocess.run(["git", *args], input=stdin, env=full_env, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _git(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    return _git_bytes(*args, env=env, stdin=stdin).decode()


def _ref_sha(bare: Path, ref: str) -> str | None:
    try:
        return _git("--git-dir", str(bare), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip() or None
    except RuntimeError:
        return None


def _resolve(bare: Path, ref: str) -> str | None:
    for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        sha = _ref_sha(bare, candidate)
        if sha:
            return sha
    return None


def _branches(bare: Path) -> list[str]:
    return _git("--git-dir", str(bare), "for-each-ref", "--format=%(refname:strip=2)", "refs/heads").split()


def _protected(repo: _Repo) -> set[str]:
    listing = repo.path / "protected-branches"
    return set(listing.read_text().split()) if listing.exists() else set()


def _ls_tree(bare: Path, commit: str, path: str) -> list[tuple[str, str, str, int, str]]:
    """(mode, type, sha, size, path) of `path` itself, or of a directory's entries when `path` ends in "/"."""
    out = _git_bytes("--git-dir", str(bare), "ls-tree", "-l", "-z", commit, "--", path) if path else b""
    if not path:
        out = _git_bytes("--git-dir", str(bare), "ls-tree", "-l", "-z", commit)
    entries = []
    for record in out.decode().split("\0"):
        if not record:
            continue
        meta, _, name = record.partition("\t")
        mode, kind, sha, size = meta.split()
        entries.append((mode, kind, sha, int(size) if size.isdigit() else 0, name))
    return entries


def _submodule_url(bare: Path, commit: str, path: str) -> str | None:
    try:
        config = _git(
            "--git-dir",
            str(bare),
            "config",
            "--blob",
            f"{commit}:.gitmodules",
            "--get-regexp",
            r"^submodule\..*\.path$",
        )
    except RuntimeError:
        return None
    for line in config.splitlines():
        key, _, value = line.partition(" ")
        if value == path:
            name = key.removeprefix("submodule.").removesuffix(".path")
            try:
                return _git(
                    "--git-dir", str(bare), "config", "--blob", f"{commit}:.gitmodules", f"submodule.{name}.url"
                ).strip()
            except RuntimeError:
                return None
    return None


def _merge_tree(bare: Path, base: str, head: str) -> str | None:
    """The tree of merging `head` into `base`, or None on conflicts (git merge-tree --write-tree, git >= 2.38)."""
    result = subprocess.run(
        ["git", "--git-dir", str(bare), "merge-tree", "--write-tree", base, head],
        env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split()[0] if result.returncode == 0 and result.stdout else None


def _count_commits(bare: Path, base: str, head: str) -> int:
    try:
        return int(_git("--git-dir", str(bare), "rev-list", "--count", f"{base}..{head}").strip())
    except RuntimeError:
        return 0


def _is_ancestor(bare: Path, ancestor: str, descendant: str) -> bool:
    result = subprocess.run(
        ["git", "--git-dir", str(bare), "merge-base", "--is-ancestor", ancestor, descendant],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _commit_files(bare: Path, files: dict[str, str], gitlinks: dict[str, str], *, message: str) -> str:
    """Write `files` and `gitlinks` as one root commit with a fixed author and date; its sha."""
    index = bare / "fake-github-index"
    env = {"GIT_INDEX_FILE": str(index), **AUTHOR_ENV}
    try:
        for path, text in files.items():
            sha = _git("--git-dir", str(bare), "hash-object", "-w", "--stdin", stdin=text.encode()).strip()
            _git("--git-dir", str(bare), "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
        for path, sha in gitlinks.items():
            _git("--git-dir", str(bare), "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}", env=env)
        tree = _git("--git-dir", str(bare), "write-tree", env=env).strip()
        return _git("--git-dir", str(bare), "commit-tree", tree, "-m", message, env=env).strip()
    finally:
        index.unlink(missing_ok=True)
