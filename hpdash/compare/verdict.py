"""The verdict: only differences the tests support, in words, each with its test named."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpdash.compare.design import Design
from hpdash.compare.significance import seeds_needed, seeds_needed_paired, summary_table
from hpdash.compare.words import ALPHA, MANN_WHITNEY, METRIC_BEST, METRIC_TTT, WILCOXON, label


# ------------------------------------------------------------------------------ verdict
@dataclass
class Claim:
    """One difference the verdict states, with the test that supports it."""

    metric: str
    better: str
    worse: str
    p: float  # Holm-adjusted
    test: str = ""  # the test's name


@dataclass
class Verdict:
    text: str
    claims: list[Claim] = field(default_factory=list)


def _pm(mean: float, sd: float, digits: int, unit: str = "") -> str:
    if math.isnan(mean):
        return "-"
    fmt = f"{{:.{digits}f}}"
    text = fmt.format(mean)
    if not math.isnan(sd):
        text += " ± " + fmt.format(sd)
    return text + unit


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def _ttt_phrase(row: Mapping[str, Any]) -> str:
    runs, reached = int(row["runs"]), int(row["reached"])
    if not reached:
        return f"did not reach it in any of its {runs} runs"
    text = f"in {_pm(row['trials_mean'], row['trials_std'], 1)} trials"
    if reached < runs:
        text += f" ({reached} of {runs} runs reached it)"
    return text


def _seeds_phrase(runs: pd.DataFrame) -> str:
    counts = runs.groupby("strategy").size()
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' if lo != 1 else ''}" if lo == hi else f"{lo}-{hi} seeds per strategy"


def not_comparable_text(differences: Sequence[str]) -> str:
    """The banner: "Not comparable: <what differs>"."""
    return "Not comparable: " + "; ".join(differences) + "."


def _test_name(test: Any) -> str:
    """A pairs row's test name (an old pairs frame without one ran Mann-Whitney)."""
    return test if isinstance(test, str) and test else f"exact {MANN_WHITNEY}"


def verdict(
    runs: pd.DataFrame,
    pairs: pd.DataFrame,
    ttt_summary: pd.DataFrame | None = None,
    direction: str = "maximize",
    alpha: float = ALPHA,
    digits: int = 4,
    *,
    differences: Sequence[str] | None = None,
    design: Design | None = None,
) -> Verdict:
    """The verdict text: only differences whose Holm-adjusted p is below ``alpha`` are stated,
    each with the test that supports it. With ``differences`` (the studies are not comparable)
    nothing is claimed and the text says what differs; ``design`` adds why the tests are (not)
    paired and why there are no ranks."""
    if runs.empty or runs["strategy"].nunique() < 2:
        return Verdict("Nothing to compare: an experiment needs at least two strategies.")
    if differences:
        return Verdict(
            not_comparable_text(differences) + " No test is run, no strategy is ranked and none is called "
            "better: these studies differ in more than strategy and seed, so a difference in their scores "
            "could come from what differs rather than from the strategies."
        )
    claims: list[Claim] = []
    sentences: list[str] = []
    ranked = design.ranked if design is not None else None
    summary = summary_table(runs, direction, ranked).set_index("strategy")
    ttt_rows = ttt_summary.set_index("strategy") if ttt_summary is not None and not ttt_summary.empty else None
    significant = pairs.loc[pairs["p_holm"] < alpha].sort_values(["metric", "p_holm"], ascending=[False, True])
    for row in significant.itertuples(index=False):
        if row.better is None or (isinstance(row.better, float) and math.isnan(row.better)):
            continue
        worse = row.b if row.better == row.a else row.a
        test = _test_name(getattr(row, "test", None))
        if row.metric == METRIC_TTT and ttt_rows is not None:
            good, bad = ttt_rows.loc[row.better], ttt_rows.loc[worse]
            sentences.append(
                f"{label(row.better)} reached the target {_ttt_phrase(good.to_dict())}, "
                f"{label(worse)} {_ttt_phrase(bad.to_dict())} ({_p(row.p_holm)}) by {test}."
            )
        elif row.metric == METRIC_BEST:
            good, bad = summary.loc[row.better], summary.loc[worse]
            sentences.append(
                f"{label(row.better)} found better final CV scores than {label(worse)}: "
                f"{_pm(good['best_mean'], good['best_std'], digits)} vs "
                f"{_pm(bad['best_mean'], bad['best_std'], digits)} ({_p(row.p_holm)}) by {test}."
            )
        else:
            continue
        claims.append(Claim(row.metric, row.better, worse, float(row.p_holm), test))
    n_pairs = int((pairs["metric"] == METRIC_BEST).sum())
    tests = [str(t) for t in pairs["test"]] if "test" in pairs.columns else []
    paired = design.paired if design is not None else any(t.startswith(f"exact {WILCOXON}") for t in tests)
    per = f"Holm-adjusted over {n_pairs} pair{'s' if n_pairs != 1 else ''} per measure"
    if paired:
        method = (
            f"Two-sided exact {WILCOXON} tests on the per-seed differences (paired: within a seed every "
            f"strategy shares the holdout and the CV folds), {per}; a difference is stated only when p < {alpha:g}."
        )
    else:
        why = f" ({design.reason})" if design is not None else ""
        method = (
            f"Two-sided {MANN_WHITNEY} tests across seeds{why}, {per}; a difference is stated only when p < {alpha:g}."
        )
    ranks_note = f" {design.rank_reason}" if design is not None and design.rank_reason else ""
    if claims:
        return Verdict(" ".join(sentences) + " " + method + ranks_note, claims)
    smallest = pairs.loc[pairs["p_holm"] == pairs["p_holm"].min()].iloc[0] if not pairs.empty else None
    if smallest is None:
        text = f"No significant difference with {_seeds_phrase(runs)}."
    else:
        text = (
            f"No significant difference with {_seeds_phrase(runs)} "
            f"(smallest adjusted {_p(float(smallest['p_holm']))}, by {_test_name(smallest.get('test'))})."
        )
    floor = float(pairs["min_p"].min()) if not pairs.empty else 1.0
    if floor >= alpha / max(1, n_pairs):
        need = (seeds_needed_paired if paired else seeds_needed)(alpha / max(1, n_pairs))
        text += (
            f" With this many seeds the test cannot go below p = {floor:.2g}; it needs at least "
            f"{need} seeds per strategy to show a difference at the {alpha:g} level."
        )
    return Verdict(text + " " + method + ranks_note, [])
