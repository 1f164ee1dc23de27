"""New study: dataset, task, metric, models, search space, strategy, protocol, launch."""

import time

import streamlit as st

from hpdash import config, datasets, experiments, models, planning, runner, space, strategies, views
from hpdash.errors import HpdashError, SpecError
from hpdash.spec import StudySpec, check_expanded_size, parse_spec
from hpdash.strategies import PRUNER_LABELS, STRATEGY_LABELS
from hpdash.ui import common, study_form

common.guard_page()

st.title("New study")
state = st.session_state
defaults = views.spec_form_defaults()
state.setdefault("ns_space_version", 0)
state.setdefault("ns_space_init", {})
for _key, _value in {
    "ns_task": "auto",
    "ns_strategy": defaults["strategy"],
    "ns_grid_points": defaults["grid_points"],
    "ns_n_trials": defaults["n_trials"],
    "ns_timeout_min": 0.0,
    "ns_workers": defaults["workers"],
    "ns_folds": defaults["folds"],
    "ns_repeats": defaults["repeats"],
    "ns_test_size": defaults["test_size"],
    "ns_seed": defaults["seed"],
    "ns_pruner": "none",
    "ns_trial_timeout": 0.0,
    "ns_startup_auto": True,
}.items():
    state.setdefault(_key, _value)  # widgets below take their value from these keys
state.setdefault("ns_strategy_prev", state["ns_strategy"])


def on_strategy_change() -> None:
    """Grid search defaults to the whole grid (Trials 0); leaving it restores a trial budget."""
    new = state["ns_strategy"]
    state["ns_n_trials"] = views.form_trials_after_strategy_change(
        state.get("ns_strategy_prev"), new, int(state.get("ns_n_trials") or 0)
    )
    state["ns_strategy_prev"] = new


def on_startup_change() -> None:
    """The user typed start-up trials: keep them (no longer the small-budget default)."""
    state["ns_startup_auto"] = False


if common.PREFILL_KEY in state:
    study_form.apply_prefill(state, state.pop(common.PREFILL_KEY))

# ------------------------------------------------------------------------------ spec upload
with st.expander("Start from a spec file (YAML)"):
    if common.read_only():
        st.caption(
            "This dashboard is read-only: it loads no spec file, since a loaded spec's run-time "
            "estimate fits its models on the server. Start from a spec on a dashboard without "
            "`HPDASH_READ_ONLY`, or with `python -m hpdash run SPEC.yaml`."
        )
    # At most 1 MB (spec.MAX_YAML_CHARS), switched off for viewers; the server refuses every
    # upload to a read-only dashboard, and read_browser_spec refuses the file (ReadOnlyError).
    spec_file = st.file_uploader(
        "Upload a spec to prefill the form",
        type=["yaml", "yml", "json"],
        key="ns_spec_upload",
        max_upload_size=1,
        disabled=common.read_only(),
    )
    if spec_file is not None and state.get("ns_spec_upload_id") != spec_file.file_id:
        state["ns_spec_upload_id"] = spec_file.file_id
        try:
            values = study_form.read_browser_spec(spec_file.getvalue(), views.dataset_choices())
            study_form.apply_prefill(state, values)
            state["ns_spec_message"] = ("ok", f"Loaded spec {values['name']!r}. Check the form below.")
        except (HpdashError, OSError) as exc:
            state["ns_spec_message"] = ("error", f"Cannot use this spec: {exc}")
        st.rerun()
    message = state.get("ns_spec_message") if spec_file is not None else None
    if message:
        (st.success if message[0] == "ok" else st.error)(common.md(message[1]))

# ------------------------------------------------------------------------------ data
st.subheader("1 · Data")
if len(views.dataset_choices()) == len(datasets.SAMPLES):
    st.caption("No uploaded datasets yet: pick a bundled sample, or upload a table on the Datasets page.")
c1, c2, c3 = st.columns([2, 1, 1])
ref, frame, sha = common.dataset_picker("ns_dataset", container=c1)
columns = [str(c) for c in frame.columns]
if state.get("ns_target") not in columns:
    state["ns_target"] = views.default_target(columns)
target = c2.selectbox("Target column", columns, key="ns_target")
task_choice = c3.selectbox("Task", ["auto", "classification", "regression"], key="ns_task")
try:
    base_profile = common.profile(ref, target, task_choice)
except HpdashError as exc:
    common.show_error(exc, "This target cannot be used: ")
    st.stop()
task = base_profile.task
assert task is not None  # a profile with a target has its task (profile_table raises otherwise)
st.caption(f"Task: **{task}**" + (" (inferred from the target)" if task_choice == "auto" else ""))
missing_note = views.target_missing_note(base_profile)
if missing_note:
    st.caption(common.md(missing_note))
# Columns hpdash drops by default (ID-like, free text, many-valued text) that may be kept.
keepable = views.keepable_columns(base_profile)
if keepable:
    state["ns_keep_columns"] = [c for c in state.get("ns_keep_columns") or [] if c in keepable]
    keep_columns = st.multiselect(
        "Keep as features although hpdash would drop them",
        list(keepable),
        key="ns_keep_columns",
        format_func=lambda c: f"{c}: {keepable[c]}",
        help="Dropped by default: one-hot encoding a column of names or free text makes a column "
        "per value. Keep one when it does carry signal (the spec's keep_columns).",
    )
else:
    keep_columns = []

# ------------------------------------------------------------------------------ model
st.subheader("2 · Model and metric")
model_opts = common.model_options(task)
metric_opts = ["auto", *common.metric_options(task)]
if state.get("ns_metric") not in metric_opts:
    state["ns_metric"] = "auto"
if "ns_models" not in state:
    state["ns_models"] = [next(iter(model_opts))]
elif state["ns_models"] and not all(m in model_opts for m in state["ns_models"]):
    # the task changed: keep the models that suit it, else the first that does
    state["ns_models"] = [m for m in state["ns_models"] if m in model_opts] or [next(iter(model_opts))]
c1, c2 = st.columns([2, 1])
model_keys = c1.multiselect(
    "Model(s)",
    list(model_opts),
    format_func=common.labels_of(model_opts),
    key="ns_models",
    help="Pick several to let the search choose the algorithm too (algorithm selection).",
)
metric = c2.selectbox(
    "Metric",
    metric_opts,
    key="ns_metric",
    format_func=lambda m: f"auto ({'accuracy' if task == 'classification' else 'r2'})" if m == "auto" else m,
    help="Only scikit-learn scorers valid for this task. Greater is better.",
)
# Binary metrics such as f1 on text or true/false labels need the positive class named.
classes = views.target_classes(frame, target) if task == "classification" else []
pos_label = None
if views.needs_pos_label(metric, classes):
    if state.get("ns_pos_label") not in classes:
        state["ns_pos_label"] = views.default_pos_label(frame, target)
    pos_label = c2.selectbox(
        "Positive class",
        classes,
        key="ns_pos_label",
        format_func=str,
        help=f"{metric} scores one class as the positive one; the labels here are "
        f"{common.md(', '.join(map(str, classes)))}. Proposed: a conventional positive name, else the rarer class.",
    )
if len(model_keys) > 1:
    st.info(
        "Algorithm selection: every trial first picks a model, then that model's hyperparameters.",
        icon=":material/shuffle:",
    )

# ------------------------------------------------------------------------------ space
st.subheader("3 · Search space")
st.caption(
    "One row per hyperparameter. float/int: low, high and log scale; categorical: "
    "choices separated by commas. Add or delete rows freely."
)
if st.button("Reset to defaults", key="ns_reset_space"):
    state["ns_space_init"] = {}
    state["ns_space_version"] += 1
    st.rerun()

space_errors: list[str] = []
spaces_raw: dict[str, dict] = {}
editor_config = {
    "hyperparameter": st.column_config.TextColumn("hyperparameter", required=True),
    "type": st.column_config.SelectboxColumn("type", options=list(space.TYPES), required=True),
    "low": st.column_config.NumberColumn("low", format="%g"),
    "high": st.column_config.NumberColumn("high", format="%g"),
    "log": st.column_config.CheckboxColumn("log"),
    "choices": st.column_config.TextColumn("choices"),
    "label": st.column_config.SelectboxColumn(
        "label", options=list(space.LABELS), help="Does it shape the model, or control the learning process?"
    ),
}
for key in model_keys:
    init = state["ns_space_init"].get(key)
    try:
        initial = views.space_editor_frame(
            models.parse_model_space(key, task, init) if init else models.default_space(key, task)
        )
    except HpdashError:
        initial = views.space_editor_frame(models.default_space(key, task))
    st.markdown(f"**{model_opts[key]}** (`{key}`) — {models.REGISTRY[key].description}")
    edited = st.data_editor(
        initial,
        key=f"ns_space_{key}_{task}_{state['ns_space_version']}",
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config=editor_config,
    )
    try:
        spaces_raw[key] = views.space_from_editor(edited)
        if not spaces_raw[key]:
            raise SpecError("the search space is empty: add at least one hyperparameter")
    except HpdashError as exc:
        space_errors.append(f"{key}: {exc}")
        st.error(f"Search space of {key}: {common.md(exc)}", icon=":material/warning:")

# ------------------------------------------------------------------------------ strategy
st.subheader("4 · Strategy, budget and protocol")
c1, c2, c3 = st.columns(3)
strategy = c1.selectbox(
    "Strategy",
    list(STRATEGY_LABELS),
    format_func=common.labels_of(STRATEGY_LABELS),
    key="ns_strategy",
    on_change=on_strategy_change,
)
missing_package = strategies.missing_dependency(strategy)
if missing_package:
    c1.warning(common.md(missing_package))
grid_points = c1.number_input(
    "Grid points per range",
    2,
    50,
    key="ns_grid_points",
    disabled=strategy != "grid",
    help="Grid search splits each float/int range into this many values.",
)
n_trials = c2.number_input(
    "Trials" + (" (0 = the whole grid)" if strategy == "grid" else " (0 = no trial limit)"),
    0,
    100_000,
    key="ns_n_trials",
)
trials_note = c2.empty()  # the grid's size and time, once the spec is checked below
timeout_min = c2.number_input("Time limit in minutes (0 = none)", 0.0, 10_000.0, step=1.0, key="ns_timeout_min")
model_based = strategy in strategies.MODEL_BASED
startup_default = strategies.default_startup_trials(int(n_trials) or None)
if state["ns_startup_auto"] or "ns_startup_trials" not in state:
    state["ns_startup_trials"] = startup_default
startup_trials = c1.number_input(
    "Start-up trials (random, before the model)",
    0,
    100_000,
    key="ns_startup_trials",
    on_change=on_startup_change,
    disabled=not model_based,
    help="TPE, GP and CMA-ES sample at random for this many trials, then from their model. "
    + f"hpdash's default for this budget: {startup_default} ({strategies.STARTUP_RULE}).",
)
if model_based and not state["ns_startup_auto"]:
    c1.caption(f"Default for this budget: {startup_default}.")
max_workers = config.max_workers()
if state["ns_workers"] > max_workers:
    state["ns_workers"] = max_workers
workers = c2.number_input(
    "Worker processes",
    1,
    max_workers,
    key="ns_workers",
    help="Parallel processes sharing the study through the database. This "
    f"machine allows at most {max_workers} per launch "
    "(HPDASH_MAX_WORKERS, default: its CPUs).",
)
run_on_labels, run_on_problem = study_form.run_on_choices()
if len(run_on_labels) > 1:
    c2.radio(
        "Run on",
        list(run_on_labels),
        format_func=common.labels_of(run_on_labels),
        key=study_form.RUN_ON_KEY,
        help="This machine: detached worker processes here. Dask cluster: one task per worker on the "
        "cluster's Dask workers, which reach the same storage.",
    )
if run_on_problem:
    c2.warning(common.md(run_on_problem), icon=":material/lan:")
chosen_run_on = state.get(study_form.RUN_ON_KEY)  # kept from an earlier run only while still offered
run_on = chosen_run_on if isinstance(chosen_run_on, str) and chosen_run_on in run_on_labels else study_form.RUN_HERE
folds = c3.number_input("CV folds", 2, 50, key="ns_folds")
repeats = c3.number_input("CV repeats", 1, 20, key="ns_repeats")
test_size = c3.slider(
    "Holdout test fraction",
    0.05,
    0.5,
    step=0.05,
    key="ns_test_size",
    help="Kept aside, never used in the search; the final model is scored on it once.",
)
c1, c2, c3 = st.columns(3)
seed = c1.number_input("Seed", 0, 2**32 - 1, key="ns_seed")
trial_timeout = c3.number_input(
    "Time limit per trial in seconds (0 = none)",
    0.0,
    1_000_000.0,
    step=10.0,
    key="ns_trial_timeout",
    help="A trial still running after this long fails with that reason, so one slow fit cannot hold up the study.",
)
pruner = c2.selectbox(
    "Pruner",
    list(PRUNER_LABELS),
    format_func=common.labels_of(PRUNER_LABELS),
    key="ns_pruner",
    help="Stops clearly bad trials after a few CV folds.",
)
auto_name = views.unique_study_name(views.default_study_name(ref, model_keys or "model", strategy))
name = (
    c3.text_input(
        "Study name",
        key="ns_name",
        placeholder=auto_name,
        help="Letters, digits, '.', '_' or '-'. Leave empty for the suggested name.",
    ).strip()
    or auto_name
)

# ------------------------------------------------------------------------------ validate
raw = study_form.spec_values(
    state,
    name=name,
    task=task_choice,
    spaces=spaces_raw,
    model_based=model_based,
    pos_label=pos_label,
    keep_columns=list(keep_columns),
)
carried = study_form.carried_note(state)
if carried:
    st.caption(common.md(carried))
errors = list(space_errors)
spec: StudySpec | None = None
plan: runner.Plan | None = None
if not model_keys:
    errors.append("Pick at least one model.")
elif not space_errors:
    try:
        spec = parse_spec(check_expanded_size(raw))  # choices typed with YAML aliases
        plan = runner.plan_study(spec, data=(frame, sha))
        if runner.study_exists(spec.name):
            raise SpecError(f"A study named {spec.name!r} already exists. Pick another name.")
    except HpdashError as exc:
        errors.append(str(exc))
        plan = None

st.subheader("5 · Check and launch")
estimate = None
if spec is not None and plan is not None:  # plan is made from spec
    total = space.total_grid_size(plan.spaces, spec.grid_points)
    grid_box = st.container()
    if common.read_only():  # the smoke fit fits models on the server: never for a viewer
        st.caption(
            "No run-time estimate: it fits every chosen model on the server, which a read-only "
            "dashboard does not do for its viewers.",
        )
    else:
        try:
            with st.spinner("Smoke fit: one fold of each model on a sample of the training part…"):
                estimate = common.runtime_estimate(spec.to_yaml(), ref)
            st.info(f"Estimated run time: {estimate.describe()}", icon=":material/timer:")
        except HpdashError as exc:  # a model that fails its smoke fit cannot launch
            errors.append(str(exc))
        except Exception as exc:  # a bug, not the user's: still shown, and still no launch
            errors.append(
                f"The smoke fit failed unexpectedly ({type(exc).__name__}: {exc}); please report this with the spec."
            )
    for warning in (strategies.startup_warning(spec), strategies.conditional_warning(spec)):
        if warning:
            st.warning(common.md(warning), icon=":material/casino:")
    with grid_box.expander(f"Grid preview: {total:,} combinations", expanded=strategy == "grid"):
        st.dataframe(
            views.grid_preview_frame(plan.spaces, spec.grid_points),
            hide_index=True,
            width="stretch",
            column_config={
                "model": st.column_config.TextColumn(width="small"),
                "hyperparameter": st.column_config.TextColumn(width="small"),
                "n_values": st.column_config.NumberColumn("values", width="small"),
                "values": st.column_config.TextColumn("grid values", width="large"),
            },
        )
        if strategy == "grid":
            grid_text = views.grid_budget_text(total, spec.n_trials, estimate.total_s if estimate is not None else None)
            st.caption(grid_text)
            trials_note.caption(grid_text)
        else:
            st.caption("Grid search would try these values; other strategies sample the ranges.")

for message in errors:
    st.error(common.md(message), icon=":material/warning:")

c1, c2 = st.columns([1, 1])
launch = common.write_button(
    "Launch study",
    key="ns_launch",
    disabled=plan is None or bool(errors),
    container=c1,
    type="primary",
    width="stretch",
)
if spec is not None:
    c2.download_button(
        "Download spec (YAML)",
        spec.to_yaml(),
        file_name=f"{spec.name}.yaml",
        mime="application/x-yaml",
        on_click="ignore",
        key="ns_download_spec",
        width="stretch",
    )
if launch and spec is not None and not errors:
    try:
        with st.spinner("Creating the study and starting its workers…"):
            study_form.launch(spec, run_on)
    except HpdashError as exc:
        common.show_error(exc, "Could not launch: ")
    else:
        state.pop("ns_name", None)
        common.open_study(spec.name)

# ------------------------------------------------------------------------------ compare strategies
with st.expander("Compare strategies: the same problem and budget, several strategies and seeds"):
    # An experiment is named for itself: with no name typed, not after the form's first study
    # ("iris-knn-tpe", whose strategy the experiment does not have) but "<data>-<model>-compare".
    cmp_spec = spec
    if spec is not None and not str(state.get("ns_name") or "").strip():
        cmp_spec = spec.replace(
            name=views.unique_study_name(views.default_study_name(ref, model_keys or "model", "compare"))
        )
    offered = strategies.available_strategies()
    chosen = st.multiselect(
        "Strategies",
        offered,
        key="ns_cmp_strategies",
        default=[s for s in experiments.DEFAULT_STRATEGIES if s in offered],
        format_func=common.labels_of(STRATEGY_LABELS),
    )
    for absent in (s for s in STRATEGY_LABELS if s not in offered):
        st.caption(common.md(strategies.missing_dependency(absent) or ""))
    comparison_error = None
    if spec is not None and chosen:
        try:
            strategies.check_comparison(spec, chosen)
        except SpecError as exc:
            comparison_error = str(exc)
            st.error(common.md(comparison_error), icon=":material/warning:")
    n_repeats = st.number_input(
        "Repeats (seeds per strategy)", 1, experiments.MAX_REPEATS, experiments.DEFAULT_REPEATS, key="ns_cmp_repeats"
    )
    split = st.radio(
        "Data split across repeats",
        list(experiments.SPLITS),
        key="ns_cmp_split",
        format_func=lambda key: experiments.SPLITS[key].capitalize(),
        help="A new split per repeat: each repeat draws its own holdout, CV folds and model seeds, so "
        "the spread over repeats is split luck and sampler luck together. The same split: every "
        "repeat uses the form's seed for the data, and only the sampler's seed changes.",
    )
    difference = st.number_input(
        "Smallest difference worth detecting",
        min_value=1e-6,
        value=planning.DEFAULT_DIFFERENCE,
        step=0.005,
        format="%g",
        key="ns_cmp_difference",
        help="In the metric's units. The plan below gives the repeats that detect it with 80% power at "
        "alpha 0.05; adding repeats until settled counts two strategies closer than this as equivalent.",
    )
    if spec is not None and plan is not None:
        # The past runs on this problem, read again only when the problem changes (or after a minute).
        spread_key = (planning.problem_of(spec, plan), int(time.time() // 60))
        if state.get("ns_cmp_spread_key") != spread_key:
            try:
                state["ns_cmp_spread"] = ("ok", planning.past_spread(spec, plan=plan))
            except HpdashError as exc:
                state["ns_cmp_spread"] = ("error", str(exc))
            state["ns_cmp_spread_key"] = spread_key
        kind, found = state["ns_cmp_spread"]
        if kind == "ok":
            line = planning.form_text(found, float(difference), int(n_repeats), plan.metric, split == "per_repeat")
            st.info(common.md(line), icon=":material/calculate:")
        else:
            st.caption(common.md(f"No plan from past experiments: {found}"))
    max_repeats = experiments.MAX_REPEATS
    state.setdefault("ns_cmp_cap", min(max_repeats, 10))
    state["ns_cmp_cap"] = min(max_repeats, max(int(state["ns_cmp_cap"]), int(n_repeats) + 1))
    c1, c2 = st.columns([2, 1])
    until_settled = n_repeats < max_repeats and c1.checkbox(
        "Add repeats until the verdict is settled, up to a cap",
        key="ns_cmp_until",
        disabled=n_repeats >= max_repeats,
        help="After the planned repeats, one more repeat of every strategy at a time until every pair of "
        "strategies is significantly different or shown equivalent (within the smallest difference above), "
        "or the cap is reached. Each look tests at alpha 0.05 / (cap - repeats + 1): Bonferroni over the "
        "looks planned, so looking after every repeat does not inflate the error rate. Needs a new split "
        "per repeat (the paired test).",
    )
    cap = c2.number_input(
        "Cap on repeats",
        min(int(n_repeats) + 1, max_repeats),
        max_repeats,
        key="ns_cmp_cap",
        disabled=not until_settled,
    )
    if until_settled and spec is not None and chosen and comparison_error is None:
        try:
            settle = experiments.check_until_settled(spec, chosen, int(n_repeats), int(cap), split, float(difference))
        except HpdashError as exc:
            comparison_error = str(exc)
            st.error(common.md(comparison_error), icon=":material/warning:")
        else:
            st.caption(common.md(settle.rule))
    if spec is not None and plan is not None and chosen:
        per_trial = estimate.per_trial_s if estimate is not None else None
        at_once = experiments.parallel_limit(spec.workers)
        grid_size = experiments.grid_size_of(spec)
        budget = experiments.experiment_budget(
            spec,
            chosen,
            int(n_repeats),
            per_trial_s=per_trial,
            parallel=at_once,
            grid_size=grid_size,
        )
        st.info(
            f"Experiment {common.md(repr(cmp_spec.name if cmp_spec else spec.name))}: {budget.describe()}. Every study gets the same "
            "trial budget; seeds run from the form's seed upwards. A grid smaller than the "
            "budget runs every point once; a larger one runs a seeded random subset. Data split: "
            f"{experiments.SPLITS[split]}.",
            icon=":material/balance:",
        )
        if until_settled:
            most = experiments.experiment_budget(
                spec, chosen, int(cap), per_trial_s=per_trial, parallel=at_once, grid_size=grid_size
            )
            st.caption(f"With repeats added up to the cap of {int(cap)}: at most {most.describe()}")
        st.caption(
            f"The studies run through a queue, {at_once} at a time with {spec.workers} "
            f"worker(s) each: this machine allows {config.max_workers()} worker processes "
            f"at once (HPDASH_MAX_WORKERS); an experiment may have at most "
            f"{config.max_experiment_studies()} studies and "
            f"{config.max_experiment_trials():,} trials in all."
        )
    go = common.write_button(
        "Launch comparison",
        key="ns_cmp_launch",
        disabled=plan is None or not chosen or bool(errors) or comparison_error is not None,
    )
    if go and spec is not None and not errors and comparison_error is None:
        try:
            with st.spinner("Creating the studies and starting their queue…"):
                launched = experiments.compare_strategies(
                    cmp_spec or spec,
                    chosen,
                    int(n_repeats),
                    spec.workers,
                    split=split,
                    until_settled=until_settled,
                    max_repeats=int(cap) if until_settled else None,
                    margin=float(difference),
                )
        except HpdashError as exc:
            common.show_error(exc, "Could not launch the comparison: ")
        else:
            state.pop("ns_name", None)
            st.switch_page(common.PAGE_COMPARE, query_params={"experiment": launched.name})
