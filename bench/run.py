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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bigpage, eventlog, probes, scenarios, ui
from bench.scenarios import Config, Outcome
from bench.server import Server, ServerError, running_server, tail
from bench.stats import Summary

BENCHMARKS = ("create", "read", "events", "start", "ui", "probes", "eventlog", "bigpage")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"), help="Where to write the JSON.")
    parser.add_argument("--max-running", type=int, default=4, help="VTEAM_MAX_RUNNING_SESSIONS for the server.")
    parser.add_argument("--workers", type=int, default=defaults.create_workers, help="Concurrent creating clients.")
    parser.add_argument("--per-worker", type=int, default=defaults.creates_per_worker, help="Creates per client.")
    parser.add_argument("--reads", type=int, default=defaults.reads, help="Total GETs in the read benchmark.")
    parser.add_argument("--readers", type=int, default=defaults.readers, help="Concurrent reading clients.")
    parser.add_argument("--lines", type=int, default=defaults.event_lines, help="Lines printed in the event bench.")
    parser.add_argument("--starts", type=int, default=defaults.starts, help="Sequential sessions in the start bench.")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"Comma-separated subset of: {', '.join(BENCHMARKS)}."
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VTEAM_X=VALUE",
        help="Extra server setting, e.g. VTEAM_SQLITE_SYNCHRONOUS=NORMAL (repeatable).",
    )
    parser.add_argument(
        "--drain", action="store_true", help="Let all created sessions run to the end (slow) instead of deleting them."
    )
    parser.add_argument("--keep-home", action="store_true", help="Keep the server's temp home (log, database).")
    return parser.parse_args(argv)


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    """Only settings named here reach the server; inherited VTEAM_* variables are dropped (see server.py)."""
    # The create benchmark sends 200 writes at once from one identity: measured without the write rate limit.
    # All its sessions are in one project: measured without the per-project share of the running slots.
    settings = {
        "VTEAM_MAX_RUNNING_SESSIONS": str(args.max_running),
        "VTEAM_MAX_RUNNING_SESSIONS_PER_PROJECT": str(args.max_running),
        "VTEAM_WRITE_RATE_PER_MINUTE": "0",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("VTEAM_"):
            raise SystemExit(f"--env {item!r} must be VTEAM_NAME=VALUE")
        settings[key] = value
    return settings


async def measure(server: Server, cfg: Config, only: set[str]) -> list[Outcome]:
    """Run the server benchmarks in order; each leaves the server without runners before the next begins."""
    steps = {
        "create": scenarios.session_create,
        "read": scenarios.session_read,
        "events": scenarios.event_latency,
        "start": scenarios.start_latency,
    }
    return [await step(server, cfg) for name, step in steps.items() if name in only]


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


def git_revision() -> dict[str, Any]:
    """Which code was measured; `dirty` says the working tree had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": head.strip(), "dirty": bool(status.stdout.strip())}


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def table(rows: list[Summary]) -> str:
    """Plain-text table; every latency here is in milliseconds, so the unit lives in the headers."""
    headers = ["metric", "p50 ms", "p95 ms", "p99 ms", "n"]
    body = [[r.label, _fmt(r.p50), _fmt(r.p95), _fmt(r.p99), str(r.n)] for r in rows]
    widths = [max(len(row[i]) for row in [headers, *body]) for i in range(len(headers))]
    lines = []
    for row in [headers, *body]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    settings: dict[str, str],
    machine: dict[str, Any],
    outcomes: list[Outcome],
    extra: dict[str, Any],
) -> dict[str, Any]:
    rows = [row for outcome in outcomes for row in outcome.rows]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine,
        "code": git_revision(),
        "server_settings": settings,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [row.to_json() for row in rows],
        "figures": {**{o.name: o.figures for o in outcomes if o.figures}, "run": extra},
        "table": table(rows),
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := only - set(BENCHMARKS):
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    cfg = Config(
        create_workers=args.workers,
        creates_per_worker=args.per_worker,
        reads=args.reads,
        readers=args.readers,
        event_lines=args.lines,
        starts=args.starts,
        drain=args.drain,
    )
    settings = server_settings(args)
    machine = machine_info()
    if (load := os.getloadavg()[0]) > 1.0:
        print(f"warning: load average is {load:.2f} before starting; figures will be noisy", file=sys.stderr)
    began = time.perf_counter()
    outcomes: list[Outcome] = []
    if "probes" in only:
        outcomes.append(Outcome("probes", probes.process_start()))
    extra: dict[str, Any] = {}
    if "eventlog" in only:
        rows, figures = eventlog.measure()
        outcomes.append(Outcome("eventlog", rows, figures))
    if only - {"probes", "ui", "eventlog", "bigpage"}:
        boot = time.perf_counter()
        with running_server(settings, keep_home=args.keep_home) as server:
            extra["server_ready_s"] = time.perf_counter() - boot
            print(f"benchmarking {server.url} (home {server.home})", file=sys.stderr)
            try:
                outcomes[:0] = asyncio.run(measure(server, cfg, only))
            except Exception:
                print(f"benchmark failed; server log tail:\n{tail(server.log)}", file=sys.stderr)
                raise
    if "ui" in only:
        with running_server(settings, keep_home=args.keep_home, seed=ui.seed) as server:
            rows, figures = asyncio.run(ui.measure(server))
            outcomes.append(Outcome("ui", rows, figures))
    if "bigpage" in only:
        with running_server(settings, keep_home=args.keep_home, seed=bigpage.seed) as server:
            rows, figures = asyncio.run(bigpage.measure(server))
            outcomes.append(Outcome("bigpage", rows, figures))
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
