"""Study: live progress, plots, trials, best trial, final model and notes (``?study=NAME``)."""

import math
import time
from functools import partial

import streamlit as st

from hpdash import export_model, markup, plots, report, results, runner, ties, views, winners_curse
from hpdash.errors import HpdashError, SpecError, StudyNotFoundError
from hpdash.spec import StudySpec
from hpdash.store import Catalogue
from hpdash.ui import activity, advisor_view, common, strategy_views

#: BBC-CV on the page: fewer bootstraps and configurations than the report, to answer in seconds.
PAGE_BOOTSTRAPS = 200
PAGE_MAX_CONFIGS = 10

common.guard_page()

REFRESH_SECONDS = 1.5
ALL_MODELS = "__all__"  # the "Lines of" choice that draws every model's trials
PLOTS_REFRESH_SECONDS = 4.0
IMPORTANCE_POLL_SECONDS = 1.0

state = st.session_state
name = st.query_params.get("study")
if not name:
    st.title("Study")
    try:
        names = views.list_study_names()
    except HpdashError as exc:
        common.show_error(exc)
        st.stop()
    if not names:
        st.info(
            "No studies yet. Start one from the Home page, or configure one on the New study page.",
            icon=":material/info:",
        )
        st.page_link(common.PAGE_NEW, label="New study", icon=":material/rocket_launch:")
        st.stop()
    pick = st.selectbox("Open a study", names, index=None, placeholder="Choose a study")
    if pick:
        st.query_params["study"] = pick
        st.rerun()
    st.stop()

try:
    study = runner.load_study(name)
    # This session's trials of the study: reruns and polls re-read only new or changed trials.
    live = common.live_study(study)
except StudyNotFoundError:
    st.title("Study")
    st.warning(
        f"There is no study named **{common.md(name)}** in {common.code(views.storage_label())}. It may have "
        "been deleted, or the link points at another database.",
        icon=":material/search_off:",
    )
    st.page_link(common.PAGE_STUDIES, label="Browse all studies", icon=":material/list_alt:")
    st.stop()
except HpdashError as exc:
    common.show_error(exc)
    st.stop()

spec: StudySpec | None
try:
    spec = runner.load_spec_of(study)
except SpecError:
    spec = None
metric = runner.metric_of(study) or "score"

st.title(common.md(name))
if spec is not None:
    ref = runner.dataset_of(study) or spec.dataset
    st.caption(
        f"{common.md(views.model_label(spec.model))} on **{common.md(views.dataset_label(ref))}** · "
        f"target {common.code(spec.target)} · {common.md(spec.strategy)} search · metric {common.md(metric)} · "
        f"{spec.folds}-fold CV"
        + (f" × {spec.repeats}" if spec.repeats > 1 else "")
        + f" · holdout {spec.test_size:g} · seed {spec.seed}"
    )
    warm_note = views.warm_start_note(study.user_attrs)
    if warm_note:
        st.caption(common.md(warm_note))
else:
    st.caption("This study was not created by hpdash: plots only.")

problem = views.study_dataset_problem(study)
if problem:
    st.warning(common.md(problem), icon=":material/folder_off:")

live.refresh()
initial = runner.study_status(study, cache=live.cache)
initial_state = initial.state
rendered_done, rendered_at = initial.done, time.time()


@st.fragment(run_every=REFRESH_SECONDS if initial_state in ("running", "created") else None)
def live_header() -> None:
    """Progress of the study, polled from the storage (the workers run elsewhere).

    Each poll reads only the trials that are new or were unfinished at the previous poll.
    """
    try:
        current = common.live_study(study)
        if current is not live:
            st.rerun()  # deleted and re-created under the same name: draw the new study
        current.refresh()
        status = runner.study_status(study, cache=current.cache)
    except (StudyNotFoundError, KeyError):  # KeyError: Optuna's "no such study" mid-poll
        st.warning("This study was just deleted.")
        return
    budget = status.budget if status.budget is not None else "?"
    st.progress(status.fraction, text=common.md(f"{status.done} / {budget} trials · {status.state}"))
    c = st.columns(5)
    c[0].metric("State", status.state)
    c[1].metric("Trials done", f"{status.done} / {budget}")
    c[2].metric("Best so far", views.format_score(status.best_value))
    c[3].metric("ETA", views.format_duration(status.eta_s) if status.state == "running" else "–")
    c[4].metric("Workers running", status.workers_alive)
    cluster_workers = views.cluster_workers_frame(study.user_attrs)
    if len(cluster_workers):
        st.caption("Workers on the Dask cluster: which Dask worker runs each worker process of this study.")
        st.dataframe(cluster_workers, hide_index=True, width="stretch")
    if status.error:
        st.error(f"The study failed: {common.md(status.error)}", icon=":material/error:")
    elif status.state == "worker lost":
        st.warning(
            "No worker is running this study any more, but budget is left. Resume it from the Studies page.",
            icon=":material/person_off:",
        )
    if initial_state in ("running", "created") and status.state not in ("running", "created"):
        st.rerun()  # finished: redraw the whole page with the final plots and the refit
    # While it runs, redraw the plots below when new trials have finished (at most every
    # PLOTS_REFRESH_SECONDS, so a fast study does not redraw every poll).
    if status.done != rendered_done and time.time() - rendered_at > PLOTS_REFRESH_SECONDS:
        st.rerun()


live_header()

frame = live.refresh()  # usually nothing changed since the header's poll: one tiny query
summary = live.cache.progress()  # a StudyProgress, from the same snapshot as the frame
direction = summary.direction
logs = live.log_params()

if frame.empty:
    st.info(
        "No trial has finished yet. The plots appear here as trials complete; this page updates by itself.",
        icon=":material/hourglass_top:",
    )
elif summary.n_complete == 0 and summary.n_fail:
    reasons = views.fail_summary(frame)
    st.error(
        "Every finished trial failed, so there is nothing to plot. Most common reasons:\n\n"
        + "\n".join(f"- {count} × {common.md(reason)}" for reason, count in reasons),
        icon=":material/error:",
    )
elif summary.n_complete == 1:
    st.info("Only one trial has completed: the plots need more trials to show a trend.", icon=":material/info:")


def show_importance(imp: common.Importance, method: str) -> None:
    if imp.error is not None:  # importance can fail on odd spaces; say so instead of a traceback
        st.warning(f"Importance could not be computed with {plots.IMPORTANCE_LABELS[method]}: {common.md(imp.error)}")
    elif imp.data is not None:
        st.plotly_chart(plots.importance_figure(imp.data, method=method), key="fig_importance")
        if not imp.current:
            st.caption("Updating with the newest completed trials…")
    else:
        st.info("Computing importance in the background…", icon=":material/hourglass_top:")


@st.fragment(run_every=IMPORTANCE_POLL_SECONDS)
def importance_poll(method: str, seed: int) -> None:
    """Re-checks the background computation until its result (or its error) is there."""
    imp = live.importance(study, method, seed)
    show_importance(imp, method)
    if imp.current or imp.error is not None:
        st.rerun()  # redraw the page with the result, and without this poll


# Figures and tables are built once per change of the trials (``live.memo``): a widget rerun
# or a poll that found nothing new does not rebuild them.
params = [results.param_name(c) for c in results.param_columns(frame)]
tabs = st.tabs(
    ["Convergence", "Parallel coordinates", "Importance", "Slice", "Contour", "Timeline", "Trials", "Step through"]
)
with tabs[0]:
    x = st.radio(
        "x axis",
        ["number", "elapsed_s"],
        horizontal=True,
        key="conv_x",
        format_func={"number": "Trial number", "elapsed_s": "Elapsed time"}.get,
    )
    st.plotly_chart(
        live.memo(("convergence", x), lambda: plots.convergence_figure(frame, x=x, direction=direction, metric=metric)),
        key="fig_convergence",
    )
with tabs[1]:
    # Algorithm selection: each model's trials on its own hyperparameters (a line of another
    # model has no value on them), the best trial's model first; "all models" puts the model
    # axis first and the other models' axes at "(none)" (see plots.parallel_coordinates_figure).
    study_models = live.memo(("study_models",), lambda: plots.study_models(frame, direction))
    lines_of = None
    if study_models:
        options = [*study_models, ALL_MODELS]
        if state.get("parallel_model") not in options:
            state["parallel_model"] = options[0]
        lines_of = st.radio(
            "Lines of",
            options,
            horizontal=True,
            key="parallel_model",
            format_func=lambda m: "all models" if m == ALL_MODELS else m + (" (best)" if m == study_models[0] else ""),
            help="One model's trials on its own hyperparameters, or every trial with the model axis first.",
        )
    model_filter = None if lines_of in (None, ALL_MODELS) else lines_of
    parallel = live.memo(
        ("parallel", model_filter),
        lambda: plots.parallel_coordinates_figure(
            frame, direction=direction, log_params=logs, metric=metric, model=model_filter
        ),
    )
    st.plotly_chart(parallel, key="fig_parallel")
    st.caption("One line per completed trial; darker lines score better. Drag along an axis to filter.")
    shortened = (parallel.layout.meta or {}).get("parcoords_titles") if isinstance(parallel.layout.meta, dict) else None
    if shortened:
        st.caption(
            "Shortened axis titles: "
            + "; ".join(f"{common.code(short)} is {common.code(full)}" for short, full in shortened.items())
        )
with tabs[2]:
    method = st.radio(
        "Method",
        list(plots.IMPORTANCE_METHODS),
        horizontal=True,
        key="imp_method",
        format_func=plots.IMPORTANCE_LABELS.get,
    )
    st.caption(plots.IMPORTANCE_METHODS[method])
    importance_seed = spec.seed if spec else 0
    # Computed in a background thread (fANOVA can take half a minute): never blocks the page.
    importance = live.importance(study, method, importance_seed)
    if importance.current or importance.error is not None:
        show_importance(importance, method)
    else:
        importance_poll(method, importance_seed)
    advisor_view.show_advisor(study, spec, int((frame["state"] == "COMPLETE").sum()) if len(frame) else 0)
with tabs[3]:
    if params:
        p = st.selectbox("Hyperparameter", params, key="slice_param")
        st.plotly_chart(
            live.memo(("slice", p), lambda: plots.slice_figure(frame, p, log_params=logs, metric=metric)),
            key="fig_slice",
        )
    else:
        st.info("No hyperparameters recorded yet.")
with tabs[4]:
    if len(params) >= 2:
        # Opens on two numeric hyperparameters of one model, the most important ones once
        # importance is known (plots.default_contour_params); a pair the user picked stays.
        pair = plots.default_contour_params(frame, importance.data, direction) or (params[0], params[1])
        auto = state.get("contour_auto")
        if state.get("contour_x") not in params or (
            auto is not None and (state.get("contour_x"), state.get("contour_y")) == auto
        ):
            state["contour_x"], state["contour_y"] = pair
            state["contour_auto"] = pair
        c1, c2 = st.columns(2)
        px_ = c1.selectbox("x", params, key="contour_x")
        y_options = [p for p in params if p != px_]
        if state.get("contour_y") not in y_options:
            state["contour_y"] = y_options[0]
        py_ = c2.selectbox("y", y_options, key="contour_y")
        st.plotly_chart(
            live.memo(
                ("contour", px_, py_),
                lambda: plots.contour_figure(frame, px_, py_, direction=direction, log_params=logs, metric=metric),
            ),
            key="fig_contour",
        )
    else:
        st.info("A contour plot needs at least two hyperparameters.")
with tabs[5]:
    st.plotly_chart(live.memo(("timeline",), lambda: plots.timeline_figure(frame)), key="fig_timeline")
with tabs[6]:
    if frame.empty:
        st.caption("No trials yet.")
    else:
        table = live.memo(
            ("trials_table",), lambda: views.trials_table(frame, spec.model if spec is not None else None)
        )
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                "trial": st.column_config.NumberColumn(width="small"),
                "value": st.column_config.NumberColumn(metric, format="%.4f"),
                "cv_std": st.column_config.NumberColumn(format="%.4f"),
                "duration_s": st.column_config.NumberColumn("duration (s)", format="%.2f"),
                "reason": st.column_config.TextColumn(width="large"),
            },
        )
        if (table["state"] == plots.STOPPED_STATE).any():
            st.caption(
                "STOPPED: stopped by the user before it finished; resuming the study runs its hyperparameters again."
            )
    # The CSV is made on click (callable data), not on every rerun: 10k trials take ~0.4 s.
    # on_click="ignore" on every download: a click downloads without rerunning the page, which
    # takes seconds on a large study and would drop a second click made meanwhile.
    st.download_button(
        "Download trials (CSV)",
        partial(report.trials_csv, frame),
        file_name=f"{name}-trials.csv",
        mime="text/csv",
        on_click="ignore",
        key="dl_trials",
    )

with tabs[7]:
    st.caption(
        "The study as it was after any trial: the samples so far, the best so far, the next trial "
        "highlighted, and what the strategy saw when it chose that trial."
    )
    if st.toggle("Step through this study", key="step_on"):
        strategy_views.step_through(study, frame, direction, metric, logs, spec.strategy if spec is not None else None)

# ------------------------------------------------------------------------------ best trial
st.subheader("Best trial")
if summary.best_trial_number is None:
    st.caption("No completed trial yet.")
else:
    best = live.memo(("best_trial",), lambda: study.best_trial)
    study_keys = spec.models if spec is not None else None
    c1, c2 = st.columns([2, 3])
    with c1:
        st.metric(f"Trial {best.number}: mean CV {common.md(metric)}", views.format_score(best.value))
        chosen = views.best_model(best.params, study_keys)
        if chosen is not None:
            st.markdown(f"Model: **{common.md(views.model_label(chosen))}** ({common.code(chosen)})")
        st.dataframe(
            views.best_params_frame(best.params, study_keys),
            hide_index=True,
            width="stretch",
            column_config={
                "hyperparameter": st.column_config.TextColumn(width="medium"),
                "value": st.column_config.TextColumn(width="medium"),
            },
        )
    with c2:
        st.plotly_chart(plots.fold_scores_figure(best, metric=metric), key="fig_folds")

# ------------------------------------------------------------------------------ tie set
st.subheader("Configurations tied with the best")
if summary.n_complete < 2:
    st.caption("The tie set needs at least two completed trials with fold scores.")
else:
    c1, c2 = st.columns(2)
    ties_rope = c1.number_input(
        "Region of practical equivalence (ROPE)",
        min_value=0.0,
        value=0.01,
        step=0.005,
        format="%.4f",
        key="ties_rope",
        help=f"A trial whose mean CV {common.md(metric)} is worse than the best's by at most this much counts as equivalent.",
    )
    ties_alpha = c2.number_input(
        "Significance level (alpha)", min_value=0.001, max_value=0.5, value=0.05, step=0.01, key="ties_alpha"
    )
    # One split's row counts need the dataset (ties.fold_sizes reads and prepares it): worked
    # out once per study in this session, not on every change of the trials.
    ties_sizes_key = (name, live.identity)
    ties_held = state.get("ties_fold_sizes")
    if not (isinstance(ties_held, tuple) and ties_held[0] == ties_sizes_key):
        try:
            ties_held = (ties_sizes_key, ties.fold_sizes(study), None)
        except HpdashError as exc:
            ties_held = (ties_sizes_key, None, str(exc))
        state["ties_fold_sizes"] = ties_held
    _, ties_sizes, ties_sizes_error = ties_held
    if ties_sizes is None:
        st.caption(f"No tie set: the size of a CV split is unknown. {common.md(ties_sizes_error)}")
    else:
        ties_n_train, ties_n_test = ties_sizes
        ties_n_splits = spec.folds * spec.repeats if spec is not None else None
        ties_key = (float(ties_rope), float(ties_alpha), ties_n_train, ties_n_test)
        tie = live.memo(
            ("ties", *ties_key),
            lambda: ties.study_ties(
                frame,
                ties_n_train,
                ties_n_test,
                direction,
                rope=float(ties_rope),
                alpha=float(ties_alpha),
                n_splits=ties_n_splits,
            ),
        )
        if tie.unavailable is not None or tie.recommended is None:
            st.info(f"No tie set: {common.md(tie.unavailable or tie.reason)}", icon=":material/info:")
        else:
            st.dataframe(
                live.memo(("ties_table", *ties_key), lambda: ties.ties_table(tie)),
                hide_index=True,
                width="stretch",
                column_config={
                    "trial": st.column_config.NumberColumn(width="small"),
                    "CV mean": st.column_config.NumberColumn(f"CV {metric}", format="%.4f"),
                    "difference to best": st.column_config.NumberColumn(format="%+.4f"),
                    "p-value": st.column_config.NumberColumn(format="%.3f"),
                    "fit time (s)": st.column_config.NumberColumn(format="%.3f"),
                    "params": st.column_config.TextColumn(width="large"),
                },
            )
            cheapest = tie.recommended
            ties_fit = f"{cheapest.fit_time:.3g} s per fold" if math.isfinite(cheapest.fit_time) else "fit time unknown"
            st.markdown(
                f"**Recommended: trial {cheapest.number}** (mean CV {common.md(metric)} "
                f"{views.format_score(cheapest.cv_mean)}, {ties_fit}): {common.md(tie.reason)}."
            )
            st.caption(
                common.md(
                    f"{len(tie.tied)} of {tie.n_tested} trials tested are tied with trial {tie.tied[0].number}, the best. "
                    f"Method: {tie.method}. p-value: of the test that the best leads the trial by more than the "
                    "rope; a trial is tied while it is at least alpha." + (f" {tie.note}" if tie.note else "")
                )
            )

# ------------------------------------------------------------------------------ selection bias
st.subheader("Selection bias of the best CV score (BBC-CV)")
st.caption(
    "The best of many configurations scored on the same folds is optimistic. BBC-CV (Tsamardinos et al. "
    "2018) bootstraps the trials' out-of-fold predictions, picks the best configuration on each bootstrap "
    "sample and scores it on the rows left out: no refit. It takes a few seconds, so it runs on request."
)
bias_key = ("winners_curse", name, summary.n_complete)
bias = state.get("study_winners_curse")
if common.read_only():  # bootstrapping on request is a computation: none for a viewer
    st.caption("This dashboard is read-only: it runs no estimate on request.")
if common.write_button("Estimate the selection bias", key="winners_curse", disabled=summary.n_complete < 2):
    with st.spinner("Bootstrapping the out-of-fold predictions…"):
        try:
            found = winners_curse.on_request(study, n_bootstrap=PAGE_BOOTSTRAPS, max_configs=PAGE_MAX_CONFIGS)
        except HpdashError as exc:
            found = str(exc)
    bias = state["study_winners_curse"] = (bias_key, found)
if isinstance(bias, tuple) and bias[0] == bias_key:
    found = bias[1]
    if isinstance(found, str):
        st.info(f"No estimate: {common.md(found)}", icon=":material/info:")
    else:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric(
            f"Raw best CV {common.md(metric)}", views.format_score(found.raw_best), help=f"trial {found.raw_trial}"
        )
        c2.metric("Corrected (BBC-CV)", views.format_score(found.corrected))
        c3.metric("Optimism of the raw best", views.format_score(found.bias))
        c4.metric("Holdout of the final model", views.format_score(found.holdout) if found.holdout is not None else "–")
        st.caption(
            common.md(
                f"{found.level:.0%} interval of the corrected score: {views.format_score(found.ci_low)} to "
                f"{views.format_score(found.ci_high)}. Method: {found.method}."
                + (f" {found.note}" if found.note else "")
            )
        )

# ------------------------------------------------------------------------------ final model
st.subheader("Final model")
refit = runner.refit_info(study)
refit_error = runner.refit_error(study)
if refit:
    c1, c2, c3 = st.columns(3)
    c1.metric(f"Holdout {common.md(refit['metric'])}", views.format_score(refit["holdout_score"]))
    c2.metric("CV score of that trial", views.format_score(refit.get("cv_score")))
    c3.metric("Refit from trial", refit.get("trial_number", "–"))
    # Files found by the study's name only (export_model.model_files), never by the record's path.
    downloads = export_model.model_downloads(name, refit)
    for item in downloads:
        # The skops copy is made on first click (callable data): see hpdash/export_model.py.
        data = partial(export_model.joblib_bytes if item["format"] == "joblib" else export_model.skops_bytes, name)
        st.download_button(
            f"Download the model ({item['format']})",
            data,
            file_name=item["file_name"],
            mime="application/octet-stream",
            on_click="ignore",
            key=f"dl_model_{item['format']}",
        )
        digest = (
            f"SHA-256 `{item['sha256']}`."
            if item["sha256"]
            else "Made in memory from the joblib file when downloaded (a read-only dashboard writes no file)."
            if item["format"] == "skops" and common.read_only()
            else "Made from the joblib file on first download."
            if item["format"] == "skops"
            else "No digest file from its refit: refit again."
        )
        st.caption(f"{item['note']} {digest}")
    if not downloads:
        st.warning(
            f"The model file {common.code(export_model.model_files(name).joblib.name)} is missing. Refit to create it again."
        )
elif refit_error:
    st.warning(f"The automatic refit failed: {common.md(refit_error)}")
else:
    st.caption("The best hyperparameters are refit on the whole training part and scored once on the holdout part.")
if summary.best_trial_number is not None and spec is not None:
    if common.write_button("Refit the best model now" if not refit else "Refit again", key="refit"):
        try:
            with st.spinner("Refitting the best hyperparameters…"):
                runner.refit(name)
        except HpdashError as exc:
            common.show_error(exc, "Refit failed: ")
        else:
            st.rerun()
    with st.expander("Reproduce the best trial with plain scikit-learn"):
        try:
            st.code(common.reproduce_snippet(name, summary.best_trial_number), language="python")
        except HpdashError as exc:
            st.caption(f"No snippet: {common.md(exc)}")

# ------------------------------------------------------------------------------ notes
st.subheader("Notes")
catalogue = Catalogue()
note = catalogue.get_note(name)
if note:
    with st.container(border=True):
        # The note's own Markdown, rendered by hpdash: no raw HTML, no images, and links only
        # to http, https and mailto (hpdash/markup.py). Only note_html's output goes to st.html:
        # its DOMPurify pass drops scripts but would keep a remote <img>.
        st.html(markup.note_html(note))
else:
    st.caption("No notes yet.")
with st.expander("Edit notes (Markdown)"):
    text = st.text_area(
        "Notes",
        value=note,
        key=f"note_{name}",
        height=150,
        label_visibility="collapsed",
        max_chars=markup.MAX_NOTE_CHARS,
    )
    if common.write_button("Save notes", key="save_note"):
        try:
            catalogue.set_note(name, text)
        except HpdashError as exc:
            common.show_error(exc)
        else:
            st.toast("Notes saved")
            st.rerun()

# ------------------------------------------------------------------------------ activity
activity.study_activity(name)
