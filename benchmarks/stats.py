"""Latency percentiles, in milliseconds (nearest-rank)."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = sorted(seconds)
    figures = {f"p{q}_ms": round(percentile(values, q) * 1000, 2) for q in (50, 95, 99)}
    figures["mean_ms"] = round(sum(values) / len(values) * 1000, 2) if values else float("nan")
    return figures
