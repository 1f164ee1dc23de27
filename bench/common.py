"""Timing helpers and the results table shared by the benchmark scripts."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def median_time(func: Callable[[], Any], repeats: int, warmup: int = 0) -> tuple[float, Any]:
    """Median wall time of ``func()`` over ``repeats`` runs (after ``warmup`` untimed ones).

    One ``gc.collect()`` first, so the cyclic garbage of whatever ran before (the Optuna
    baseline leaves some 200k objects) is not collected on this function's time; none between
    the runs: a server gets none before each page either, so the collections a run sets off,
    or inherits from the previous run of the same function, are part of its cost.
    """
    gc.collect()
    result = None
    for _ in range(warmup):
        result = func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def completed_value(trial: FrozenTrial) -> float:
    """The value of a COMPLETE trial, as a float (Optuna stores one for every completed trial)."""
    assert trial.value is not None, f"trial {trial.number} has no value"
    return float(trial.value)


def completed_times(trial: FrozenTrial) -> tuple[datetime, datetime]:
    """When a COMPLETE trial started and completed (Optuna records both when it finishes)."""
    start, complete = trial.datetime_start, trial.datetime_complete
    assert start is not None and complete is not None, f"trial {trial.number} has no start or completion time"
    return start, complete


@dataclass
class Row:
    """One line of the final table: a target, what was measured and whether it holds."""

    target: str
    hpdash: str
    baseline: str
    ratio: str
    bound: str
    holds: bool | None  # None: informational

    def cells(self) -> list[str]:
        verdict = {True: "HOLDS", False: "MISSES", None: "-"}[self.holds]
        return [self.target, self.hpdash, self.baseline, self.ratio, self.bound, verdict]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        print("  " + " | ".join(row.cells()), flush=True)
        return row

    def table(self) -> str:
        header = ["target", "hpdash (median)", "baseline (median)", "ratio", "bound", "verdict"]
        lines = [header] + [r.cells() for r in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines]
        out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(out)


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.2f}"
    )


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f} MB"
