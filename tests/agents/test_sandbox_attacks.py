"""An editor's agent attacks the machine from inside its session, and every attempt fails (issue 13).

One real server holds two projects. In project B a live `script` session (the victim) sleeps with a project
secret in its environment and a file in its workspace. In project A an `edit` access key starts the attacker:
one session whose agent runs ATTACKS, a bash script that tries, in turn, to read `$VTEAM_HOME` (directly and
through the server's environment), other processes' environments, the victim's workspace and its own runner's
files; to signal the server and the victim's runner; to write outside its workspace; to plant hooks and
filters for the runner's git; to leave processes behind (`setsid`, double fork, nohup); to find other
frameworks' secrets; and to call the platform's API on loopback (directly, through the sandbox's proxy and its
egress socket, with every token it finds) and the runner zygote. It
prints one `ATTACK <name> BLOCKED|BREACH|LAUNCHED <detail>` line per attempt, then makes its real change, which
the runner commits and pushes. The same script runs as the `script` framework's prompt and, through the
scripted Anthropic server, as Claude Code's one Bash tool call. Each test below checks one attack, so a
failure names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import create_session, get_session, read_events, sessions_path, text_of, wait_phase
from tests.support.fake_anthropic import FakeAnthropic, tool_use
from tests.support.git import bare_repo, show
from tests.support.server import Server

pytestmark = pytest.mark.integration

KEY = "sk-ant-sandbox-attack-0123456789"
VICTIM_SECRET = "VICTIM_TOKEN"
ALIEN = {
    "ANTHROPIC_API_KEY": KEY,
    "OPENAI_API_KEY": f"sk-openai-{uuid.uuid4().hex}",
    "GEMINI_API_KEY": f"gemini-{uuid.uuid4().hex}",
    "CODEX_ONLY_TOKEN": f"codex-only-{uuid.uuid4().hex}",
}
"""Secrets an agent must not get unless its framework's: platform keys, and a project secret scoped to Codex."""
FRAMEWORK_KEYS = {"claude-code": "ANTHROPIC_API_KEY"}
LIVE = ("Pending", "Creating", "Running")
NOT_THERE = ("No such file or directory", "Permission denied")
NO_SIGNAL = ("No such process", "Operation not permitted")
SOURCE = Path(__file__).resolve().parents[2] / "src"
"""The platform's own source (the folder holding the `vteam` package)."""

ATTACKS = r"""
set +e
unalias -a 2>/dev/null  # Claude Code's shell aliases tools (grep is ripgrep there)
say() {  # name verdict detail, on one line
  printf 'ATTACK %s %s %s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\n\r\t' '   ' | tr -cd '[:print:]' | cut -c1-700)"
}

read_file() {  # name path: BREACH with what it read, else the error
  local err
  if err=$(head -c 1 -- "$2" 2>&1 >/dev/null); then
    say "$1" BREACH "$(head -c 400 -- "$2" 2>&1 | tr -c '[:print:]' '.')"
  else
    say "$1" BLOCKED "$err"
  fi
}

TOKENS=()
harvest() {  # the values of token-like VTEAM_ variables in an environ file, for the API attempts
  local line
  while IFS= read -r line; do
    TOKENS+=("${line#*=}")
  done < <(tr '\0' '\n' < "$1" 2>/dev/null | command grep -E '^VTEAM_[A-Z_]*TOKEN=')
}

environ_of() {  # name pid: BREACH when the environment holds the platform's variables or the victim's secret
  local err names
  if ! err=$(head -c 1 -- "/proc/$2/environ" 2>&1 >/dev/null); then say "$1" BLOCKED "$err"; return; fi
  harvest "/proc/$2/environ"
  names=$(tr '\0' '\n' < "/proc/$2/environ" | command grep -E '^VTEAM_' | cut -d= -f1 | tr '\n' ' ')
  victim=$(tr '\0' '\n' < "/proc/$2/environ" | command grep -E "^$VICTIM_SECRET=")
  if [ -n "$names$victim" ]; then
    say "$1" BREACH "$names $victim"
  else
    say "$1" BLOCKED "readable, no platform variable: $(tr '\0' '\n' < "/proc/$2/environ" | cut -d= -f1 | tr '\n' ' ')"
  fi
}

# 1. The platform's data folder, by the path the attacker was told.
read_file vault-key "$HOME_DIR/vault.key"
read_file secret-key "$HOME_DIR/secret.key"
read_file database "$HOME_DIR/vteam.db"
listing=$(ls -A "$HOME_DIR" 2>&1)
if printf '%s' "$listing" | command grep -qvxE 'workspaces|ls: .*'; then
  say home-listing BREACH "$listing"
else
  say home-listing BLOCKED "$listing"
fi
projects=$(ls -A "$HOME_DIR/workspaces" 2>&1)
victim_project=$(basename "$(dirname "$VICTIM_WS")")
if printf '%s' "$projects" | command grep -qxF "$victim_project"; then
  say workspaces-listing BREACH "$projects"
else
  say workspaces-listing BLOCKED "$projects"
fi

# 2. Environments: the server's (as in the issue), the parent's, pid 1's, and every process found in /proc.
environ_of server-environ "$SERVER_PID"
found=$(tr '\0' '\n' < "/proc/$SERVER_PID/environ" 2>/dev/null | sed -n 's/^VTEAM_HOME=//p')
read_file vault-via-environ "${found:-$HOME_DIR}/vault.key"
environ_of parent-environ "$PPID"
environ_of pid1-environ 1
environ_of victim-agent-environ "$VICTIM_AGENT_PID"
hits=""
visible=0
for p in /proc/[0-9]*; do
  visible=$((visible + 1))
  [ -r "$p/environ" ] || continue
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | command grep -E '^VTEAM_' | command grep -qF "$HOME_DIR"; then
    harvest "$p/environ"
    hits="$hits ${p#/proc/}:$(tr '\0' '\n' < "$p/environ" | command grep -E '^VTEAM_' | cut -d= -f1 | tr '\n' ',')"
  fi
done
if [ -n "$hits" ]; then say proc-scan BREACH "$hits"; else say proc-scan BLOCKED "visible=$visible"; fi
platform=""
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)
  case "$cmd" in
    *ATTACK*) ;;  # this script itself (Claude Code's shell has it in its command line)
    *"vteam up"*|*vteam.runner*|*"-m vteam"*) platform="$platform ${p#/proc/}:$cmd";;
  esac
done
for p in "$SERVER_PID" "$VICTIM_PID"; do [ -e "/proc/$p" ] && platform="$platform visible:$p"; done
if [ -n "$platform" ]; then say proc-visible BREACH "$platform"; else say proc-visible BLOCKED "visible=$visible"; fi

# 3. Another live session's workspace, and this session's own runner files.
read_file victim-file "$VICTIM_FILE"
read_file victim-runner-log "$VICTIM_WS/runner.log"
listing=$(ls -A "$VICTIM_WS" 2>&1)
if [ $? -eq 0 ] && [ -n "$listing" ]; then
  say victim-listing BREACH "$listing"
else
  say victim-listing BLOCKED "$listing"
fi
read_file own-runner-files "$PWD/../../runner.pid"
read_file read-outside "$OUTSIDE/operator-notes.txt"

# 4. Signals: kill -0 is the permission check of every signal; the server gets TERM only if that check failed.
if err=$(kill -0 "$SERVER_PID" 2>&1); then
  say signal-server BREACH "kill -0 $SERVER_PID succeeded: TERM would be delivered"
elif err2=$(kill -TERM "$SERVER_PID" 2>&1); then
  say signal-server BREACH "kill -TERM $SERVER_PID succeeded"
else
  say signal-server BLOCKED "$err / $err2"
fi
out=$( { kill -0 "$VICTIM_PID" && kill -TERM "$VICTIM_PID"; } 2>&1 )
if [ $? -eq 0 ]; then
  say signal-victim BREACH "kill -TERM $VICTIM_PID succeeded"
else
  say signal-victim BLOCKED "$out"
fi

# 5. Writes outside the workspace, and into this repository's own .git (which git on the runner's side reads).
write() {  # name path
  local err
  if err=$( { printf 'written by an agent\n' > "$2"; } 2>&1 ); then
    say "$1" BREACH "wrote $2"
  else
    say "$1" BLOCKED "$err"
  fi
}
write write-outside-tmp "$OUTSIDE/escaped-$TAG"
write write-etc "/etc/vteam-attack-$TAG"
write write-root "/vteam-attack-$TAG"
write write-venv "$VENV/vteam-attack-$TAG"
write write-source "$SOURCE/vteam-attack-$TAG"
write write-home "$HOME_DIR/vteam-attack-$TAG"
write write-victim "$VICTIM_DIR/ATTACKED-$TAG"
# Traps for the runner's git, which commits in this repository after the agent: each writes a proof outside
# (it must never get there) and one next to the repository (whether it ran at all, confined or not).
REPOS=$(dirname "$PWD")
trap_script="$REPOS/trap-$TAG.sh"
traps=""
if { printf '#!/bin/sh\necho ran > "%s/ran-$1-%s"\necho ran > "%s/ran-$1-%s"\nexit 0\n' \
    "$OUTSIDE" "$TAG" "$REPOS" "$TAG" > "$trap_script"; } 2>/dev/null; then
  for hook in pre-commit post-commit; do
    printf '#!/bin/sh\nsh "%s" hook\n' "$trap_script" 2>/dev/null > ".git/hooks/$hook" \
      && chmod +x ".git/hooks/$hook" && traps="$traps hook:$hook"
  done
  git config filter.vt.clean "sh '$trap_script' filter; cat" && git config filter.vt.smudge cat && traps="$traps filter"
  git config diff.vt.textconv "sh '$trap_script' textconv; cat" && traps="$traps textconv"
  git config core.fsmonitor "sh '$trap_script' fsmonitor" && traps="$traps fsmonitor"
  mkdir -p "$REPOS/hooks-$TAG" && cp .git/hooks/pre-commit "$REPOS/hooks-$TAG/" 2>/dev/null \
    && git config core.hooksPath "$REPOS/hooks-$TAG" && traps="$traps hooksPath"
  printf '* filter=vt diff=vt\n' > .gitattributes
fi
say git-traps LAUNCHED "set:$traps"

# 6. Processes that try to outlive the session: a new session (setsid), a double fork, nohup.
setsid -f bash -c 'exec -a "$0" sleep 600' "$MARK-setsid" </dev/null >/dev/null 2>&1
( bash -c 'exec -a "$0" sleep 600' "$MARK-fork" </dev/null >/dev/null 2>&1 & )
nohup bash -c 'exec -a "$0" sleep 600' "$MARK-nohup" </dev/null >/dev/null 2>&1 &
disown
sleep 0.3
launched=0
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | command grep -qF -- "$MARK-" && launched=$((launched + 1))
done
say detach LAUNCHED "$launched"

# 7. Namespaces of its own inside the sandbox (a way around its limits).
if err=$(unshare --user --map-root-user true 2>&1); then
  say nested-userns BREACH "unshare -Ur worked"
else
  say nested-userns BLOCKED "$err"
fi

# 8. The platform's API on loopback, with no token and with every token found.
while IFS= read -r line; do
  TOKENS+=("${line#*=}")
done < <(env | command grep -E '^[A-Za-z_]*(TOKEN|KEY|SECRET)[A-Za-z_]*=' | head -n 5)
TOKENS=("" "${TOKENS[@]:0:6}")
HOSTS=(127.0.0.1 localhost 0.0.0.0 127.1 2130706433 "[::1]" "[::ffff:127.0.0.1]" "[::127.0.0.1]")
attempt() {  # token url [curl options]: http_code/rc
  local tok=$1 url=$2; shift 2
  if [ -n "$tok" ]; then
    curl -g -s -o /dev/null -w "%{http_code}" --max-time 4 -H "Authorization: Bearer $tok" "$@" "$url"
  else
    curl -g -s -o /dev/null -w "%{http_code}" --max-time 4 "$@" "$url"
  fi
  echo "/rc=$?"
}
api() {  # name mode...: BREACH when vTeam itself answered (200, or 401 for a token it did not take)
  local name=$1 host tok mode r tried="" reached=""
  shift
  for host in "${HOSTS[@]}"; do
    for tok in "${TOKENS[@]}"; do
      for mode in "$@"; do
        case "$mode" in
          direct) r=$(attempt "$tok" "http://$host:$SERVER_PORT/api/projects" --noproxy '*');;
          plain) r=$(attempt "$tok" "http://$host:$SERVER_PORT/api/projects" -x "$proxy" --noproxy '');;
          tunnel) r=$(attempt "$tok" "http://$host:$SERVER_PORT/api/projects" -x "$proxy" --noproxy '' -p);;
        esac
        tried="$tried $r"
        case "$r" in 200/*|401/*) reached="$reached $mode:$host=$r";; esac
      done
    done
  done
  tried=$(printf '%s\n' $tried | sort | uniq -c | tr -s ' \n' '  ')
  if [ -n "$reached" ]; then say "$name" BREACH "$reached (all: $tried)"; else say "$name" BLOCKED "$tried"; fi
}
api api-direct direct
proxy="${HTTP_PROXY:-${http_proxy:-}}"
if [ -z "$proxy" ]; then say api-proxy BLOCKED "no proxy in the environment"; else api api-proxy plain tunnel; fi
/usr/bin/python3 -I -S - "$SERVER_PORT" <<'PY'
import glob, socket, sys
port = int(sys.argv[1])
def talk(path, first, request):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(4)
        s.connect(path)
        s.sendall(first + request)
        data = b""
        while len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode("latin-1")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
ask = f"GET /api/projects HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
absolute = f"GET http://127.0.0.1:{port}/api/projects HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
connect = f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() + ask
sockets = set(glob.glob("/run/**/*.sock", recursive=True))
for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        argv = open(cmdline, "rb").read().decode(errors="replace").split("\0")
    except OSError:
        continue
    sockets.update(argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--socket")
answers = [f"sockets={sorted(sockets)}"]
for path in sorted(sockets) or ["/run/vteam/net/egress.sock"]:
    answers.append(talk(path, f"MIRROR {port}\n".encode(), ask))
    answers.append(talk(path, b"PROXY\n", absolute))
    answers.append(talk(path, b"PROXY\n", connect))
def reached(answer):
    return any(line.startswith("HTTP/1.") and line.split()[1:2] != ["403"] for line in answer.splitlines())
verdict = "BREACH" if any(reached(a) for a in answers) else "BLOCKED"
print("ATTACK egress-socket", verdict, " | ".join(a.replace("\r", " ").replace("\n", " ")[:120] for a in answers))
zygotes = glob.glob("/tmp/vteam-zygote-*/zygote.sock")
opened = []
for path in zygotes:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(path)
        s.close()
        opened.append(path)
    except OSError:
        pass
print("ATTACK zygote-socket", "BREACH" if opened else "BLOCKED", f"found={len(zygotes)} connected={opened}")
others = glob.glob("/tmp/vteam-sandbox-*/**/*.sock", recursive=True) + glob.glob("/tmp/vt-egress-*/*.sock")
reached = [path for path in others if not talk(path, b"PROXY\n", b"").startswith(("ConnectionRefused", "FileNotFound"))]
print("ATTACK foreign-egress", "BREACH" if reached else "BLOCKED", f"found={len(others)} connected={reached[:3]}")
PY

# 9. Secrets of other frameworks (platform keys, a project secret scoped to Codex), anywhere in reach.
alien=""
pattern="^($(printf '%s' "$ALIEN" | tr ' ' '|'))="
for p in self /proc/[0-9]*; do
  if [ "$p" = self ]; then
    found=$(env | command grep -E "$pattern")
  else
    found=$(tr '\0' '\n' < "$p/environ" 2>/dev/null | command grep -E "$pattern")
  fi
  [ -n "$found" ] && alien="$alien ${p#/proc/}:$(printf '%s' "$found" | tr '\n' ' ')"
done
if [ -n "$alien" ]; then say foreign-secrets BREACH "$alien"; else say foreign-secrets BLOCKED "none of: $ALIEN"; fi

# 10. The agent's own environment holds nothing of the platform's.
names=$(env | command grep -E '^VTEAM_' | cut -d= -f1 | tr '\n' ' ')
if [ -n "$names" ]; then say own-environment BREACH "$names"; else say own-environment BLOCKED "no VTEAM_ variable"; fi

# The real work, which the runner commits and pushes.
echo ok > CHANGED.md
echo ATTACKS-DONE
exit 0
"""


@dataclass
class Victim:
    project: str
    name: str
    runner_pid: int
    agent_pid: int
    workspace: Path
    repo_dir: Path
    secret: str


@dataclass
class World:
    server: Server
    fake: FakeAnthropic
    admin: httpx.Client
    key: httpx.Client
    """An `edit` access key of project A: the attacker."""
    a: str
    a_root: Path
    outside: Path
    victim: Victim
    operator_secret: str
    """In a file outside VTEAM_HOME and outside every session (the operator's own)."""
    planted: list[Path] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)


@dataclass
class Attack:
    framework: str
    world: World
    session: dict[str, Any]
    events: list[dict[str, Any]]
    output: str
    """What the attack script printed: the script's output, or the Bash tool's result in Claude Code."""
    markers: dict[str, tuple[str, str]]
    survivors: list[str]
    """Command lines of the attack's detached processes still alive 5 s after the session ended."""
    repo: Path
    workspace: Path
    tag: str


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _with_mark(mark: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        if mark in (line := _cmdline(int(entry.name))):
            found[int(entry.name)] = line
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _start_victim(admin: httpx.Client, server: Server, root: Path) -> Victim:
    """A live `script` session in project B: its secret in its environment and in a file of its workspace."""
    project, name, secret = f"b-{uuid.uuid4().hex[:6]}", "victim", f"victim-secret-{uuid.uuid4().hex}"
    assert admin.post("/api/projects", json={"name": project}).status_code == 201
    assert admin.put(f"/api/projects/{project}/secrets/{VICTIM_SECRET}", json={"value": secret}).status_code == 200
    repo = bare_repo(root, "victim", files={"README.md": "b's code\n"})
    prompt = f'echo "${VICTIM_SECRET}" > VICTIM.txt; echo victim-ready; sleep 600'
    create_session(admin, project, name=name, prompt=prompt, repos=[{"input": {"url": str(repo)}}])
    runner = server.runner_pid(project, name, timeout=30)
    [workspace] = (server.home / "workspaces" / project).glob(f"{name}-*")
    repo_dir = workspace / "repos" / "victim"
    deadline = time.monotonic() + 60
    while not (repo_dir / "VICTIM.txt").exists() or not any(
        _cmdline(p).startswith("sleep 600") for p in _descendants(runner)
    ):
        status = get_session(admin, project, name)["status"]
        assert status["phase"] in LIVE, f"the victim ended early: {status}"
        assert time.monotonic() < deadline, "the victim never started its sleep"
        time.sleep(0.1)
    [agent] = [p for p in _descendants(runner) if _cmdline(p).startswith("sleep 600")]
    return Victim(project, name, runner, agent, workspace, repo_dir, secret)


BROKEN: list[str] = []
"""Why the module's world could not be built: pytest retries a failed module fixture for every test."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if BROKEN:
        pytest.fail(f"the attack's world could not be built: {BROKEN[0]}")
    root = tmp_path_factory.mktemp("sandbox-attacks")
    env = {"VTEAM_MAX_RUNNING_SESSIONS": "4", **{k: ALIEN[k] for k in ("OPENAI_API_KEY", "GEMINI_API_KEY")}}
    with FakeAnthropic(api_key=KEY) as fake:
        server = Server(root / "home", env={**env, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.url})
        try:
            try:
                server.start()
            except Exception as exc:
                BROKEN.append(f"{type(exc).__name__}: {str(exc)[:2000]}")
                raise
            with server.client(timeout=30) as admin:
                try:
                    world, token = _build(server, fake, admin, root)
                except Exception as exc:
                    BROKEN.append(f"{type(exc).__name__}: {str(exc)[:2000]}")
                    raise
                with server.client(token=token, timeout=30) as key:
                    world.key = key
                    try:
                        yield world
                    finally:
                        victim = world.victim
                        admin.post(sessions_path(victim.project, victim.name) + "/stop")
                        with contextlib.suppress(AssertionError):
                            wait_phase(admin, victim.project, victim.name, timeout=30)
                        _clean_up(world)
        finally:
            server.close()


def _build(server: Server, fake: FakeAnthropic, admin: httpx.Client, root: Path) -> tuple[World, str]:
    """Project A with its repository policy and an `edit` key (the returned token), the victim in project B."""
    a, a_root, outside = f"a-{uuid.uuid4().hex[:6]}", root / "a-repos", root / "outside"
    a_root.mkdir()
    outside.mkdir()
    operator_secret = f"operator-secret-{uuid.uuid4().hex}"
    (outside / "operator-notes.txt").write_text(operator_secret + "\n")
    assert admin.post("/api/projects", json={"name": a}).status_code == 201
    scoped = {"value": ALIEN["CODEX_ONLY_TOKEN"], "frameworks": ["codex"]}
    assert admin.put(f"/api/projects/{a}/secrets/CODEX_ONLY_TOKEN", json=scoped).status_code == 200
    policy = admin.put(f"/api/admin/projects/{a}/repository-policy", json={"localRoots": [str(a_root)]})
    assert policy.status_code == 200, policy.text
    made = admin.post(f"/api/projects/{a}/keys", json={"name": "attacker", "role": "edit"})
    assert made.status_code == 201, made.text
    victim = _start_victim(admin, server, root)
    return World(server, fake, admin, admin, a, a_root, outside, victim, operator_secret), made.json()["token"]


def _clean_up(world: World) -> None:
    """What a successful attack left behind (files planted outside, processes that escaped), by exact path and pid."""
    for path in world.planted:
        with contextlib.suppress(OSError):
            path.unlink()
    for mark in world.marks:
        for pid in _with_mark(mark):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _script(world: World, framework: str, tag: str, mark: str) -> str:
    victim = world.victim
    values = {
        "HOME_DIR": str(world.server.home),
        "SERVER_PID": str(world.server.proc.pid if world.server.proc else 0),
        "SERVER_PORT": str(world.server.port),
        "VICTIM_PID": str(victim.runner_pid),
        "VICTIM_AGENT_PID": str(victim.agent_pid),
        "VICTIM_WS": str(victim.workspace),
        "VICTIM_DIR": str(victim.repo_dir),
        "VICTIM_FILE": str(victim.repo_dir / "VICTIM.txt"),
        "VICTIM_SECRET": VICTIM_SECRET,
        "ALIEN": " ".join(name for name in ALIEN if name != FRAMEWORK_KEYS.get(framework)),
        "OUTSIDE": str(world.outside),
        "VENV": sys.prefix,
        "SOURCE": str(SOURCE),
        "TAG": tag,
        "MARK": mark,
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()) + ATTACKS


def _planted(world: World, tag: str) -> list[Path]:
    """Every file a successful write attack would leave outside the sandbox."""
    return [
        world.outside / f"escaped-{tag}",
        Path(f"/etc/vteam-attack-{tag}"),
        Path(f"/vteam-attack-{tag}"),
        Path(sys.prefix) / f"vteam-attack-{tag}",
        SOURCE / f"vteam-attack-{tag}",
        world.server.home / f"vteam-attack-{tag}",
        world.victim.repo_dir / f"ATTACKED-{tag}",
    ]


MARKER = re.compile(r"^ATTACK (\S+) (BLOCKED|BREACH|LAUNCHED) ?(.*)$", re.MULTILINE)


@pytest.fixture(scope="module", params=["script", "claude-code"])
def attack(request: pytest.FixtureRequest, world: World) -> Attack:
    framework: str = request.param
    if framework in FAILED_ATTACKS:
        pytest.fail(f"the {framework} attack could not run: {FAILED_ATTACKS[framework]}")
    try:
        return _run_attack(world, framework)
    except Exception as exc:
        FAILED_ATTACKS[framework] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        raise


FAILED_ATTACKS: dict[str, str] = {}
"""Attacks whose session could not even be run, so each later test fails at once rather than rerunning it."""


def _run_attack(world: World, framework: str) -> Attack:
    tag = uuid.uuid4().hex[:10]
    mark = f"vteam-escape-{tag}"
    world.marks.append(mark)
    world.planted.extend(_planted(world, tag))
    repo = bare_repo(world.a_root, f"app-{framework}", files={"README.md": "a\n"})
    script = _script(world, framework, tag, mark)
    name = f"attacker-{framework}"
    body: dict[str, Any] = {
        "name": name,
        "framework": framework,
        "repos": [{"input": {"url": str(repo)}, "output": {"url": str(repo)}}],
    }
    if framework == "claude-code":
        world.fake.add([tool_use("Bash", {"command": script, "description": "check the sandbox", "timeout": 120000})])
        body.update(prompt="Check the sandbox.", model="sonnet")
    else:
        body.update(prompt=script)
    create_session(world.key, world.a, **body)
    done = wait_phase(world.admin, world.a, name, timeout=240)
    events = read_events(world.admin, world.a, name)
    if framework == "claude-code":
        output = "\n".join(e["data"]["content"] for e in events if e["type"] == "TOOL_CALL_RESULT")
    else:
        output = text_of(events)
    deadline = time.monotonic() + 5
    while (survivors := _with_mark(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    markers = {m.group(1): (m.group(2), m.group(3)) for m in MARKER.finditer(output)}
    [workspace] = (world.server.home / "workspaces" / world.a).glob(f"{name}-*")
    return Attack(framework, world, done, events, output, markers, sorted(survivors.values()), repo, workspace, tag)


def _outcome(attack: Attack, name: str) -> tuple[str, str]:
    assert name in attack.markers, f"the attack script never reported {name!r}; it printed:\n{attack.output[-3000:]}"
    return attack.markers[name]


def _blocked(attack: Attack, name: str, *reasons: str) -> str:
    verdict, detail = _outcome(attack, name)
    assert verdict == "BLOCKED", f"{attack.framework}: {name} got through: {detail}"
    if reasons:
        assert any(r in detail for r in reasons), f"{attack.framework}: {name} failed for another reason: {detail}"
    return detail


def test_the_attacker_still_completes_its_real_work_and_pushes(attack: Attack) -> None:
    assert "ATTACKS-DONE" in attack.output, attack.output[-3000:]
    assert attack.session["status"]["phase"] == "Completed", attack.session["status"]
    assert show(attack.repo, f"vteam/attacker-{attack.framework}", "CHANGED.md") == "ok\n"


def test_reading_the_vault_key_through_the_servers_environment_fails(attack: Attack) -> None:
    """The issue's Done-when: the server's environment names no home, and the vault key is not there."""
    _blocked(attack, "server-environ")
    _blocked(attack, "vault-via-environ", *NOT_THERE)
    test_the_attacker_still_completes_its_real_work_and_pushes(attack)


@pytest.mark.parametrize("name", ["vault-key", "secret-key", "database"])
def test_the_platforms_files_cannot_be_read(attack: Attack, name: str) -> None:
    _blocked(attack, name, *NOT_THERE)


def test_the_platforms_data_folder_shows_nothing(attack: Attack) -> None:
    """At most the path down to the session's own workspace, none of the platform's files."""
    _blocked(attack, "home-listing")


def test_other_projects_workspaces_are_not_listed(attack: Attack) -> None:
    _blocked(attack, "workspaces-listing")


@pytest.mark.parametrize("name", ["parent-environ", "pid1-environ", "victim-agent-environ", "proc-scan"])
def test_no_other_process_environment_is_readable(attack: Attack, name: str) -> None:
    _blocked(attack, name)


def test_proc_shows_neither_the_platform_nor_other_sessions(attack: Attack) -> None:
    _blocked(attack, "proc-visible")


@pytest.mark.parametrize("name", ["victim-file", "victim-runner-log"])
def test_another_live_sessions_workspace_cannot_be_read(attack: Attack, name: str) -> None:
    _blocked(attack, name, *NOT_THERE)
    assert attack.world.victim.secret not in json.dumps(attack.events)


def test_another_live_sessions_workspace_cannot_be_listed(attack: Attack) -> None:
    _blocked(attack, "victim-listing")


def test_the_sessions_own_runner_files_are_out_of_sight(attack: Attack) -> None:
    _blocked(attack, "own-runner-files", *NOT_THERE)


def test_files_outside_the_platforms_folder_are_out_of_sight_too(attack: Attack) -> None:
    """The sandbox shows what it lists, not the whole machine minus VTEAM_HOME."""
    _blocked(attack, "read-outside", *NOT_THERE)
    assert attack.world.operator_secret not in json.dumps(attack.events)


def test_no_user_namespace_can_be_made_inside(attack: Attack) -> None:
    _blocked(attack, "nested-userns")


def test_the_server_cannot_be_signalled(attack: Attack) -> None:
    _blocked(attack, "signal-server", *NO_SIGNAL)
    server = attack.world.server
    assert server.proc is not None
    assert server.proc.poll() is None, "the server is still running"
    assert attack.world.admin.get("/api/projects").status_code == 200, "and still answers"


def test_another_sessions_runner_cannot_be_signalled(attack: Attack) -> None:
    _blocked(attack, "signal-victim", *NO_SIGNAL)
    victim = attack.world.victim
    assert _alive(victim.runner_pid), "the victim's runner still runs"
    assert _alive(victim.agent_pid), "and so does its agent"
    assert get_session(attack.world.admin, victim.project, victim.name)["status"]["phase"] == "Running"


WRITES = ["write-outside-tmp", "write-etc", "write-root", "write-venv", "write-source", "write-home", "write-victim"]


@pytest.mark.parametrize("name", WRITES)
def test_nothing_is_written_outside_the_workspace(attack: Attack, name: str) -> None:
    """What counts: no file the agent wrote exists outside its sandbox."""
    _outcome(attack, name)
    leaked = [str(p) for p in _planted(attack.world, attack.tag) if p.exists()]
    assert leaked == [], f"files an agent wrote outside its sandbox: {leaked}"


@pytest.mark.parametrize("name", WRITES)
def test_writes_outside_the_workspace_fail_inside_too(attack: Attack, name: str) -> None:
    """Outside its workspace, HOME and temp the sandbox is read-only, so no write even seems to work (nor
    fills the memory of a writable root)."""
    _blocked(attack, name)


def test_what_the_agent_leaves_in_git_never_runs_outside_a_sandbox(attack: Attack) -> None:
    """The runner's git works in the agent's repository after it: hooks, filters, textconv and fsmonitor the
    agent configured there run confined, if at all, never on the runner's side of the sandbox."""
    _, traps = _outcome(attack, "git-traps")
    assert "filter" in traps, f"the attack set its traps: {traps}"
    outside = sorted(p.name for p in attack.world.outside.glob(f"ran-*-{attack.tag}"))
    inside = sorted(p.name for p in (attack.workspace / "repos").glob(f"ran-*-{attack.tag}"))
    assert outside == [], f"{attack.framework}: git ran the agent's {outside} outside (confined: {inside})"


def test_no_process_outlives_the_session(attack: Attack) -> None:
    _, launched = _outcome(attack, "detach")
    assert launched == "3", f"the attack started its three detached processes inside ({launched} seen)"
    assert attack.survivors == [], f"{attack.framework}: processes outlived the session: {attack.survivors}"


@pytest.mark.parametrize("name", ["api-direct", "api-proxy", "egress-socket", "zygote-socket", "foreign-egress"])
def test_the_platforms_api_is_out_of_reach(attack: Attack, name: str) -> None:
    _blocked(attack, name)


def test_secrets_of_other_frameworks_are_nowhere_in_reach(attack: Attack) -> None:
    """One rule: an agent gets its own framework's platform secrets and the project secrets scoped to it."""
    _blocked(attack, "foreign-secrets")
    own = FRAMEWORK_KEYS.get(attack.framework)
    seen = json.dumps(attack.events)
    assert [name for name, value in ALIEN.items() if name != own and value in seen] == []


def test_the_agent_environment_holds_nothing_of_the_platform(attack: Attack) -> None:
    _blocked(attack, "own-environment")


def test_no_secret_reaches_the_sessions_events(attack: Attack) -> None:
    home = attack.world.server.home
    secrets = {
        "vault.key": (home / "vault.key").read_text().strip(),
        "secret.key": (home / "secret.key").read_text().strip(),
        "admin token": attack.world.server.token,
        "the victim's secret": attack.world.victim.secret,
        "the operator's file": attack.world.operator_secret,
        "the database header": "SQLite format 3",
    }
    seen = json.dumps(attack.events)
    leaked = [label for label, value in secrets.items() if value and value in seen]
    assert leaked == [], f"{attack.framework}: the session's events hold {leaked}"
