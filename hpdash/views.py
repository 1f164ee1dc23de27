"""Tidy data for the pages: tables, previews, estimates and formatting (no Streamlit here).

The Streamlit pages stay thin: they lay out widgets and call these functions, which take and
return plain Python and pandas objects, so they are tested without a browser
(tests/test_views.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
import pandas as pd
import yaml

from hpdash import attrs as study_attrs
from hpdash import config, datasets, models, objective, results, runner, space
from hpdash.errors import HpdashError, SpecError
from hpdash.spec import NAME_PATTERN, StudySpec, load_yaml_text, parse_spec
from hpdash.storage import open_storage, redact
from hpdash.store import Catalogue

#: Columns of the search-space editor, in order.
EDITOR_COLUMNS = ["hyperparameter", "type", "low", "high", "log", "choices", "label"]

#: One-click studies on the Home page: key -> (button label, spec fields).
QUICK_STARTS: dict[str, tuple[str, dict[str, Any]]] = {
    "iris-random-forest": (
        "Tune a random forest on iris (TPE, 10 trials)",
        {
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "random_forest",
            "strategy": "tpe",
            "n_trials": 10,
            "cv": {"folds": 3, "repeats": 1},
        },
    ),
    "wine-knn-grid": (
        "Grid-search k-NN on wine (grid, 3 points)",
        {
            "dataset": "sklearn:wine",
            "target": "target",
            "model": "k_nearest_neighbors",
            "strategy": "grid",
            "n_trials": None,
            "grid_points": 3,
            "cv": {"folds": 3, "repeats": 1},
        },
    ),
    "diabetes-ridge-random": (
        "Random search for ridge on diabetes (random, 15 trials)",
        {
            "dataset": "sklearn:diabetes",
            "target": "target",
            "model": "ridge",
            "strategy": "random",
            "n_trials": 15,
            "cv": {"folds": 3, "repeats": 1},
        },
    ),
}


# -------------------------------------------------------------------------------- formatting
def storage_label(storage: str | None = None) -> str:
    """The storage URL in use, with any password hidden."""
    return redact(config.storage_url(storage))


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; None -> ``"–"``."""
    if seconds is None or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_score(value: float | None, digits: int = 4) -> str:
    """A score for display ("–" when there is none)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


#: Significant digits of a hyperparameter value shown in a table (the stored value is exact).
SIGNIFICANT_DIGITS = 4


def round_significant(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """A float rounded to ``digits`` significant digits (still a number, so a table sorts it);
    anything else unchanged."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{digits}g}")
    return value


def format_value(value: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A hyperparameter value as text: floats with ``digits`` significant digits
    (``0.03162``), other values as YAML scalars (``gini``, ``true``, ``null``, ``'1'``)."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{digits}g}"
    return _choice_text(value)


def dataset_label(ref: str | None, catalogue: Catalogue | None = None) -> str:
    """A readable name for a spec's dataset reference."""
    if not ref:
        return "–"
    if ref.startswith("sklearn:"):
        return f"{ref.split(':', 1)[1]} (sample)"
    if re.fullmatch(r"[0-9a-f]{64}", ref):
        row = (catalogue or Catalogue()).get_dataset(ref)
        return f"{row['name']} ({ref[:8]})" if row else f"{ref[:12]}…"
    return ref


def model_label(key: str | list[str]) -> str:
    """Registry label(s) of a model key or a list of keys (algorithm selection)."""
    keys = [key] if isinstance(key, str) else list(key)
    labels = [models.REGISTRY[k].label if k in models.REGISTRY else k for k in keys]
    return " | ".join(labels)


# -------------------------------------------------------------------------------- studies
def list_study_names(storage: str | None = None) -> list[str]:
    """Every study name in the storage, sorted."""
    return sorted(optuna.get_all_study_names(storage=open_storage(storage, heartbeat=False)))


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=UTC)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


STUDY_COLUMNS = [
    "name",
    "dataset",
    "model",
    "strategy",
    "state",
    "done",
    "budget",
    "progress",
    "best",
    "metric",
    "started",
    "duration_s",
    "link",
]
#: The Studies page's table: the study, its state, progress, best score and metric first (on
#: screen at 1400 px), then what it ran (strategy, model, dataset) and when.
STUDIES_TABLE_COLUMNS = [
    "link",
    "state",
    "progress",
    "best",
    "metric",
    "strategy",
    "model",
    "dataset",
    "started",
    "duration_s",
]


def studies_frame(storage: str | None = None) -> pd.DataFrame:
    """One row per study: name, dataset, model, strategy, state, done/budget, best, started,
    duration, and the relative link to its study page. Newest first."""
    store = open_storage(storage, heartbeat=False)
    catalogue = Catalogue(config.catalogue_path(storage))
    rows = []
    # Every study's progress in a few grouped queries; study by study on other storages.
    progress = results.progress_of_studies(store)
    for frozen in store.get_all_studies():
        attrs = frozen.user_attrs
        spec = attrs.get(runner.SPEC_ATTR) or {}
        if progress is not None and frozen.study_name in progress:
            status = runner.status_from(frozen.study_name, attrs, progress[frozen.study_name])
        else:
            status = runner.study_status(optuna.load_study(study_name=frozen.study_name, storage=store))
        started = _parse_time(attrs.get(runner.STARTED_ATTR)) or _parse_time(attrs.get(study_attrs.CREATED_AT))
        ref = attrs.get(runner.DATASET_ATTR) or spec.get("dataset")
        rows.append(
            {
                "name": frozen.study_name,
                "dataset": dataset_label(ref, catalogue) if spec else "–",
                "model": model_label(spec["model"]) if spec.get("model") else "–",
                "strategy": spec.get("strategy", "–"),
                "state": status.state,
                "done": status.done,
                "budget": status.budget,
                "progress": f"{status.done}/{status.budget if status.budget is not None else '?'}",
                "best": status.best_value,
                "metric": study_attrs.metric_of(attrs) or "–",
                "started": started,
                "duration_s": status.elapsed_s,
                "link": study_url(frozen.study_name),
            }
        )
    frame = pd.DataFrame(rows, columns=STUDY_COLUMNS)
    if not frame.empty:
        frame["started"] = pd.to_datetime(frame["started"], utc=True)
        frame = frame.sort_values("started", ascending=False, na_position="last").reset_index(drop=True)
    return frame


def study_url(name: str) -> str:
    """The shareable relative link of a study page."""
    from urllib.parse import quote

    return f"/study?study={quote(name)}"


def filter_studies(
    frame: pd.DataFrame, search: str = "", states: list[str] | None = None, strategies: list[str] | None = None
) -> pd.DataFrame:
    """Rows whose name, dataset or model contains ``search`` (case-insensitive), in the states
    and strategies given (all when empty)."""
    out = frame
    if search:
        needle = search.strip().lower()
        text = (out["name"] + " " + out["dataset"] + " " + out["model"]).str.lower()
        out = out[text.str.contains(needle, regex=False)]
    if states:
        out = out[out["state"].isin(states)]
    if strategies:
        out = out[out["strategy"].isin(strategies)]
    return out.reset_index(drop=True)


def studies_using_dataset(sha256: str, storage: str | None = None) -> list[str]:
    """Names of the studies whose dataset is the stored dataset ``sha256``."""
    store = open_storage(storage, heartbeat=False)
    out = []
    for frozen in store.get_all_studies():
        attrs = frozen.user_attrs
        spec = attrs.get(runner.SPEC_ATTR) or {}
        if attrs.get(runner.DATASET_ATTR) == sha256 or spec.get("dataset") == sha256:
            out.append(frozen.study_name)
    return sorted(out)


def datasets_frame(storage: str | None = None) -> pd.DataFrame:
    """The stored datasets with the studies that use them and whether the file is there."""
    catalogue = Catalogue(config.catalogue_path(storage))
    rows = []
    for row in catalogue.list_datasets():
        used = studies_using_dataset(row["sha256"], storage)
        rows.append(
            {
                "name": row["name"],
                "filename": row["filename"],
                "format": row["format"],
                "rows": row["n_rows"],
                "columns": row["n_cols"],
                "size_kb": round(row["size_bytes"] / 1024, 1),
                "added": row["created_at"],
                "used_by": ", ".join(used),
                "file_present": datasets.find_stored(row["sha256"]) is not None,
                "sha256": row["sha256"],
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "name",
            "filename",
            "format",
            "rows",
            "columns",
            "size_kb",
            "added",
            "used_by",
            "file_present",
            "sha256",
        ],
    )


def unique_study_name(base: str, storage: str | None = None) -> str:
    """``base`` made a valid study name, with ``-2``, ``-3``... when it is taken."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "study"
    clean = clean[:90]
    if not NAME_PATTERN.match(clean):
        clean = "s-" + clean
    taken = set(list_study_names(storage))
    if clean not in taken:
        return clean
    i = 2
    while f"{clean}-{i}" in taken:
        i += 1
    return f"{clean}-{i}"


def default_study_name(dataset: str, model: str | list[str], strategy: str) -> str:
    """A readable default name such as ``iris-random_forest-tpe``."""
    ds = dataset.split(":", 1)[1] if dataset.startswith("sklearn:") else dataset
    if re.fullmatch(r"[0-9a-f]{64}", ds):
        row = Catalogue().get_dataset(ds)
        ds = row["name"] if row else ds[:8]
    keys = [model] if isinstance(model, str) else list(model)
    mod = keys[0] if len(keys) == 1 else "select"
    return f"{ds}-{mod}-{strategy}"


def quick_start_spec(key: str, storage: str | None = None) -> StudySpec:
    """The spec of a Home-page quick start, with a free name."""
    _, fields = QUICK_STARTS[key]
    name = unique_study_name(f"{key}-{fields['strategy']}", storage)
    return parse_spec({"name": name, "seed": 0, "test_size": 0.2, **fields})


def start_study(spec: StudySpec, storage: str | None = None) -> list:
    """Create the study and start its workers (detached processes)."""
    runner.create_study(spec, storage)
    return runner.launch_workers(spec.name, storage, spec.workers)


# -------------------------------------------------------------------------------- search space
def _choice_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("..."):
        text = text[:-3].strip()
    return text


def format_choices(choices: Any) -> str:
    """Choices as comma-separated YAML scalars (``gini, entropy``; ``'1'`` stays text)."""
    return ", ".join(_choice_text(c) for c in (choices or ()))


def parse_choices(text: Any) -> list[Any]:
    """``"gini, entropy"`` -> ``["gini", "entropy"]``; numbers, true/false, null are typed.

    Read with the bounded YAML loader (``spec.load_yaml_text``) as a flow list: nothing is evaluated.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    raw = str(text).strip()
    if not raw:
        return []
    if not raw.startswith("["):
        raw = f"[{raw}]"
    try:
        values = load_yaml_text(raw)  # bounded: size, depth, aliases, finite numbers
    except SpecError as exc:
        raise SpecError(f"cannot read the choices {text!r}: separate them with commas ({exc})") from exc
    if not isinstance(values, list):
        raise SpecError(f"cannot read the choices {text!r}: separate them with commas")
    return values


def space_editor_frame(search_space: space.SearchSpace | Mapping[str, Any]) -> pd.DataFrame:
    """A search space as the rows of the editable table (one row per hyperparameter)."""
    parsed = (
        search_space
        if all(isinstance(v, space.Hyperparameter) for v in search_space.values())
        else space.parse_space(search_space)
    )
    rows = []
    for name, hp in parsed.items():
        rows.append(
            {
                "hyperparameter": name,
                "type": hp.type,
                "low": None if hp.low is None else float(hp.low),
                "high": None if hp.high is None else float(hp.high),
                "log": bool(hp.log),
                "choices": format_choices(hp.choices) if hp.type == "categorical" else "",
                "label": hp.label,
            }
        )
    frame = pd.DataFrame(rows, columns=EDITOR_COLUMNS)
    frame["low"] = frame["low"].astype("float64")
    frame["high"] = frame["high"].astype("float64")
    frame["log"] = frame["log"].astype("bool")
    return frame


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _bound(value: Any, kind: str, name: str, which: str) -> Any:
    if _blank(value):
        raise SpecError(f"hyperparameter {name!r}: '{which}' is empty; a {kind} range needs low and high")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"hyperparameter {name!r}: '{which}' must be a number, not {value!r}") from None
    if kind == "int":
        if not number.is_integer():
            raise SpecError(f"hyperparameter {name!r}: an int range needs whole numbers, '{which}' is {value!r}")
        return int(number)
    return number


def space_from_editor(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The spec-form space from the edited table; ``SpecError`` naming the bad row.

    Empty rows (no name) are ignored; a duplicate name is an error.
    """
    out: dict[str, dict[str, Any]] = {}
    for record in frame.to_dict("records"):
        name = record.get("hyperparameter")
        if _blank(name):
            if all(_blank(record.get(c)) or c in ("log", "type", "label") for c in EDITOR_COLUMNS):
                continue
            raise SpecError("a row of the search space has no hyperparameter name")
        name = str(name).strip()
        if name in out:
            raise SpecError(f"hyperparameter {name!r} appears twice in the search space")
        kind = record.get("type")
        if _blank(kind):
            raise SpecError(f"hyperparameter {name!r}: pick a type (float, int or categorical)")
        label = record.get("label")
        entry: dict[str, Any] = {"type": kind}
        if kind == "categorical":
            choices = parse_choices(record.get("choices"))
            if not choices:
                raise SpecError(f"hyperparameter {name!r}: list the choices, separated by commas")
            entry["choices"] = choices
        else:
            entry["low"] = _bound(record.get("low"), kind, name, "low")
            entry["high"] = _bound(record.get("high"), kind, name, "high")
            entry["log"] = bool(record.get("log")) if not _blank(record.get("log")) else False
        if not _blank(label):
            entry["label"] = label
        out[name] = entry
    space.parse_space(out)  # validate: raises SpecError naming the hyperparameter
    return out


def grid_preview_frame(spaces: Mapping[str, space.SearchSpace], points: int) -> pd.DataFrame:
    """The grid values per hyperparameter: model, hyperparameter, n_values, values.

    Floats are shown with ``SIGNIFICANT_DIGITS`` significant digits (``0.03162``, not
    ``0.0316227766017``); the grid itself keeps the exact values.
    """
    rows = []
    for model_key, sp in spaces.items():
        for name, values in space.grid(sp, points).items():
            rows.append(
                {
                    "model": model_key,
                    "hyperparameter": name,
                    "n_values": len(values),
                    "values": ", ".join(format_value(v) for v in values),
                }
            )
    return pd.DataFrame(rows, columns=["model", "hyperparameter", "n_values", "values"])


# -------------------------------------------------------------------------------- run time
@dataclass
class RuntimeEstimate:
    """The pre-launch smoke fit (``objective.smoke_check``), scaled to the study's budget."""

    fit_s: float  # one fit + score on one fold of the sample, measured (mean over the models)
    per_trial_s: float  # all folds of one trial, extrapolated to the study's rows
    n_trials: int | None
    total_s: float | None  # the whole budget over the workers
    #: what the smoke fit found worth saying: the metric's positive class, slow models
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    smoke: objective.SmokeReport | None = None

    def describe(self) -> str:
        fits = list(self.smoke.fits.values()) if self.smoke is not None else []
        if len(fits) == 1:
            measured = fits[0].describe()
        else:
            measured = f"one fit took {format_duration(self.fit_s)}"
        if self.total_s is None:
            text = (
                f"One trial takes about {format_duration(self.per_trial_s)} "
                f"(the time budget decides how many run): {measured}."
            )
        else:
            text = (
                f"About {format_duration(self.total_s)} for {self.n_trials} trial(s): "
                f"{measured}, one trial about {format_duration(self.per_trial_s)}."
            )
        return " ".join([text, *self.notes, *self.warnings])


def estimate_runtime(plan: runner.Plan) -> RuntimeEstimate:
    """The smoke fit of every chosen model (``objective.smoke_check``), scaled to the budget.

    A rough guide: hyperparameters change fit times (more trees, more neighbours). A model
    that fails its smoke fit raises the ``SpecError`` that says why (it cannot launch).
    """
    spec = plan.spec
    report = objective.smoke_check(plan)
    per_trial = report.trial_s + 0.05  # + storage round trips
    n_trials: int | None
    if spec.strategy == "grid":
        total_points = space.total_grid_size(plan.spaces, spec.grid_points)
        n_trials = total_points if spec.n_trials is None else min(spec.n_trials, total_points)
    else:
        n_trials = spec.n_trials
    total = None
    if n_trials is not None:
        total = per_trial * n_trials / max(1, spec.workers) + 2.0  # + worker start-up
        if spec.timeout is not None:
            total = min(total, float(spec.timeout))
    return RuntimeEstimate(
        report.fit_s, per_trial, n_trials, total, tuple(report.notes), tuple(report.warnings), report
    )


# -------------------------------------------------------------------------------- study page
def trials_table(frame: pd.DataFrame, model: str | list[str] | None = None) -> pd.DataFrame:
    """The trials frame for people, what matters first: trial, state, value, model, the
    hyperparameters, then cv_std, duration_s and (when some trial has one) reason.

    ``model`` is the study's model key(s): a one-model study gets a ``model`` column with its
    key; under algorithm selection the column is each trial's ``model`` param, and the
    hyperparameters are grouped by model. Float hyperparameters are rounded to
    ``SIGNIFICANT_DIGITS`` significant digits; lists and dicts are shown as JSON. ``state`` is
    ``STOPPED`` for a trial the user stopped (``plots.display_states``).
    """
    from hpdash.plots import display_states

    params = [c for c in frame.columns if c.startswith("params_")]
    model_param = "params_" + space.MODEL_PARAM
    selection = model_param in params and (model is None or not isinstance(model, str))
    out = pd.DataFrame(
        {
            "trial": frame["number"],
            "state": display_states(frame) if len(frame) else frame["state"],
            "value": frame["value"],
        }
    )
    if selection:
        out["model"] = frame[model_param].astype("object")
        keys = list(model) if isinstance(model, list) else sorted({str(m) for m in frame[model_param].dropna()})
        rank = {k: i for i, k in enumerate(keys)}

        def group(column: str) -> int:
            head, sep, _ = column[len("params_") :].partition(space.SEPARATOR)
            return rank.get(head, len(rank)) if sep else len(rank)

        params = sorted((c for c in params if c != model_param), key=group)
    elif isinstance(model, str) or (isinstance(model, list) and len(model) == 1):
        out["model"] = model if isinstance(model, str) else model[0]
    for column in params:
        out[column[len("params_") :]] = frame[column].map(
            lambda v: json.dumps(v) if isinstance(v, (list, dict)) else round_significant(v)
        )
    out["cv_std"] = frame["cv_std"]
    out["duration_s"] = frame["duration_s"]
    reasons = [trial_reason(r) for r in frame.to_dict("records")]
    if any(reasons):
        out["reason"] = reasons
    return out


def trial_reason(record: Mapping[str, Any]) -> str:
    """Why a trial did not complete ('' for a COMPLETE one)."""
    if record.get("state") == "FAIL":
        return str(record.get("fail_reason") or "failed (no reason recorded)")
    if record.get("state") == "PRUNED":
        fold = record.get("pruned_at_fold")
        if fold is None or (isinstance(fold, float) and math.isnan(fold)) or fold is pd.NA:
            return "pruned"
        return f"pruned after fold {int(fold)}: its fold scores were worse than earlier trials"
    if record.get("state") == "RUNNING":
        return "running"
    return ""


def fail_summary(frame: pd.DataFrame, limit: int = 3) -> list[tuple[str, int]]:
    """The most common FAIL reasons with their counts."""
    failed = frame[frame["state"] == "FAIL"]
    if failed.empty:
        return []
    counts = failed["fail_reason"].fillna("failed (no reason recorded)").astype(str).value_counts()
    return [(str(k), int(v)) for k, v in counts.head(limit).items()]


def study_dataset_problem(study: optuna.Study) -> str | None:
    """A message when the study's dataset can no longer be loaded, else None.

    Only what a worker may load is checked (``runner.stored_dataset_ref``): a bundled sample or
    a stored dataset by its SHA-256. A stored spec naming a file path is reported, never read.
    """
    attrs = study.user_attrs
    sha = attrs.get(runner.DATASET_ATTR)
    spec = attrs.get(runner.SPEC_ATTR)
    dataset = spec.get("dataset") if isinstance(spec, dict) else None
    if not sha and not dataset:
        return None
    try:
        ref = runner.stored_dataset_ref(dataset, sha or None)
    except HpdashError as exc:  # DatasetError: what is wrong and how to fix it
        return str(exc)
    if ref.startswith("sklearn:"):
        return None
    if datasets.find_stored(ref) is None:
        row = Catalogue().get_dataset(ref)
        name = f"{row['name']!r} " if row else ""
        return (
            f"The dataset file of this study ({name}SHA-256 {ref[:12]}…) is missing from "
            f"{config.datasets_dir()}. The trials below are intact, but refitting and the "
            "reproduce snippet need the data: upload the same file again on the Datasets page."
        )
    return None


def best_params_frame(params: Mapping[str, Any], models: list[str] | None = None) -> pd.DataFrame:
    """Best hyperparameters as a two-column table: hyperparameter, value (text, floats with
    ``SIGNIFICANT_DIGITS`` significant digits).

    Under algorithm selection (``models`` with several keys, or a ``model`` param) the names
    lose their ``<model>__`` prefix: the page names the model above the table
    (``best_model``), so a long key does not crowd the value column.
    """
    model = best_model(params, models)
    prefix = f"{model}{space.SEPARATOR}" if model is not None else ""
    shown = {k.removeprefix(prefix): v for k, v in params.items() if not (model is not None and k == space.MODEL_PARAM)}
    return pd.DataFrame({"hyperparameter": list(shown), "value": [format_value(v) for v in shown.values()]})


def best_model(params: Mapping[str, Any], models: list[str] | None = None) -> str | None:
    """The model a trial's params chose under algorithm selection, else None."""
    if models is not None and len(models) < 2:
        return None
    value = params.get(space.MODEL_PARAM)
    return str(value) if value is not None else None


def reproduce_for_best(study: optuna.Study) -> str:
    """The scikit-learn snippet that recomputes the best trial's CV score."""
    spec = runner.load_spec_of(study)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        raise SpecError("No completed trial yet.")
    best = study.best_trial
    problem = runner.load_problem(spec, study.user_attrs.get(runner.DATASET_ATTR))
    model_key, params = space.decode_params(best.params, problem.models)
    return objective.reproduce_snippet(spec.to_dict(), problem, model_key, params)


def spec_form_defaults() -> dict[str, Any]:
    """Default values of the New study form (the spec defaults with a small budget).

    ``n_trials`` is for sampling strategies; picking grid search sets the form's trials to 0,
    the whole grid (``GRID_WHOLE``). ``startup_trials`` None is hpdash's small-budget rule.
    """
    return {
        "strategy": "tpe",
        "n_trials": 20,
        "timeout": None,
        "folds": 5,
        "repeats": 1,
        "test_size": 0.2,
        "seed": 0,
        "pruner": "none",
        "workers": 1,
        "grid_points": 5,
        "metric": "auto",
        "task": "auto",
        "startup_trials": None,
        "trial_timeout": None,
        "pos_label": None,
        "keep_columns": None,
    }


#: The form's trials under grid search: 0 runs every grid point once.
GRID_WHOLE = 0


def form_trials_after_strategy_change(old: str | None, new: str, n_trials: int) -> int:
    """The form's trials when the strategy changes from ``old`` to ``new``: the whole grid
    (0) on switching to grid search, so "exhaustive" means every point; back to the form's
    default on leaving it with 0 (which means "no trial limit" elsewhere, not "the grid");
    unchanged otherwise."""
    if new == "grid" and old != "grid":
        return GRID_WHOLE
    if old == "grid" and new != "grid" and n_trials == GRID_WHOLE:
        return int(spec_form_defaults()["n_trials"])
    return n_trials


def grid_budget_text(total: int, n_trials: int | None, estimate_s: float | None = None) -> str:
    """What a grid study will run: every point, or a seeded random subset, with the time."""
    time_part = f", about {format_duration(estimate_s)}" if estimate_s is not None else ""
    if n_trials is None or n_trials >= total:
        return f"Grid search runs the whole grid: all {total:,} combinations once{time_part}."
    return (
        f"Grid search runs {n_trials:,} of the {total:,} combinations (a seeded random "
        f"subset){time_part}. Set Trials to 0 to run the whole grid."
    )


# -------------------------------------------------------------------------------- target and columns
def target_classes(frame: pd.DataFrame, target: str) -> list[Any]:
    """The distinct non-missing values of the target column, as plain Python values, sorted
    (numbers numerically, text alphabetically)."""
    values = [v.item() if hasattr(v, "item") else v for v in frame[target].dropna().unique()]

    def key(v: Any) -> tuple[int, float, str]:
        if isinstance(v, (int, float)):  # bool too: False before True
            return (0, float(v), "")
        return (1, 0.0, str(v))

    return sorted(values, key=key)


def needs_pos_label(metric: str, classes: list[Any]) -> bool:
    """Whether the form must ask for the positive class: a two-class metric that scores one
    class as positive (``objective.POS_LABEL_METRICS``) on two labels that are text or
    true/false (scikit-learn's default ``pos_label=1`` is no label of theirs, or not the one
    meant)."""
    if metric not in objective.POS_LABEL_METRICS or len(classes) != 2:
        return False
    return all(isinstance(c, (str, bool)) for c in classes)


def default_pos_label(frame: pd.DataFrame, target: str, metric: str = "f1") -> Any:
    """The positive class the form proposes: the one ``objective.resolve_pos_label`` picks
    when the spec names none (the same choice ``hpdash run`` makes)."""
    return objective.resolve_pos_label(metric, frame[target].dropna())


def columns_table(profile: datasets.DatasetProfile) -> pd.DataFrame:
    """The Datasets page's "Columns and roles" table, what matters first: name, role, examples,
    missing share, distinct values, dtype, then "why dropped" only when some column is dropped
    or kept against hpdash's default (empty for the others, not ``None``)."""
    frame = profile.columns_frame()
    columns = ["name", "role", "examples", "missing_share", "n_unique", "dtype"]
    reasons = []
    for info in profile.columns:
        if info.role == "dropped":
            reasons.append(info.reason or "")
        elif getattr(info, "kept", False):
            reasons.append(f"kept as you asked, although hpdash would drop it: {info.default_reason}")
        else:
            reasons.append("")
    out = frame[columns].copy()
    if any(reasons):
        out["reason"] = reasons
    return out


def keepable_columns(profile: datasets.DatasetProfile) -> dict[str, str]:
    """Columns hpdash drops by default but a user may keep as features (``keep_columns``):
    name -> why hpdash would drop it (ID-like, free text, high-cardinality text)."""
    out = {}
    for info in profile.columns:
        if getattr(info, "overridable", False) and getattr(info, "in_frame", True):
            out[info.name] = str(info.default_reason or info.reason or "")
    return out


def target_missing_note(profile: datasets.DatasetProfile) -> str | None:
    """What happens to rows whose target is missing (they are dropped before anything else), or
    None when there are none."""
    n = profile.n_target_missing_dropped
    if not n or profile.target is None:
        return None
    kept = profile.n_rows - n
    return (
        f"{n:,} of {profile.n_rows:,} rows have no value in the target {profile.target!r}: "
        f"they are dropped before the holdout split and the CV, so studies learn from "
        f"{kept:,} rows."
    )


def dataset_choices(storage: str | None = None) -> dict[str, str]:
    """Dataset references for the pickers -> display label: samples then stored uploads."""
    out = {ref: f"{ref.split(':', 1)[1]} (sample) — {desc}" for ref, desc in datasets.SAMPLES.items()}
    for row in Catalogue(config.catalogue_path(storage)).list_datasets():
        out[row["sha256"]] = f"{row['name']} ({row['filename']}, {row['n_rows']} rows)"
    return out


def default_target(columns: list[str]) -> str | None:
    """The likely target column, by ``datasets.guess_target``'s rule: a generic target name
    (``target``, ``label``, ``class``, ``outcome``, ``response``, or ``y`` when it is not a
    coordinate beside ``x``/``z``), then the target of a conventional public table
    (``species``, ``price``, ``mpg``, ``survived``, ...), else the last column."""
    return datasets.guess_target(list(columns))
