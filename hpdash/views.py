"""Tidy data for the pages: tables, previews, estimates and formatting (no Streamlit here).

The Streamlit pages stay thin: they lay out widgets and call these functions, which take and
return plain Python and pandas objects, so they are tested without a browser
(tests/test_views.py).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import optuna
import pandas as pd
import yaml
from sklearn.metrics import get_scorer

from hpdash import config, datasets, models, objective, runner, space
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
        {"dataset": "sklearn:iris", "target": "target", "model": "random_forest",
         "strategy": "tpe", "n_trials": 10, "cv": {"folds": 3, "repeats": 1}},
    ),
    "wine-knn-grid": (
        "Grid-search k-NN on wine (grid, 3 points)",
        {"dataset": "sklearn:wine", "target": "target", "model": "k_nearest_neighbors",
         "strategy": "grid", "n_trials": None, "grid_points": 3, "cv": {"folds": 3, "repeats": 1}},
    ),
    "diabetes-ridge-random": (
        "Random search for ridge on diabetes (random, 15 trials)",
        {"dataset": "sklearn:diabetes", "target": "target", "model": "ridge",
         "strategy": "random", "n_trials": 15, "cv": {"folds": 3, "repeats": 1}},
    ),
}

STATE_ICONS = {
    "created": "⚪", "running": "🔵", "finished": "🟢", "stopped": "🟠", "failed": "🔴",
    "worker lost": "🟣",
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
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


STUDY_COLUMNS = ["name", "dataset", "model", "strategy", "state", "done", "budget",
                 "progress", "best", "metric", "started", "duration_s", "link"]


def studies_frame(storage: str | None = None) -> pd.DataFrame:
    """One row per study: name, dataset, model, strategy, state, done/budget, best, started,
    duration, and the relative link to its study page. Newest first."""
    store = open_storage(storage, heartbeat=False)
    catalogue = Catalogue(config.catalogue_path(storage))
    rows = []
    for frozen in store.get_all_studies():
        study = optuna.load_study(study_name=frozen.study_name, storage=store)
        attrs = frozen.user_attrs
        spec = attrs.get(runner.SPEC_ATTR) or {}
        status = runner.study_status(study)
        started = _parse_time(attrs.get(runner.STARTED_ATTR)) or _parse_time(attrs.get("hpdash.created_at"))
        ref = attrs.get(runner.DATASET_ATTR) or spec.get("dataset")
        rows.append({
            "name": frozen.study_name,
            "dataset": dataset_label(ref, catalogue) if spec else "–",
            "model": model_label(spec["model"]) if spec.get("model") else "–",
            "strategy": spec.get("strategy", "–"),
            "state": status.state,
            "done": status.done,
            "budget": status.budget,
            "progress": f"{status.done}/{status.budget if status.budget is not None else '?'}",
            "best": status.best_value,
            "metric": attrs.get("hpdash.metric") or spec.get("metric", "–"),
            "started": started,
            "duration_s": status.elapsed_s,
            "link": study_url(frozen.study_name),
        })
    frame = pd.DataFrame(rows, columns=STUDY_COLUMNS)
    if not frame.empty:
        frame["started"] = pd.to_datetime(frame["started"], utc=True)
        frame = frame.sort_values("started", ascending=False, na_position="last").reset_index(drop=True)
    return frame


def study_url(name: str) -> str:
    """The shareable relative link of a study page."""
    from urllib.parse import quote

    return f"/study?study={quote(name)}"


def filter_studies(frame: pd.DataFrame, search: str = "", states: list[str] | None = None,
                   strategies: list[str] | None = None) -> pd.DataFrame:
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
        rows.append({
            "name": row["name"], "filename": row["filename"], "format": row["format"],
            "rows": row["n_rows"], "columns": row["n_cols"],
            "size_kb": round(row["size_bytes"] / 1024, 1), "added": row["created_at"],
            "used_by": ", ".join(used), "file_present": datasets.find_stored(row["sha256"]) is not None,
            "sha256": row["sha256"],
        })
    return pd.DataFrame(rows, columns=["name", "filename", "format", "rows", "columns", "size_kb",
                                       "added", "used_by", "file_present", "sha256"])


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
    parsed = search_space if all(isinstance(v, space.Hyperparameter) for v in search_space.values()) \
        else space.parse_space(search_space)
    rows = []
    for name, hp in parsed.items():
        rows.append({
            "hyperparameter": name, "type": hp.type,
            "low": None if hp.low is None else float(hp.low),
            "high": None if hp.high is None else float(hp.high),
            "log": bool(hp.log),
            "choices": format_choices(hp.choices) if hp.type == "categorical" else "",
            "label": hp.label,
        })
    frame = pd.DataFrame(rows, columns=EDITOR_COLUMNS)
    frame["low"] = frame["low"].astype("float64")
    frame["high"] = frame["high"].astype("float64")
    frame["log"] = frame["log"].astype("bool")
    return frame


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        (isinstance(value, str) and not value.strip())


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
    """The exact grid values per hyperparameter: model, hyperparameter, n_values, values."""
    rows = []
    for model_key, sp in spaces.items():
        for name, values in space.grid(sp, points).items():
            rows.append({"model": model_key, "hyperparameter": name, "n_values": len(values),
                         "values": ", ".join(_choice_text(v) for v in values)})
    return pd.DataFrame(rows, columns=["model", "hyperparameter", "n_values", "values"])


# -------------------------------------------------------------------------------- run time
@dataclass
class RuntimeEstimate:
    """A timed first fit, scaled to the study's budget."""

    fit_s: float  # one fit + score on one fold
    per_trial_s: float  # all folds of one trial
    n_trials: int | None
    total_s: float | None  # the whole budget over the workers

    def describe(self) -> str:
        if self.total_s is None:
            return (f"One trial takes about {format_duration(self.per_trial_s)} "
                    "(the time budget decides how many run).")
        return (f"About {format_duration(self.total_s)} for {self.n_trials} trial(s): one fit took "
                f"{format_duration(self.fit_s)}, one trial about {format_duration(self.per_trial_s)}.")


def estimate_runtime(plan: runner.Plan) -> RuntimeEstimate:
    """Time one fit of the first configuration on the first CV fold and scale it up.

    A rough guide: hyperparameters change fit times (more trees, more neighbours).
    """
    spec = plan.spec
    prepared = plan.prepared
    X_train, _, y_train, _ = objective.holdout_split(prepared.X, prepared.y, prepared.task,
                                                     spec.test_size, spec.seed)
    cv = objective.make_cv(prepared.task, spec.folds, 1, spec.seed)
    train_idx, test_idx = next(iter(cv.split(X_train, y_train)))
    model_key = spec.models[0]
    first = plan.spaces[model_key]
    params = {name: space.grid_values(hp, 3)[len(space.grid_values(hp, 3)) // 2]
              for name, hp in first.items()}
    estimator = models.make_estimator(model_key, prepared.task, params, seed=spec.seed)
    pipe = objective.build_pipeline(estimator, prepared.numeric, prepared.categorical)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pipe.fit(X_train.iloc[train_idx], y_train.iloc[train_idx])
            get_scorer(plan.metric)(pipe, X_train.iloc[test_idx], y_train.iloc[test_idx])
        except Exception:  # a rejected combination still tells us little; keep the time
            pass
    fit_s = time.perf_counter() - start
    per_trial = fit_s * spec.folds * spec.repeats + 0.05  # + storage round trips
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
    return RuntimeEstimate(fit_s, per_trial, n_trials, total)


# -------------------------------------------------------------------------------- study page
def trials_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials frame for people: number, state, value, std, duration, reason, params."""
    params = [c for c in frame.columns if c.startswith("params_")]
    out = pd.DataFrame({
        "trial": frame["number"],
        "state": frame["state"],
        "value": frame["value"],
        "cv_std": frame["cv_std"],
        "duration_s": frame["duration_s"],
        "reason": [trial_reason(r) for r in frame.to_dict("records")],
    })
    for column in params:
        values = frame[column]
        out[column[len("params_"):]] = values.map(lambda v: v if not isinstance(v, (list, dict)) else json.dumps(v))
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
        return (f"The dataset file of this study ({name}SHA-256 {ref[:12]}…) is missing from "
                f"{config.datasets_dir()}. The trials below are intact, but refitting and the "
                "reproduce snippet need the data: upload the same file again on the Datasets page.")
    return None


def best_params_frame(params: Mapping[str, Any]) -> pd.DataFrame:
    """Best hyperparameters as a two-column table (values shown as text)."""
    return pd.DataFrame({"hyperparameter": list(params),
                         "value": [_choice_text(v) for v in params.values()]})


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
    """Default values of the New study form (the spec defaults with a small budget)."""
    return {"strategy": "tpe", "n_trials": 20, "timeout": None, "folds": 5, "repeats": 1,
            "test_size": 0.2, "seed": 0, "pruner": "none", "workers": 1, "grid_points": 5,
            "metric": "auto", "task": "auto"}


def dataset_choices(storage: str | None = None) -> dict[str, str]:
    """Dataset references for the pickers -> display label: samples then stored uploads."""
    out = {ref: f"{ref.split(':', 1)[1]} (sample) — {desc}" for ref, desc in datasets.SAMPLES.items()}
    for row in Catalogue(config.catalogue_path(storage)).list_datasets():
        out[row["sha256"]] = f"{row['name']} ({row['filename']}, {row['n_rows']} rows)"
    return out


def default_target(columns: list[str]) -> str | None:
    """The likely target column: ``target``/``label``/``y``/``class``, else the last one."""
    lowered = {c.lower(): c for c in map(str, columns)}
    for guess in ("target", "label", "y", "class", "species", "outcome"):
        if guess in lowered:
            return lowered[guess]
    return str(columns[-1]) if len(columns) else None
