"""Across many repeats: the average rank over budget, the Friedman test with the Nemenyi critical
difference (Demšar 2006), and the ECDF of runtime to target (COCO).

All three need comparable studies (``differences`` empty) and complete blocks: every seed holds
one run of every strategy (``Design.ranked``); otherwise ``Repeats.reason`` says why not.

- **Average rank over budget.** At each trial count n = 1..the longest run, every run's
  best-so-far at n (a step function, a finished run keeps its final best; ``curves``) is ranked
  within its seed, 1 = best, ties sharing the average rank, and a run with no COMPLETE trial yet
  ranked last; the ranks are averaged over the seeds. The ranking is
  ``statistics.friedman_nemenyi``'s (its ``average_ranks`` at each n), done for every n at once.
- **Critical difference.** ``statistics.friedman_nemenyi`` on the seeds x strategies matrix of
  the runs' final bests (a run without a COMPLETE trial ranks last), ``statistics.cd_groups`` for
  the bars joining strategies whose average ranks differ by less than the CD. The Friedman test
  needs three strategies: with two there are ranks only.
- **Runtime ECDF.** For one target (``Analysis.target``): the share of a strategy's runs that had
  reached it by each wall-clock time (``statistics.ecdf_of_runtime_to_target``), on the times at
  which some run reached it, from 0 to the longest run; a run that never did counts in the
  denominator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from hpdash import comparison_plots, statistics
from hpdash.compare.curves import _strategy_order, step_values
from hpdash.compare.design import Design
from hpdash.compare.verdict import not_comparable_text
from hpdash.compare.words import ALPHA, label

FRIEDMAN_NAME = comparison_plots.FRIEDMAN_NAME
ECDF_NAME = comparison_plots.ECDF_NAME
AVERAGE_RANK_NAME = "average rank over budget (ranks within each seed, 1 = best, averaged over the seeds)"
NEEDS_THREE = "The Friedman test needs at least three strategies: with two, the average ranks only."
WHAT = "average rank over budget, critical-difference diagram or runtime-to-target ECDF"

RANK_COLUMNS = ["strategy", "trial", "average_rank", "blocks"]
CD_COLUMNS = ["strategy", "average_rank", "blocks"]
ECDF_COLUMNS = ["strategy", "seconds", "fraction", "runs", "reached"]


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns})
    return out.astype({"strategy": "object"})


def repeats_reason(design: Design | None, differences: Sequence[str] = ()) -> str | None:
    """Why there are no ranks across repeats (None when there are)."""
    if differences:
        return f"{not_comparable_text(differences)} No {WHAT}."
    if design is None:
        return f"No {WHAT}: no design."
    if not design.ranked:
        why = design.rank_reason.removeprefix("No ranks: ").rstrip(".")
        return f"No {WHAT}: {why}."
    return None


def _signed_key(values: np.ndarray, direction: str) -> np.ndarray:
    """Values oriented so that smaller is better, missing values worst (+inf)."""
    sign = 1.0 if direction == "maximize" else -1.0
    key = -sign * values
    return np.where(np.isnan(key), np.inf, key)


def average_rank_data(curves_trial: pd.DataFrame, direction: str = "maximize") -> pd.DataFrame:
    """The average rank over budget (``RANK_COLUMNS``; see the module docstring): per strategy and
    trial count, the mean over the seeds of the run's rank within its seed. ``curves_trial``:
    ``curves(frame, "trial")`` of runs in complete blocks (two runs of a strategy in one seed:
    ValueError; a run without a finished trial has no curve and ranks last)."""
    if curves_trial.empty:
        return _empty(RANK_COLUMNS)
    if (curves_trial.groupby(["seed", "strategy"], sort=False)["study"].nunique() > 1).any():
        raise ValueError("ranks across repeats need one run of each strategy per seed")
    strategies = [str(s) for s in _strategy_order(curves_trial)]
    seeds = sorted(pd.unique(curves_trial["seed"]))
    grid = np.arange(1, int(curves_trial["trial"].max()) + 1, dtype="float64")
    cube = np.full((len(seeds), len(strategies), grid.size), np.nan)
    for (seed, strategy), run in curves_trial.groupby(["seed", "strategy"], sort=False):
        run = run.sort_values("trial", kind="stable")
        xs, ys = run["trial"].to_numpy(dtype="float64"), run["best"].to_numpy(dtype="float64")
        cube[seeds.index(seed), strategies.index(str(strategy))] = step_values(xs, ys, grid)
    # statistics.friedman_nemenyi's ranking (rankdata within a block, ties averaged), every n at once
    ranks = stats.rankdata(_signed_key(cube, direction), axis=1).mean(axis=0)  # strategies x grid
    return pd.DataFrame(
        {
            "strategy": np.repeat(strategies, grid.size),
            "trial": np.tile(grid.astype("int64"), len(strategies)),
            "average_rank": ranks.ravel(),
            "blocks": len(seeds),
        },
        columns=RANK_COLUMNS,
    )


@dataclass(frozen=True)
class CriticalDifference:
    """``statistics.friedman_nemenyi`` on the runs' final bests, with the strategies named.

    ``groups``: ``statistics.cd_groups`` as strategy keys (singletons included); empty, and
    ``critical_difference``, ``statistic`` and ``p_value`` NaN, for two strategies (``note``)."""

    strategies: tuple[str, ...]
    average_ranks: tuple[float, ...]
    blocks: int
    statistic: float
    p_value: float
    critical_difference: float
    alpha: float
    groups: tuple[tuple[str, ...], ...]
    method: str  # the statistics function's own name of what it computed
    note: str | None = None
    name: str = FRIEDMAN_NAME

    @property
    def frame(self) -> pd.DataFrame:
        """``CD_COLUMNS``, best average rank first."""
        out = pd.DataFrame(
            {"strategy": list(self.strategies), "average_rank": list(self.average_ranks), "blocks": self.blocks},
            columns=CD_COLUMNS,
        )
        return out.sort_values(["average_rank", "strategy"], kind="stable").reset_index(drop=True)

    @property
    def bars(self) -> list[list[str]]:
        """The groups a critical-difference diagram draws a bar for (two strategies or more)."""
        return [list(g) for g in self.groups if len(g) > 1]

    @property
    def text(self) -> str:
        """One line for people: the test, its statistic and p, the CD, or why there is none."""
        ranks = ", ".join(f"{label(s)} {r:.2f}" for s, r in zip(self.frame["strategy"], self.frame["average_rank"]))
        head = f"Average ranks over {self.blocks} seed{'s' if self.blocks != 1 else ''} (1 = best): {ranks}."
        if self.note:
            return f"{head} {self.note}"
        return (
            f"{head} {FRIEDMAN_NAME}: χ² = {self.statistic:.3g}, p = {self.p_value:.3g}; "
            f"critical difference {self.critical_difference:.3g} at alpha {self.alpha:g}. Bars join strategies "
            "whose average ranks differ by less than the CD (not significantly different)."
        )


def final_matrix(runs: pd.DataFrame, direction: str = "maximize") -> tuple[list[str], np.ndarray]:
    """(strategies, seeds x strategies matrix of the runs' final bests): a run without a COMPLETE
    trial gets a finite value worse than every other, so that it ranks last."""
    strategies = [str(s) for s in _strategy_order(runs)]
    table = runs.pivot(index="seed", columns="strategy", values="best").sort_index()[strategies]
    matrix = table.to_numpy(dtype="float64")
    if np.isnan(matrix).any():
        finite = matrix[np.isfinite(matrix)]
        span = float(finite.max() - finite.min()) if finite.size else 0.0
        worst = (float(finite.min()) if direction == "maximize" else float(finite.max())) if finite.size else 0.0
        matrix = np.where(
            np.isnan(matrix), worst - (span + 1.0) if direction == "maximize" else worst + span + 1.0, matrix
        )
    return strategies, matrix


def critical_difference(runs: pd.DataFrame, direction: str = "maximize", alpha: float = ALPHA) -> CriticalDifference:
    """The Friedman test and the Nemenyi critical difference on ``final_runs`` in complete blocks
    (seeds; ValueError otherwise), with ``statistics.cd_groups`` named by strategy."""
    strategies, matrix = final_matrix(runs, direction)
    if matrix.shape[1] < 2:
        raise ValueError("a critical difference needs at least two strategies")
    res = statistics.friedman_nemenyi(matrix, direction, alpha)
    two = len(strategies) < 3
    groups = (
        ()
        if two
        else tuple(
            tuple(strategies[i] for i in g) for g in statistics.cd_groups(res.average_ranks, res.critical_difference)
        )
    )
    return CriticalDifference(
        strategies=tuple(strategies),
        average_ranks=res.average_ranks,
        blocks=int(matrix.shape[0]),
        statistic=res.statistic,
        p_value=res.p_value,
        critical_difference=math.nan if two else res.critical_difference,
        alpha=float(alpha),
        groups=groups,
        method=res.method,
        note=NEEDS_THREE if two else None,
    )


def runtime_ecdf_data(ttt: pd.DataFrame, longest: float | None = None) -> pd.DataFrame:
    """The ECDF of runtime to target per strategy (``ECDF_COLUMNS``): ``time_to_target``'s seconds
    (NaN: never reached) through ``statistics.ecdf_of_runtime_to_target`` on the grid 0, every
    time a run reached the target, and ``longest`` (the longest run's seconds)."""
    if ttt.empty:
        return _empty(ECDF_COLUMNS)
    seconds = ttt["seconds"].to_numpy(dtype="float64")
    reached = ttt["reached"].to_numpy(dtype=bool) & np.isfinite(seconds)
    end = [float(longest)] if longest is not None and math.isfinite(longest) else []
    grid = np.unique(np.concatenate([[0.0], seconds[reached], end]))
    parts = []
    for strategy in _strategy_order(ttt):
        rows = ttt["strategy"].to_numpy() == strategy
        times = [float(t) if ok else math.nan for t, ok in zip(seconds[rows], reached[rows])]
        fraction = statistics.ecdf_of_runtime_to_target(times, grid)
        parts.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "seconds": grid,
                    "fraction": fraction,
                    "runs": int(rows.sum()),
                    "reached": int(reached[rows].sum()),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[ECDF_COLUMNS]


@dataclass(frozen=True)
class Repeats:
    """The statistics across repeats (``reason`` says why they are empty)."""

    average_ranks: pd.DataFrame
    friedman: CriticalDifference | None
    ecdf: pd.DataFrame
    target: float = math.nan
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None


def across_repeats(
    curves_trial: pd.DataFrame,
    runs: pd.DataFrame,
    ttt: pd.DataFrame,
    design: Design | None,
    direction: str = "maximize",
    differences: Sequence[str] = (),
    *,
    target: float = math.nan,
    longest: float | None = None,
    alpha: float = ALPHA,
) -> Repeats:
    """Average ranks over budget, the critical difference and the runtime ECDF, when the design
    allows them (``repeats_reason``)."""
    reason = repeats_reason(design, differences)
    if reason is not None:
        return Repeats(_empty(RANK_COLUMNS), None, _empty(ECDF_COLUMNS), target, reason)
    return Repeats(
        average_ranks=average_rank_data(curves_trial, direction),
        friedman=critical_difference(runs, direction, alpha),
        ecdf=runtime_ecdf_data(ttt, longest),
        target=target,
    )
