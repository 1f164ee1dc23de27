"""Per-run results, ranks within complete blocks, and the pairwise tests: exact Wilcoxon signed-rank on paired designs, exact Mann-Whitney otherwise, Holm-adjusted."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hpdash.compare.curves import _strategy_order
from hpdash.compare.words import EXACT_LIMIT, MANN_WHITNEY, METRIC_BEST, METRIC_TTT, WILCOXON, label


# ------------------------------------------------------------------------------ runs, ranks, summary
def final_runs(
    frame: pd.DataFrame, holdout: Mapping[str, float | None] | None = None, direction: str = "maximize"
) -> pd.DataFrame:
    """Per run: study, strategy, seed, best (best COMPLETE value), holdout, n_complete."""
    rows = []
    holdout = holdout or {}
    for study, run in frame.groupby("study", sort=False):
        values = run.loc[run["state"] == "COMPLETE", "value"].astype("float64")
        values = values[np.isfinite(values)]
        best = (values.max() if direction == "maximize" else values.min()) if len(values) else math.nan
        h = holdout.get(str(study))
        rows.append(
            {
                "study": study,
                "strategy": run["strategy"].iloc[0],
                "seed": run["seed"].iloc[0],
                "best": float(best),
                "holdout": math.nan if h is None else float(h),
                "n_complete": len(values),
            }
        )
    return pd.DataFrame(rows, columns=["study", "strategy", "seed", "best", "holdout", "n_complete"])


def ranks(runs: pd.DataFrame, direction: str = "maximize") -> pd.DataFrame:
    """``runs`` with a ``rank`` column: rank of ``best`` within its seed (1 = best, ties averaged)."""
    out = runs.copy()
    key = -out["best"] if direction == "maximize" else out["best"]
    out["rank"] = key.groupby(out["seed"]).rank(method="average", na_option="bottom")
    best_in_seed = key.groupby(out["seed"]).transform("min")
    out["win"] = (key == best_in_seed) & out["best"].notna()
    return out


def complete_blocks(runs: pd.DataFrame, key: str | pd.Series = "seed") -> bool:
    """Whether every block (``runs[key]``, or a Series aligned with ``runs``) holds exactly one
    run of every strategy: what ranks within a block and a paired test need."""
    if runs.empty:
        return False
    blocks = runs[key] if isinstance(key, str) else key
    if blocks.isna().any():
        return False
    strategies = sorted(map(str, pd.unique(runs["strategy"])))
    per_block = runs["strategy"].astype(str).groupby(blocks.to_numpy(), sort=False)
    return all(sorted(g.tolist()) == strategies for _, g in per_block)


def incomplete_block(runs: pd.DataFrame, key: str | pd.Series = "seed") -> str:
    """A block that is not complete, for a reason given to people: "seed 3 holds only TPE"."""
    blocks = runs[key] if isinstance(key, str) else key
    strategies = list(pd.unique(runs["strategy"]))
    for block, g in runs["strategy"].groupby(blocks.to_numpy(), sort=False):
        held = g.tolist()
        if sorted(map(str, held)) != sorted(map(str, strategies)):
            twice = sorted({s for s in held if held.count(s) > 1})
            if twice:
                return f"seed {block} holds {len(g)} runs, several of {', '.join(label(s) for s in twice)}"
            return f"seed {block} holds only {', '.join(label(s) for s in dict.fromkeys(held))}"
    return "a seed has no run"


def summary_table(runs: pd.DataFrame, direction: str = "maximize", ranked: bool | None = None) -> pd.DataFrame:
    """Per strategy: runs, best_mean, best_std, holdout_mean, holdout_n, mean_rank, wins; best first.

    ``ranked``: rank within seeds (None: only when every seed holds one run of every strategy,
    ``complete_blocks``). Unranked, ``mean_rank`` and ``wins`` are NaN and strategies keep their
    order.
    """
    if ranked is None:
        ranked = complete_blocks(runs)
    table_of = ranks(runs, direction) if ranked else runs.assign(rank=math.nan, win=False)
    rows = []
    for strategy in _strategy_order(table_of):
        g = table_of.loc[table_of["strategy"] == strategy]
        rows.append(
            {
                "strategy": strategy,
                "runs": len(g),
                "best_mean": g["best"].mean(),
                "best_std": g["best"].std(ddof=1) if g["best"].notna().sum() > 1 else math.nan,
                "holdout_mean": g["holdout"].mean(),
                "holdout_n": int(g["holdout"].notna().sum()),
                "mean_rank": g["rank"].mean() if ranked else math.nan,
                "wins": int(g["win"].sum()) if ranked else math.nan,
            }
        )
    table = pd.DataFrame(
        rows, columns=["strategy", "runs", "best_mean", "best_std", "holdout_mean", "holdout_n", "mean_rank", "wins"]
    )
    if not ranked:
        return table
    return table.sort_values(["mean_rank", "strategy"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ tests
def min_p_value(n_a: int, n_b: int) -> float:
    """Smallest two-sided p an exact Mann-Whitney test can give for groups of n_a and n_b."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(U of a, two-sided p). p = 1 when every value of both groups is equal."""
    x, y = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if x.size == 0 or y.size == 0:
        return (math.nan, 1.0)
    if np.unique(np.concatenate([x, y])).size == 1:
        return (x.size * y.size / 2.0, 1.0)
    if math.comb(x.size + y.size, x.size) <= EXACT_LIMIT:
        # Exact permutation distribution, ties included. scipy's default switches to the normal
        # approximation as soon as there is a tie, and with a few seeds that gives p-values
        # below what any arrangement of the data can produce (0.013 for 4 vs 4, where the
        # exact minimum is 0.029).
        return _exact_mann_whitney(x, y)
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    p = float(res.pvalue)
    return (float(res.statistic), 1.0 if math.isnan(p) else p)


def _exact_mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """U of x and the two-sided p over every split of the pooled (mid-)ranks: 2·min(P(U ≤ u),
    P(U ≥ u)), capped at 1 (what ``scipy.stats.permutation_test`` computes)."""
    ranks = stats.rankdata(np.concatenate([x, y]))
    n_a = x.size
    offset = n_a * (n_a + 1) / 2.0
    u_obs = float(ranks[:n_a].sum() - offset)
    us = np.array([ranks[list(idx)].sum() - offset for idx in combinations(range(ranks.size), n_a)])
    eps = 1e-9 * max(1.0, abs(u_obs))
    lower = float(np.mean(us <= u_obs + eps))
    upper = float(np.mean(us >= u_obs - eps))
    return (u_obs, min(1.0, 2.0 * min(lower, upper)))


def mann_whitney_name(n_a: int, n_b: int) -> str:
    """The name of the Mann-Whitney test ``mann_whitney`` runs for groups of n_a and n_b."""
    if n_a and n_b and math.comb(n_a + n_b, n_a) > EXACT_LIMIT:
        return f"{MANN_WHITNEY}, normal approximation"
    return f"exact {MANN_WHITNEY}"


def min_p_value_paired(n: int) -> float:
    """Smallest two-sided p an exact Wilcoxon signed-rank test can give with n non-zero
    differences: 2 / 2^n (every difference on one side)."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)


def seeds_needed_paired(alpha: float) -> int:
    """Smallest number of complete blocks (seeds) for which an exact Wilcoxon signed-rank test
    can give p < alpha."""
    n = 1
    while min_p_value_paired(n) >= alpha and n < 100:
        n += 1
    return n


def _zero_noise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b, with differences that are only floating-point noise (|d| <= 1e-12 of the values:
    two means of the same fold scores summed in another order) made exactly 0."""
    d = a - b
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    return np.where(np.abs(d) <= 1e-12 * scale, 0.0, d)


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, str, float]:
    """The two-sided exact Wilcoxon signed-rank test of the paired differences a - b.

    Returns (statistic, p, test name, signed-rank balance). The statistic and p are
    ``scipy.stats.wilcoxon(a - b, method="exact")`` (zero differences dropped, Wilcoxon's
    rule); p = 1 when every difference is 0. The name says what was done: "exact Wilcoxon
    signed-rank", plus "k zero differences dropped" and, when non-zero differences tie,
    "tied differences (conservative p)" (scipy's exact distribution assumes no ties and rounds
    the statistic the safe way). The balance is R+ - R- (sum of the ranks of the positive
    differences minus the negative ones): > 0 when a tends to be larger.
    """
    x, y = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if x.shape != y.shape:
        raise ValueError("A paired test needs two samples of the same length.")
    d = _zero_noise(x, y)
    nonzero = d[d != 0]
    notes = []
    zeros = int(d.size - nonzero.size)
    if zeros:
        notes.append(f"{zeros} zero difference{'s' if zeros != 1 else ''} dropped")
    ranks_ = stats.rankdata(np.abs(nonzero))
    if np.unique(np.abs(nonzero)).size < nonzero.size:
        notes.append("tied differences (conservative p)")
    name = ", ".join([f"exact {WILCOXON}", *notes])
    if nonzero.size == 0:
        return (0.0, 1.0, name, 0.0)
    balance = float(ranks_[nonzero > 0].sum() - ranks_[nonzero < 0].sum())
    res = stats.wilcoxon(d, method="exact")
    p = float(res.pvalue)
    return (float(res.statistic), 1.0 if math.isnan(p) else min(1.0, p), name, balance)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


PAIR_COLUMNS = ["metric", "a", "b", "n_a", "n_b", "u", "p", "p_holm", "better", "min_p", "test", "statistic", "n_pairs"]


def no_tests(reason: str) -> pd.DataFrame:
    """An empty pairs frame (``pairwise_tests``'s columns) whose ``attrs["reason"]`` says why no
    test was run; ``pairs_table`` shows the reason."""
    out = pd.DataFrame({c: pd.Series([], dtype="object") for c in PAIR_COLUMNS})
    out.attrs["reason"] = reason
    return out


def pairwise_tests(
    runs: pd.DataFrame,
    ttt: pd.DataFrame | None = None,
    direction: str = "maximize",
    blocks: Mapping[str, Hashable] | None = None,
) -> pd.DataFrame:
    """A test for every pair of strategies on best CV and on trials to target.

    Without ``blocks``: Mann-Whitney across seeds (``mann_whitney``). With ``blocks`` (study ->
    its block, the split seed; the caller has checked that the design is paired,
    ``design_of``): the exact Wilcoxon signed-rank test of the per-block differences
    (``wilcoxon_signed_rank``); a block where either run has no value is left out of that pair.

    Columns: metric, a, b, n_a, n_b (runs with a value), u (Mann-Whitney's U of a; NaN for a
    paired test), p, p_holm, better (the strategy the data favour, by U or by the signed
    ranks; None when exactly balanced), min_p (smallest p possible with these sizes), test
    (the test's name, printed beside every p), statistic (U, or Wilcoxon's min(R+, R-)),
    n_pairs (blocks used by a paired test; NaN otherwise).
    """
    rows: list[dict[str, Any]] = []
    order = _strategy_order(runs)
    families: list[tuple[str, pd.DataFrame, str, bool]] = [(METRIC_BEST, runs, "best", direction == "maximize")]
    if ttt is not None and not ttt.empty:
        censored = ttt.copy()
        worst = float(censored["n_trials"].max()) + 1.0
        censored["score"] = censored["trials"].where(censored["reached"].astype(bool), worst)
        families.append((METRIC_TTT, censored, "score", False))
    for metric, data, column, higher_better in families:
        family: list[dict[str, Any]] = []
        for a, b in combinations(order, 2):
            row = _paired_row(data, column, a, b, blocks) if blocks is not None else _unpaired_row(data, column, a, b)
            balance = row.pop("balance")
            row["better"] = (
                None if balance == 0 or math.isnan(balance) else (a if (balance > 0) == higher_better else b)
            )
            family.append({"metric": metric, "a": a, "b": b, **row})
        for entry, adj in zip(family, holm([r["p"] for r in family])):
            entry["p_holm"] = adj
        rows += family
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _unpaired_row(data: pd.DataFrame, column: str, a: str, b: str) -> dict[str, Any]:
    xa = data.loc[data["strategy"] == a, column].dropna().to_numpy(dtype="float64")
    xb = data.loc[data["strategy"] == b, column].dropna().to_numpy(dtype="float64")
    u, p = mann_whitney(xa, xb)
    return {
        "n_a": int(xa.size),
        "n_b": int(xb.size),
        "u": u,
        "p": p,
        "min_p": min_p_value(int(xa.size), int(xb.size)),
        "test": mann_whitney_name(int(xa.size), int(xb.size)),
        "statistic": u,
        "n_pairs": math.nan,
        "balance": math.nan if math.isnan(u) else u - xa.size * xb.size / 2.0,
    }


def _paired_row(data: pd.DataFrame, column: str, a: str, b: str, blocks: Mapping[str, Hashable]) -> dict[str, Any]:
    def side(strategy: str) -> pd.Series:
        rows = data.loc[data["strategy"] == strategy]
        return pd.Series(rows[column].to_numpy(dtype="float64"), index=[blocks.get(str(s)) for s in rows["study"]])

    sa, sb = side(a), side(b)
    both = pd.concat([sa.rename("a"), sb.rename("b")], axis=1, join="inner").dropna()
    stat, p, name, balance = wilcoxon_signed_rank(both["a"].to_numpy(), both["b"].to_numpy())
    nonzero = int((_zero_noise(both["a"].to_numpy(), both["b"].to_numpy()) != 0).sum())
    return {
        "n_a": int(sa.notna().sum()),
        "n_b": int(sb.notna().sum()),
        "u": math.nan,
        "p": p,
        "min_p": min_p_value_paired(nonzero),
        "test": name,
        "statistic": stat,
        "n_pairs": len(both),
        "balance": balance,
    }


def seeds_needed(alpha: float) -> int:
    """Smallest n (equal groups) for which an exact Mann-Whitney test can give p < alpha."""
    n = 1
    while min_p_value(n, n) >= alpha and n < 100:
        n += 1
    return n
