"""`vteam`: run the platform (`up`, `runner`) and drive it (`project`, `session`).

Commands that only talk HTTP must start fast, so this module imports only typer at the top: the HTTP client
(httpx, asyncio) is imported when a command first calls the API, and the server side (fastapi, sqlalchemy,
uvicorn, the api, the controller) only inside `up`, `runner` and `operator`. tests/cli/test_startup.py holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from vteam import credentials

if TYPE_CHECKING:
    from vteam.client import Client

# httpx imports its own command line (click, rich, pygments: ~25 ms a command) unless it cannot; vteam never runs it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

T = TypeVar("T")

app = typer.Typer(
    help="vTeam: run AI coding agents as agentic sessions against git repositories.", no_args_is_help=True
)
project_app = typer.Typer(help="Create, list and delete projects.", no_args_is_help=True)
session_app = typer.Typer(help="Create, inspect, follow, stop and delete sessions.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(session_app, name="session")

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="VTEAM_SERVER",
        show_default=False,
        help="URL of the vTeam API (default: the server `vteam login` signed in to, else http://127.0.0.1:8080).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", envvar="VTEAM_PROJECT", help="Project name.")]

FINAL = {"Completed", "Failed", "Stopped", "TimedOut"}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: MESSAGE` as one whole line on stderr (a server's multi-line detail joined) and exit."""
    typer.echo("error: " + " ".join(part.strip() for part in message.splitlines() if part.strip()), err=True)
    raise typer.Exit(code)


def server_url(given: str | None) -> str:
    """Which server a command talks to: `--server` or `VTEAM_SERVER`, else the one `vteam login` signed in to,
    else the default local address."""
    from vteam.client import DEFAULT_SERVER

    return given or credentials.current_server() or DEFAULT_SERVER


def call(server: str | None, action: Callable[[Client], Awaitable[T]], *, token: str | None = None) -> T:
    """Run one async client action (with `token`, else the saved one); API problems and connection failures
    become one line and exit 1."""
    import asyncio

    from vteam.client import ApiError, BadInput, Client, Unreachable

    url = server_url(server)

    async def runner() -> T:
        async with Client(url, token or credentials.token_for(url)) as client:
            return await action(client)

    try:
        return asyncio.run(runner())
    except (ApiError, Unreachable, BadInput) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080; 0 picks one).")] = None,
    home: Annotated[Path | None, typer.Option(help="Data folder (default $VTEAM_HOME or ./.vteam).")] = None,
) -> None:
    """Run the platform: API and web UI, with local runners (embedded mode) or, with VTEAM_MODE=cluster, as the
    backend of a Kubernetes deployment whose operator runs sessions as Jobs."""
    import asyncio
    import socket

    import uvicorn

    from vteam import logs
    from vteam.api import Platform
    from vteam.api.middleware import proxy_secret, proxy_trust
    from vteam.errors import VteamError
    from vteam.events.envelope import MAX_FRAME_BYTES
    from vteam.server import create_app
    from vteam.settings import Settings

    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port, "home": home}.items() if v is not None}
    settings = Settings(**overrides)
    settings.home = settings.home.resolve()
    logs.configure(settings.log_level, settings.log_format)
    if settings.trust_proxy_headers and proxy_secret(settings) is None:
        fail(
            "VTEAM_TRUST_PROXY_HEADERS=true needs VTEAM_PROXY_SECRET, a secret the proxy sends to prove itself "
            "(any agent on this host reaches loopback, so an address proves nothing; see docs/security.md)"
        )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then (no 40 ms ACK stalls).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    bound_port = sock.getsockname()[1]
    local_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    url = f"http://{local_host}:{bound_port}" if ":" not in local_host else f"http://[{local_host}]:{bound_port}"
    os.umask(0o077)

    async def serve() -> str | None:
        try:
            platform = await Platform.open(settings)
        except VteamError as exc:
            return exc.detail
        application = create_app(settings, server_url=settings.public_url or url, platform=platform)
        config = uvicorn.Config(
            application,
            log_config=None,
            access_log=False,
            # X-Forwarded-For/-Proto count only from a proxy that proves itself (api.middleware.ProxyHeaders), not
            # from whoever reaches loopback, as uvicorn would take them.
            proxy_headers=False,
            # Every WebSocket message is held whole before the app sees it: no larger than users' limit (which
            # the app checks again per route) or what a runner's frames need, whichever is more.
            ws_max_size=max(settings.max_ws_frame_bytes, MAX_FRAME_BYTES),
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        typer.echo(f"vTeam is up on {url}  (data in {settings.home}; Ctrl-C to stop)", err=True)
        typer.echo(proxy_trust(settings), err=True)
        typer.echo(platform.isolation.line(), err=True)
        if platform.first_login is not None:
            link = f"{(settings.public_url or url).rstrip('/')}/login?token={platform.first_login}"
            typer.echo(
                f"First start: an admin user was created. Sign in once with\n  {link}\n"
                f"in a browser, or run: vteam login '{link}'",
                err=True,
            )
        await server.serve(sockets=[sock])
        return None if server.started else "vTeam did not start; see the log above"

    if problem := asyncio.run(serve()):
        fail(problem)


@app.command()
def runner() -> None:
    """Run one session's runner (started by the executor; reads VTEAM_* from the environment)."""
    from vteam.runner.main import main as runner_main

    runner_main()


@app.command()
def operator(
    namespace: Annotated[
        list[str], typer.Option("--namespace", "-n", help="Serve only this namespace; repeat for more (default: all).")
    ] = [],  # noqa: B006
    peering: Annotated[str, typer.Option(help="kopf peering object the replicas share; one of them acts.")] = "vteam",
    standalone: Annotated[bool, typer.Option("--standalone", help="Act without peering (a single replica).")] = False,
    priority: Annotated[
        int | None, typer.Option(help="Peering priority; the highest live one acts (default: random per start).")
    ] = None,
    liveness: Annotated[
        str | None, typer.Option(help="Serve a liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
) -> None:
    """Run the cluster-mode operator: each session's runner as a Kubernetes Job (reads VTEAM_* settings)."""
    import asyncio

    from vteam import logs
    from vteam.controller.operator import run
    from vteam.errors import VteamError
    from vteam.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(
            run(
                settings,
                namespaces=namespace,
                peering=peering,
                standalone=standalone,
                priority=priority,
                liveness=liveness,
            )
        )
    except VteamError as exc:
        fail(exc.detail)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@project_app.command("create")
def project_create(
    name: str,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project."""
    body = {"name": name, "displayName": display_name, "description": description}
    result = call(server, lambda c: c.request("POST", "/api/projects", json=body))
    emit_json(result) if as_json else typer.echo(f"project {name} created")


@project_app.command("list")
def project_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List projects."""
    result = call(server, lambda c: c.request("GET", "/api/projects"))
    if as_json:
        return emit_json(result["items"])
    rows = [
        [p["metadata"]["name"], p["spec"].get("displayName") or "", p["metadata"].get("creationTimestamp", "")]
        for p in result["items"]
    ]
    table(rows, ["NAME", "DISPLAY NAME", "CREATED"])


@project_app.command("get")
def project_get(name: str, server: ServerOpt = None) -> None:
    """Show one project as JSON."""
    emit_json(call(server, lambda c: c.request("GET", f"/api/projects/{name}")))


@project_app.command("delete")
def project_delete(name: str, server: ServerOpt = None) -> None:
    """Delete a project and all of its sessions."""
    call(server, lambda c: c.request("DELETE", f"/api/projects/{name}"))
    typer.echo(f"project {name} deleted")


def _repo(value: str, flag: str) -> tuple[str, str | None]:
    from vteam.resources.validation import split_repo_arg

    url, branch = split_repo_arg(value)
    if not url:
        fail(f"{flag} {value!r} is empty")
    return url, branch


@session_app.command("create")
def session_create(
    project: ProjectOpt,
    prompt: Annotated[str, typer.Option("--prompt", help="The task; for `script`, a shell command.")],
    repo: Annotated[list[str], typer.Option("--repo", help="Input repo as URL[@branch]; repeat for more.")] = [],  # noqa: B006
    output: Annotated[
        list[str], typer.Option("--output", help="Output for the repo at the same position, as URL[@branch].")
    ] = [],  # noqa: B006
    framework: Annotated[str, typer.Option(help="Agent framework.")] = "script",
    model: Annotated[str | None, typer.Option(help="Model, where the framework takes one.")] = None,
    name: Annotated[str | None, typer.Option(help="Session name (generated if omitted).")] = None,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    timeout: Annotated[int | None, typer.Option(help="Seconds before the session is timed out.")] = None,
    label: Annotated[list[str], typer.Option("--label", help="key=value; repeat for more.")] = [],  # noqa: B006
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Keep the session for follow-up messages (see `session send`).")
    ] = False,
    idle_timeout: Annotated[
        int | None, typer.Option(help="Seconds an interactive session waits for a message before it ends.")
    ] = None,
    pull_request: Annotated[
        bool, typer.Option("--pr", help="Open a pull request for every --output (a linked change set).")
    ] = False,
    draft: Annotated[bool, typer.Option("--draft", help="Open the pull requests as drafts.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the session's log until it ends.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a session; with --wait, stream its log and exit 0 only if it completes."""
    if len(output) > len(repo):
        fail("there are more --output than --repo options; each output belongs to the repo at its position")
    repos: list[dict[str, Any]] = []
    for index, value in enumerate(repo):
        url, branch = _repo(value, "--repo")
        entry: dict[str, Any] = {"input": {"url": url, **({"branch": branch} if branch else {})}}
        if index < len(output):
            out_url, out_branch = _repo(output[index], "--output")
            entry["output"] = {"url": out_url, **({"targetBranch": out_branch} if out_branch else {})}
            if pull_request:
                entry["output"] |= {"createPullRequest": True, "draft": draft}
        repos.append(entry)
    labels = {}
    for item in label:
        key, sep, val = item.partition("=")
        if not sep:
            fail(f"--label {item!r} must be key=value")
        labels[key] = val
    body: dict[str, Any] = {"prompt": prompt, "repos": repos, "framework": framework, "labels": labels}
    if interactive:
        body["interactive"] = True
    if idle_timeout is not None:
        body["idleTimeout"] = idle_timeout
    optional: dict[str, Any] = {"name": name, "displayName": display_name, "model": model, "timeout": timeout}
    for key, value in optional.items():
        if value is not None:
            body[key] = value
    created = call(server, lambda c: c.request("POST", f"/api/projects/{project}/agentic-sessions", json=body))
    session_name = created["metadata"]["name"]
    if not wait:
        return emit_json(created) if as_json else typer.echo(f"session {session_name} created")
    typer.echo(f"session {session_name} created; following its log", err=True)
    _follow(server, project, session_name, as_json)


def _follow(server: str | None, project: str, name: str, as_json: bool) -> None:
    async def stream(client: Client) -> dict[str, Any]:
        with LogPrinter(as_json) as printer:
            async for env in client.events(project, name, on_reconnect=lambda note: typer.echo(note, err=True)):
                printer.show(env)
        result: dict[str, Any] = await client.request("GET", f"/api/projects/{project}/agentic-sessions/{name}")
        return result

    session = call(server, stream)
    phase = session["status"]["phase"]
    if not as_json:
        typer.echo(_summary(session), err=True)
    raise typer.Exit(0 if phase == "Completed" else 1)


def _summary(session: dict[str, Any]) -> str:
    status = session["status"]
    lines = [
        f"session {session['metadata']['name']}: {status['phase']}"
        + (f" ({status['message']})" if status.get("message") else "")
    ]
    for repo in status.get("repos", []):
        stat = repo.get("diffstat") or {}
        pushed = "pushed" if repo.get("pushed") else "not pushed"
        lines.append(
            f"  {repo['url']} {repo.get('branch', '')} {(repo.get('commitSha') or '')[:12]} {pushed}; "
            f"{stat.get('filesChanged', 0)} files, +{stat.get('insertions', 0)} -{stat.get('deletions', 0)}"
            + (f"; error: {repo['error']}" if repo.get("error") else "")
        )
    return "\n".join(lines)


class LogPrinter:
    """Render envelopes for a terminal: agent text as it streams, vTeam's moments as marked lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.midline = False

    def show(self, env: dict[str, Any]) -> None:
        if self.as_json:
            typer.echo(json.dumps(env))
            return
        kind, data = env["type"], env.get("data", {})
        value = data.get("value") or {}
        if kind == "TEXT_MESSAGE_CONTENT":
            delta = data.get("delta", "")
            sys.stdout.write(delta)
            sys.stdout.flush()
            self.midline = not delta.endswith("\n")
            return
        line = {
            "vteam.phase": lambda: (
                f"phase {value.get('phase')}" + (f": {value['message']}" if value.get("message") else "")
            ),
            "vteam.clone": lambda: (
                f"cloned {value.get('url')} ({value.get('branch')} at {str(value.get('commit'))[:12]})"
            ),
            "vteam.branch": lambda: f"working on branch {value.get('branch')}",
            "vteam.commit": lambda: f"committed {str(value.get('commit'))[:12]} {value.get('message', '')}",
            "vteam.push": lambda: f"pushed {value.get('branch')} to {value.get('url')}",
            "vteam.user_message": lambda: f"{value.get('user')}: {value.get('text')}",
            "vteam.interrupt": lambda: f"interrupted by {value.get('user')}",
            "vteam.end": lambda: f"ended by {value.get('user')}",
            "RUN_ERROR": lambda: (
                f"error: {data.get('message')}" if data.get("code") != "INTERRUPTED" else "turn stopped"
            ),
        }.get(kind)
        if line is None:
            return
        if self.midline:
            typer.echo()
            self.midline = False
        typer.echo(f"── {line()}")

    def __enter__(self) -> LogPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        """End a half-printed agent line, also when the stream fails, so an error after it starts a line."""
        if self.midline:
            typer.echo()
            self.midline = False


@session_app.command("list")
def session_list(
    project: ProjectOpt,
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Label selector.")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a project's sessions."""
    params = {"labelSelector": selector} if selector else {}
    result = call(server, lambda c: c.request("GET", f"/api/projects/{project}/agentic-sessions", params=params))
    if as_json:
        return emit_json(result["items"])
    rows = [
        [
            s["metadata"]["name"],
            s["status"]["phase"],
            s["spec"]["framework"],
            s["metadata"].get("creationTimestamp", ""),
            (s["status"].get("message") or "").splitlines()[0][:60] if s["status"].get("message") else "",
        ]
        for s in result["items"]
    ]
    table(rows, ["NAME", "PHASE", "FRAMEWORK", "CREATED", "MESSAGE"])


@session_app.command("get")
def session_get(name: str, project: ProjectOpt, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show one session."""
    result = call(server, lambda c: c.request("GET", f"/api/projects/{project}/agentic-sessions/{name}"))
    emit_json(result) if as_json else typer.echo(_summary(result))


@session_app.command("stop")
def session_stop(name: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Stop a running session (its runner's process tree is killed)."""
    call(server, lambda c: c.request("POST", f"/api/projects/{project}/agentic-sessions/{name}/stop"))
    typer.echo(f"session {name} stopping")


@session_app.command("continue")
def session_continue(
    name: str,
    project: ProjectOpt,
    prompt: Annotated[str, typer.Option("--prompt", help="What the continued session should do.")],
    child: Annotated[str | None, typer.Option("--name", help="Name of the new session.")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a new session where a finished one left off: its branches, and its conversation where possible."""
    body: dict[str, Any] = {"prompt": prompt, **({"name": child} if child else {})}
    path = f"/api/projects/{project}/agentic-sessions/{name}/continue"
    created = call(server, lambda c: c.request("POST", path, json=body))
    emit_json(created) if as_json else typer.echo(f"session {created['metadata']['name']} continues {name}")


@session_app.command("send")
def session_send(name: str, text: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Send a message to an interactive session; the agent takes it up after its current turn."""
    path = f"/api/projects/{project}/agentic-sessions/{name}/messages"
    call(server, lambda c: c.request("POST", path, json={"text": text}))
    typer.echo(f"message sent to {name}")


@session_app.command("interrupt")
def session_interrupt(name: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Stop an interactive session's current turn; the session waits for the next message."""
    call(server, lambda c: c.request("POST", f"/api/projects/{project}/agentic-sessions/{name}/interrupt"))
    typer.echo(f"session {name} interrupted")


@session_app.command("end")
def session_end(name: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Finish an interactive session: its work is committed and pushed."""
    call(server, lambda c: c.request("POST", f"/api/projects/{project}/agentic-sessions/{name}/end"))
    typer.echo(f"session {name} ending")


@session_app.command("delete")
def session_delete(name: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Delete a session with its events and workspace."""
    call(server, lambda c: c.request("DELETE", f"/api/projects/{project}/agentic-sessions/{name}"))
    typer.echo(f"session {name} deleted")


@session_app.command("logs")
def session_logs(
    name: str,
    project: ProjectOpt,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the session ends.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a session's events; with -f, follow the live stream and exit when the session ends."""
    if follow:
        _follow(server, project, name, as_json)
        return

    async def replay(client: Client) -> None:
        with LogPrinter(as_json) as printer:
            async for env in client.events(project, name, follow=False):
                printer.show(env)

    call(server, replay)


@session_app.command("prs")
def session_prs(name: str, project: ProjectOpt, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List the session's change set: its pull requests with their current state."""
    result = call(server, lambda c: c.request("GET", f"/api/projects/{project}/agentic-sessions/{name}/pull-requests"))
    if as_json:
        return emit_json(result)
    rows = [[p["repo"], p["state"] + (" (draft)" if p.get("draft") else ""), p["url"]] for p in result["items"]]
    rows += [[str(n["url"]), "none", n["note"] or ""] for n in result["notOpened"]]
    table(rows, ["REPO", "STATE", "PULL REQUEST"])


forge_app = typer.Typer(help="Link your GitHub and GitLab accounts (personal tokens).", no_args_is_help=True)
secret_app = typer.Typer(
    help="Write a project's secrets (such as GIT_TOKEN); values are never shown.", no_args_is_help=True
)
app.add_typer(forge_app, name="forge")
app.add_typer(secret_app, name="secret")
Forge = Annotated[str, typer.Argument(help="github or gitlab")]


def _read_secret(what: str) -> str:
    """A secret from stdin when it is piped, else from a hidden prompt: never from argv or the shell history."""
    value = sys.stdin.readline().strip() if not sys.stdin.isatty() else typer.prompt(what, hide_input=True)
    if not value:
        fail(f"no {what} given on stdin")
    return str(value)


@forge_app.command("list")
def forge_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show which forge accounts you have linked."""
    result = call(server, lambda c: c.request("GET", "/api/user/forges"))
    if as_json:
        return emit_json(result["items"])
    rows = []
    for item in result["items"]:
        token = item["token"]["updated"] if item.get("token") else "-"
        installation = item.get("installation")
        app_link = f"installation {installation['id']} ({installation['login']})" if installation else "-"
        rows.append([item["forge"], item["url"], token, app_link if item["forge"] == "github" else ""])
    table(rows, ["FORGE", "URL", "TOKEN UPDATED", "GITHUB APP"])


@forge_app.command("login")
def forge_login(forge: Forge, server: ServerOpt = None) -> None:
    """Store your personal access token for a forge (read from stdin, or asked for); vTeam checks it first."""
    if forge not in ("github", "gitlab"):
        fail(f"forge must be github or gitlab, not {forge!r}")
    token = _read_secret(f"{forge} token")
    result = call(server, lambda c: c.request("PUT", f"/api/user/forges/{forge}/token", json={"token": token}))
    typer.echo(f"{forge} token stored for {result['login']}")


@forge_app.command("logout")
def forge_logout(forge: Forge, server: ServerOpt = None) -> None:
    """Forget your personal access token for a forge."""
    call(server, lambda c: c.request("DELETE", f"/api/user/forges/{forge}/token"))
    typer.echo(f"{forge} token removed")


def _scope(name: str, frameworks: list[str] | None) -> str:
    """Which frameworks' agents get a secret; GIT_TOKEN reaches none (the platform pushes with it)."""
    if name == "GIT_TOKEN":
        return "none"
    return ",".join(frameworks) if frameworks else "all"


@secret_app.command("set")
def secret_set(
    name: str,
    project: ProjectOpt,
    framework: Annotated[
        list[str],
        typer.Option(
            "--framework",
            help="Only this framework's agents get the secret; repeat for more. Left out: every framework's.",
        ),
    ] = [],  # noqa: B006
    server: ServerOpt = None,
) -> None:
    """Set a project secret and which frameworks get it (every one, unless --framework says); its value is read
    from stdin (or asked for), never from the command line. Setting it again replaces value and frameworks."""
    value = _read_secret(name)
    body: dict[str, object] = {"value": value, "frameworks": framework or None}
    result = call(server, lambda c: c.request("PUT", f"/api/projects/{project}/secrets/{name}", json=body))
    typer.echo(f"secret {name} set (frameworks: {_scope(name, result.get('frameworks'))})")


@secret_app.command("list")
def secret_list(project: ProjectOpt, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List a project's secrets: names, the frameworks that get them and update times."""
    result = call(server, lambda c: c.request("GET", f"/api/projects/{project}/secrets"))
    if as_json:
        return emit_json(result["items"])
    rows = [[s["name"], _scope(s["name"], s.get("frameworks")), s["updated"]] for s in result["items"]]
    table(rows, ["NAME", "FRAMEWORKS", "UPDATED"])


@secret_app.command("delete")
def secret_delete(name: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Delete a project secret."""
    call(server, lambda c: c.request("DELETE", f"/api/projects/{project}/secrets/{name}"))
    typer.echo(f"secret {name} deleted")


user_app = typer.Typer(help="Create and list users (platform admins).", no_args_is_help=True)
token_app = typer.Typer(help="Your personal API tokens.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


@app.command()
def login(
    link: Annotated[
        str | None, typer.Argument(help="A one-time login link (or its token); none: an API token from stdin.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", envvar="VTEAM_SERVER", help="URL of the vTeam API.")] = None,
) -> None:
    """Sign the CLI in: trade a one-time login link for an API token, or store an API token, for this server;
    later commands talk to this server unless --server or VTEAM_SERVER names another."""
    from urllib.parse import parse_qs, urlsplit

    from vteam.client import BadInput, check_server

    value = link or _read_secret("API token or login link")
    try:
        parts = urlsplit(value)
    except ValueError:
        fail("the login link is not a valid URL; copy it again")
    if parts.scheme in ("http", "https"):
        server = server or f"{parts.scheme}://{parts.netloc}"
        value = parse_qs(parts.query).get("token", [""])[0]
    try:
        server = check_server(server_url(server))
    except BadInput as exc:
        fail(str(exc))
    if value.startswith("vt_login_"):
        answer = call(server, lambda c: c.request("POST", "/api/login", json={"token": value}))
        token = str(answer["token"])
    else:
        token = value
    who = call(server, lambda c: c.request("GET", "/api/me"), token=token)
    where = credentials.save(server, token)
    typer.echo(f"signed in to {server} as {who['name']} (token saved in {where})")


@app.command()
def logout(server: ServerOpt = None) -> None:
    """Revoke this CLI's token at the server and forget it, and the server too if it was the current one."""
    url = server_url(server)
    if credentials.token_for(url) is not None:
        with contextlib.suppress(typer.Exit):
            call(url, lambda c: c.request("POST", "/api/logout"))
    credentials.forget(url)
    typer.echo(f"signed out of {url}")


@app.command()
def whoami(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show who the CLI is signed in as."""
    me = call(server, lambda c: c.request("GET", "/api/me"))
    if as_json:
        return emit_json(me)
    typer.echo(f"{me['name']}{' (platform admin)' if me['admin'] else ''}")


@user_app.command("create")
def user_create(
    name: str,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Make them a platform admin.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print a one-time login link to hand to them."""
    body = {"name": name, "displayName": display_name, "admin": admin}
    created = call(server, lambda c: c.request("POST", "/api/users", json=body))
    if as_json:
        return emit_json(created)
    typer.echo(f"user {name} created; their one-time login link:\n  {created['loginLink']}")


@user_app.command("list")
def user_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List users."""
    result = call(server, lambda c: c.request("GET", "/api/users"))
    if as_json:
        return emit_json(result["items"])
    table(
        [[u["name"], u["displayName"], "yes" if u["admin"] else "", u["created"]] for u in result["items"]],
        ["NAME", "DISPLAY NAME", "ADMIN", "CREATED"],
    )


@user_app.command("login-link")
def user_login_link(name: str, server: ServerOpt = None) -> None:
    """A fresh one-time login link for a user."""
    result = call(server, lambda c: c.request("POST", f"/api/users/{name}/login-link"))
    typer.echo(result["loginLink"])


@token_app.command("create")
def token_create(
    name: str,
    days: Annotated[int, typer.Option("--days", help="Days until it expires (at most 365).")] = 90,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token; it is printed once, here."""
    created = call(server, lambda c: c.request("POST", "/api/tokens", json={"name": name, "expiresInDays": days}))
    if as_json:
        return emit_json(created)
    typer.echo(created["token"])
    typer.echo(f"token {created['id']} expires {created['expires']}; it is shown only now", err=True)


@token_app.command("list")
def token_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List your API tokens (never their secrets)."""
    result = call(server, lambda c: c.request("GET", "/api/tokens"))
    if as_json:
        return emit_json(result["items"])
    rows = [
        [
            t["id"],
            t["name"],
            t["created"],
            t["expires"] or "never",
            t["lastUsed"] or "-",
            "revoked" if t["revoked"] else "",
        ]
        for t in result["items"]
    ]
    table(rows, ["ID", "NAME", "CREATED", "EXPIRES", "LAST USED", "REVOKED"])


@token_app.command("revoke")
def token_revoke(token_id: str, server: ServerOpt = None) -> None:
    """Revoke one of your API tokens."""
    call(server, lambda c: c.request("DELETE", f"/api/tokens/{token_id}"))
    typer.echo(f"token {token_id} revoked")


key_app = typer.Typer(help="A project's access keys, for automation.", no_args_is_help=True)
app.add_typer(key_app, name="key")


@project_app.command("members")
def project_members(name: str, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Who holds which role in a project."""
    result = call(server, lambda c: c.request("GET", f"/api/projects/{name}/permissions"))
    if as_json:
        return emit_json(result["items"])
    table([[b["subjectType"], b["subjectName"], b["role"]] for b in result["items"]], ["TYPE", "NAME", "ROLE"])


@project_app.command("local-roots")
def project_local_roots(
    name: str,
    roots: Annotated[
        list[str] | None, typer.Argument(help="Folders to allow; none: show the current ones.", show_default=False)
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Allow no local folders.")] = False,
    server: ServerOpt = None,
) -> None:
    """Which local folders a project's sessions may use as repositories (platform admins set them)."""
    path = f"/api/admin/projects/{name}/repository-policy"
    if roots or clear:
        body = {"localRoots": [] if clear else list(roots or [])}
        result = call(server, lambda c: c.request("PUT", path, json=body))
    else:
        result = call(server, lambda c: c.request("GET", path))
    allowed = result["localRoots"]
    typer.echo("\n".join(allowed) if allowed else f"{name}: no local folders allowed")


@project_app.command("grant")
def project_grant(
    name: str,
    subject: Annotated[str, typer.Argument(help="NAME or user:NAME (a user), or group:NAME")],
    role: Annotated[str, typer.Argument(help="view, edit or admin")],
    server: ServerOpt = None,
) -> None:
    """Give a user or group a role in a project."""
    kind, who = _subject(subject)
    body = {"subjectType": kind, "subjectName": who, "role": role}
    call(server, lambda c: c.request("POST", f"/api/projects/{name}/permissions", json=body))
    typer.echo(f"{kind}:{who} is {role} in {name}")


@project_app.command("revoke")
def project_revoke(
    name: str,
    subject: Annotated[str, typer.Argument(help="NAME or user:NAME (a user), or group:NAME")],
    server: ServerOpt = None,
) -> None:
    """Take a user's or group's role in a project away."""
    kind, who = _subject(subject)
    call(server, lambda c: c.request("DELETE", f"/api/projects/{name}/permissions/{kind}/{who}"))
    typer.echo(f"{kind}:{who} no longer has a role in {name}")


def _subject(value: str) -> tuple[str, str]:
    """`user:NAME`, `group:NAME`, or a bare NAME, which is a user, as `vteam user create NAME` names one."""
    kind, _, who = value.partition(":") if ":" in value else ("user", ":", value)
    if kind not in ("user", "group") or not who:
        fail(f"subject {value!r} must be NAME or user:NAME (a user), or group:NAME")
    return kind, who


@key_app.command("create")
def key_create(
    name: str,
    project: ProjectOpt,
    role: Annotated[str, typer.Option("--role", help="view, edit or admin (at most yours).")] = "view",
    days: Annotated[int | None, typer.Option("--days", help="Days until it expires; omit for 90.")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an access key; its secret is printed once, here."""
    body: dict[str, Any] = {"name": name, "role": role, **({"expiresInDays": days} if days is not None else {})}
    created = call(server, lambda c: c.request("POST", f"/api/projects/{project}/keys", json=body))
    if as_json:
        return emit_json(created)
    typer.echo(created["token"])
    typer.echo(f"key {created['id']} ({role}) expires {created['expires'] or 'never'}; shown only now", err=True)


@key_app.command("list")
def key_list(project: ProjectOpt, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """A project's access keys (never their secrets)."""
    result = call(server, lambda c: c.request("GET", f"/api/projects/{project}/keys"))
    if as_json:
        return emit_json(result["items"])
    rows = [
        [k["id"], k["name"], k["role"], k["created"], k["expires"] or "never", k["lastUsed"] or "-", k["revoked"] or ""]
        for k in result["items"]
    ]
    table(rows, ["ID", "NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"])


@key_app.command("revoke")
def key_revoke(key_id: str, project: ProjectOpt, server: ServerOpt = None) -> None:
    """Revoke an access key."""
    call(server, lambda c: c.request("DELETE", f"/api/projects/{project}/keys/{key_id}"))
    typer.echo(f"key {key_id} revoked")


audit_app = typer.Typer(
    help="Read and verify the audit log (platform admins; a project's admins with --project).", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
AuditProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="Only this project's records.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only records by this user or key.")]
ActionOpt = Annotated[str | None, typer.Option("--action", help="An action or its prefix, e.g. token.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="ISO 8601 time, inclusive.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="ISO 8601 time, exclusive.")]


def _audit_query(**filters: str | int | None) -> dict[str, str | int]:
    return {k: v for k, v in filters.items() if v is not None}


@audit_app.command("list")
def audit_list(
    project: AuditProjectOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    after: Annotated[int, typer.Option("--after", help="Records after this seq (a previous page's next).")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many records (up to 1000).")] = 100,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit records, oldest first."""
    params = _audit_query(
        project=project, actor=actor, action=action, since=since, until=until, after=after, limit=limit
    )
    result = call(server, lambda c: c.request("GET", "/api/audit", params=params))
    if as_json:
        return emit_json(result)
    rows = [
        [str(r["seq"]), r["ts"], r["actor"], r["project"] or "-", r["action"], r["target"], r["outcome"]]
        for r in result["items"]
    ]
    table(rows, ["SEQ", "TIME", "ACTOR", "PROJECT", "ACTION", "TARGET", "OUTCOME"])
    if result["next"] is not None:
        typer.echo(f"more records: add --after {result['next']}", err=True)


@audit_app.command("export")
def audit_export(
    project: AuditProjectOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    server: ServerOpt = None,
) -> None:
    """Print every matching record as JSON Lines (one record a line), e.g. `vteam audit export > audit.jsonl`."""
    params = _audit_query(project=project, actor=actor, action=action, since=since, until=until, limit=1000)

    async def pages(client: Client) -> None:
        after: int | None = 0
        while after is not None:
            page = await client.request("GET", "/api/audit", params={**params, "after": after})
            for record in page["items"]:
                typer.echo(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            after = page["next"]

    call(server, pages)


@audit_app.command("verify")
def audit_verify(server: ServerOpt = None) -> None:
    """Check the audit log's hash chain: exits 1 naming the first record that was changed or removed."""
    result = call(server, lambda c: c.request("GET", "/api/audit/verify"))
    if not result["ok"]:
        where = f"audit record {result['seq']}" if result["seq"] is not None else "audit log"
        fail(f"{where}: {result['problem']}")
    typer.echo(f"audit log verified: {result['checked']} records")


vault_app = typer.Typer(help="The key that encrypts stored secrets (platform admins).", no_args_is_help=True)
app.add_typer(vault_app, name="vault")


@vault_app.command("rotate")
def vault_rotate(server: ServerOpt = None) -> None:
    """Encrypt every stored secret under a new key, then forget the old one."""
    result = call(server, lambda c: c.request("POST", "/api/admin/vault/rotate"))
    typer.echo(f"vault key rotated; {result['reencrypted']} secrets re-encrypted")


def main() -> None:
    """The `vteam` command: whatever it is given, a failure is one readable line, never a traceback.

    VTEAM_CLI_DEBUG=1 shows the traceback of an unexpected failure, for reporting a bug.
    """
    try:
        app()
    except Exception as exc:
        if os.environ.get("VTEAM_CLI_DEBUG") or sys.argv[1:2] in (["up"], ["runner"], ["operator"]):
            raise  # the platform's own processes keep their tracebacks for the operator's log
        first = (str(exc).splitlines() or [""])[0][:300]
        typer.echo(f"error: {type(exc).__name__}: {first} (VTEAM_CLI_DEBUG=1 shows the traceback)", err=True)
        raise SystemExit(1) from None
