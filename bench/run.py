"""`python -m bench.run`: start a private `vteam up`, measure it, print a table and write the figures as JSON.

Everything runs against a real server process on this machine, in a throwaway home, so the figures
include HTTP, uvicorn, SQLite fsyncs and real runner subprocesses, as a user would see them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bigpage, burst, compare, eventlog, held, ingest, probes, procs, scenarios, ui
from bench.scenarios import QUICK, Config, Outcome
from bench.server import Server, ServerError, running_server, tail
from bench.stats import Summary, Value

BENCHMARKS = (
    "create",
    "read",
    "events",
    "start",
    "ingest",
    "burst",
    "memory",
    "ui",
    "probes",
    "eventlog",
    "bigpage",
)
SHARED = {
    "create": scenarios.session_create,
    "read": scenarios.session_read,
    "events": scenarios.event_latency,
    "start": scenarios.start_latency,
}
"""Benchmarks on one server with the default running limit, in this order."""
Step = Callable[[Server, Config], Awaitable[Outcome]]
RAISED: dict[str, tuple[Step, Callable[[Config], int]]] = {
    "ingest": (ingest.measure, lambda cfg: cfg.ingest_sessions),
    "burst": (burst.measure, lambda cfg: cfg.burst),
    "memory": (held.measure, lambda cfg: max(cfg.held)),
}
"""Benchmarks each on a fresh server whose running limit is raised to their size, so all their sessions run."""
REEXEC = "BENCH_SRC_APPLIED"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more sizes of at least 1")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"), help="Where to write the JSON.")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="Print a markdown table of two results files (metric, before, after, target) and exit.",
    )
    parser.add_argument(
        "--src",
        type=Path,
        help="Measure another source tree (its folder holding `vteam/`): put first on PYTHONPATH of the "
        "benchmark, the server and everything it spawns.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Small sizes, to try it out; any size given explicitly still wins."
    )
    parser.add_argument("--max-running", type=int, default=4, help="VTEAM_MAX_RUNNING_SESSIONS for the server.")
    sizes = parser.add_argument_group("sizes (default: the full run; with --quick: small)")
    sizes.add_argument(
        "--workers", metavar="N", type=int, dest="create_workers", help="Concurrent creating clients (50)."
    )
    sizes.add_argument(
        "--creates", metavar="N,N", type=_sizes, dest="create_sizes", help="Create rounds, e.g. 200,2000."
    )
    sizes.add_argument("--reads", metavar="N", type=int, help="Total GETs in the read benchmark (2000).")
    sizes.add_argument("--readers", metavar="N", type=int, help="Concurrent reading clients (20).")
    sizes.add_argument(
        "--lines", metavar="N", type=int, dest="event_lines", help="Lines printed in the event bench (300)."
    )
    sizes.add_argument("--starts", metavar="N", type=int, help="Sequential sessions in the start bench (20).")
    sizes.add_argument(
        "--ingest-sessions", metavar="N", type=int, help="Sessions emitting at once in the ingest bench (50)."
    )
    sizes.add_argument("--ingest-events", metavar="N", type=int, help="Lines each ingest session prints (2000).")
    sizes.add_argument(
        "--ingest-pause-ms", metavar="MS", type=float, help="Pause after each ingest line; 0 for none (1.0)."
    )
    sizes.add_argument(
        "--held", metavar="N,N,N", type=_sizes, help="Held sessions in the memory bench, e.g. 20,100,500."
    )
    sizes.add_argument("--burst", metavar="N", type=int, help="Sessions created at once in the burst bench (100).")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"Comma-separated subset of: {', '.join(BENCHMARKS)}."
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VTEAM_X=VALUE",
        help="Extra server setting, e.g. VTEAM_SQLITE_SYNCHRONOUS=NORMAL (repeatable; wins over raised limits).",
    )
    parser.add_argument(
        "--drain", action="store_true", help="Let all created sessions run to the end (slow) instead of deleting them."
    )
    parser.add_argument("--keep-home", action="store_true", help="Keep the server's temp home (log, database).")
    return parser.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    """The preset (full or --quick) with every size given on the command line put over it."""
    preset = QUICK if args.quick else Config()
    given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
    return replace(preset, **given)


def server_settings(args: argparse.Namespace, running: int | None = None) -> dict[str, str]:
    """Only settings named here reach the server; inherited VTEAM_* variables are dropped (see server.py)."""
    # The create benchmark sends 200 writes at once from one identity: measured without the write rate limit.
    # All its sessions are in one project: measured without the per-project share of the running slots.
    limit = str(running or args.max_running)
    settings = {
        "VTEAM_MAX_RUNNING_SESSIONS": limit,
        "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": limit,
        "VTEAM_WRITE_RATE_PER_MINUTE": "0",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("VTEAM_"):
            raise SystemExit(f"--env {item!r} must be VTEAM_NAME=VALUE")
        settings[key] = value
    return settings


def _with_load(outcome: Outcome, start: list[float]) -> Outcome:
    """Every benchmark says how busy the machine was while it ran."""
    outcome.figures["load"] = {"start": start, "end": _load(), "cores": os.cpu_count()}
    return outcome


async def _step(step: Step, server: Server, cfg: Config) -> Outcome:
    start = _load()
    return _with_load(await step(server, cfg), start)


async def measure(server: Server, cfg: Config, only: set[str]) -> list[Outcome]:
    """Run the shared-server benchmarks in order; each leaves the server without runners before the next begins."""
    return [await _step(step, server, cfg) for name, step in SHARED.items() if name in only]


def use_source(src: Path, argv: list[str]) -> None:
    """Re-run this benchmark with `src` first on PYTHONPATH, so it, the server, the zygote and the runners
    (all of which keep PYTHONPATH) import that tree's `vteam`. Returns once that is so."""
    import vteam

    src = src.resolve()
    if not (src / "vteam" / "__init__.py").is_file():
        raise SystemExit(f"--src {src}: no vteam package there (give the folder that holds vteam/)")
    if Path(vteam.__file__).resolve().is_relative_to(src):
        return
    if os.environ.get(REEXEC):
        raise SystemExit(f"--src {src}: vteam still imports from {vteam.__file__}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env[REEXEC] = "1"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "bench.run", *argv], env)  # noqa: S606 - this very command


def _spawned_with(server: Server) -> dict[str, str | None]:
    """PYTHONPATH as the server and its zygote were started with: where the measured code came from."""
    tree = procs.server_tree(server.process.pid)
    return {
        "server": procs.environ(server.process.pid).get("PYTHONPATH"),
        "zygote": procs.environ(tree.zygotes[0].pid).get("PYTHONPATH") if tree.zygotes else None,
    }


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "load_average_at_start": _load(),
    }


def _load() -> list[float]:
    """The machine may be shared; a high load average at start explains noisy figures."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_revision(src: Path | None = None) -> dict[str, Any]:
    """Which code was measured; `dirty` says the working tree had uncommitted changes under the source folder."""
    folder = str(src.resolve()) if src else "src"
    try:
        head = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "."], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return {"src": folder} if src else {}
    revision = {"commit": head.strip(), "dirty": bool(status.stdout.strip())}
    return {**revision, "src": folder} if src else revision


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _aligned(headers: list[str], body: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *body]) for i in range(len(headers))]
    lines = []
    for row in [headers, *body]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(rows: list[Summary], values: list[Value]) -> str:
    """Plain-text tables: the latencies (all in milliseconds, so the unit lives in the headers), then the values."""
    tables = []
    if rows:
        body = [[r.label, _fmt(r.p50), _fmt(r.p95), _fmt(r.p99), str(r.n)] for r in rows]
        tables.append(_aligned(["metric", "p50 ms", "p95 ms", "p99 ms", "n"], body))
    if values:
        tables.append(_aligned(["figure", "value", "unit"], [[v.label, _fmt(v.value), v.unit] for v in values]))
    return "\n\n".join(tables)


def report(
    args: argparse.Namespace,
    settings: dict[str, dict[str, str]],
    machine: dict[str, Any],
    outcomes: list[Outcome],
    extra: dict[str, Any],
) -> dict[str, Any]:
    rows = [row for outcome in outcomes for row in outcome.rows]
    values = [value for outcome in outcomes for value in outcome.values]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine,
        "code": git_revision(args.src),
        "server_settings": settings,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sizes": asdict(config(args)),
        "results": [row.to_json() for row in rows],
        "values": [value.to_json() for value in values],
        "figures": {**{o.name: o.figures for o in outcomes if o.figures}, "run": extra},
        "table": table(rows, values),
    }


def print_figures(figures: dict[str, Any]) -> None:
    """The figures that are not distributions (throughput, counts, stages), grouped by benchmark."""
    for group, values in figures.items():
        print(f"{group}:")
        for key, value in values.items():
            if key == "stages_ms":
                print("  start latency by stage, p50 / p95 ms:")
                for label, stage in value.items():
                    print(f"    {label:<30} {stage['p50']:>8.1f} / {stage['p95']:.1f}")
            elif isinstance(value, float):
                print(f"  {key}: {value:,.2f}")
            else:
                print(f"  {key}: {value}")


def _own_server(
    name: str, args: argparse.Namespace, cfg: Config, settings: dict[str, dict[str, str]], extra: dict[str, Any]
) -> Outcome:
    """One benchmark on a fresh server of its own, its running limit raised to the benchmark's size."""
    step, size = RAISED[name]
    settings[name] = server_settings(args, running=size(cfg))
    with running_server(settings[name], keep_home=args.keep_home) as server:
        print(f"benchmarking {name} on {server.url} (home {server.home})", file=sys.stderr)
        extra.setdefault("pythonpath", {})[name] = _spawned_with(server)
        try:
            outcome = asyncio.run(_step(step, server, cfg))
        except Exception:
            print(f"benchmark failed; server log tail:\n{tail(server.log)}", file=sys.stderr)
            raise
    extra.setdefault("cleanup", {})[name] = server.cleanup
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare:
        print(compare.compare(*args.compare))
        return 0
    if args.src:
        use_source(args.src, sys.argv[1:] if argv is None else argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := only - set(BENCHMARKS):
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    cfg = config(args)
    settings = {"shared": server_settings(args)}
    machine = machine_info()
    if (load := os.getloadavg()[0]) > 1.0:
        print(f"warning: load average is {load:.2f} before starting; figures will be noisy", file=sys.stderr)
    began = time.perf_counter()
    outcomes: list[Outcome] = []
    extra: dict[str, Any] = {}
    if "probes" in only:
        start = _load()
        outcomes.append(_with_load(Outcome("probes", probes.process_start()), start))
    if "eventlog" in only:
        start = _load()
        rows, figures = eventlog.measure()
        outcomes.append(_with_load(Outcome("eventlog", rows, figures), start))
    if only & SHARED.keys():
        boot = time.perf_counter()
        with running_server(settings["shared"], keep_home=args.keep_home) as server:
            extra["server_ready_s"] = time.perf_counter() - boot
            extra.setdefault("pythonpath", {})["shared"] = _spawned_with(server)
            print(f"benchmarking {server.url} (home {server.home})", file=sys.stderr)
            try:
                outcomes[:0] = asyncio.run(measure(server, cfg, only))
            except Exception:
                print(f"benchmark failed; server log tail:\n{tail(server.log)}", file=sys.stderr)
                raise
        extra.setdefault("cleanup", {})["shared"] = server.cleanup
    for name in RAISED:
        if name in only:
            outcomes.append(_own_server(name, args, cfg, settings, extra))
    for name, module in (("ui", ui), ("bigpage", bigpage)):
        if name in only:
            with running_server(settings["shared"], keep_home=args.keep_home, seed=module.seed) as server:
                start = _load()
                rows, figures = asyncio.run(module.measure(server))
                outcomes.append(_with_load(Outcome(name, rows, figures), start))
            extra.setdefault("cleanup", {})[name] = server.cleanup
    extra["benchmark_wall_s"] = time.perf_counter() - began
    extra["load_average_at_end"] = _load()
    result = report(args, settings, machine, outcomes, extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(result["table"])
    print()
    print_figures(result["figures"])
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ServerError as exc:
        sys.exit(f"error: {exc}")
