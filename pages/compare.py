"""Compare: strategies of an experiment side by side (``?experiment=ID``), or hand-picked studies."""

import time

import pandas as pd
import streamlit as st

from hpdash import compare, experiments, plots, report, views
from hpdash.errors import HpdashError
from hpdash.ui import common, strategy_views

common.guard_page()

REFRESH_SECONDS = 2.0
PLOTS_REFRESH_SECONDS = 6.0

st.title("Compare strategies")
experiment_id = st.query_params.get("experiment")
replayed = bool(st.query_params.get("replay"))
guided = False

try:
    if replayed:
        replay_settings, comparison = strategy_views.replayed_comparison(st.query_params.to_dict())
        guided = replay_settings.guided
    elif experiment_id:
        comparison = compare.load_experiment_comparison(experiment_id)
    else:
        recorded = experiments.list_experiments()
        if not recorded:
            st.info(
                "No experiments yet. Launch one with **Compare strategies** on the New study "
                "page, or `python -m hpdash compare SPEC.yaml`; or pick studies to compare.",
                icon=":material/info:",
            )
        mode = st.radio(
            "Compare", ["An experiment", "Hand-picked studies"], horizontal=True, index=0 if recorded else 1
        )
        if mode == "An experiment":
            if not recorded:
                st.stop()
            pick = st.selectbox(
                "Experiment", [r["name"] for r in recorded], index=None, placeholder="Choose an experiment"
            )
            if pick:
                st.query_params["experiment"] = pick
                st.rerun()
            st.stop()
        names = st.multiselect("Studies", views.list_study_names())
        if len(names) < 2:
            st.caption(
                "Pick at least two studies. Their strategy and seed come from their specs; studies that "
                "differ in anything else are shown but not tested or ranked."
            )
            st.stop()
        comparison = compare.load_studies_comparison(names)
except HpdashError as exc:
    common.show_error(exc)
    st.stop()

st.caption(
    common.md(
        f"{comparison.title} · {len(comparison.runs)} studies · strategies "
        f"{', '.join(compare.label(s) for s in comparison.strategies)} · metric "
        f"{comparison.metric or 'score'} ({comparison.direction})"
    )
)

if replayed:
    strategy_views.replay_header(replay_settings, comparison)
elif experiment_id:
    queued = experiment_id  # a str here: the fragment below reads it
    try:
        progress = experiments.experiment_progress(queued)
    except HpdashError as exc:
        common.show_error(exc)
        st.stop()
    active = progress.active
    shown_at = (time.monotonic(), progress.counts)

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def queue_header() -> None:
        """Where the experiment's studies are (the queue runs them a few at a time); redraws
        the page while anything runs, so the figures fill in by themselves."""
        now = experiments.experiment_progress(queued)
        parts = [f"{now.count(state)} {state}" for state in experiments.PROGRESS_STATES if now.count(state)]
        st.progress(now.finished / max(1, now.total), text=" · ".join(parts) or "no studies")
        if now.stalled:
            st.warning(
                "Some studies are queued but the queue process is gone (the machine "
                "restarted?). Relaunch the queue from the command line: "
                f"{common.code('python -m hpdash queue ' + queued)}.",
                icon=":material/pause_circle:",
            )
        if active and (
            now.counts != shown_at[1] or not now.active or time.monotonic() - shown_at[0] > PLOTS_REFRESH_SECONDS
        ):
            st.rerun()

    queue_header()
elif not replayed:
    running = sum(state == "running" for state in compare.study_states(comparison).values())
    if running:
        st.caption(f"**{running} still running**")
        if st.button("Refresh", icon=":material/refresh:"):
            st.rerun()
if comparison.frame.empty or not (comparison.frame["state"] == "COMPLETE").any():
    st.info(
        "No completed trials yet: the plots appear as soon as the first trials finish.", icon=":material/hourglass_top:"
    )
    st.stop()

default_target = compare.default_target(comparison.frame, comparison.direction)
target = st.number_input(
    "Target score",
    value=float(default_target),
    format="%.4f",
    help="Default: within 1% of the best score seen in the experiment "
    "(sign-safe, so it works for negative scores such as neg_rmse).",
)
band = st.radio(
    "Band",
    list(compare.BAND_METHODS),
    format_func=compare.BAND_METHODS.__getitem__,
    horizontal=True,
    help="Both are intervals of the mean best-so-far over the seeds, clipped to the metric's range.",
)


def cached_analysis(shown: compare.Comparison, goal: float | None, band_method: str) -> compare.Analysis:
    """``analyse_comparison``, worked out again only when the trials, the holdout scores, the
    target or the band changed: other widgets (importance method, placement axes) rerun the
    page without recomputing the statistics (one entry per session)."""
    columns = [c for c in ("study", "number", "state", "value", "elapsed_s") if c in shown.frame.columns]
    key = (
        shown.title,
        tuple(r.study for r in shown.runs),
        int(pd.util.hash_pandas_object(shown.frame[columns], index=False).sum()),
        tuple(sorted(shown.holdout.items())),
        tuple(shown.differences),
        goal,
        band_method,
    )
    held = st.session_state.get("compare_analysis")
    if held is not None and held[0] == key:
        return held[1]
    fresh = compare.analyse_comparison(shown, target=goal, band=band_method)
    st.session_state["compare_analysis"] = (key, fresh)
    return fresh


analysis = cached_analysis(comparison, None if target == float(default_target) else float(target), band)
baseline = analysis.baseline
across = analysis.repeats

if analysis.banner:
    st.error(common.md(analysis.banner), icon=":material/block:")
st.subheader("Verdict")
strategy_views.guide("verdict", guided)
st.info(common.md(analysis.verdict.text), icon=":material/balance:")
st.caption(common.md(compare.design_text(comparison, analysis)))
st.subheader("Summary")
scores = baseline.scores if baseline is not None and baseline.available else None
st.dataframe(compare.display_table(analysis.summary, analysis.ttt_summary, normalised=scores), hide_index=True)
if baseline is not None:
    st.caption(common.md(baseline.definition if baseline.available else str(baseline.reason)))
repeat_figures = compare.repeats_figures(analysis)
st.subheader("Time to target")
strategy_views.guide("time", guided)
st.caption(common.md(compare.target_text(analysis, comparison.metric)) + " Mean ± std over the runs that reached it.")
st.dataframe(compare.ttt_table(analysis.ttt_summary), hide_index=True)
if repeat_figures:
    st.caption(
        common.md(
            f"{compare.ECDF_NAME}: the share of each strategy's runs that reached the target by each "
            "wall-clock time; a run that never reached it still counts."
        )
    )
    st.plotly_chart(repeat_figures["runtime_ecdf"], key="runtime_ecdf")
with st.expander("Pairwise tests"):
    st.dataframe(compare.pairs_table(analysis.pairs), hide_index=True)
for study_name, note in list(comparison.grid_notes.items())[: 1 if replayed else None]:
    st.caption(f"**{common.md(study_name)}**: {common.md(note)}")

metric = comparison.metric
figures = compare.comparison_figures(comparison, analysis)
st.subheader("Convergence")
strategy_views.guide("convergence", guided)
st.caption(common.md(f"Bands: {analysis.band_text}, clipped to the metric's range; thin lines are the runs."))
if baseline is not None and baseline.available:
    st.caption(
        common.md(
            f"Dashed: {baseline.label}, the {baseline.method}. Dotted: random search at twice the budget "
            "(the expected best of 2n draws, shown at n while 2n is within the pool; Li et al., Hyperband)."
        )
    )
elif baseline is not None:
    st.caption(common.md(str(baseline.reason)))
st.plotly_chart(figures["band_trial"], key="band_trial")
st.plotly_chart(figures["band_time"], key="band_time")
st.plotly_chart(figures["edf"], key="edf")
if repeat_figures:
    st.caption(common.md(compare.AVERAGE_RANK_NAME[0].upper() + compare.AVERAGE_RANK_NAME[1:] + "."))
    st.plotly_chart(repeat_figures["average_rank"], key="average_rank")
st.subheader("Final scores")
strategy_views.guide("final", guided)
left, right = st.columns(2)
left.plotly_chart(figures["box_best"], key="box_best")
right.plotly_chart(figures["box_holdout"], key="box_holdout")
if repeat_figures and across is not None and across.friedman is not None:
    st.caption(common.md(f"Critical-difference diagram: {across.friedman.text}"))
    st.plotly_chart(repeat_figures["critical_difference"], key="critical_difference")
elif across is not None and across.reason:
    st.caption(common.md(across.reason))

st.subheader("Sample placement")
strategy_views.guide("placement", guided)
params = [c.removeprefix("params_") for c in comparison.frame.columns if c.startswith("params_")]
defaults = plots.default_placement_params(comparison.frame)
if len(params) >= 2 and len(defaults) == 2:
    cx, cy = st.columns(2)
    x_param = cx.selectbox("x", params, index=params.index(defaults[0]))
    y_param = cy.selectbox("y", params, index=params.index(defaults[1]))
    logs = compare.log_params_of(comparison)
    st.plotly_chart(
        plots.with_banner(
            plots.placement_figure(comparison.frame, x_param, y_param, logs, metric, comparison.direction),
            analysis.banner,
        ),
        key="placement",
    )
    st.caption("The same, over trials (one seed per strategy): press play.")
    strategy_views.placement_animation(comparison, x_param, y_param, logs)
else:
    st.caption("Sample placement needs two hyperparameters.")

st.subheader("Hyperparameter importance")
strategy_views.guide("importance", guided)
method = st.selectbox("Method", list(plots.IMPORTANCE_METHODS), format_func=common.labels_of(plots.IMPORTANCE_LABELS))
st.caption(plots.IMPORTANCE_METHODS[method])
st.plotly_chart(
    plots.with_banner(
        plots.importance_comparison_figure(compare.importance_by_strategy(comparison, method), method), analysis.banner
    ),
    key="importance",
)

st.subheader("Reports")
stem = experiment_id or "comparison"
st.download_button(
    "Download every trial (CSV)",
    report.experiment_csv(comparison.frame),
    file_name=f"{stem}-trials.csv",
    mime="text/csv",
    on_click="ignore",
    icon=":material/download:",
)
if st.button("Build the HTML report", icon=":material/description:"):
    st.download_button(
        "Download the HTML report",
        report.experiment_html(comparison, analysis),
        file_name=f"{stem}-report.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
    )
st.caption(
    "Studies: "
    + " · ".join(common.md(f"{r.study} ({compare.label(r.strategy)}, seed {r.seed})") for r in comparison.runs)
)
