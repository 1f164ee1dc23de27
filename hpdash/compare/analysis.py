"""A comparison analysed: the summary, tests, verdict, figures and tables the Compare page, the CLI and the report show."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import comparison_plots, plots, results
from hpdash.compare.baseline import NORMALISED_METHOD, Baseline, random_baseline
from hpdash.compare.curves import bands, curves, default_target, time_to_target, time_to_target_summary
from hpdash.compare.design import Design, FrameDesign, _canonical, design_of
from hpdash.compare.loading import Comparison
from hpdash.compare.repeats import Repeats, across_repeats
from hpdash.compare.significance import final_runs, no_tests, pairwise_tests, summary_table
from hpdash.compare.verdict import Verdict, _pm, not_comparable_text, verdict
from hpdash.compare.words import (
    ALPHA,
    DEFAULT_FRACTION,
    FRAME_DESIGN,
    LEVEL,
    MANN_WHITNEY,
    METRIC_BEST,
    METRIC_TTT,
    WILCOXON,
    label,
    metric_range,
)


@dataclass
class Analysis:
    """Everything the Compare page, the CLI and the report show."""

    curves_trial: pd.DataFrame
    curves_time: pd.DataFrame
    bands_trial: pd.DataFrame
    bands_time: pd.DataFrame
    target: float
    fraction: float | None
    ttt: pd.DataFrame
    ttt_summary: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    pairs: pd.DataFrame
    verdict: Verdict
    design: Design | None = None
    differences: list[str] = field(default_factory=list)
    band: str = "t"
    level: float = LEVEL
    metric: str | None = None
    value_range: tuple[float, float] = (-math.inf, math.inf)
    #: Random search's expected best and the normalised scores (``compare.baseline``).
    baseline: Baseline | None = None
    #: Average rank over budget, Friedman/Nemenyi and the runtime ECDF (``compare.repeats``).
    repeats: Repeats | None = None

    @property
    def comparable(self) -> bool:
        return not self.differences

    @property
    def banner(self) -> str | None:
        """The banner "Not comparable: <what differs>." or None."""
        return not_comparable_text(self.differences) if self.differences else None

    @property
    def band_text(self) -> str:
        """What the bands are: "95% t-interval of the mean over 5 seeds"."""
        return plots.band_description(self.bands_trial, self.band, self.level)


def analyse(
    frame: pd.DataFrame,
    holdout: Mapping[str, float | None] | None = None,
    direction: str = "maximize",
    target: float | None = None,
    fraction: float = DEFAULT_FRACTION,
    alpha: float = ALPHA,
    level: float = LEVEL,
    *,
    split_seeds: Mapping[str, int | None] | None = None,
    differences: Sequence[str] | None = None,
    metric: str | None = None,
    band: str = "t",
) -> Analysis:
    """All statistics of an experiment frame. ``target`` overrides the default target.

    ``split_seeds`` (study -> split seed), ``differences`` (what differs between the studies,
    ``differences``) and ``metric`` (for the range the bands are clipped to, ``metric_range``)
    default to what ``load_*_comparison`` put in ``frame.attrs`` (a ``FrameDesign``); a bare frame has none,
    so its runs are taken as independent (Mann-Whitney) and comparable. With differences, no
    test is run and nothing is ranked. ``band``: ``"t"`` or ``"bootstrap"`` (see ``bands``).
    """
    stored = frame.attrs.get(FRAME_DESIGN)
    if isinstance(stored, FrameDesign):
        split_seeds = stored.split_seeds if split_seeds is None else split_seeds
        differences = stored.differences if differences is None else differences
        metric = stored.metric if metric is None else metric
    found = list(differences or [])
    value_range = metric_range(metric)
    ct, cs = curves(frame, "trial", direction), curves(frame, "elapsed_s", direction)
    goal = target if target is not None else default_target(frame, direction, fraction)
    ttt = time_to_target(frame, goal, direction)
    ttt_sum = time_to_target_summary(ttt)
    runs = final_runs(frame, holdout, direction)
    design = design_of(runs, split_seeds, comparable=not found)
    if found:
        pairs = no_tests("not comparable: " + "; ".join(found))
    elif runs.empty or runs["strategy"].nunique() < 2:
        pairs = no_tests("one strategy: nothing to test")
    else:
        pairs = pairwise_tests(runs, ttt, direction, design.blocks if design.paired else None)
    band_trial = bands(ct, "trial", level, method=band, value_range=value_range)
    longest = float(cs["elapsed_s"].max()) if not cs.empty else None
    return Analysis(
        curves_trial=ct,
        curves_time=cs,
        bands_trial=band_trial,
        bands_time=bands(cs, "elapsed_s", level, method=band, value_range=value_range),
        target=goal,
        fraction=None if target is not None else fraction,
        ttt=ttt,
        ttt_summary=ttt_sum,
        runs=runs,
        summary=summary_table(runs, direction, design.ranked),
        pairs=pairs,
        verdict=verdict(runs, pairs, ttt_sum, direction, alpha, differences=found, design=design),
        design=design,
        differences=found,
        band=band,
        level=level,
        metric=metric,
        value_range=value_range,
        baseline=random_baseline(frame, runs, band_trial, direction, found),
        repeats=across_repeats(ct, runs, ttt, design, direction, found, target=goal, longest=longest, alpha=alpha),
    )


def analyse_comparison(
    comparison: Comparison,
    target: float | None = None,
    fraction: float = DEFAULT_FRACTION,
    alpha: float = ALPHA,
    level: float = LEVEL,
    band: str = "t",
) -> Analysis:
    """``analyse`` of a comparison, with its holdout scores, direction, split seeds, differences
    and metric passed explicitly."""
    return analyse(
        comparison.frame,
        comparison.holdout,
        comparison.direction,
        target=target,
        fraction=fraction,
        alpha=alpha,
        level=level,
        split_seeds=comparison.split_seeds,
        differences=comparison.differences,
        metric=comparison.metric,
        band=band,
    )


def seeds_text(comparison: Comparison) -> str:
    """The seeds (repeats) of the comparison: "0, 1 (2 repeats)", or per strategy when they
    are not the same for every strategy."""
    per: dict[str, list[int]] = {}
    for r in comparison.runs:
        per.setdefault(r.strategy, []).append(int(r.seed))
    sets = {tuple(sorted(v)) for v in per.values()}
    if len(sets) == 1:
        seeds = sorted(next(iter(sets)))
        return f"{', '.join(map(str, seeds))} ({len(seeds)} repeat{'s' if len(seeds) != 1 else ''})"
    return "; ".join(f"{label(k)}: {', '.join(map(str, sorted(v)))}" for k, v in per.items())


def design_rows(comparison: Comparison, analysis: Analysis) -> list[tuple[str, str]]:
    """The design for people, as (what, value) rows: strategies, seeds/repeats, data split,
    comparability, test, ranks, band."""
    design = analysis.design or design_of(analysis.runs, comparison.split_seeds, comparison.comparable)
    if not analysis.comparable:
        test = "none: " + (analysis.banner or "not comparable")
    elif analysis.pairs.empty:
        test = "none: " + str(analysis.pairs.attrs.get("reason", "nothing to test"))
    else:
        tests = [str(t) for t in analysis.pairs["test"]]
        notes = " (zero differences dropped where two runs tied)" if any("dropped" in t for t in tests) else ""
        base = f"exact {WILCOXON}" if design.paired else ", ".join(dict.fromkeys(tests))
        test = f"{base}{notes}, two-sided, Holm-adjusted; {design.reason}"
    return [
        ("strategies", ", ".join(label(s) for s in comparison.strategies)),
        ("seeds/repeats", seeds_text(comparison)),
        ("data split", comparison.split),
        ("comparable", "yes: the studies differ only in strategy and seed" if comparison.comparable else "no"),
        ("test", test),
        ("ranks", "within each seed" if design.ranked else design.rank_reason.removeprefix("No ranks: ")),
        ("band", analysis.band_text),
    ]


def design_text(comparison: Comparison, analysis: Analysis) -> str:
    """``design_rows`` as one line: strategies: ... · seeds/repeats: ... · ..."""
    return " · ".join(f"{k}: {v}" for k, v in design_rows(comparison, analysis))


#: Spec keys an experiment varies (or that name one study): not shown as the shared spec.
PER_RUN_KEYS = ("strategy", "seed", "sampler_seed", "split_seed")


def shown_spec(comparison: Comparison) -> dict[str, Any]:
    """The spec the compared studies share, for the report: the experiment's spec (else the
    first study's) without what varies per run (strategy, seeds; the study name of a hand-picked
    set), with ``strategies`` and ``seeds/repeats`` first and "(differs: ...)" for a value that is
    not the same in every study."""
    if comparison.spec is not None:
        base = comparison.spec.to_dict()
    else:
        first = comparison.records.get(comparison.runs[0].study, {}) if comparison.runs else {}
        base = {k: v for k, v in first.items() if k not in ("name", "direction", "dataset_sha256", "resolved_space")}
    specs = [study_attrs.spec_of({study_attrs.SPEC: comparison.records.get(r.study, {})}) for r in comparison.runs]
    out: dict[str, Any] = {
        "strategies": ", ".join(comparison.strategies),
        "seeds/repeats": seeds_text(comparison),
        "data split": comparison.split,
    }
    for key, value in base.items():
        if key in PER_RUN_KEYS:
            continue
        values = {_canonical(s.get(key)) for s in specs if key in s}
        out[key] = value if len(values) <= 1 or key == "name" else "(differs between the studies)"
    return out


def comparison_figures(comparison: Comparison, analysis: Analysis) -> dict[str, Any]:
    """The comparison figures (Plotly), by key: band_trial, band_time, edf, box_best,
    box_holdout. Bands and score axes keep within the metric's range; when the studies are not
    comparable every figure carries the "Not comparable: ..." banner."""
    c, a = comparison, analysis
    figures = {
        "band_trial": plots.band_figure(a.bands_trial, a.curves_trial, "trial", c.metric, value_range=a.value_range),
        "band_time": plots.band_figure(a.bands_time, a.curves_time, "elapsed_s", c.metric, value_range=a.value_range),
        "edf": plots.edf_figure(c.frame, c.metric, c.direction),
        "box_best": plots.runs_box_figure(a.runs, "best", c.metric, value_range=a.value_range),
        "box_holdout": plots.runs_box_figure(a.runs, "holdout", c.metric, value_range=a.value_range),
    }
    if a.baseline is not None and a.baseline.available:
        comparison_plots.with_random_baseline(figures["band_trial"], a.baseline.expected, a.baseline.label)
    return {k: plots.with_banner(f, a.banner) for k, f in figures.items()}


def repeats_figures(analysis: Analysis) -> dict[str, Any]:
    """The figures across repeats, by key: average_rank, critical_difference, runtime_ecdf; none
    when the design does not allow them (``analysis.repeats.reason`` says why)."""
    r = analysis.repeats
    if r is None or not r.available or r.friedman is None:
        return {}
    cd = r.friedman
    return {
        "average_rank": comparison_plots.average_rank_figure(r.average_ranks),
        "critical_difference": comparison_plots.critical_difference_figure(
            cd.frame, cd.critical_difference, cd.bars, subtitle=friedman_subtitle(analysis)
        ),
        "runtime_ecdf": comparison_plots.runtime_ecdf_figure(r.ecdf, f"target {r.target:.4g}"),
    }


def friedman_subtitle(analysis: Analysis) -> str:
    """The critical-difference diagram's subtitle: the test's result, or why there are ranks only."""
    r = analysis.repeats
    if r is None or r.friedman is None:
        return ""
    cd = r.friedman
    if cd.note:
        return f"{cd.blocks} seeds. {cd.note}"
    return (
        f"{cd.blocks} seeds; Friedman p = {cd.p_value:.3g}; bars join strategies not significantly different "
        f"(Nemenyi CD = {cd.critical_difference:.3g} at alpha {cd.alpha:g})"
    )


def target_text(analysis: Analysis, metric: str | None = None) -> str:
    """How the target was chosen, for the page and the report."""
    if analysis.fraction is None:
        return f"Target {metric or 'score'} {analysis.target:.4g} (set by hand)."
    pct = (1 - analysis.fraction) * 100
    return (
        f"Target {metric or 'score'} {analysis.target:.4g}: within {pct:g}% of the best score seen in the "
        f"experiment (best − {1 - analysis.fraction:.2g}·|best| when maximizing, so it also works for "
        "negative scores such as neg_rmse)."
    )


def log_params_of(comparison: Comparison) -> set[str]:
    """Hyperparameters sampled on a log scale in any of the compared studies (for plot axes)."""
    names: set[str] = set()
    for study in comparison.studies.values():
        names |= results.log_params(study)
    return names


def importance_by_strategy(comparison: Comparison, method: str = "ped_anova") -> pd.DataFrame:
    """Importance per strategy: each study's ``plots.importance_data`` averaged over its seeds.

    Columns: strategy, param, importance (renormalised to sum to 1 per strategy), studies
    (how many of the strategy's studies had enough trials to estimate it).
    """
    rows = []
    for strategy in comparison.strategies:
        parts = []
        for run in comparison.runs:
            if run.strategy == strategy:
                data = plots.importance_data(comparison.studies[run.study], method)
                if not data.empty:
                    parts.append(data)
        if not parts:
            continue
        stacked = pd.concat(parts).groupby("param")["importance"].sum() / len(parts)
        total = stacked.sum()
        for param, value in stacked.sort_values(ascending=False).items():
            rows.append(
                {
                    "strategy": strategy,
                    "param": param,
                    "importance": float(value / total) if total else 0.0,
                    "studies": len(parts),
                }
            )
    return pd.DataFrame(rows, columns=["strategy", "param", "importance", "studies"])


def display_table(
    summary: pd.DataFrame, ttt_summary: pd.DataFrame, digits: int = 4, normalised: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The summary and time-to-target tables merged for people (text cells, one row per strategy).

    Without ranks (``summary_table`` unranked) the mean rank and wins show "-". With
    ``normalised`` (``Baseline.scores``, not empty) a column "normalised score (Bayesmark)": mean
    ± std over the strategy's runs ("-" for a strategy without one)."""
    merged = summary.merge(ttt_summary.drop(columns=["runs"]), on="strategy", how="left")
    ranked = bool(merged["mean_rank"].notna().any())
    table = pd.DataFrame(
        {
            "strategy": [label(s) for s in merged["strategy"]],
            "runs": merged["runs"],
            "best CV (mean ± std)": [_pm(m, s, digits) for m, s in zip(merged["best_mean"], merged["best_std"])],
            "holdout (mean)": ["-" if math.isnan(h) else f"{h:.{digits}f}" for h in merged["holdout_mean"]],
            "mean rank": merged["mean_rank"].round(2) if ranked else ["-"] * len(merged),
            "wins": merged["wins"] if ranked else ["-"] * len(merged),
        }
    )
    if normalised is not None and not normalised.empty:
        scores = normalised.set_index("strategy").reindex(merged["strategy"])
        table[NORMALISED_METHOD] = [_pm(m, s, 3) for m, s in zip(scores["mean"], scores["std"])]
    return table


def ttt_table(ttt_summary: pd.DataFrame) -> pd.DataFrame:
    """The time-to-target table for people."""
    return pd.DataFrame(
        {
            "strategy": [label(s) for s in ttt_summary["strategy"]],
            "reached": [
                f"{r}/{n} ({r / n:.0%})" if n else "-" for r, n in zip(ttt_summary["reached"], ttt_summary["runs"])
            ],
            "trials (mean ± std)": [
                _pm(m, s, 1) for m, s in zip(ttt_summary["trials_mean"], ttt_summary["trials_std"])
            ],
            "seconds (mean ± std)": [
                _pm(m, s, 1, " s") for m, s in zip(ttt_summary["seconds_mean"], ttt_summary["seconds_std"])
            ],
        }
    )


def pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairwise tests for people, the test's name beside its p-values. No tests (``no_tests``):
    one row that says why."""
    names = {METRIC_BEST: "best CV", METRIC_TTT: "trials to target"}
    if pairs.empty:
        reason = str(pairs.attrs.get("reason", "nothing to test"))
        return pd.DataFrame({"measure": ["-"], "pair": ["-"], "test": [f"none ({reason})"]})
    tests = pairs["test"] if "test" in pairs.columns else pd.Series([f"exact {MANN_WHITNEY}"] * len(pairs))
    return pd.DataFrame(
        {
            "measure": [names.get(m, m) for m in pairs["metric"]],
            "pair": [f"{label(a)} vs {label(b)}" for a, b in zip(pairs["a"], pairs["b"])],
            "favours": ["-" if not isinstance(b, str) else label(b) for b in pairs["better"]],
            "test": list(tests),
            "p": pairs["p"].astype("float64").round(4),
            "p (Holm)": pairs["p_holm"].astype("float64").round(4),
            "smallest possible p": pairs["min_p"].astype("float64").round(4),
        }
    )
