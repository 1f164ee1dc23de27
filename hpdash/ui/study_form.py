"""The New study form's data: from a spec to the form's session keys and back, and the rule
for a spec uploaded from the browser.

The page (``pages/new_study.py``) draws the widgets; each widget keeps its value in the
session key named here (``ns_*``), so the form is the mapping below in both directions. Plain
functions over a mapping (Streamlit's session state on the page, a dict in the tests; typed
``Any`` because Streamlit's state type is keyed by ``str | int``), tested without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpdash import access, cluster, config, views
from hpdash.errors import HpdashError, SpecError
from hpdash.spec import MAX_YAML_CHARS, StudySpec, load_yaml_text, parse_spec

#: Spec fields a form widget shows one to one: spec key -> session key.
FIELD_KEYS: dict[str, str] = {
    "dataset": "ns_dataset",
    "target": "ns_target",
    "task": "ns_task",
    "metric": "ns_metric",
    "strategy": "ns_strategy",
    "grid_points": "ns_grid_points",
    "seed": "ns_seed",
    "pruner": "ns_pruner",
    "workers": "ns_workers",
    "test_size": "ns_test_size",
    "name": "ns_name",
}
#: Spec fields with no widget of their own, kept from a loaded spec as they were.
CARRIED_KEYS: dict[str, str] = {
    "split_seed": "ns_split_seed",
    "sampler_seed": "ns_sampler_seed",
    "warm_start": "ns_warm_start",
}
_SEEDS = ("split_seed", "sampler_seed")


def apply_prefill(state: Any, values: Mapping[str, Any]) -> None:
    """Copy a spec's values (from the Datasets page or an uploaded spec) into the form's keys."""
    for field, key in FIELD_KEYS.items():
        if values.get(field) is not None:
            state[key] = values[field]
    for field, key in CARRIED_KEYS.items():
        state[key] = values.get(field)
    if "model" in values:
        state["ns_models"] = [values["model"]] if isinstance(values["model"], str) else list(values["model"])
    if "n_trials" in values:
        state["ns_n_trials"] = int(values["n_trials"] or 0)
    if "timeout" in values:
        state["ns_timeout_min"] = float(values["timeout"] or 0) / 60
    if values.get("cv"):
        state["ns_folds"] = int(values["cv"].get("folds", 5))
        state["ns_repeats"] = int(values["cv"].get("repeats", 1))
    if values.get("space"):
        keys = state.get("ns_models") or []
        raw = values["space"]
        state["ns_space_init"] = dict(raw) if len(keys) > 1 else {keys[0]: dict(raw)} if keys else {}
    if "startup_trials" in values:
        state["ns_startup_auto"] = values["startup_trials"] is None
        if values["startup_trials"] is not None:
            state["ns_startup_trials"] = int(values["startup_trials"])
    if "trial_timeout" in values:
        state["ns_trial_timeout"] = float(values["trial_timeout"] or 0)
    if values.get("pos_label") is not None:
        state["ns_pos_label"] = values["pos_label"]
    if "keep_columns" in values:
        state["ns_keep_columns"] = list(values["keep_columns"] or [])
    state["ns_strategy_prev"] = state.get("ns_strategy")
    state["ns_space_version"] = int(state.get("ns_space_version", 0)) + 1


def spec_values(
    state: Any,
    *,
    name: str,
    task: str,
    spaces: Mapping[str, dict[str, Any]],
    model_based: bool,
    pos_label: Any,
    keep_columns: list[str],
) -> dict[str, Any]:
    """The spec (as plain data, for ``parse_spec``) the form's keys describe.

    ``name`` is the typed name or the suggested one; ``task`` the form's task choice ("auto"
    included); ``spaces`` each chosen model's space from the editor; ``pos_label`` and
    ``keep_columns`` what their widgets show (they are not always drawn)."""
    model_keys = list(state.get("ns_models") or [])
    values: dict[str, Any] = {
        "name": name,
        "dataset": state["ns_dataset"],
        "target": state["ns_target"],
        "task": task,
        "model": model_keys[0] if len(model_keys) == 1 else model_keys,
        "space": (spaces.get(model_keys[0]) if len(model_keys) == 1 else dict(spaces)) if model_keys else None,
        "strategy": state["ns_strategy"],
        "grid_points": int(state["ns_grid_points"]),
        "n_trials": int(state["ns_n_trials"]) or None,
        "timeout": float(state["ns_timeout_min"]) * 60 or None,
        "cv": {"folds": int(state["ns_folds"]), "repeats": int(state["ns_repeats"])},
        "metric": state["ns_metric"],
        "test_size": float(state["ns_test_size"]),
        "seed": int(state["ns_seed"]),
        "pruner": state["ns_pruner"],
        "workers": int(state["ns_workers"]),
        "startup_trials": None if state["ns_startup_auto"] or not model_based else int(state["ns_startup_trials"]),
        "trial_timeout": float(state["ns_trial_timeout"]) or None,
        "pos_label": pos_label,
        "keep_columns": list(keep_columns) or None,
    }
    for field, key in CARRIED_KEYS.items():
        if state.get(key) is not None:
            values[field] = int(state[key]) if field in _SEEDS else state[key]
    return values


def carried_note(state: Any) -> str | None:
    """What a loaded spec fixes that the form shows no widget for (None: nothing)."""
    seeds = [
        f"{field} = {state[CARRIED_KEYS[field]]}" for field in _SEEDS if state.get(CARRIED_KEYS[field]) is not None
    ]
    parts = [", ".join(seeds) + " (the Seed field sets only what these leave to it)"] if seeds else []
    warm = state.get(CARRIED_KEYS["warm_start"])
    if warm is not None:
        parts.append(f"a warm start from the best {warm['trials']} trials of study {warm['study']!r}")
    return "From the loaded spec: " + "; ".join(parts) + "." if parts else None


def read_browser_spec(data: bytes, datasets_offered: Mapping[str, Any]) -> dict[str, Any]:
    """A spec uploaded from the browser, as plain data for ``apply_prefill``.

    Refused on a read-only dashboard (``ReadOnlyError``): a loaded spec prefills the form,
    whose run-time estimate fits its models on the server. Otherwise always read as text
    (never as a path on the server) through the CLI's bounded YAML loader
    (``spec.load_yaml_text``: size, nesting, aliases, values, expanded size),
    and it may name only a bundled sample or an uploaded dataset (``datasets_offered``): a
    server path would let any visitor read files on the server. Raises ``SpecError`` naming
    the problem and the fix; nothing is kept from a refused file."""
    access.require_writable("load a spec file into the form (its run-time estimate fits the models on this server)")
    if len(data) > MAX_YAML_CHARS:
        raise SpecError(
            f"the file is {len(data):,} bytes; a spec may have at most {MAX_YAML_CHARS:,}. A spec lists settings, not data."
        )
    raw = load_yaml_text(data.decode("utf-8", errors="replace"))
    values = parse_spec(raw).to_dict()
    if values["dataset"] not in datasets_offered:
        raise SpecError(
            f"its dataset {values['dataset']!r} is not a bundled sample or an uploaded dataset. "
            "Upload the table on the Datasets page, then pick it below."
        )
    return values


#: Where the form's "Run on" choice sends a study's workers (session key ``ns_run_on``).
RUN_ON_KEY = "ns_run_on"
RUN_HERE = "here"
RUN_ON_DASK = "dask"


def run_on_choices() -> tuple[dict[str, str], str | None]:
    """The "Run on" choices (key -> label) and why the Dask cluster is not offered when its
    setting is wrong (None otherwise). The cluster is offered when ``HPDASH_DASK_SCHEDULER``
    is set; the form shows the choice only when there are two."""
    choices = {RUN_HERE: "this machine"}
    try:
        scheduler = config.dask_scheduler()
    except HpdashError as exc:
        return choices, str(exc)
    if scheduler is not None:
        choices[RUN_ON_DASK] = f"Dask cluster ({scheduler})"
    return choices, None


def launch(spec: StudySpec, run_on: str, storage: str | None = None) -> None:
    """Create the study and start its workers where the form's "Run on" says: detached
    processes on this machine, or tasks on the Dask cluster (``cluster.start_on_cluster``,
    which checks the scheduler before creating the study; its tasks outlive the page)."""
    if run_on == RUN_ON_DASK:
        cluster.start_on_cluster(spec, storage).close()
    else:
        views.start_study(spec, storage)
