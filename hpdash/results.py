"""Trials of a study as a tidy pandas frame, and a summary of the study.

Everything downstream (plots, reports, pages) reads trials through this module, so the frame's
columns are a contract. The frame has one row per trial that is not WAITING (WAITING trials are
hpdash's unused budget slots), sorted by trial number.

This version reads through Optuna's public API (``study.get_trials(deepcopy=False)``); a faster
raw-SQL reader can replace ``_read_trials`` later without changing the frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

PARAM_PREFIX = "params_"

#: The fixed columns of ``trials_frame``, in order; ``params_<name>`` columns follow them.
BASE_COLUMNS: list[str] = [
    "number",
    "state",
    "value",
    "datetime_start",
    "datetime_complete",
    "duration_s",
    "elapsed_s",
    "best_so_far",
    "is_best",
    "cv_std",
    "fit_time",
    "score_time",
    "fold_scores",
    "fail_reason",
    "pruned_at_fold",
]

_DTYPES: dict[str, str] = {
    "number": "int64",
    "state": "str",
    "value": "float64",
    "datetime_start": "datetime64[us]",
    "datetime_complete": "datetime64[us]",
    "duration_s": "float64",
    "elapsed_s": "float64",
    "best_so_far": "float64",
    "is_best": "bool",
    "cv_std": "float64",
    "fit_time": "float64",
    "score_time": "float64",
    "fold_scores": "object",
    "fail_reason": "object",
    "pruned_at_fold": "Int64",
}


def _direction(study: optuna.Study) -> str:
    """``"maximize"`` or ``"minimize"`` (hpdash studies are single objective)."""
    return "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"


def _read_trials(study: optuna.Study) -> list[FrozenTrial]:
    """All trials except WAITING ones, by number."""
    trials = study.get_trials(deepcopy=False)
    return sorted(
        (t for t in trials if t.state != TrialState.WAITING), key=lambda t: t.number
    )


def _float_or_nan(value: Any) -> float:
    """``float(value)``, or NaN when the attribute is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fold_scores(trial: FrozenTrial) -> list[float] | None:
    scores = trial.user_attrs.get("fold_scores")
    if isinstance(scores, list):
        return [_float_or_nan(s) for s in scores]
    return None


def _record(trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    complete = trial.state == TrialState.COMPLETE
    pruned_at = attrs.get("pruned_at_fold")
    fail_reason = attrs.get("fail_reason")
    record: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": float(trial.value) if complete and trial.value is not None else math.nan,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "cv_std": _float_or_nan(attrs.get("cv_std")),
        "fit_time": _float_or_nan(attrs.get("fit_time")),
        "score_time": _float_or_nan(attrs.get("score_time")),
        "fold_scores": _fold_scores(trial),
        "fail_reason": None if fail_reason is None else str(fail_reason),
        "pruned_at_fold": int(pruned_at) if isinstance(pruned_at, (int, float)) else None,
    }
    for name, value in trial.params.items():
        record[PARAM_PREFIX + name] = value
    return record


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=_DTYPES[c]) for c in BASE_COLUMNS})


def running_best(values: pd.Series, direction: str) -> pd.Series:
    """Best value so far along ``values`` (NaN entries are skipped, then carried over).

    Entries before the first non-NaN value stay NaN. ``direction`` is ``"maximize"`` or
    ``"minimize"``.
    """
    values = values.astype("float64")
    best = values.cummax() if direction == "maximize" else values.cummin()
    return best.ffill()


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per non-WAITING trial of ``study``, sorted by number (columns: ``BASE_COLUMNS``
    then ``params_<name>`` sorted by name, as in Optuna's ``trials_dataframe``).

    ``value`` is NaN unless COMPLETE; ``elapsed_s`` counts from the earliest trial start to
    this trial's completion; ``best_so_far`` is the running best over COMPLETE trials in
    number order; ``is_best`` marks the study's best trial (the lowest number reaching the best
    value). Conditional params that a trial did not use are NaN.
    """
    direction = _direction(study)
    trials = _read_trials(study)
    if not trials:
        return _empty_frame()

    frame = pd.DataFrame.from_records([_record(t) for t in trials])
    for column in ("datetime_start", "datetime_complete"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    frame["duration_s"] = (
        frame["datetime_complete"] - frame["datetime_start"]
    ).dt.total_seconds()
    t0 = frame["datetime_start"].min()
    frame["elapsed_s"] = (frame["datetime_complete"] - t0).dt.total_seconds()
    frame["best_so_far"] = running_best(frame["value"], direction)
    frame["is_best"] = False
    if frame["value"].notna().any():
        best_index = (
            frame["value"].idxmax() if direction == "maximize" else frame["value"].idxmin()
        )
        frame.loc[best_index, "is_best"] = True

    for column in BASE_COLUMNS:
        if column not in frame.columns:  # e.g. no trial has any user attrs yet
            frame[column] = pd.Series([None] * len(frame), dtype="object")
    frame = frame.astype({c: _DTYPES[c] for c in BASE_COLUMNS if c not in ("state",)})
    # pandas turns missing lists / strings into NaN; the contract says None.
    for column in ("fold_scores", "fail_reason"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)

    params = sorted(c for c in frame.columns if c.startswith(PARAM_PREFIX))
    return frame[BASE_COLUMNS + params].reset_index(drop=True)


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The ``params_<name>`` columns of a trials frame, in frame order."""
    return [c for c in frame.columns if str(c).startswith(PARAM_PREFIX)]


def param_column(frame: pd.DataFrame, param: str) -> str:
    """The frame column for ``param``, given as ``name`` or ``params_name``.

    Raises ``KeyError`` when the frame has no such column.
    """
    for candidate in (PARAM_PREFIX + param, param):
        if candidate.startswith(PARAM_PREFIX) and candidate in frame.columns:
            return candidate
    raise KeyError(f"No hyperparameter column for {param!r}")


def param_name(column: str) -> str:
    """``params_max_depth`` -> ``max_depth`` (other strings unchanged)."""
    return column[len(PARAM_PREFIX) :] if column.startswith(PARAM_PREFIX) else column


def log_params(study: optuna.Study) -> set[str]:
    """Names of the params sampled on a log scale in any trial (for plot axes)."""
    names: set[str] = set()
    for trial in study.get_trials(deepcopy=False):
        for name, dist in trial.distributions.items():
            if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
                names.add(name)
    return names


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Counts by state, the best trial and the direction of ``study``.

    Keys: n_trials (non-WAITING), n_complete, n_pruned, n_fail, n_running, n_waiting,
    best_value, best_params, best_trial_number (None / {} when nothing is COMPLETE),
    direction ("maximize"/"minimize") and metric (from the ``hpdash.spec`` user attr, or None).
    The best trial is the lowest-numbered COMPLETE trial with the best value, the same one
    ``trials_frame`` marks with ``is_best``.
    """
    direction = _direction(study)
    counts = {state: 0 for state in TrialState}
    best: FrozenTrial | None = None
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        counts[trial.state] += 1
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        if math.isnan(trial.value):
            continue
        if (
            best is None
            or (direction == "maximize" and trial.value > best.value)  # type: ignore[operator]
            or (direction == "minimize" and trial.value < best.value)  # type: ignore[operator]
        ):
            best = trial
    spec = study.user_attrs.get("hpdash.spec")
    metric = spec.get("metric") if isinstance(spec, dict) else None
    return {
        "n_trials": sum(n for state, n in counts.items() if state != TrialState.WAITING),
        "n_complete": counts[TrialState.COMPLETE],
        "n_pruned": counts[TrialState.PRUNED],
        "n_fail": counts[TrialState.FAIL],
        "n_running": counts[TrialState.RUNNING],
        "n_waiting": counts[TrialState.WAITING],
        "best_value": None if best is None else float(best.value),  # type: ignore[arg-type]
        "best_params": {} if best is None else dict(best.params),
        "best_trial_number": None if best is None else best.number,
        "direction": direction,
        "metric": metric,
    }


def fold_scores_frame(trial: FrozenTrial) -> pd.DataFrame:
    """Per-fold CV scores of one trial: columns ``fold`` (int, from 0) and ``score``.

    Uses the ``fold_scores`` user attr; a trial without it (e.g. pruned before the runner
    stored it) falls back to its intermediate values, where step k is fold k.
    """
    scores = _fold_scores(trial)
    pairs: Iterable[tuple[int, float]]
    if scores is not None:
        pairs = enumerate(scores)
    else:
        pairs = sorted((int(k), float(v)) for k, v in trial.intermediate_values.items())
    rows = list(pairs)
    return pd.DataFrame(
        {
            "fold": pd.Series([r[0] for r in rows], dtype="int64"),
            "score": pd.Series([r[1] for r in rows], dtype="float64"),
        }
    )
