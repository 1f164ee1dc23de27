"""Exports: the trials of a study or an experiment as CSV, and self-contained HTML reports.

The CSV is opened in spreadsheets, so text cells that a spreadsheet would run as a formula
(CSV/formula injection) are neutralised as OWASP advises: a leading ``'`` before a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return. Only text cells are touched;
numbers, including negative ones, stay numbers.

The HTML reports (one study, or one experiment) are single files that open offline: the
plotly.js bundle is inlined in a ``<script>`` element (no CDN, about 4.8 MB), every figure is a
plotly div drawn by that bundle, and every text from the user (names, spec, notes) is
HTML-escaped. Each report has a title, the date it was made and the spec.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import yaml

from hpdash import __version__
from hpdash import attrs as study_attrs
from hpdash.results import trials_frame

if TYPE_CHECKING:
    from hpdash.compare import Analysis, Comparison

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``'`` + value for text that a spreadsheet would read as a formula; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _fold_scores_json(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return json.dumps([float(v) for v in value])
    return None


def trials_csv(frame: pd.DataFrame) -> bytes:
    """The trials frame as UTF-8 CSV bytes (no index, CRLF line ends, ``fold_scores`` as a
    JSON list, formula-like text cells neutralised)."""
    out = frame.copy()
    if "fold_scores" in out.columns:
        out["fold_scores"] = out["fold_scores"].map(_fold_scores_json).astype("object")
    for column in out.columns:
        series = out[column]
        if (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            continue  # no text cells in these columns
        out[column] = series.astype("object").map(neutralise_cell)
    # RFC 4180 line ends: the csv writer quotes a field that contains any character of the
    # line terminator, so with a bare "\n" a text cell holding "\r" would go out unquoted and
    # split the row in spreadsheets.
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def write_trials_csv(study: optuna.Study, path: str | Path) -> Path:
    """Write ``trials_csv(trials_frame(study))`` to ``path`` and return the path."""
    target = Path(path)
    target.write_bytes(trials_csv(trials_frame(study)))
    return target


def experiment_csv(frame: pd.DataFrame) -> bytes:
    """Every trial of an experiment (``hpdash.compare.experiment_frame``) as CSV, with the
    ``study``, ``strategy`` and ``seed`` columns first; same rules as ``trials_csv``."""
    return trials_csv(frame)


def write_experiment_csv(name: str, path: str | Path, storage: str | None = None) -> Path:
    """Write the CSV of every trial of experiment ``name`` to ``path``."""
    from hpdash import compare

    target = Path(path)
    target.write_bytes(experiment_csv(compare.load_experiment_comparison(name, storage).frame))
    return target


# ------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1rem} th,td{border:1px solid #ddd;padding:.3rem .6rem;
text-align:left} th{background:#f4f6f8}
pre{background:#f6f8fa;padding:1rem;overflow-x:auto} .verdict{font-size:1.1rem;background:#eef5ff;
padding:.8rem 1rem;border-left:4px solid #1f77b4} .note{color:#444} .figure{margin:1rem 0 2rem}
.banner{font-size:1.1rem;font-weight:600;color:#b00020;background:#ffebee;padding:.8rem 1rem;
border-left:4px solid #b00020}
"""


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def figure_div(fig: go.Figure, div_id: str) -> str:
    """One figure as a ``<div>`` plus the script that draws it with the inlined plotly.js."""
    return (
        '<div class="figure">'
        + pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        + "</div>"
    )


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="-")


def html_page(title: str, sections: list[str], subtitle: str = "") -> str:
    """A complete, self-contained HTML document (plotly.js inlined; no external requests)."""
    from plotly.offline import get_plotlyjs

    meta = f"Made {_now_text()} by hpdash {__version__}" + (f" · {_e(subtitle)}" if subtitle else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f'<h1>{_e(title)}</h1><p class="meta">{meta}</p>' + "\n".join(sections) + "</body></html>"
    )


def study_html(study: optuna.Study) -> str:
    """The HTML report of one study: summary, final model, figures, grid order, spec."""
    from hpdash import experiments, plots, results, runner

    frame = trials_frame(study)
    summary = results.study_summary(study)
    metric = study.user_attrs.get(study_attrs.METRIC) or summary.get("metric")
    direction = summary["direction"]
    logs = results.log_params(study)
    try:
        spec = runner.load_spec_of(study)
    except Exception:
        spec = None
    refit = runner.refit_info(study)
    rows = {
        "trials": f"{summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_fail']} failed",
        "strategy": spec.strategy if spec else "-",
        "metric": metric or "-",
        "best CV score": "-"
        if summary["best_value"] is None
        else f"{summary['best_value']:.4f} (trial {summary['best_trial_number']})",
        "best hyperparameters": json.dumps(summary["best_params"], default=str),
        "holdout score of the final model": f"{refit['holdout_score']:.4f}" if refit else "not refit",
    }
    sections = ["<h2>Summary</h2>", _table(pd.DataFrame({"": list(rows), "value": list(rows.values())}))]
    if spec is not None:
        sections += _selection_bias_section(study)
    grid = study.user_attrs.get(runner.GRID_ATTR)
    if grid:
        sections.append(
            f'<h2>Grid order</h2><p class="note">{_e(experiments.grid_note(grid, spec.n_trials if spec else None, spec.seed if spec else None))}</p>'
        )
    figs = [
        plots.convergence_figure(frame, "number", direction, "Best so far vs trials", metric),
        plots.convergence_figure(frame, "elapsed_s", direction, "Best so far vs wall-clock time", metric),
        plots.parallel_coordinates_figure(frame, direction, logs, metric),
        plots.importance_figure(plots.importance_data(study, "ped_anova"), "ped_anova"),
        plots.timeline_figure(frame),
    ]
    sections.append("<h2>Figures</h2>")
    sections += [figure_div(f, f"fig-{i}") for i, f in enumerate(figs)]
    sections.append(f'<p class="note">Importance method: {_e(plots.IMPORTANCE_METHODS["ped_anova"])}</p>')
    if spec is not None:
        sections.append(f"<h2>Spec</h2><pre>{_e(spec.to_yaml())}</pre>")
    return html_page(f"Study {study.study_name}", sections, subtitle=f"direction: {direction}")


def _selection_bias_section(study: optuna.Study) -> list[str]:
    """ "Selection bias (BBC-CV)": the raw best CV score beside its BBC-CV correction, the
    interval, the holdout and the bias (``winners_curse``), or one note saying why there is none."""
    from hpdash import winners_curse

    found = winners_curse.winners_curse_or_reason(study, n_bootstrap=winners_curse.DEFAULT_N_BOOTSTRAP)
    if isinstance(found, str):
        return [f'<p class="note">Selection bias (BBC-CV): not available. {_e(found)}</p>']
    w = found
    level = f"{100 * w.level:g}%"
    rows = {
        "raw best CV (pooled out-of-fold predictions, first CV repeat)": f"{w.raw_best:.4f} (trial {w.raw_trial})",
        "corrected for selection (BBC-CV)": f"{w.corrected:.4f}",
        f"{level} interval of the corrected score": f"[{w.ci_low:.4f}, {w.ci_high:.4f}]",
        "holdout score of the final model": "not refit" if w.holdout is None else f"{w.holdout:.4f}",
        "selection bias (raw - corrected; > 0: the raw best is optimistic)": f"{w.bias:+.4f}",
        "best CV score as the study reports it (mean of fold scores)": f"{w.best_cv:.4f} (trial {w.best_trial})",
        "configurations": f"{w.n_configs} of {w.n_complete} completed trials, {w.rows:,} rows",
        "method": w.method,
    }
    sections = [
        "<h2>Selection bias (BBC-CV)</h2>",
        _table(pd.DataFrame({"": list(rows), "value": list(rows.values())})),
    ]
    if w.note:
        sections.append(f'<p class="note">{_e(w.note)}</p>')
    return sections


def _range_text(value_range: tuple[float, float]) -> str:
    low, high = value_range
    if math.isinf(low) and math.isinf(high):
        return "unbounded"
    left = "(-∞" if math.isinf(low) else f"[{low:g}"
    right = "∞)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"


def experiment_html(
    comparison: Comparison, analysis: Analysis | None = None, importance_method: str = "ped_anova"
) -> str:
    """The HTML report of an experiment: verdict (under a "Not comparable" banner when the
    studies differ in more than strategy and seed), design, tables, comparison figures, grid
    order, the shared spec with the strategies and seeds compared."""
    from hpdash import compare, plots

    c = comparison
    a = analysis or compare.analyse_comparison(c)
    params = plots.default_placement_params(c.frame)
    logs = compare.log_params_of(c)
    design = a.design or compare.design_of(a.runs, c.split_seeds, c.comparable)
    banner = a.banner or c.banner
    scores = a.baseline.scores if a.baseline is not None and a.baseline.available else None
    sections = [f'<p class="banner">{_e(banner)}</p>'] if banner else []
    rank_note = (
        "Rank: within each seed (1 = best, ties share). Wins: seeds where the strategy ranked first (ties count "
        "for each)."
        if design.ranked
        else design.rank_reason
    )
    sections += [
        "<h2>Verdict</h2>",
        f'<p class="verdict">{_e(a.verdict.text)}</p>',
        "<h2>Design</h2>",
        _table(pd.DataFrame(compare.design_rows(c, a), columns=["", "value"])),
        "<h2>Summary</h2>",
        _table(compare.display_table(a.summary, a.ttt_summary, normalised=scores)),
        '<p class="note">Best CV: mean ± std over seeds of each run\'s best cross-validated score. Holdout: the '
        f"refit final model scored once on the holdout part. {_e(rank_note)}</p>",
        f'<p class="note">{_e(_normalised_note(a))}</p>',
        "<h2>Time to target</h2>",
        f'<p class="note">{_e(compare.target_text(a, c.metric))} Mean ± std over the runs '
        "that reached it; trials count the budget used, seconds run from the study's first trial start.</p>",
        _table(compare.ttt_table(a.ttt_summary)),
        "<h2>Pairwise tests</h2>",
        _table(compare.pairs_table(a.pairs)),
    ]
    if c.grid_notes:
        sections.append(
            "<h2>Grid order</h2><ul>"
            + "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in c.grid_notes.items())
            + "</ul>"
        )
    figures = compare.comparison_figures(c, a)
    figs = list(figures.values())
    if len(params) == 2:
        figs.append(plots.placement_figure(c.frame, params[0], params[1], logs, c.metric, c.direction))
    figs.append(
        plots.importance_comparison_figure(compare.importance_by_strategy(c, importance_method), importance_method)
    )
    figs[len(figures) :] = [plots.with_banner(f, banner) for f in figs[len(figures) :]]
    sections.append("<h2>Figures</h2>")
    sections.append(
        f'<p class="note">Bands: {_e(a.band_text)}, clipped to the range of {_e(c.metric or "the score")} '
        f"({_e(_range_text(a.value_range))}); thin lines are the runs.</p>"
    )
    sections.append(f'<p class="note">{_e(_baseline_note(a))}</p>')
    sections += [figure_div(f, f"fig-{i}") for i, f in enumerate(figs)]
    sections.append(f'<p class="note">Importance method: {_e(plots.IMPORTANCE_METHODS[importance_method])}</p>')
    sections += _repeats_sections(a)
    best = a.runs.set_index("study").reindex([r.study for r in c.runs])["best"]
    sections.append(
        "<h2>Studies</h2>"
        + _table(
            pd.DataFrame(
                {
                    "study": [r.study for r in c.runs],
                    "strategy": [compare.label(r.strategy) for r in c.runs],
                    "seed": [r.seed for r in c.runs],
                    "split seed": [c.split_seeds.get(r.study) for r in c.runs],
                    "best CV": [None if pd.isna(b) else round(float(b), 4) for b in best],
                }
            )
        )
    )
    if c.spec is not None or c.runs:
        shown = yaml.safe_dump(compare.shown_spec(c), sort_keys=False, allow_unicode=True)
        sections.append(
            "<h2>Spec</h2>"
            '<p class="note">What the compared studies share; strategy and seed are what varies (above).</p>'
            f"<pre>{_e(shown)}</pre>"
        )
    subtitle = f"metric: {c.metric or 'score'} ({c.direction})"
    return html_page(c.title, sections, subtitle=subtitle)


def _normalised_note(analysis: Analysis) -> str:
    from hpdash import compare

    b = analysis.baseline
    if b is None or not b.available:
        return f"{compare.NORMALISED_METHOD}: none. {b.reason if b is not None else ''}".strip()
    return f"{b.definition} Optimum: {b.optimum:.4g}; pooled random-search trials: {b.pooled}."


def _baseline_note(analysis: Analysis) -> str:
    b = analysis.baseline
    if b is None or not b.available:
        return f"Random-search baseline: none. {b.reason if b is not None else ''}".strip()
    return (
        f"Dashed on the best-so-far vs trials figure: {b.label}, the {b.method}; dotted: random search at twice "
        "the budget (the expected best of 2n draws shown at n, while 2n is within the pool; Li et al., Hyperband)."
    )


#: The figure divs of the statistics across repeats, by ``compare.repeats_figures`` key.
REPEATS_DIVS = {
    "average_rank": "fig-average-rank",
    "critical_difference": "fig-critical-difference",
    "runtime_ecdf": "fig-runtime-ecdf",
}


def _repeats_sections(analysis: Analysis) -> list[str]:
    """ "Across repeats": the average rank over budget, the critical-difference diagram (Friedman
    test, Nemenyi post-hoc) and the runtime-to-target ECDF, each with its method named; or why not."""
    from hpdash import compare

    r = analysis.repeats
    out = ["<h2>Across repeats</h2>"]
    figures = compare.repeats_figures(analysis)
    if r is None or not figures or r.friedman is None:
        reason = r.reason if r is not None else "not computed"
        return out + [f'<p class="note">{_e(reason)}</p>']
    out.append(f'<p class="note">{_e(compare.AVERAGE_RANK_NAME[0].upper() + compare.AVERAGE_RANK_NAME[1:])}.</p>')
    out.append(figure_div(figures["average_rank"], REPEATS_DIVS["average_rank"]))
    out.append(f'<p class="note">Critical-difference diagram: {_e(r.friedman.text)}</p>')
    out.append(figure_div(figures["critical_difference"], REPEATS_DIVS["critical_difference"]))
    out.append(
        f'<p class="note">{_e(compare.ECDF_NAME)}: the share of each strategy\'s runs that reached the target '
        f"{r.target:.4g} by each wall-clock time; a run that never reached it counts in the denominator.</p>"
    )
    out.append(figure_div(figures["runtime_ecdf"], REPEATS_DIVS["runtime_ecdf"]))
    return out


# ------------------------------------------------------------------------------ JSON
def _ties_of(comparison: Comparison) -> dict[str, Any] | None:
    """Each study's tie set (``hpdash.ties.study_ties`` on its shared CV splits), None for a
    study where it cannot be made; None when ``hpdash.ties`` is not there."""
    try:
        from hpdash import ties
    except ImportError:
        return None
    from hpdash import compare
    from hpdash.errors import HpdashError

    out: dict[str, Any] = {}
    for run in comparison.runs:
        study = comparison.studies.get(run.study)
        rows = comparison.frame.loc[comparison.frame["study"] == run.study]
        unused = [c for c in rows.columns if str(c).startswith("params_") and rows[c].isna().all()]
        rows = rows.drop(columns=unused)  # another study's hyperparameters
        if study is None:
            out[run.study] = None
            continue
        try:
            n_train, n_test = ties.fold_sizes(study)
            out[run.study] = compare.json_safe(ties.study_ties(rows, n_train, n_test, comparison.direction))
        except (HpdashError, ValueError, KeyError, OSError):
            out[run.study] = None
    return out


def _winners_curse_of(comparison: Comparison, n_bootstrap: int | None = None) -> dict[str, Any] | None:
    """The bias-corrected best scores (BBC-CV, ``hpdash.winners_curse.winners_curse_by_strategy``):
    one record per study (``reason`` when there is none) and per strategy the mean over its
    studies with an estimate; None when ``hpdash.winners_curse`` is not there or fails."""
    try:
        from hpdash import winners_curse
    except ImportError:
        return None
    from hpdash import compare
    from hpdash.errors import HpdashError

    studies = [comparison.studies[r.study] for r in comparison.runs]
    try:
        if n_bootstrap is None:
            table = winners_curse.winners_curse_by_strategy(studies)
        else:
            table = winners_curse.winners_curse_by_strategy(studies, n_bootstrap=n_bootstrap)
    except (HpdashError, ValueError, KeyError, OSError):
        return None
    if table is None:
        return None
    strategies = []
    for strategy, g in table.groupby("strategy", sort=False):
        done = g.dropna(subset=["corrected"])
        strategies.append(
            {
                "strategy": strategy,
                "studies": len(g),
                "estimated": len(done),
                "corrected_mean": done["corrected"].mean() if len(done) else None,
                "bias_mean": done["bias"].mean() if len(done) else None,
                "raw_best_mean": done["raw_best"].mean() if len(done) else None,
            }
        )
    methods = [str(m) for m in table["method"].dropna().unique()]
    method: str | list[str] | None = methods[0] if len(methods) == 1 else (methods or None)
    return compare.json_safe({"method": method, "studies": table, "strategies": strategies})


def experiment_document(
    comparison: Comparison, analysis: Analysis | None = None, extras: bool = True, *, n_bootstrap: int | None = None
) -> dict[str, Any]:
    """``compare.results_document`` of the comparison, with each study's tie set and the
    bias-corrected scores filled in when their modules are there (``extras``; None otherwise).
    The extras reload each study's data, and BBC-CV scores every configuration about
    ``n_bootstrap`` times (None: ``hpdash.winners_curse``'s default): seconds per study."""
    from hpdash import compare

    a = analysis or compare.analyse_comparison(comparison)
    document = compare.results_document(comparison, a)
    if extras:
        document["ties"] = _ties_of(comparison)
        document["winners_curse"] = _winners_curse_of(comparison, n_bootstrap)
    return document


def experiment_json(
    comparison: Comparison, analysis: Analysis | None = None, extras: bool = True, *, n_bootstrap: int | None = None
) -> str:
    """``experiment_document`` as JSON text: numbers as JSON numbers, NaN and infinities as
    ``null`` (``allow_nan=False`` refuses anything else), UTF-8 text kept as is."""
    document = experiment_document(comparison, analysis, extras, n_bootstrap=n_bootstrap)
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)


def write_study_html(study: optuna.Study, path: str | Path) -> Path:
    """Write ``study_html(study)`` to ``path``."""
    target = Path(path)
    target.write_text(study_html(study), encoding="utf-8")
    return target


def write_experiment_html(name: str, path: str | Path, storage: str | None = None) -> Path:
    """Write the HTML report of experiment ``name`` to ``path``."""
    from hpdash import compare

    target = Path(path)
    target.write_text(experiment_html(compare.load_experiment_comparison(name, storage)), encoding="utf-8")
    return target
