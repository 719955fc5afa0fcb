"""The benchmark's own logic that needs no server: the before/after table and the process tree it measures."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench.run import config, parse_args

from bench import compare, procs


def _result(create_p95: float, idle: float, *, extra_row: bool = False) -> dict[str, object]:
    results = [
        {"label": "session create (50 concurrent clients, 200 creates)", "unit": "ms", "p50": 1.0, "p95": create_p95}
    ]
    if extra_row:
        results.append({"label": "only after", "unit": "ms", "p50": 2.0, "p95": 3.0, "p99": 4.0})
    return {
        "results": results,
        "values": [{"label": "memory: platform idle (server and zygote), PSS", "value": idle, "unit": "MiB"}],
        "machine": {"cpu_count": 2, "load_average_at_start": [0.5, 0.4, 0.3]},
        "figures": {"run": {"load_average_at_end": [1.5, 0.9, 0.4]}},
        "code": {"commit": "abc", "dirty": False},
    }


def test_table_shows_both_runs_and_whether_after_met_the_target(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(_result(612.0, 176.0)))
    after.write_text(json.dumps(_result(41.5, 160.0, extra_row=True)))

    lines = compare.compare(before, after).splitlines()

    assert lines[0] == "| metric | before | after | target |"
    create = next(line for line in lines if line.startswith("| session create"))
    assert "| 1.00 / 612 / - | 1.00 / 41.5 / - | p95 ≤ 50 ms (met) |" in create
    idle = next(line for line in lines if line.startswith("| memory: platform idle"))
    assert idle.endswith("| 176 | 160 | ≤ 150 MiB (missed) |")
    assert "| only after, ms p50 / p95 / p99 | - | 2.00 / 3.00 / 4.00 |  |" in lines
    assert any("2 cores, load 0.5 → 1.5" in line for line in lines)


def test_quick_preset_is_small_and_explicit_sizes_win() -> None:
    quick = config(parse_args(["--quick", "--held", "3,7"]))
    full = config(parse_args([]))

    assert quick.held == (3, 7)
    assert quick.burst < full.burst
    assert max(quick.create_sizes) < max(full.create_sizes)
    assert full.held == (20, 100, 500)


def test_process_tree_finds_descendants_and_their_memory() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(below := procs.descendants(shell.pid, procs.table())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.cmdline for p in below] == ["sleep 30", "sleep 30"]
        assert all((procs.pss_kib(p.pid) or 0) > 0 for p in below)
        procs.kill(below)
        deadline = time.monotonic() + 10
        while procs.survivors(below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs.survivors(below) == []
    finally:
        shell.kill()
        shell.wait()
