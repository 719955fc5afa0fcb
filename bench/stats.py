"""Percentiles and summaries, computed here so the benchmark needs nothing beyond the project's own deps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so small samples still give a p99."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """One row of the results table; values are in `unit` (ms unless said otherwise)."""

    label: str
    unit: str
    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: _number(v) for k, v in asdict(self).items()}


def summarize(label: str, values: Sequence[float], *, unit: str = "ms", note: str = "") -> Summary:
    """Summarise raw samples; an empty sample gives NaNs rather than an exception, and the table shows it."""
    if not values:
        nan = math.nan
        return Summary(label, unit, 0, nan, nan, nan, nan, nan, nan, note)
    return Summary(
        label=label,
        unit=unit,
        n=len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        mean=sum(values) / len(values),
        min=min(values),
        max=max(values),
        note=note,
    )


def _number(value: Any) -> Any:
    """Round floats for the JSON file; NaN becomes null because JSON has no NaN."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


@dataclass(frozen=True)
class Value:
    """One figure that is not a distribution (a throughput, a memory size, a time to finish), in `unit`."""

    label: str
    value: float
    unit: str

    def to_json(self) -> dict[str, Any]:
        return {k: _number(v) for k, v in asdict(self).items()}
