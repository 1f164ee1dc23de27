"""The Home and Studies pages' data: every study's row in one batch read, filters, names, quick starts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import optuna
import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import datasets, results, runner
from hpdash.spec import NAME_PATTERN, StudySpec, parse_spec
from hpdash.storage import open_storage
from hpdash.store import Catalogue
from hpdash.views.formatting import dataset_label, model_label

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
    catalogue = Catalogue(storage=storage)
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
    catalogue = Catalogue(storage=storage)
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
