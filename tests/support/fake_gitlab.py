"""A faithful fake of gitlab.com (REST API v4 + git smart HTTP) on 127.0.0.1, backed by real bare repositories.

vTeam forks projects, pushes branches and opens merge requests on GitLab. Tests of that code are only worth
something if the forge they talk to behaves like the real one, so this fake:

* serves git over the real smart HTTP protocol (`git http-backend` as CGI, like `tests/support/githttp.py`)
  with GitLab's rules: HTTP basic auth whose password is a personal access token, anonymous reads of public
  projects, pushes only for Developer (30) or higher or the namespace owner (401 bad token, 403 no permission),
  and protected branches enforced by a real `pre-receive` hook in the bare repository;
* answers the REST endpoints vTeam uses (user, projects, members, forks, merge requests, branches, tree,
  files) from the real repositories, in the shapes GitLab documents, so the `python-gitlab` client parses
  them; merges are real git merges (`git merge-tree`), honouring the project's merge method;
* validates requests the way GitLab's Grape API does (required parameters, types, allowed values) and answers
  a bad one with GitLab's own 400 (`{"error": "title is missing"}`), while also recording it in
  `.violations` so `check()` fails the test: a real GitLab would have rejected that request too. Parameters
  GitLab does not know are only recorded (GitLab silently ignores them, which is exactly the silent bug a test
  should catch);
* speaks HTTP like GitLab: pagination headers and `Link`, weak ETags with 304s, `RateLimit-*` headers and
  scripted 429s (`rate_limit()`), so clients' caching and back-off are exercised too.

Set up state with `add_user()`, `create_project()`, `add_member()`, `protect_branch()`; inspect it with
`branch_sha()`, `merge_requests()`, `.requests`, `.not_modified`, `.throttled`, `.resumed_at`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import math
import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.support.githttp import http_backend, read_body

GUEST = 10
REPORTER = 20
DEVELOPER = 30
MAINTAINER = 40
OWNER = 50
ACCESS_LEVELS = frozenset({5, GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER})

MERGE_METHODS = frozenset({"merge", "rebase_merge", "ff"})
VISIBILITIES = frozenset({"public", "internal", "private"})
RATE_LIMIT = 2000
SEED_AUTHOR = "Fake GitLab <seed@gitlab.invalid> 1700000000 +0000"
ZERO_SHA = "0" * 40
DRAFT = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s*$)", re.IGNORECASE)
TRUE_WORDS = frozenset({"true", "1", "t", "y", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "f", "n", "no", "off"})
IGNORED_PARAMS = frozenset({"private_token", "sudo"})

PRE_RECEIVE = r"""#!/bin/sh
# Protected branches, as GitLab enforces them: Maintainers (40) may push, nobody may force-push or delete.
list="${GIT_DIR:-.}/protected_branches"
while read -r old new ref; do
  branch="${ref#refs/heads/}"
  [ "$branch" = "$ref" ] && continue
  grep -qxF -- "$branch" "$list" 2>/dev/null || continue
  if [ "$new" = "0000000000000000000000000000000000000000" ]; then
    echo "GitLab: You can only delete protected branches using the web interface." >&2
    exit 1
  fi
  if [ "${GL_ACCESS_LEVEL:-0}" -lt 40 ]; then
    echo "GitLab: You are not allowed to push code to protected branches on this project." >&2
    exit 1
  fi
  if [ "$old" != "0000000000000000000000000000000000000000" ] && ! git merge-base --is-ancestor "$old" "$new"; then
    echo "GitLab: You are not allowed to force push code to a protected branch on this project." >&2
    exit 1
  fi
done
exit 0
"""


class ApiError(Exception):
    """An answer other than success: GitLab's status and JSON body; `violation` when the request was malformed."""

    def __init__(self, status: int, body: dict[str, Any], *, violation: bool = False) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.violation = violation


@dataclass
class User:
    id: int
    username: str
    name: str
    token: str
    created_at: str


@dataclass
class Project:
    id: int
    namespace: str
    path: str
    bare: Path
    visibility: str
    merge_method: str
    created_at: str
    members: dict[str, int] = field(default_factory=dict)
    forked_from: int | None = None
    import_status: str = "none"
    import_gets_left: int = 0
    next_iid: int = 1

    @property
    def full_path(self) -> str:
        return f"{self.namespace}/{self.path}"


@dataclass
class MergeRequest:
    id: int
    iid: int
    target_project_id: int
    source_project_id: int
    source_branch: str
    target_branch: str
    title: str
    description: str
    author: str
    created_at: str
    updated_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "opened"
    sha: str | None = None
    merge_status: str = "can_be_merged"
    force_remove_source_branch: bool = False
    squash: bool = False
    allow_collaboration: bool = False
    merged_by: str | None = None
    merged_at: str | None = None
    closed_by: str | None = None
    closed_at: str | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    should_remove_source_branch: bool | None = None


@dataclass(frozen=True)
class Param:
    """One documented parameter of an endpoint: its Grape type, whether required, its allowed values."""

    kind: Literal["str", "int", "bool", "list"] = "str"
    required: bool = False
    values: frozenset[str] | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git(*args: str, git_dir: Path | None = None, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """Run git; raise on failure. Output decoded as UTF-8."""
    result = _git_run(*args, git_dir=git_dir, input=input, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


def _git_run(
    *args: str, git_dir: Path | None = None, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    prefix = ["--git-dir", str(git_dir)] if git_dir else []
    return subprocess.run(
        ["git", *prefix, *args], input=input, capture_output=True, check=False, env={**base, **(env or {})}
    )


def _is_draft(title: str) -> bool:
    return DRAFT.match(title) is not None


class FakeGitLab:
    """gitlab.com for tests: `with FakeGitLab(tmp_path) as fake:` then point clients at `fake.url`."""

    def __init__(self, root: Path, *, fork_delay: int = 1) -> None:
        self.root = root
        self.repos = root / "gitlab-repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.fork_delay = fork_delay
        self.requests: list[tuple[str, str, int]] = []
        self.violations: list[str] = []
        self.not_modified = 0
        self.throttled: list[float] = []
        self.resumed_at: float | None = None
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}
        self._projects: dict[int, Project] = {}
        self._mrs: list[MergeRequest] = []
        self._namespace_ids: dict[str, int] = {}
        self._ids = {"user": 0, "project": 100, "mr": 5000, "namespace": 300}
        self._throttle_left = 0
        self._throttle_reset = 0.0
        self._window: tuple[int, int] = (0, 0)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.api_url = f"{self.url}/api/v4"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeGitLab:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def check(self) -> None:
        """Fail the test if any request broke GitLab's documented API."""
        with self._lock:
            if self.violations:
                raise AssertionError("requests GitLab would reject:\n" + "\n".join(self.violations))

    # ---------------------------------------------------------------- test setup

    def add_user(self, username: str, *, name: str | None = None) -> str:
        """Create a user; returns a personal access token (`glpat-...`) for the API and for git over HTTP."""
        with self._lock:
            if username in self._users:
                raise ValueError(f"user {username} exists")
            self._ids["user"] += 1
            token = "glpat-" + secrets.token_urlsafe(15)
            self._users[username] = User(self._ids["user"], username, name or username.title(), token, _now())
            self._tokens[token] = username
            return token

    def user_id(self, username: str) -> int:
        with self._lock:
            return self._users[username].id

    def create_project(
        self,
        namespace: str,
        name: str,
        files: dict[str, str] | None = None,
        default_branch: str = "main",
        visibility: str = "public",
        merge_method: str = "merge",
    ) -> Path:
        """A project with a bare repository; `files` committed on `default_branch` ({} = an empty repository).

        A namespace that is a user's username is that user's personal namespace (they own the project);
        any other namespace is a group, whose access comes from `add_member()` only.
        """
        if visibility not in VISIBILITIES or merge_method not in MERGE_METHODS:
            raise ValueError(f"bad visibility {visibility!r} or merge_method {merge_method!r}")
        with self._lock:
            if self._find_path(f"{namespace}/{name}"):
                raise ValueError(f"project {namespace}/{name} exists")
            bare = self.repos / namespace / f"{name}.git"
            bare.parent.mkdir(parents=True, exist_ok=True)
            _git("init", "--quiet", "--bare", "-b", default_branch, str(bare))
            self._install_hook(bare)
            if files is None:
                files = {"README.md": f"# {name}\n"}
            if files:
                self._seed(bare, default_branch, files)
            self._ids["project"] += 1
            project = Project(self._ids["project"], namespace, name, bare, visibility, merge_method, _now())
            self._projects[project.id] = project
            return bare

    def add_member(self, project_path: str, username: str, access_level: int = DEVELOPER) -> None:
        if access_level not in ACCESS_LEVELS:
            raise ValueError(f"bad access level {access_level}")
        with self._lock:
            if username not in self._users:
                raise ValueError(f"no user {username}")
            self._require(project_path).members[username] = access_level

    def rename_project(self, project_path: str, new_path: str) -> None:
        """Change a project's path in its namespace, as a user renaming their fork does; its repo stays."""
        with self._lock:
            project = self._require(project_path)
            if self._find_path(f"{project.namespace}/{new_path}"):
                raise ValueError(f"project {project.namespace}/{new_path} exists")
            project.path = new_path

    def forks_of(self, project_path: str) -> list[str]:
        """The paths of a project's direct forks."""
        with self._lock:
            source = self._require(project_path)
            return sorted(p.full_path for p in self._projects.values() if p.forked_from == source.id)

    def protect_branch(self, project_path: str, branch: str) -> None:
        """Protect `branch` as GitLab does by default: Maintainers push and merge, no force-push, no deletion."""
        with self._lock:
            listed = self._require(project_path).bare / "protected_branches"
            names = set(listed.read_text().split()) if listed.exists() else set()
            names.add(branch)
            listed.write_text("".join(f"{n}\n" for n in sorted(names)))

    def branch_sha(self, project_path: str, branch: str) -> str | None:
        with self._lock:
            return self._rev(self._require(project_path).bare, f"refs/heads/{branch}")

    def merge_requests(self, project_path: str) -> list[dict[str, Any]]:
        """The merge requests targeting a project, as the API renders them (for an anonymous viewer)."""
        with self._lock:
            project = self._require(project_path)
            return [self._mr_json(mr) for mr in self._mrs if mr.target_project_id == project.id]

    def rate_limit(self, count: int = 1, reset_in: float = 1.0) -> None:
        """The next `count` API requests get 429 with GitLab's headers; the limit resets `reset_in` s from now."""
        with self._lock:
            self._throttle_left = count
            self._throttle_reset = time.time() + reset_in
            self.throttled = []
            self.resumed_at = None

    # ---------------------------------------------------------------- internals: state

    def _require(self, project_path: str) -> Project:
        project = self._find_path(project_path)
        if project is None:
            raise ValueError(f"no project {project_path}")
        return project

    def _find_path(self, full_path: str) -> Project | None:
        wanted = full_path.strip("/").lower()
        return next((p for p in self._projects.values() if p.full_path.lower() == wanted), None)

    def _install_hook(self, bare: Path) -> None:
        hook = bare / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(PRE_RECEIVE)
        hook.chmod(0o755)

    def _seed(self, bare: Path, branch: str, files: dict[str, str]) -> None:
        """One commit with a fixed author and date (so its sha is stable), written with `git fast-import`."""
        message = b"Initial commit\n"
        stream = [f"commit refs/heads/{branch}\n".encode()]
        stream += [f"author {SEED_AUTHOR}\ncommitter {SEED_AUTHOR}\n".encode()]
        stream += [f"data {len(message)}\n".encode(), message]
        for path, text in files.items():
            data = text.encode()
            stream += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
        _git("fast-import", "--quiet", git_dir=bare, input=b"".join(stream) + b"done\n")

    def _rev(self, bare: Path, ref: str) -> str | None:
        if ref.startswith("-"):
            return None
        result = _git_run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", git_dir=bare)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _default_branch(self, project: Project) -> str | None:
        head = _git_run("symbolic-ref", "--short", "HEAD", git_dir=project.bare).stdout.decode().strip()
        return head if head and self._rev(project.bare, f"refs/heads/{head}") else None

    def _protected(self, project: Project) -> set[str]:
        listed = project.bare / "protected_branches"
        return set(listed.read_text().split()) if listed.exists() else set()

    def _owner(self, project: Project) -> User | None:
        return self._users.get(project.namespace)

    def _access(self, project: Project, user: User | None) -> int:
        if user is None:
            return 0
        if project.namespace == user.username:
            return OWNER
        return project.members.get(user.username, 0)

    def _can_see(self, project: Project, user: User | None) -> bool:
        if project.visibility == "public" or (project.visibility == "internal" and user is not None):
            return True
        return self._access(project, user) >= GUEST

    def _can_read_code(self, project: Project, user: User | None) -> bool:
        if project.visibility == "public" or (project.visibility == "internal" and user is not None):
            return True
        return self._access(project, user) >= REPORTER

    def _fork_root(self, project: Project) -> int:
        while project.forked_from is not None and project.forked_from in self._projects:
            project = self._projects[project.forked_from]
        return project.id

    # ---------------------------------------------------------------- internals: HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._dispatch()

            def do_POST(self) -> None:
                self._dispatch()

            def do_PUT(self) -> None:
                self._dispatch()

            def do_DELETE(self) -> None:
                self._dispatch()

            def _dispatch(self) -> None:
                parts = urlsplit(self.path)
                body = read_body(self)
                if parts.path == "/api/v4" or parts.path.startswith("/api/v4/"):
                    status, headers, payload = fake._api(self.command, parts.path, parts.query, self.headers, body)
                elif re.search(r"\.git/(info/refs|git-upload-pack|git-receive-pack)$", parts.path):
                    status, headers, payload = fake._git_http(self.command, parts.path, parts.query, self.headers, body)
                else:
                    status, headers, payload = 404, [("Content-Type", "text/plain")], b"Not Found"
                shown = " ".join(f"{k}={v}" for k, v in parse_qsl(parts.query) if k != "private_token")
                with fake._lock:
                    fake.requests.append((self.command, parts.path + (f"?{shown}" if shown else ""), status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    # ---------------------------------------------------------------- git smart HTTP

    def _git_http(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        repo_path, _, _ = unquote(path).partition(".git/")
        service = "git-receive-pack" if path.endswith("git-receive-pack") else "git-upload-pack"
        if path.endswith("/info/refs"):
            service = dict(parse_qsl(query)).get("service", "git-upload-pack")
        denied = [("WWW-Authenticate", 'Basic realm="GitLab"'), ("Content-Type", "text/plain")]
        with self._lock:
            project = self._find_path(repo_path)
            user: User | None = None
            auth = headers.get("Authorization", "")
            if auth:
                user = self._basic_user(auth)
                if user is None:
                    return 401, denied, b"HTTP Basic: Access denied\n"
            if project is None or not self._can_see(project, user):
                if user is None:
                    return 401, denied, b"HTTP Basic: Access denied\n"
                return 404, [("Content-Type", "text/plain")], b"The project you were looking for could not be found.\n"
            level = self._access(project, user)
            if service == "git-receive-pack":
                if user is None:
                    return 401, denied, b"HTTP Basic: Access denied\n"
                if level < DEVELOPER:
                    return 403, [("Content-Type", "text/plain")], b"You are not allowed to push code to this project.\n"
            elif not self._can_read_code(project, user):
                if user is None:
                    return 401, denied, b"HTTP Basic: Access denied\n"
                return (
                    403,
                    [("Content-Type", "text/plain")],
                    b"You are not allowed to download code from this project.\n",
                )
        return http_backend(
            self.repos,
            method,
            "/" + str(project.bare.relative_to(self.repos)) + path[path.index(".git/") + 4 :],
            query,
            dict(headers.items()),
            body,
            remote_user=user.username if user is not None else None,
            env={"GL_ACCESS_LEVEL": str(level), **({"GL_USERNAME": user.username} if user is not None else {})},
        )

    def _basic_user(self, auth: str) -> User | None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        username = self._tokens.get(password)
        return self._users.get(username) if username else None

    # ---------------------------------------------------------------- REST API: plumbing

    def _api(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        now = time.time()
        with self._lock:
            limit_headers = self._rate_headers(now)
            if self._throttle_left > 0:
                self._throttle_left -= 1
                self.throttled.append(time.monotonic())
                retry = max(0, math.ceil(self._throttle_reset - now))
                reset = math.ceil(self._throttle_reset)
                limited = [
                    ("Content-Type", "application/json"),
                    ("Retry-After", str(retry)),
                    ("RateLimit-Name", "throttle_authenticated_api"),
                    ("RateLimit-Limit", str(RATE_LIMIT)),
                    ("RateLimit-Observed", str(RATE_LIMIT + 1)),
                    ("RateLimit-Remaining", "0"),
                    ("RateLimit-Reset", str(reset)),
                    ("RateLimit-ResetTime", email.utils.formatdate(reset, usegmt=True)),
                ]
                return 429, limited, json.dumps({"message": "Retry later"}).encode()
            if self.throttled and self.resumed_at is None:
                self.resumed_at = time.monotonic()
            extra: list[tuple[str, str]] = []
            try:
                params = self._request_params(method, query, headers, body)
                user = self._api_user(headers, params)
                result = self._route(method, path, params, user, extra)
                status, payload, content_type = 200, result, "application/json"
                if isinstance(result, tuple):
                    status, payload = result
                if isinstance(payload, bytes):
                    content_type, data = "text/plain; charset=utf-8", payload
                else:
                    data = json.dumps(payload).encode()
            except ApiError as error:
                if error.violation:
                    self.violations.append(f"{method} {path}?{query}: {error.status} {json.dumps(error.body)}")
                status, data, content_type = error.status, json.dumps(error.body).encode(), "application/json"
            out = [("Content-Type", content_type), *limit_headers, *extra]
            if method == "GET" and status == 200:
                etag = f'W/"{hashlib.sha256(data).hexdigest()[:32]}"'
                out += [("ETag", etag), ("Cache-Control", "max-age=0, private, must-revalidate")]
                wanted = [t.strip() for t in headers.get("If-None-Match", "").split(",") if t.strip()]
                if any(t.removeprefix("W/") == etag.removeprefix("W/") or t == "*" for t in wanted):
                    self.not_modified += 1
                    return 304, [h for h in out if h[0] != "Content-Type"], b""
            return status, out, data

    def _rate_headers(self, now: float) -> list[tuple[str, str]]:
        minute = int(now // 60)
        count = self._window[1] + 1 if self._window[0] == minute else 1
        self._window = (minute, count)
        reset = (minute + 1) * 60
        return [
            ("RateLimit-Limit", str(RATE_LIMIT)),
            ("RateLimit-Observed", str(count)),
            ("RateLimit-Remaining", str(max(0, RATE_LIMIT - count))),
            ("RateLimit-Reset", str(reset)),
            ("RateLimit-ResetTime", email.utils.formatdate(reset, usegmt=True)),
        ]

    def _request_params(self, method: str, query: str, headers: Any, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.endswith("[]"):
                params.setdefault(key[:-2], []).append(value)
            else:
                params[key] = value
        if body and method in ("POST", "PUT"):
            content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type == "application/json":
                try:
                    decoded = json.loads(body)
                except ValueError as error:
                    raise ApiError(400, {"error": f"{error}"}, violation=True) from error
                if not isinstance(decoded, dict):
                    raise ApiError(400, {"error": "body must be a JSON object"}, violation=True)
                params.update(decoded)
            else:
                params.update(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        return params

    def _api_user(self, headers: Any, params: dict[str, Any]) -> User | None:
        token = headers.get("PRIVATE-TOKEN") or params.get("private_token")
        auth = headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not token:
            return None
        username = self._tokens.get(str(token))
        if username is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        return self._users[username]

    def _validate(self, where: str, params: dict[str, Any], spec: dict[str, Param]) -> dict[str, Any]:
        """Grape's checks: presence of required params, types, allowed values. Unknown params are recorded."""
        missing = [name for name, p in spec.items() if p.required and params.get(name) is None]
        if missing:
            raise ApiError(400, {"error": ", ".join(f"{name} is missing" for name in missing)}, violation=True)
        unknown = sorted(set(params) - set(spec) - IGNORED_PARAMS)
        if unknown:
            self.violations.append(f"{where}: parameters GitLab does not document here (ignored): {unknown}")
        out: dict[str, Any] = {}
        for name, p in spec.items():
            if name not in params or params[name] is None:
                continue
            value = params[name]
            if p.kind == "int":
                if isinstance(value, bool) or not (
                    isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value))
                ):
                    raise ApiError(400, {"error": f"{name} is invalid"}, violation=True)
                value = int(value)
            elif p.kind == "bool":
                if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
                    value = value.lower() in TRUE_WORDS
                elif not isinstance(value, bool):
                    raise ApiError(400, {"error": f"{name} is invalid"}, violation=True)
            elif p.kind == "list":
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                elif not (isinstance(value, list) and all(isinstance(v, str | int) for v in value)):
                    raise ApiError(400, {"error": f"{name} is invalid"}, violation=True)
                value = [str(v) for v in value]
            else:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    value = str(value)
                if not isinstance(value, str):
                    raise ApiError(400, {"error": f"{name} is invalid"}, violation=True)
            if p.values is not None and str(value) not in p.values:
                raise ApiError(400, {"error": f"{name} does not have a valid value"}, violation=True)
            out[name] = value
        return out

    def _paginate(
        self, items: list[Any], args: dict[str, Any], path: str, query: dict[str, Any], extra: list[tuple[str, str]]
    ) -> list[Any]:
        """GitLab's offset pagination: per_page default 20 (at most 100), the X-* headers and a Link header."""
        per_page = args.get("per_page", 20)
        page = args.get("page", 1)
        if per_page < 1:
            per_page = 20
        per_page = min(per_page, 100)
        page = max(page, 1)
        total = len(items)
        pages = max(1, math.ceil(total / per_page))

        def link(number: int) -> str:
            shown = {k: v for k, v in query.items() if k not in ("page", "per_page", "private_token")}
            shown |= {"page": number, "per_page": per_page}
            pairs = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in shown.items()]
            return f"<{self.api_url}{path}?{urlencode(pairs, doseq=True)}>"

        links = []
        if page > 1:
            links.append(f'{link(page - 1)}; rel="prev"')
        if page < pages:
            links.append(f'{link(page + 1)}; rel="next"')
        links += [f'{link(1)}; rel="first"', f'{link(pages)}; rel="last"']
        extra += [
            ("Link", ", ".join(links)),
            ("X-Page", str(page)),
            ("X-Per-Page", str(per_page)),
            ("X-Total", str(total)),
            ("X-Total-Pages", str(pages)),
            ("X-Next-Page", str(page + 1) if page < pages else ""),
            ("X-Prev-Page", str(page - 1) if page > 1 else ""),
        ]
        return items[(page - 1) * per_page : page * per_page]

    # ---------------------------------------------------------------- REST API: routes

    def _route(
        self, method: str, path: str, params: dict[str, Any], user: User | None, extra: list[tuple[str, str]]
    ) -> Any:
        segs = [unquote(s) for s in path[len("/api/v4/") :].split("/")]
        where = f"{method} {path}"
        if segs == ["user"] and method == "GET":
            if user is None:
                raise ApiError(401, {"message": "401 Unauthorized"})
            self._validate(where, params, {})
            return self._user_json(user, full=True)
        if segs == ["version"] and method == "GET":
            if user is None:
                raise ApiError(401, {"message": "401 Unauthorized"})
            self._validate(where, params, {})
            return {"version": "18.0.0-ee", "revision": "fakegitlab", "kas": {"enabled": False}, "enterprise": True}
        if len(segs) >= 2 and segs[0] == "projects" and segs[1]:
            project = self._project_for(segs[1], user)
            rest = segs[2:]
            rel = "/projects/" + quote(segs[1], safe="")
            match (method, rest):
                case ("GET", []):
                    self._validate(where, params, {"license": Param("bool"), "statistics": Param("bool")})
                    if project.import_status == "started":
                        project.import_gets_left -= 1
                        if project.import_gets_left <= 0:
                            project.import_status = "finished"
                    return self._project_json(project, user)
                case ("POST", ["fork"]):
                    return self._fork(where, project, params, user)
                case ("GET", ["forks"]):
                    return self._list_forks(where, rel, project, params, user, extra)
                case ("GET", ["members", "all", user_id]):
                    self._validate(where, params, {})
                    return self._member(project, self._int_path("user_id", user_id))
                case ("GET", ["merge_requests"]):
                    return self._list_mrs(where, rel, project, params, extra)
                case ("POST", ["merge_requests"]):
                    return self._create_mr(where, project, params, user)
                case ("GET", ["merge_requests", iid]):
                    self._validate(
                        where, params, {"render_html": Param("bool"), "include_rebase_in_progress": Param("bool")}
                    )
                    return self._mr_json(self._find_mr(project, iid), user)
                case ("PUT", ["merge_requests", iid]):
                    return self._update_mr(where, self._find_mr(project, iid), params, user)
                case ("PUT", ["merge_requests", iid, "merge"]):
                    return self._merge(where, self._find_mr(project, iid), params, user)
                case ("GET", ["repository", "branches"]):
                    return self._list_branches(where, rel, project, params, user, extra)
                case ("GET", ["repository", "branches", name]):
                    self._validate(where, params, {})
                    self._need_code(project, user)
                    found = self._branches(project, user, name=name)
                    if not found:
                        raise ApiError(404, {"message": "404 Branch Not Found"})
                    return found[0]
                case ("GET", ["repository", "tree"]):
                    return self._tree(where, rel, project, params, user, extra)
                case ("GET", ["repository", "files", file_path]):
                    return self._file(where, project, file_path, params, user, raw=False, extra=extra)
                case ("GET", ["repository", "files", file_path, "raw"]):
                    return self._file(where, project, file_path, params, user, raw=True, extra=extra)
        raise ApiError(404, {"error": "404 Not Found"}, violation=True)

    def _int_path(self, name: str, value: str) -> int:
        if not re.fullmatch(r"\d+", value):
            raise ApiError(400, {"error": f"{name} is invalid"}, violation=True)
        return int(value)

    def _project_for(self, ident: str, user: User | None) -> Project:
        project = self._projects.get(int(ident)) if ident.isdigit() else self._find_path(ident)
        if project is None or not self._can_see(project, user):
            raise ApiError(404, {"message": "404 Project Not Found"})
        return project

    def _need_code(self, project: Project, user: User | None) -> None:
        if not self._can_read_code(project, user):
            raise ApiError(403, {"message": "403 Forbidden"})

    # ---------------------------------------------------------------- renderers

    def _user_json(self, user: User, *, full: bool = False) -> dict[str, Any]:
        basic = {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": f"{self.url}/uploads/-/system/user/avatar/{user.id}/avatar.png",
            "web_url": f"{self.url}/{user.username}",
        }
        if full:
            basic |= {
                "created_at": user.created_at,
                "bio": "",
                "location": "",
                "public_email": None,
                "email": f"{user.username}@example.com",
                "commit_email": f"{user.username}@example.com",
                "bot": False,
                "can_create_group": True,
                "can_create_project": True,
                "two_factor_enabled": False,
                "external": False,
                "private_profile": False,
            }
        return basic

    def _namespace_json(self, namespace: str) -> dict[str, Any]:
        if namespace not in self._namespace_ids:
            self._ids["namespace"] += 1
            self._namespace_ids[namespace] = self._ids["namespace"]
        owner = self._users.get(namespace)
        return {
            "id": self._namespace_ids[namespace],
            "name": owner.name if owner else namespace.rsplit("/", 1)[-1],
            "path": namespace.rsplit("/", 1)[-1],
            "kind": "user" if owner else "group",
            "full_path": namespace,
            "parent_id": None,
            "avatar_url": None,
            "web_url": f"{self.url}/{namespace}" if owner else f"{self.url}/groups/{namespace}",
        }

    def _project_json(self, project: Project, user: User | None, *, brief: bool = False) -> dict[str, Any]:
        web = f"{self.url}/{project.full_path}"
        namespace = self._namespace_json(project.namespace)
        default = self._default_branch(project)
        out: dict[str, Any] = {
            "id": project.id,
            "description": None,
            "name": project.path,
            "name_with_namespace": f"{namespace['name']} / {project.path}",
            "path": project.path,
            "path_with_namespace": project.full_path,
            "created_at": project.created_at,
            "default_branch": default,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@127.0.0.1:{project.full_path}.git",
            "http_url_to_repo": f"{web}.git",
            "web_url": web,
            "readme_url": f"{web}/-/blob/{default}/README.md" if default else None,
            "avatar_url": None,
            "forks_count": sum(1 for p in self._projects.values() if p.forked_from == project.id),
            "star_count": 0,
            "last_activity_at": project.created_at,
            "namespace": namespace,
        }
        if brief:
            return out
        owner = self._owner(project)
        level = self._access(project, user)
        upstream = self._projects.get(project.forked_from) if project.forked_from else None
        out |= {
            "_links": {
                "self": f"{self.api_url}/projects/{project.id}",
                "issues": f"{self.api_url}/projects/{project.id}/issues",
                "merge_requests": f"{self.api_url}/projects/{project.id}/merge_requests",
                "repo_branches": f"{self.api_url}/projects/{project.id}/repository/branches",
                "labels": f"{self.api_url}/projects/{project.id}/labels",
                "events": f"{self.api_url}/projects/{project.id}/events",
                "members": f"{self.api_url}/projects/{project.id}/members",
            },
            "empty_repo": default is None and not _git("for-each-ref", "--count=1", git_dir=project.bare).strip(),
            "archived": False,
            "visibility": project.visibility,
            "owner": self._user_json(owner) if owner else None,
            "issues_enabled": True,
            "merge_requests_enabled": True,
            "wiki_enabled": True,
            "jobs_enabled": True,
            "creator_id": owner.id if owner else 1,
            "import_url": None,
            "import_type": "gitlab_project" if upstream else None,
            "import_status": project.import_status,
            "import_error": None,
            "open_issues_count": 0,
            "forking_access_level": "enabled",
            "merge_requests_access_level": "enabled",
            "repository_access_level": "enabled",
            "merge_method": project.merge_method,
            "squash_option": "default_off",
            "only_allow_merge_if_pipeline_succeeds": False,
            "only_allow_merge_if_all_discussions_are_resolved": False,
            "remove_source_branch_after_merge": True,
            "request_access_enabled": True,
            "mr_default_target_self": False,
            "permissions": {
                "project_access": {"access_level": level, "notification_level": 3} if level else None,
                "group_access": None,
            },
        }
        if upstream is not None:
            out["forked_from_project"] = self._project_json(upstream, user, brief=True)
        return out

    def _member(self, project: Project, user_id: int) -> dict[str, Any]:
        member = next((u for u in self._users.values() if u.id == user_id), None)
        level = self._access(project, member)
        if member is None or level == 0:
            raise ApiError(404, {"message": "404 Member Not Found"})
        return self._user_json(member) | {
            "access_level": level,
            "created_at": member.created_at,
            "expires_at": None,
            "membership_state": "active",
        }

    # ---------------------------------------------------------------- forks

    def _list_forks(
        self,
        where: str,
        rel: str,
        project: Project,
        params: dict[str, Any],
        user: User | None,
        extra: list[tuple[str, str]],
    ) -> Any:
        """GET /projects/:id/forks: the direct forks the caller can see, filtered as GitLab documents."""
        args = self._validate(
            where,
            params,
            {
                "archived": Param("bool"),
                "membership": Param("bool"),
                "min_access_level": Param("int"),
                "order_by": Param(values=frozenset({"id", "name", "path", "created_at", "updated_at"})),
                "owned": Param("bool"),
                "search": Param(),
                "simple": Param("bool"),
                "sort": Param(values=frozenset({"asc", "desc"})),
                "starred": Param("bool"),
                "statistics": Param("bool"),
                "visibility": Param(values=VISIBILITIES),
                "with_custom_attributes": Param("bool"),
                "with_issues_enabled": Param("bool"),
                "with_merge_requests_enabled": Param("bool"),
                "per_page": Param("int"),
                "page": Param("int"),
            },
        )
        forks = [p for p in self._projects.values() if p.forked_from == project.id and self._can_see(p, user)]
        if args.get("owned"):
            forks = [p for p in forks if user is not None and p.namespace == user.username]
        if args.get("membership"):
            forks = [p for p in forks if self._access(p, user) >= GUEST]
        if "min_access_level" in args:
            forks = [p for p in forks if self._access(p, user) >= args["min_access_level"]]
        if "search" in args:
            forks = [p for p in forks if args["search"].lower() in p.path.lower()]
        forks.sort(key=lambda p: p.id, reverse=args.get("sort", "desc") == "desc")
        items = [self._project_json(p, user) for p in forks]
        return self._paginate(items, args, rel + "/forks", params, extra)

    def _fork(self, where: str, project: Project, params: dict[str, Any], user: User | None) -> Any:
        args = self._validate(
            where,
            params,
            {
                "namespace": Param(),
                "namespace_id": Param("int"),
                "namespace_path": Param(),
                "path": Param(),
                "name": Param(),
                "description": Param(),
                "visibility": Param(values=VISIBILITIES),
                "mr_default_target_self": Param("bool"),
                "branches": Param(),
            },
        )
        if user is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        if not self._can_read_code(project, user):
            raise ApiError(404, {"message": "404 Project Not Found"})
        target = args.get("namespace_path") or args.get("namespace") or user.username
        if "namespace_id" in args:
            target = next((ns for ns, i in self._namespace_ids.items() if i == args["namespace_id"]), "")
        elif str(target).isdigit():
            target = next((ns for ns, i in self._namespace_ids.items() if i == int(target)), "")
        if not target or (target in self._users and target != user.username):
            raise ApiError(404, {"message": "404 Target Namespace Not Found"})
        name = args.get("path") or args.get("name") or project.path
        if self._find_path(f"{target}/{name}"):
            taken = ["has already been taken"]
            raise ApiError(409, {"message": {"project_namespace.name": taken, "name": taken, "path": taken}})
        bare = self.repos / target / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "--bare", "--quiet", "--no-hardlinks", str(project.bare), str(bare))
        _git("remote", "remove", "origin", git_dir=bare)
        self._install_hook(bare)
        self._ids["project"] += 1
        visibility = args.get("visibility", project.visibility)
        order = ["private", "internal", "public"]
        if order.index(visibility) > order.index(project.visibility):
            visibility = project.visibility
        fork = Project(self._ids["project"], target, name, bare, visibility, project.merge_method, _now())
        fork.forked_from = project.id
        fork.import_status = "started" if self.fork_delay > 0 else "finished"
        fork.import_gets_left = self.fork_delay
        self._projects[fork.id] = fork
        return 201, self._project_json(fork, user)

    # ---------------------------------------------------------------- merge requests

    def _find_mr(self, project: Project, iid: str) -> MergeRequest:
        number = self._int_path("merge_request_iid", iid)
        mr = next((m for m in self._mrs if m.target_project_id == project.id and m.iid == number), None)
        if mr is None:
            raise ApiError(404, {"message": "404 Not found"})
        return mr

    def _mr_ref(self, mr: MergeRequest) -> str:
        return f"refs/merge-requests/{mr.iid}/head"

    def _refresh(self, mr: MergeRequest) -> None:
        """Like GitLab after a push: refs/merge-requests/:iid/head in the target follows the source branch."""
        if mr.state != "opened":
            return
        source = self._projects[mr.source_project_id]
        target = self._projects[mr.target_project_id]
        sha = self._rev(source.bare, f"refs/heads/{mr.source_branch}")
        if sha is None:
            return
        if self._rev(target.bare, self._mr_ref(mr)) != sha:
            if source.id == target.id:
                _git("update-ref", self._mr_ref(mr), sha, git_dir=target.bare)
            else:
                _git(
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    str(source.bare),
                    f"+refs/heads/{mr.source_branch}:{self._mr_ref(mr)}",
                    git_dir=target.bare,
                )
        mr.sha = sha

    def _mergeability(self, mr: MergeRequest) -> tuple[str, str]:
        """(merge_status, detailed_merge_status), computed from the repositories as they are now."""
        if mr.state != "opened":
            return mr.merge_status, "not_open"
        self._refresh(mr)
        source = self._projects[mr.source_project_id]
        target = self._projects[mr.target_project_id]
        head = self._rev(source.bare, f"refs/heads/{mr.source_branch}")
        base = self._rev(target.bare, f"refs/heads/{mr.target_branch}")
        if head is None or base is None:
            return "cannot_be_merged", "broken_status"
        merged = _git_run("merge-tree", "--write-tree", base, head, git_dir=target.bare)
        if merged.returncode != 0:
            mr.merge_status = "cannot_be_merged"
            return mr.merge_status, "conflict"
        mr.merge_status = "can_be_merged"
        if _is_draft(mr.title):
            return mr.merge_status, "draft_status"
        fast_forward = _git_run("merge-base", "--is-ancestor", base, head, git_dir=target.bare).returncode == 0
        if target.merge_method != "merge" and not fast_forward:
            return mr.merge_status, "need_rebase"
        return mr.merge_status, "mergeable"

    def _mr_json(self, mr: MergeRequest, viewer: User | None = None) -> dict[str, Any]:
        target = self._projects[mr.target_project_id]
        merge_status, detailed = self._mergeability(mr)
        author = self._users[mr.author]
        draft = _is_draft(mr.title)
        reference = f"!{mr.iid}"
        level = self._access(target, viewer)
        return {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": target.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merged_by": self._user_json(self._users[mr.merged_by]) if mr.merged_by else None,
            "merge_user": self._user_json(self._users[mr.merged_by]) if mr.merged_by else None,
            "merged_at": mr.merged_at,
            "closed_by": self._user_json(self._users[mr.closed_by]) if mr.closed_by else None,
            "closed_at": mr.closed_at,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": 0,
            "upvotes": 0,
            "downvotes": 0,
            "author": self._user_json(author),
            "assignees": [],
            "assignee": None,
            "reviewers": [],
            "source_project_id": mr.source_project_id,
            "target_project_id": mr.target_project_id,
            "labels": list(mr.labels),
            "draft": draft,
            "work_in_progress": draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": merge_status,
            "detailed_merge_status": detailed,
            "has_conflicts": merge_status == "cannot_be_merged" and detailed == "conflict",
            "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha,
            "discussion_locked": None,
            "should_remove_source_branch": mr.should_remove_source_branch,
            "force_remove_source_branch": mr.force_remove_source_branch,
            "allow_collaboration": mr.allow_collaboration,
            "allow_maintainer_to_push": mr.allow_collaboration,
            "reference": reference,
            "references": {"short": reference, "relative": reference, "full": f"{target.full_path}{reference}"},
            "web_url": f"{self.url}/{target.full_path}/-/merge_requests/{mr.iid}",
            "time_stats": {"time_estimate": 0, "total_time_spent": 0},
            "squash": mr.squash,
            "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "blocking_discussions_resolved": True,
            "user": {"can_merge": level >= DEVELOPER},
        }

    def _list_mrs(
        self, where: str, rel: str, project: Project, params: dict[str, Any], extra: list[tuple[str, str]]
    ) -> Any:
        args = self._validate(
            where,
            params,
            {
                "state": Param(values=frozenset({"opened", "closed", "locked", "merged", "all"})),
                "order_by": Param(values=frozenset({"created_at", "updated_at", "title", "merged_at"})),
                "sort": Param(values=frozenset({"asc", "desc"})),
                "source_branch": Param(),
                "target_branch": Param(),
                "labels": Param("list"),
                "author_id": Param("int"),
                "author_username": Param(),
                "search": Param(),
                "iids": Param("list"),
                "wip": Param(values=frozenset({"yes", "no"})),
                "scope": Param(values=frozenset({"created_by_me", "assigned_to_me", "all"})),
                "view": Param(values=frozenset({"simple"})),
                "milestone": Param(),
                "with_labels_details": Param("bool"),
                "with_merge_status_recheck": Param("bool"),
                "created_after": Param(),
                "created_before": Param(),
                "updated_after": Param(),
                "updated_before": Param(),
                "per_page": Param("int"),
                "page": Param("int"),
            },
        )
        mrs = [m for m in self._mrs if m.target_project_id == project.id]
        state = args.get("state", "all")
        if state != "all":
            mrs = [m for m in mrs if m.state == state]
        for key in ("source_branch", "target_branch"):
            if key in args:
                mrs = [m for m in mrs if getattr(m, key) == args[key]]
        if "labels" in args:
            mrs = [m for m in mrs if set(args["labels"]) <= set(m.labels)]
        if "author_id" in args:
            mrs = [m for m in mrs if self._users[m.author].id == args["author_id"]]
        if "author_username" in args:
            mrs = [m for m in mrs if m.author == args["author_username"]]
        if "search" in args:
            needle = args["search"].lower()
            mrs = [m for m in mrs if needle in m.title.lower() or needle in m.description.lower()]
        if "iids" in args:
            mrs = [m for m in mrs if str(m.iid) in args["iids"]]
        if "wip" in args:
            mrs = [m for m in mrs if _is_draft(m.title) == (args["wip"] == "yes")]
        order = args.get("order_by", "created_at")
        mrs.sort(key=lambda m: (getattr(m, order) or "", m.id), reverse=args.get("sort", "desc") == "desc")
        return [self._mr_json(m) for m in self._paginate(mrs, args, rel + "/merge_requests", params, extra)]

    def _create_mr(self, where: str, source: Project, params: dict[str, Any], user: User | None) -> Any:
        args = self._validate(
            where,
            params,
            {
                "source_branch": Param(required=True),
                "target_branch": Param(required=True),
                "title": Param(required=True),
                "description": Param(),
                "target_project_id": Param("int"),
                "assignee_id": Param("int"),
                "assignee_ids": Param("list"),
                "reviewer_ids": Param("list"),
                "labels": Param("list"),
                "milestone_id": Param("int"),
                "remove_source_branch": Param("bool"),
                "squash": Param("bool"),
                "allow_collaboration": Param("bool"),
                "allow_maintainer_to_push": Param("bool"),
                "approvals_before_merge": Param("int"),
                "merge_after": Param(),
            },
        )
        if user is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        blank = {k: ["can't be blank"] for k in ("source_branch", "target_branch", "title") if not args[k].strip()}
        if blank:
            raise ApiError(400, {"message": blank}, violation=True)
        if len(args.get("description", "")) > 1_048_576:
            raise ApiError(400, {"message": {"description": ["is too long (maximum is 1048576 characters)"]}})
        target = source
        if "target_project_id" in args:
            found = self._projects.get(args["target_project_id"])
            if found is None or not self._can_see(found, user):
                raise ApiError(404, {"message": "404 Project Not Found"})
            target = found
        if self._access(source, user) < DEVELOPER:
            raise ApiError(403, {"message": "403 Forbidden"})
        if target.id != source.id and self._fork_root(target) != self._fork_root(source):
            raise ApiError(422, {"message": ["Source project is not a fork of the target project"]})
        if target.id == source.id and args["source_branch"] == args["target_branch"]:
            raise ApiError(409, {"message": ["You can't use same project/branch for source and target"]})
        if self._rev(source.bare, f"refs/heads/{args['source_branch']}") is None:
            raise ApiError(400, {"message": {"source_branch": ["does not exist"]}})
        if self._rev(target.bare, f"refs/heads/{args['target_branch']}") is None:
            raise ApiError(400, {"message": {"target_branch": ["does not exist"]}})
        self._conflicting(source.id, target.id, args["source_branch"], args["target_branch"], None)
        self._ids["mr"] += 1
        now = _now()
        mr = MergeRequest(
            id=self._ids["mr"],
            iid=target.next_iid,
            target_project_id=target.id,
            source_project_id=source.id,
            source_branch=args["source_branch"],
            target_branch=args["target_branch"],
            title=args["title"],
            description=args.get("description", ""),
            author=user.username,
            created_at=now,
            updated_at=now,
            labels=args.get("labels", []),
            force_remove_source_branch=args.get("remove_source_branch", False),
            squash=args.get("squash", False),
            allow_collaboration=args.get("allow_collaboration", args.get("allow_maintainer_to_push", False))
            and source.id != target.id,
        )
        target.next_iid += 1
        self._mrs.append(mr)
        self._refresh(mr)
        return 201, self._mr_json(mr, user)

    def _conflicting(self, source_id: int, target_id: int, source: str, target: str, own: int | None) -> None:
        for other in self._mrs:
            if (
                other.state == "opened"
                and other.id != own
                and (other.source_project_id, other.target_project_id) == (source_id, target_id)
                and (other.source_branch, other.target_branch) == (source, target)
            ):
                message = f"Another open merge request already exists for this source branch: !{other.iid}"
                raise ApiError(409, {"message": [message]})

    def _update_mr(self, where: str, mr: MergeRequest, params: dict[str, Any], user: User | None) -> Any:
        spec = {
            "title": Param(),
            "description": Param(),
            "state_event": Param(values=frozenset({"close", "reopen"})),
            "target_branch": Param(),
            "labels": Param("list"),
            "add_labels": Param("list"),
            "remove_labels": Param("list"),
            "assignee_id": Param("int"),
            "assignee_ids": Param("list"),
            "reviewer_ids": Param("list"),
            "milestone_id": Param("int"),
            "remove_source_branch": Param("bool"),
            "squash": Param("bool"),
            "allow_collaboration": Param("bool"),
            "allow_maintainer_to_push": Param("bool"),
            "discussion_locked": Param("bool"),
            "merge_after": Param(),
        }
        if not any(name in params for name in spec):
            names = ", ".join(spec)
            raise ApiError(
                400, {"error": f"{names} are missing, at least one parameter must be provided"}, violation=True
            )
        args = self._validate(where, params, spec)
        if user is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        target = self._projects[mr.target_project_id]
        if user.username != mr.author and self._access(target, user) < DEVELOPER:
            raise ApiError(403, {"message": "403 Forbidden"})
        if "title" in args and not args["title"].strip():
            raise ApiError(400, {"message": {"title": ["can't be blank"]}}, violation=True)
        if "target_branch" in args:
            if mr.state == "merged":
                raise ApiError(400, {"message": {"target_branch": ["cannot be changed on a merged merge request"]}})
            if self._rev(target.bare, f"refs/heads/{args['target_branch']}") is None:
                raise ApiError(400, {"message": {"target_branch": ["does not exist"]}})
            if mr.state == "opened":
                self._conflicting(
                    mr.source_project_id, mr.target_project_id, mr.source_branch, args["target_branch"], mr.id
                )
            mr.target_branch = args["target_branch"]
        if "title" in args:
            mr.title = args["title"]
        if "description" in args:
            mr.description = args["description"]
        if "labels" in args:
            mr.labels = args["labels"]
        mr.labels += [label for label in args.get("add_labels", []) if label not in mr.labels]
        mr.labels = [label for label in mr.labels if label not in args.get("remove_labels", [])]
        if "remove_source_branch" in args:
            mr.force_remove_source_branch = args["remove_source_branch"]
        if "squash" in args:
            mr.squash = args["squash"]
        if "allow_collaboration" in args and mr.source_project_id != mr.target_project_id:
            mr.allow_collaboration = args["allow_collaboration"]
        event = args.get("state_event")
        if event == "close" and mr.state == "opened":
            mr.state, mr.closed_at, mr.closed_by = "closed", _now(), user.username
        elif event == "reopen" and mr.state == "closed":
            self._conflicting(mr.source_project_id, mr.target_project_id, mr.source_branch, mr.target_branch, mr.id)
            mr.state, mr.closed_at, mr.closed_by = "opened", None, None
        mr.updated_at = _now()
        return self._mr_json(mr, user)

    def _merge(self, where: str, mr: MergeRequest, params: dict[str, Any], user: User | None) -> Any:
        args = self._validate(
            where,
            params,
            {
                "merge_commit_message": Param(),
                "squash_commit_message": Param(),
                "squash": Param("bool"),
                "should_remove_source_branch": Param("bool"),
                "merge_when_pipeline_succeeds": Param("bool"),
                "auto_merge": Param("bool"),
                "sha": Param(),
            },
        )
        if user is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        target = self._projects[mr.target_project_id]
        needed = MAINTAINER if mr.target_branch in self._protected(target) else DEVELOPER
        if self._access(target, user) < needed:
            raise ApiError(401, {"message": "401 Unauthorized"})
        _, detailed = self._mergeability(mr)
        if detailed != "mergeable":
            raise ApiError(405, {"message": "405 Method Not Allowed"})
        head = self._rev(target.bare, self._mr_ref(mr))
        base = self._rev(target.bare, f"refs/heads/{mr.target_branch}")
        assert head is not None
        assert base is not None
        if "sha" in args and args["sha"] != head:
            raise ApiError(409, {"message": "SHA does not match HEAD of source branch: " + head})
        squash = args.get("squash", mr.squash)
        when = str(int(time.time()))
        env = {
            "GIT_AUTHOR_NAME": user.name,
            "GIT_AUTHOR_EMAIL": f"{user.username}@example.com",
            "GIT_COMMITTER_NAME": user.name,
            "GIT_COMMITTER_EMAIL": f"{user.username}@example.com",
            "GIT_AUTHOR_DATE": f"{when} +0000",
            "GIT_COMMITTER_DATE": f"{when} +0000",
        }
        merge_base = _git("merge-base", base, head, git_dir=target.bare).strip()
        tip = head
        if squash:
            message = args.get("squash_commit_message") or mr.title
            tree = _git("rev-parse", f"{head}^{{tree}}", git_dir=target.bare).strip()
            tip = _git("commit-tree", tree, "-p", merge_base, "-m", message, git_dir=target.bare, env=env).strip()
            mr.squash_commit_sha = tip
        if target.merge_method == "ff":
            new = tip
        else:
            message = args.get("merge_commit_message") or (
                f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
                f"See merge request {target.full_path}!{mr.iid}"
            )
            merged = _git_run("merge-tree", "--write-tree", base, tip, git_dir=target.bare)
            if merged.returncode != 0:
                raise ApiError(422, {"message": "Branch cannot be merged"})
            tree = merged.stdout.decode().split()[0]
            new = _git("commit-tree", tree, "-p", base, "-p", tip, "-m", message, git_dir=target.bare, env=env).strip()
            mr.merge_commit_sha = new
        _git("update-ref", f"refs/heads/{mr.target_branch}", new, base, git_dir=target.bare)
        remove = args.get("should_remove_source_branch") or mr.force_remove_source_branch
        if remove:
            source = self._projects[mr.source_project_id]
            _git_run("update-ref", "-d", f"refs/heads/{mr.source_branch}", git_dir=source.bare)
            mr.should_remove_source_branch = True
        mr.state, mr.merged_at, mr.merged_by, mr.sha = "merged", _now(), user.username, head
        mr.updated_at = mr.merged_at
        return self._mr_json(mr, user)

    # ---------------------------------------------------------------- repository

    def _branches(self, project: Project, user: User | None, *, name: str | None = None) -> list[dict[str, Any]]:
        fields = [
            "%(refname:lstrip=2)",
            "%(objectname)",
            "%(parent)",
            "%(authorname)",
            "%(authoremail:trim)",
            "%(authordate:iso-strict)",
            "%(committername)",
            "%(committeremail:trim)",
            "%(committerdate:iso-strict)",
            "%(contents:subject)",
            "%(contents)",
        ]
        pattern = f"refs/heads/{name}" if name is not None else "refs/heads/"
        if name is not None and (name.startswith("-") or not name):
            return []
        raw = _git("for-each-ref", "--format=" + "%1f".join(fields) + "%1e", pattern, git_dir=project.bare)
        default = self._default_branch(project)
        merged: set[str] = set()
        if default:
            merged_raw = _git(
                "for-each-ref",
                f"--merged=refs/heads/{default}",
                "--format=%(refname:lstrip=2)",
                "refs/heads/",
                git_dir=project.bare,
            )
            merged = set(merged_raw.split()) - {default}
        protected = self._protected(project)
        level = self._access(project, user)
        out = []
        for record in raw.split("\x1e"):
            values = record.strip("\n").split("\x1f")
            if len(values) != len(fields) or (name is not None and values[0] != name):
                continue
            branch, sha, parents, a_name, a_mail, a_date, c_name, c_mail, c_date, title, message = values
            is_protected = branch in protected
            out.append(
                {
                    "name": branch,
                    "merged": branch in merged,
                    "protected": is_protected,
                    "default": branch == default,
                    "developers_can_push": not is_protected,
                    "developers_can_merge": not is_protected,
                    "can_push": level >= (MAINTAINER if is_protected else DEVELOPER),
                    "web_url": f"{self.url}/{project.full_path}/-/tree/{quote(branch)}",
                    "commit": {
                        "id": sha,
                        "short_id": sha[:8],
                        "created_at": c_date,
                        "parent_ids": parents.split(),
                        "title": title,
                        "message": message,
                        "author_name": a_name,
                        "author_email": a_mail,
                        "authored_date": a_date,
                        "committer_name": c_name,
                        "committer_email": c_mail,
                        "committed_date": c_date,
                        "trailers": {},
                        "extended_trailers": {},
                        "web_url": f"{self.url}/{project.full_path}/-/commit/{sha}",
                    },
                }
            )
        return out

    def _list_branches(
        self,
        where: str,
        rel: str,
        project: Project,
        params: dict[str, Any],
        user: User | None,
        extra: list[tuple[str, str]],
    ) -> Any:
        args = self._validate(
            where,
            params,
            {
                "search": Param(),
                "regex": Param(),
                "sort": Param(values=frozenset({"name_asc", "updated_asc", "updated_desc"})),
                "page_token": Param(),
                "per_page": Param("int"),
                "page": Param("int"),
            },
        )
        self._need_code(project, user)
        branches = self._branches(project, user)
        search = args.get("search")
        if search:
            if search.startswith("^"):
                branches = [b for b in branches if b["name"].startswith(search[1:])]
            elif search.endswith("$"):
                branches = [b for b in branches if b["name"].endswith(search[:-1])]
            else:
                branches = [b for b in branches if search.lower() in b["name"].lower()]
        if "regex" in args:
            branches = [b for b in branches if re.search(args["regex"], b["name"])]
        sort = args.get("sort", "name_asc")
        if sort == "name_asc":
            branches.sort(key=lambda b: b["name"])
        else:
            branches.sort(key=lambda b: b["commit"]["committed_date"], reverse=sort == "updated_desc")
        return self._paginate(branches, args, rel + "/repository/branches", params, extra)

    def _commit_for(self, project: Project, ref: str | None, not_found: str) -> str:
        sha = self._rev(project.bare, ref or self._default_branch(project) or "HEAD")
        if sha is None:
            raise ApiError(404, {"message": f"404 {not_found} Not Found"})
        return sha

    def _tree(
        self,
        where: str,
        rel: str,
        project: Project,
        params: dict[str, Any],
        user: User | None,
        extra: list[tuple[str, str]],
    ) -> Any:
        args = self._validate(
            where,
            params,
            {
                "path": Param(),
                "ref": Param(),
                "recursive": Param("bool"),
                "per_page": Param("int"),
                "page": Param("int"),
                "pagination": Param(values=frozenset({"legacy"})),
            },
        )
        self._need_code(project, user)
        commit = self._commit_for(project, args.get("ref"), "Tree")
        path = args.get("path", "").strip("/")
        spec = f"{commit}:{path}" if path else f"{commit}^{{tree}}"
        kind = _git_run("cat-file", "-t", spec, git_dir=project.bare).stdout.decode().strip()
        if kind != "tree":
            raise ApiError(404, {"message": "404 Tree Not Found"})
        flags = ["-r", "-t"] if args.get("recursive") else []
        raw = _git("ls-tree", "-z", *flags, spec, git_dir=project.bare)
        groups: dict[str, list[dict[str, Any]]] = {"tree": [], "blob": [], "commit": []}
        for line in filter(None, raw.split("\0")):
            info, _, name = line.partition("\t")
            mode, kind, oid = info.split()
            full = f"{path}/{name}" if path else name
            groups[kind].append(
                {"id": oid, "name": full.rsplit("/", 1)[-1], "type": kind, "path": full, "mode": mode.zfill(6)}
            )
        entries = groups["tree"] + groups["blob"] + groups["commit"]
        return self._paginate(entries, args, rel + "/repository/tree", params, extra)

    def _file(
        self,
        where: str,
        project: Project,
        file_path: str,
        params: dict[str, Any],
        user: User | None,
        *,
        raw: bool,
        extra: list[tuple[str, str]],
    ) -> Any:
        spec = {"ref": Param(required=not raw), "lfs": Param("bool")}
        args = self._validate(where, params, spec)
        self._need_code(project, user)
        commit = self._commit_for(project, args.get("ref"), "File")
        path = file_path.strip("/")
        listing = _git("ls-tree", "-z", commit, "--", path, git_dir=project.bare).rstrip("\0")
        info, _, listed = listing.partition("\t")
        if not path or listed != path or info.split()[1] != "blob":
            raise ApiError(404, {"message": "404 File Not Found"})
        mode, _, blob = info.split()
        content = _git_run("cat-file", "blob", blob, git_dir=project.bare).stdout
        last = _git("log", "-1", "--format=%H", commit, "--", path, git_dir=project.bare).strip()
        meta = {
            "file_name": path.rsplit("/", 1)[-1],
            "file_path": path,
            "size": len(content),
            "encoding": "base64",
            "content_sha256": hashlib.sha256(content).hexdigest(),
            "ref": args.get("ref") or self._default_branch(project),
            "blob_id": blob,
            "commit_id": commit,
            "last_commit_id": last,
            "execute_filemode": mode == "100755",
        }
        if raw:
            for key, value in meta.items():
                if key != "execute_filemode":
                    extra.append(("X-Gitlab-" + "-".join(part.capitalize() for part in key.split("_")), str(value)))
            return content
        return meta | {"content": base64.b64encode(content).decode()}
