"""`python -m bench.run --compare before.json after.json`: one markdown table of two runs, with issue 15's targets.

Rows are matched by label, so both runs must use the same sizes (the labels carry them). A target is shown
on the rows it was set for (50 creating clients, 20 reading clients, 50 ingesting sessions, 500 held), and
says whether the *after* run met it.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    pattern: str
    """A regular expression the row's label must match from its start."""
    stat: str
    """`p50`, `p95`, `p99` of a latency row, or `value` of a single figure."""
    bound: float
    at_most: bool = True

    def met(self, row: dict[str, Any]) -> bool | None:
        value = row.get(self.stat)
        if value is None:
            return None
        compare: Callable[[float, float], bool] = operator.le if self.at_most else operator.ge
        return compare(float(value), self.bound)

    def text(self, unit: str) -> str:
        stat = "" if self.stat == "value" else f"{self.stat} "
        sign = "≤" if self.at_most else "≥"
        return f"{stat}{sign} {self.bound:,g} {unit}".strip()


TARGETS = (
    Target(r"session create \(50 concurrent clients", "p95", 50),
    Target(r"creates per second \(50 concurrent clients", "value", 1000, at_most=False),
    Target(r"session read \(20 concurrent clients\)", "p95", 10),
    Target(r"ingest: events stored per second \(50 sessions", "value", 20000, at_most=False),
    Target(r"ingest: reader GET session \(during 50 sessions", "p99", 50),
    Target(r"event latency: runner emit → SSE reader", "p50", 2),
    Target(r"event latency: runner emit → SSE reader", "p99", 20),
    Target(r"memory: 500 held, PSS per session", "value", 12),
    Target(r"memory: platform idle", "value", 150),
)
"""Issue 15's targets on this 2-core machine."""


def rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of a results file by label: latency rows (p50/p95/p99, ms) and single values."""
    found: dict[str, dict[str, Any]] = {}
    for row in result.get("results", []):
        found[row["label"]] = {**row, "kind": "latency"}
    for value in result.get("values", []):
        found[value["label"]] = {**value, "kind": "value"}
    return found


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["kind"] == "latency":
        return " / ".join(_number(row.get(k)) for k in ("p50", "p95", "p99"))
    return _number(row.get("value"))


def _metric(label: str, row: dict[str, Any]) -> str:
    if row["kind"] == "latency":
        return f"{label}, {row.get('unit', 'ms')} p50 / p95 / p99"
    return f"{label}, {row.get('unit', '')}".rstrip(", ")


def _target(label: str, row: dict[str, Any], after: dict[str, Any] | None) -> str:
    unit = "ms" if row["kind"] == "latency" else str(row.get("unit", ""))
    parts = []
    for target in TARGETS:
        if re.match(target.pattern, label):
            met = target.met(after) if after is not None else None
            mark = "" if met is None else (" (met)" if met else " (missed)")
            parts.append(target.text(unit) + mark)
    return "; ".join(parts)


def _machine(result: dict[str, Any]) -> str:
    machine = result.get("machine", {})
    run = result.get("figures", {}).get("run", {})
    start = machine.get("load_average_at_start") or ["-"]
    end = run.get("load_average_at_end") or ["-"]
    return f"{machine.get('cpu_count', '-')} cores, load {start[0]} → {end[0]}"


def table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Markdown rows: metric, before, after, target; rows in the order of the after run, then before-only ones."""
    old, new = rows(before), rows(after)
    labels = list(new) + [label for label in old if label not in new]
    lines = ["| metric | before | after | target |", "|---|---:|---:|---|"]
    for label in labels:
        row = new.get(label) or old[label]
        lines.append(
            f"| {_metric(label, row)} | {_cell(old.get(label))} | {_cell(new.get(label))} "
            f"| {_target(label, row, new.get(label))} |"
        )
    lines.append(f"| machine (cores, 1-min load at start → end) | {_machine(before)} | {_machine(after)} | |")
    for name, result in (("before", before), ("after", after)):
        code = result.get("code", {})
        commit = str(code.get("commit", "?"))[:10] + (" (dirty)" if code.get("dirty") else "")
        lines.append(f"\n{name}: {result.get('date', '?')}, commit {commit}, {code.get('src', 'this tree')}")
    return "\n".join(lines)


def compare(before: Path, after: Path) -> str:
    return table(json.loads(before.read_text()), json.loads(after.read_text()))
