"""A comparison as one machine-readable document: every number the Compare page and the report
show, as plain JSON values (``hpdash export --format json``).

``results_document`` builds it from a ``Comparison`` and its ``Analysis``; ``json_safe`` turns
NaN and infinities into ``None`` (JSON ``null``) and NumPy scalars into Python numbers, so that
``json.dumps(..., allow_nan=False)`` accepts it and ``json.loads`` in any language reads it.
The per-study tie sets and the bias-corrected scores are other modules' (``hpdash.report`` fills
``ties`` and ``winners_curse``); here they are ``None``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hpdash import __version__
from hpdash.compare.analysis import Analysis, design_rows, target_text
from hpdash.compare.baseline import NORMALISED_DEFINITION
from hpdash.compare.design import design_of
from hpdash.compare.loading import Comparison
from hpdash.compare.repeats import AVERAGE_RANK_NAME, ECDF_NAME
from hpdash.compare.words import ALPHA, METRIC_BEST, METRIC_TTT

FORMAT = "hpdash.comparison/1"
MEASURES = {METRIC_BEST: "best CV score", METRIC_TTT: "trials to target (never reached: longest run + 1)"}


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: dicts (string keys), lists, str, bool, int, finite float or
    None. NaN, inf and pandas' missing values become None; NumPy scalars and arrays, tuples,
    dataclasses and frames (as a list of row records) are converted."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, pd.DataFrame):
        return [json_safe(r) for r in value.to_dict(orient="records")]
    if isinstance(value, (pd.Series, np.ndarray)):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    part = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    return [json_safe(r) for r in part.to_dict(orient="records")]


def _runs(comparison: Comparison, analysis: Analysis) -> list[dict[str, Any]]:
    runs = analysis.runs.set_index("study")
    ttt = analysis.ttt.set_index("study")
    scored = analysis.baseline.runs.set_index("study") if analysis.baseline is not None else pd.DataFrame()
    out = []
    for run in comparison.runs:
        row: dict[str, Any] = {
            "study": run.study,
            "strategy": run.strategy,
            "seed": run.seed,
            "split_seed": comparison.split_seeds.get(run.study),
        }
        if run.study in runs.index:
            r = runs.loc[run.study]
            row.update(best=r["best"], holdout=r["holdout"], n_complete=r["n_complete"])
        if run.study in ttt.index:
            t = ttt.loc[run.study]
            row.update(
                finished_trials=t["n_trials"],
                reached_target=bool(t["reached"]),
                trials_to_target=t["trials"],
                seconds_to_target=t["seconds"],
            )
        if run.study in scored.index:
            s = scored.loc[run.study]
            row.update(budget=s["budget"], random_expected=s["random_expected"], normalised_score=s["normalised"])
        out.append(json_safe(row))
    return out


def _design(comparison: Comparison, analysis: Analysis) -> dict[str, Any]:
    design = analysis.design or design_of(analysis.runs, comparison.split_seeds, comparison.comparable)
    seeds: dict[str, list[int]] = {}
    for run in comparison.runs:
        seeds.setdefault(run.strategy, []).append(int(run.seed))
    return {
        "strategies": comparison.strategies,
        "seeds": {k: sorted(v) for k, v in seeds.items()},
        "split": comparison.split,
        "split_seeds": dict(comparison.split_seeds),
        "comparable": comparison.comparable and analysis.comparable,
        "differences": list(analysis.differences or comparison.differences),
        "banner": analysis.banner,
        "paired": design.paired,
        "ranked": design.ranked,
        "test": design.test,
        "reason": design.reason,
        "rank_reason": design.rank_reason or None,
        "text": dict(design_rows(comparison, analysis)),
    }


def _pairs(analysis: Analysis, alpha: float) -> dict[str, Any]:
    pairs = analysis.pairs
    tests = [
        {
            "measure": MEASURES.get(str(p["metric"]), str(p["metric"])),
            "metric": p["metric"],
            "a": p["a"],
            "b": p["b"],
            "test": p["test"],
            "statistic": p["statistic"],
            "p": p["p"],
            "p_holm": p["p_holm"],
            "better": p["better"] if isinstance(p["better"], str) else None,
            "n_a": p["n_a"],
            "n_b": p["n_b"],
            "n_pairs": p["n_pairs"],
            "min_p": p["min_p"],
        }
        for p in pairs.to_dict(orient="records")
    ]
    return {
        "alpha": alpha,
        "adjustment": "Holm, within each measure",
        "tests": json_safe(tests),
        "reason": pairs.attrs.get("reason") if pairs.empty else None,
    }


def _baseline(analysis: Analysis) -> tuple[dict[str, Any], dict[str, Any]]:
    b = analysis.baseline
    if b is None:
        return {"available": False, "reason": "not computed"}, {"available": False, "reason": "not computed"}
    random_search = {
        "method": b.method,
        "available": b.available,
        "reason": b.reason,
        "label": b.label or None,
        "pooled_trials": b.pooled,
        "curve": _records(b.expected, ["n", "expected_best", "twice"]),
    }
    normalised = {
        "method": b.score_method,
        "definition": NORMALISED_DEFINITION,
        "available": b.available,
        "reason": b.reason,
        "optimum": b.optimum,
        "strategies": _records(b.scores),
        "over_budget": _records(b.curve),
    }
    return json_safe(random_search), json_safe(normalised)


def _repeats(analysis: Analysis) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    r = analysis.repeats
    if r is None:
        none = {"available": False, "reason": "not computed"}
        return none, None, none
    ranks = {
        "method": AVERAGE_RANK_NAME,
        "available": r.available,
        "reason": r.reason,
        "blocks": int(r.average_ranks["blocks"].iloc[0]) if not r.average_ranks.empty else 0,
        "over_budget": _records(r.average_ranks, ["strategy", "trial", "average_rank"]),
    }
    friedman = None
    if r.friedman is not None:
        cd = r.friedman
        friedman = {
            "name": cd.name,
            "method": cd.method,
            "strategies": list(cd.strategies),
            "average_ranks": dict(zip(cd.strategies, cd.average_ranks)),
            "blocks": cd.blocks,
            "statistic": cd.statistic,
            "p_value": cd.p_value,
            "critical_difference": cd.critical_difference,
            "alpha": cd.alpha,
            "groups": [list(g) for g in cd.groups],
            "note": cd.note,
        }
    ecdf = {
        "method": ECDF_NAME,
        "available": r.available,
        "reason": r.reason,
        "target": r.target,
        "points": _records(r.ecdf, ["strategy", "seconds", "fraction"]),
        "runs": {
            str(s): {"runs": int(g["runs"].iloc[0]), "reached": int(g["reached"].iloc[0])}
            for s, g in r.ecdf.groupby("strategy", sort=False)
        },
    }
    return json_safe(ranks), json_safe(friedman), json_safe(ecdf)


def results_document(comparison: Comparison, analysis: Analysis, alpha: float = ALPHA) -> dict[str, Any]:
    """Everything the comparison shows, as plain JSON data (``json_safe``): the design, the
    per-run bests and holdout scores, the summary, time to target, the pairwise tests (name,
    statistic, raw and Holm-adjusted p), the verdict, random search's expected-best curve, the
    normalised scores, the average ranks over budget, the Friedman/Nemenyi result and the runtime
    ECDF; ``ties`` and ``winners_curse`` are None (filled by ``hpdash.report.experiment_json``)."""
    c, a = comparison, analysis
    random_search, normalised = _baseline(a)
    ranks, friedman, ecdf = _repeats(a)
    document = {
        "format": FORMAT,
        "hpdash_version": __version__,
        "title": c.title,
        "experiment": c.experiment,
        "metric": c.metric,
        "direction": c.direction,
        "design": _design(c, a),
        "target": {"value": a.target, "fraction": a.fraction, "text": target_text(a, c.metric)},
        "band": {"method": a.band, "level": a.level, "text": a.band_text},
        "runs": _runs(c, a),
        "summary": _records(a.summary),
        "time_to_target": _records(a.ttt_summary),
        "pairwise_tests": _pairs(a, alpha),
        "verdict": {"text": a.verdict.text, "claims": [dataclasses.asdict(x) for x in a.verdict.claims]},
        "random_search_expected_best": random_search,
        "normalised_scores": normalised,
        "average_ranks": ranks,
        "friedman_nemenyi": friedman,
        "runtime_to_target_ecdf": ecdf,
        "ties": None,
        "winners_curse": None,
    }
    return json_safe(document)
