"""The Study page's data: the trials table, failure reasons, the best trial and its reproduce snippet."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import optuna
import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import cluster, config, datasets, objective, runner, space
from hpdash.errors import HpdashError, SpecError
from hpdash.store import Catalogue
from hpdash.views.formatting import format_value, round_significant


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


#: The columns of the Study page's table of cluster workers.
CLUSTER_WORKER_COLUMNS = ["Dask worker", "address", "host", "pid", "status", "trials"]


def cluster_workers_frame(attrs: Mapping[str, Any]) -> pd.DataFrame:
    """The study's workers that ran on a Dask cluster (``cluster.cluster_workers``), one row
    each: the Dask worker's name and address, the worker process's host and pid, its status
    (``running`` while it beats, ``lost`` when a running worker stopped beating, else how it
    ended: done, stopped, failed) and the trials it finished (known once it ended)."""
    rows = []
    for worker in cluster.cluster_workers(attrs):
        status = "running" if worker["alive"] else str(worker.get("status") or "")
        if not worker["alive"] and "ended" not in worker:
            status = "lost"
        rows.append(
            {
                "Dask worker": str(worker.get("dask_worker") or ""),
                "address": str(worker.get("dask_address") or ""),
                "host": str(worker.get("host") or ""),
                "pid": int(worker.get("pid") or 0),
                "status": status,
                "trials": worker.get("trials"),
            }
        )
    return pd.DataFrame(rows, columns=CLUSTER_WORKER_COLUMNS)


def warm_start_note(attrs: Mapping[str, Any]) -> str | None:
    """What a warm-started study was seeded from, in words (None for a cold start)."""
    record = attrs.get(study_attrs.WARM_START)
    if not record:
        return None
    taken = ", ".join(str(n) for n in record["trials"])
    note = f"Warm-started from {len(record['trials'])} of the best trials of study {record['study']!r} (trials {taken})"
    skipped = record.get("skipped") or []
    if skipped:
        note += f"; {len(skipped)} skipped as outside this space"
    return note + ". They ran first and count in the budget."
