"""Trials of a study as a tidy pandas frame, and a summary of the study.

Everything downstream (plots, reports, pages) reads trials through this module, so the frame's
columns are a contract. The frame has one row per trial that is not WAITING (WAITING trials are
hpdash's unused budget slots), sorted by trial number.

Two readers produce the same frame:

- the fast reader (RDB storages: SQLite, PostgreSQL) reads Optuna's tables directly through
  SQLAlchemy Core, a handful of set-based queries per study instead of building a
  ``FrozenTrial`` per trial. It understands one Optuna schema version
  (``OPTUNA_SCHEMA_VERSION`` in ``version_info`` and ``OPTUNA_ALEMBIC_REVISION`` in
  ``alembic_version``); on any other version it warns (``UnknownSchemaWarning``) and falls back;
- the Optuna API reader (``study.get_trials``), used for in-memory/journal storages and as
  the fallback.

``TrialsCache`` keeps the frame of one study and re-reads only trials that are new or were
not finished at the previous poll, for the live study page; its ``progress`` is
``study_progress`` for that frame, so the page's live header does not query the whole study.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import optuna
import pandas as pd
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpdash import attrs as study_attrs
from hpdash.progress import StudyProgress, StudySummary
from hpdash.runtime import gc_paused
from hpdash.storage import (
    OPTUNA_ALEMBIC_REVISION,
    OPTUNA_SCHEMA_VERSION,
    is_pinned_schema,
    rdb_backend,
    schema_version,
    snapshot,
    study_id,
    unwrap_rdb,
)

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
    return sorted((t for t in trials if t.state != TrialState.WAITING), key=lambda t: t.number)


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


@gc_paused()
def trials_frame(study: optuna.Study, *, fast: bool = True) -> pd.DataFrame:
    """One row per non-WAITING trial of ``study``, sorted by number (columns: ``BASE_COLUMNS``
    then ``params_<name>`` sorted by name, as in Optuna's ``trials_dataframe``).

    ``value`` is NaN unless COMPLETE; ``elapsed_s`` counts from the earliest trial start to
    this trial's completion; ``best_so_far`` is the running best over COMPLETE trials in
    number order; ``is_best`` marks the study's best trial (the lowest number reaching the best
    value). Conditional params that a trial did not use are NaN.

    On an RDB storage with the pinned Optuna schema this reads the tables directly (fast path);
    otherwise (or with ``fast=False``) it goes through Optuna's API. Both give the same frame.
    """
    source = _trial_source(study) if fast else _ApiTrials(study)
    return _finalize(source.base_frame(), _direction(study))


def _finalize(base: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Derived columns, dtypes and column order of ``trials_frame`` from the per-trial columns."""
    if base.empty:
        return _empty_frame()
    frame = base.drop(columns=["trial_id"], errors="ignore")
    frame = frame.sort_values("number", kind="stable").reset_index(drop=True)
    for column in ("datetime_start", "datetime_complete"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    frame["duration_s"] = (frame["datetime_complete"] - frame["datetime_start"]).dt.total_seconds()
    t0 = frame["datetime_start"].min()
    frame["elapsed_s"] = (frame["datetime_complete"] - t0).dt.total_seconds()
    frame["best_so_far"] = running_best(frame["value"], direction)
    frame["is_best"] = False
    if frame["value"].notna().any():
        best_index = frame["value"].idxmax() if direction == "maximize" else frame["value"].idxmin()
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
    return column.removeprefix(PARAM_PREFIX)


def log_params(study: optuna.Study) -> set[str]:
    """Names of the params sampled on a log scale in any trial (for plot axes)."""
    return _trial_source(study).log_params()


def _is_log(dist: BaseDistribution) -> bool:
    return isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log


def study_summary(study: optuna.Study) -> StudySummary:
    """Counts by state, the best trial and the direction of ``study`` (a ``StudySummary``;
    ``metric`` comes from the ``hpdash.spec`` user attr, or None).

    The best trial is the lowest-numbered COMPLETE trial with the best value, the same one
    ``trials_frame`` marks with ``is_best``.
    """
    direction = _direction(study)
    counts, best = _trial_source(study).counts_and_best(direction)
    return StudySummary.from_counts(
        counts,
        best_value=None if best is None else best.value,
        best_params={} if best is None else best.params,
        best_trial_number=None if best is None else best.number,
        direction=direction,
        metric=_spec_metric(study),
    )


def _spec_metric(study: optuna.Study) -> str | None:
    """The metric named in the study's spec (None for a study hpdash did not create)."""
    metric = study_attrs.spec_of(study.user_attrs).get("metric")
    return None if metric is None else str(metric)


STOPPED_REASON_PREFIX = "stopped by the user"


def study_progress(study: optuna.Study) -> StudyProgress:
    """What a progress header needs, cheaply: ``study_summary`` plus ``n_replaced`` and the
    time span (see ``StudyProgress``). On an RDB storage this is a few aggregate queries,
    independent of the study's size; otherwise it reads the trials.
    """
    summary = study_summary(study)
    n_replaced, first, last = _trial_source(study).replaced_and_span()
    return StudyProgress.from_summary(summary, n_replaced=n_replaced, first_start=first, last_complete=last)


def progress_of_studies(storage: Any) -> dict[str, StudyProgress] | None:
    """``study_progress``'s counts, best value and time span for every study of ``storage``
    at once, by study name: a fixed number of grouped queries whatever the number of studies
    (the studies table and the home page show every study). None when the fast reader cannot
    read this storage; callers then ask ``study_progress`` study by study.

    Each value is a ``StudyProgress`` without ``best_params``, ``best_trial_number`` and
    ``metric`` (None: only the study page shows them).
    """
    backend = unwrap_rdb(storage)
    if backend is None or not schema_supported(backend.engine):
        return None
    studies = "SELECT study_id, study_name FROM studies"
    with backend.engine.connect() as conn:
        names: dict[int, str] = dict(conn.execute(sqlalchemy.text(studies)).all())
        directions: dict[int, str] = dict(
            conn.execute(sqlalchemy.text("SELECT study_id, direction FROM study_directions WHERE objective = 0")).all()
        )
        counts = conn.execute(
            sqlalchemy.text("SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state")
        ).all()
        values = conn.execute(
            sqlalchemy.text(
                "SELECT t.study_id, v.value_type, MAX(v.value), MIN(v.value) FROM trials t "
                "JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 "
                "WHERE t.state = 'COMPLETE' GROUP BY t.study_id, v.value_type"
            )
        ).all()
        retries = conn.execute(
            sqlalchemy.text(
                "SELECT t.study_id, COUNT(DISTINCT a.value_json) FROM trial_system_attributes a "
                "JOIN trials t ON t.trial_id = a.trial_id WHERE a.key = 'failed_trial' GROUP BY t.study_id"
            )
        ).all()
        stopped = conn.execute(
            sqlalchemy.text(
                "SELECT t.study_id, COUNT(*) FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
                "WHERE t.state = 'FAIL' AND a.key = 'fail_reason' AND a.value_json LIKE :prefix GROUP BY t.study_id"
            ),
            {"prefix": f'"{STOPPED_REASON_PREFIX}%'},
        ).all()
        spans = conn.execute(
            sqlalchemy.text(
                "SELECT study_id, MIN(datetime_start), MAX(datetime_complete) FROM trials GROUP BY study_id"
            )
        ).all()
    by_state: dict[int, dict[str, int]] = {sid: {} for sid in names}
    for sid, state, n in counts:
        by_state.setdefault(sid, {})[state] = int(n)
    found: dict[int, dict[str, tuple[Any, Any]]] = {}
    for sid, value_type, high, low in values:
        found.setdefault(sid, {})[value_type] = (high, low)
    replaced = {sid: int(n or 0) for sid, n in retries}
    for sid, n in stopped:
        replaced[sid] = replaced.get(sid, 0) + int(n or 0)
    span = {sid: (first, last) for sid, first, last in spans}
    out = {}
    for sid, name in names.items():
        first, last = span.get(sid, (None, None))
        direction = directions.get(sid)
        summary = StudySummary.from_counts(
            by_state.get(sid, {}),
            best_value=_best_of(found.get(sid, {}), direction),
            best_params=None,
            best_trial_number=None,
            direction="maximize" if _maximizes(direction) else "minimize",
            metric=None,
        )
        out[name] = StudyProgress.from_summary(
            summary, n_replaced=replaced.get(sid, 0), first_start=_utc(first), last_complete=_utc(last)
        )
    return out


def _maximizes(direction: Any) -> bool:
    """Whether a ``study_directions`` value (an enum name, or ``StudyDirection`` on
    PostgreSQL) is MAXIMIZE."""
    return str(direction).upper().endswith("MAXIMIZE")


def _best_of(found: dict[str, tuple[Any, Any]], direction: Any) -> float | None:
    """The best COMPLETE value from the per-``value_type`` (max, min) of a study's values."""
    if not found:
        return None
    maximize = _maximizes(direction)
    best_inf, worst_inf = ("INF_POS", "INF_NEG") if maximize else ("INF_NEG", "INF_POS")
    if best_inf in found:
        return _stored_value(None, best_inf)
    if "FINITE" in found:
        high, low = found["FINITE"]
        return float(high if maximize else low)
    if worst_inf in found:
        return _stored_value(None, worst_inf)
    return None


def _utc(value: Any) -> datetime.datetime | None:
    """A timestamp from Optuna's tables (naive UTC, or ISO text on SQLite) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


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


# ============================================================================================
# Fast reader: Optuna's RDB tables through SQLAlchemy Core
# ============================================================================================

# The Optuna RDB schema the fast reader understands: ``storage.OPTUNA_SCHEMA_VERSION`` and
# ``storage.OPTUNA_ALEMBIC_REVISION``. Any other version -> warning + Optuna API fallback.

#: Trial user attrs that ``trials_frame`` uses (the others are not read on the fast path).
_FRAME_ATTRS = ("cv_std", "fit_time", "score_time", "fold_scores", "fail_reason", "pruned_at_fold")
_NUMERIC_ATTRS = ("cv_std", "fit_time", "score_time")
_ID_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's limits


class UnknownSchemaWarning(UserWarning):
    """The storage's Optuna schema is not the pinned one: hpdash reads it through Optuna's API."""


_schema_checked: weakref.WeakKeyDictionary[sqlalchemy.engine.Engine, bool] = weakref.WeakKeyDictionary()
_schema_lock = threading.Lock()


#: The ``RDBStorage`` behind a study, or None (``hpdash.storage.rdb_backend``).
rdb_storage = rdb_backend


def schema_supported(engine: sqlalchemy.engine.Engine) -> bool:
    """Whether the fast reader understands this storage (checked once per engine; warns if not)."""
    with _schema_lock:
        if engine in _schema_checked:
            return _schema_checked[engine]
    schema, revision = schema_version(engine)
    ok = is_pinned_schema((schema, revision))
    if not ok:
        warnings.warn(
            f"The study storage has Optuna schema {schema} / revision {revision}; hpdash's fast "
            f"reader understands {OPTUNA_SCHEMA_VERSION} / {OPTUNA_ALEMBIC_REVISION}. Reading "
            "trials through Optuna's API instead (slower on large studies).",
            UnknownSchemaWarning,
            stacklevel=3,
        )
    with _schema_lock:
        _schema_checked[engine] = ok
    return ok


def _fast_source(study: optuna.Study) -> tuple[sqlalchemy.engine.Engine, int] | None:
    """(engine, study_id) when the fast reader can read ``study``, else None."""
    storage = rdb_storage(study)
    if storage is None or not schema_supported(storage.engine):
        return None
    return storage.engine, study_id(study)


# ============================================================================================
# Where a study's trials are read from: chosen once per study by ``_trial_source``
# ============================================================================================


class _Best(NamedTuple):
    value: float
    number: int
    params: dict[str, Any]


class _ApiTrials:
    """A study's trials through Optuna's API: any storage, one ``FrozenTrial`` per trial."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def base_frame(self) -> pd.DataFrame:
        """The per-trial columns of ``trials_frame`` (before the derived ones)."""
        trials = _read_trials(self.study)
        if not trials:
            return pd.DataFrame()
        return pd.DataFrame.from_records([_record(t) for t in trials])

    def counts_and_best(self, direction: str) -> tuple[dict[str, int], _Best | None]:
        counts = {state.name: 0 for state in TrialState}
        best: FrozenTrial | None = None
        for trial in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            counts[trial.state.name] += 1
            if trial.state != TrialState.COMPLETE or trial.value is None or math.isnan(trial.value):
                continue
            if (
                best is None
                or (direction == "maximize" and trial.value > best.value)  # type: ignore[operator]
                or (direction == "minimize" and trial.value < best.value)  # type: ignore[operator]
            ):
                best = trial
        if best is None:
            return counts, None
        return counts, _Best(float(best.value), best.number, dict(best.params))  # type: ignore[arg-type]

    def replaced_and_span(self) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
        """``n_replaced``, the first start and the last completion (aware UTC)."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
        replaced = sum(
            1
            for t in trials
            if t.state == TrialState.FAIL
            and (t.number in retried or str(t.user_attrs.get("fail_reason", "")).startswith(STOPPED_REASON_PREFIX))
        )
        starts = [t.datetime_start.astimezone(UTC) for t in trials if t.datetime_start]
        ends = [t.datetime_complete.astimezone(UTC) for t in trials if t.datetime_complete]
        return replaced, min(starts, default=None), max(ends, default=None)

    def log_params(self) -> set[str]:
        names: set[str] = set()
        for trial in self.study.get_trials(deepcopy=False):
            names.update(name for name, dist in trial.distributions.items() if _is_log(dist))
        return names

    def completed_count(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def completed_trials(self) -> list[FrozenTrial]:
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return sorted(trials, key=lambda t: t.number)

    def trials_dataframe(self, attrs: tuple[str, ...], include_intermediate: bool) -> pd.DataFrame:
        return self.study.trials_dataframe(attrs=attrs)


class _SqlTrials:
    """A study's trials read from Optuna's RDB tables directly (the fast reader)."""

    def __init__(self, engine: sqlalchemy.engine.Engine, study_id: int) -> None:
        self.engine = engine
        self.study_id = study_id

    def base_frame(self) -> pd.DataFrame:
        return _base_from_raw(read_raw(self.engine, self.study_id))

    def counts_and_best(self, direction: str) -> tuple[dict[str, int], _Best | None]:
        """Three small queries: counts by state, the best COMPLETE trial, its params."""
        order = "DESC" if direction == "maximize" else "ASC"
        sid = {"sid": self.study_id}
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    sqlalchemy.text("SELECT state, COUNT(*) FROM trials WHERE study_id = :sid GROUP BY state"), sid
                ).all()
            )
            best = conn.execute(
                sqlalchemy.text(
                    "SELECT t.trial_id, t.number, v.value, v.value_type FROM trials t "
                    "JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 "
                    "WHERE t.study_id = :sid AND t.state = 'COMPLETE' "
                    "ORDER BY CASE v.value_type WHEN 'INF_NEG' THEN -1 WHEN 'INF_POS' THEN 1 "
                    f"ELSE 0 END {order}, v.value {order}, t.number ASC LIMIT 1"
                ),
                sid,
            ).first()
        if best is None:
            return counts, None
        raw = read_raw(self.engine, self.study_id, [best[0]], user_attr_keys=())
        params = {name: _distribution(dj).to_external_repr(v) for _, name, v, dj in raw.param_rows()}
        return counts, _Best(_stored_value(best[2], best[3]), int(best[1]), params)

    def replaced_and_span(self) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
        sid = {"sid": self.study_id}
        with self.engine.connect() as conn:
            retries = conn.execute(
                sqlalchemy.text(
                    "SELECT COUNT(DISTINCT a.value_json) FROM trial_system_attributes a "
                    "JOIN trials t ON t.trial_id = a.trial_id "
                    "WHERE t.study_id = :sid AND a.key = 'failed_trial'"
                ),
                sid,
            ).scalar()
            stopped = conn.execute(
                sqlalchemy.text(
                    "SELECT COUNT(*) FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
                    "WHERE t.study_id = :sid AND t.state = 'FAIL' AND a.key = 'fail_reason' "
                    "AND a.value_json LIKE :prefix"
                ),
                {**sid, "prefix": f'"{STOPPED_REASON_PREFIX}%'},
            ).scalar()
            first, last = conn.execute(
                sqlalchemy.text("SELECT MIN(datetime_start), MAX(datetime_complete) FROM trials WHERE study_id = :sid"),
                sid,
            ).one()
        return int(retries or 0) + int(stopped or 0), _utc(first), _utc(last)

    def log_params(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT DISTINCT p.param_name, p.distribution_json FROM trial_params p "
                    "JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :sid"
                ),
                {"sid": self.study_id},
            ).all()
        return {name for name, dist_json in rows if _is_log(_distribution(dist_json))}

    def completed_count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sqlalchemy.text("SELECT COUNT(*) FROM trials WHERE study_id = :sid AND state = 'COMPLETE'"),
                    {"sid": self.study_id},
                ).scalar()
                or 0
            )

    def completed_trials(self) -> list[FrozenTrial]:
        return _completed_from_raw(read_raw(self.engine, self.study_id, user_attr_keys=()))

    def trials_dataframe(self, attrs: tuple[str, ...], include_intermediate: bool) -> pd.DataFrame:
        return _trials_dataframe_sql(self.engine, self.study_id, include_intermediate)


def _trial_source(study: optuna.Study) -> _ApiTrials | _SqlTrials:
    """The fast reader when it can read ``study`` (an RDB storage with the pinned schema),
    else Optuna's API."""
    fast = _fast_source(study)
    return _ApiTrials(study) if fast is None else _SqlTrials(*fast)


@functools.lru_cache(maxsize=4096)
def _distribution(distribution_json: str) -> BaseDistribution:
    return json_to_distribution(distribution_json)


def _local_offset(utc: pd.Timestamp) -> pd.Timedelta:
    """The local UTC offset at a UTC instant, as ``datetime.astimezone()`` (Optuna) sees it."""
    aware = utc.to_pydatetime().replace(tzinfo=UTC).astimezone()
    return pd.Timedelta(aware.utcoffset() or 0).as_unit("us")


def _utc_to_local(values: Sequence[Any]) -> pd.Series:
    """Optuna stores naive UTC and its FrozenTrials carry naive local time: convert the same way.

    Vectorised: the local offset is looked up once per distinct UTC quarter hour (every time
    zone changes its offset on a quarter hour), not once per trial.
    """
    series = pd.to_datetime(pd.Series(list(values), dtype="object"), format="ISO8601")
    series = series.astype("datetime64[us]")
    if series.empty or series.isna().all():
        return series
    quarter = series.dt.floor("15min")
    offsets = {q: _local_offset(q) for q in quarter.dropna().unique()}
    if len({*offsets.values()}) == 1:
        return series + next(iter(offsets.values()))
    return series + quarter.map(offsets)


def _local_to_utc(value: Any) -> datetime.datetime | None:
    """A frame datetime (naive local time, as Optuna's FrozenTrials carry) as aware UTC."""
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime().astimezone(UTC)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), _ID_CHUNK):
        yield ids[i : i + _ID_CHUNK]


def _fetch(conn: sqlalchemy.engine.Connection, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """All rows as plain DBAPI tuples (skips SQLAlchemy's Row objects, a large part of the cost of many rows)."""
    result = conn.execute(stmt, params)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _select(
    conn: sqlalchemy.engine.Connection,
    sql: str,
    study_id: int,
    trial_ids: Sequence[int] | None,
    extra: dict[str, Any] | None = None,
) -> list[Any]:
    """Rows of ``sql`` (which filters ``t.study_id = :sid`` and ends with ``{ids}``) for the whole
    study (``trial_ids`` None) or for those trials only. List-valued ``extra`` params are
    expanded (``IN :name``)."""
    params = {"sid": study_id, **(extra or {})}
    expanding = [k for k, v in params.items() if isinstance(v, (list, tuple))]
    if trial_ids is None:
        stmt = sqlalchemy.text(sql.format(ids=""))
    else:
        stmt = sqlalchemy.text(sql.format(ids=" AND t.trial_id IN :ids"))
        expanding.append("ids")
    if expanding:
        stmt = stmt.bindparams(*(sqlalchemy.bindparam(k, expanding=True) for k in expanding))
    if trial_ids is None:
        return _fetch(conn, stmt, params)
    rows: list[Any] = []
    for chunk in _chunks(trial_ids):
        rows.extend(_fetch(conn, stmt, {**params, "ids": chunk}))
    return rows


@dataclass
class RawTrials:
    """Rows of Optuna's trial tables for some trials of one study (tuples, straight from SQL)."""

    trials: list[Any]  # trial_id, number, state, datetime_start, datetime_complete
    values: list[Any] = field(default_factory=list)  # trial_id, value, value_type (objective 0)
    # trial_id, param_name, param_value[, dist json]: read through ``param_rows``
    params: list[Any] = field(default_factory=list)
    user_attrs: list[Any] = field(default_factory=list)  # trial_id, key, value_json
    system_attrs: list[Any] = field(default_factory=list)  # trial_id, key, value_json
    intermediate: list[Any] = field(default_factory=list)  # trial_id, step, value, value type
    distributions: list[Any] = field(default_factory=list)  # distinct (param_name, dist json)
    # Set when each param name has one distribution: ``params`` rows then leave the JSON out
    # (repeating it on every row costs time for nothing) and this maps name -> distribution JSON.
    param_dists: dict[str, str] | None = None

    def param_rows(self) -> Iterable[tuple[int, str, float, str]]:
        """``params`` as (trial_id, param_name, param_value, distribution JSON) rows."""
        if self.param_dists is None:
            return self.params
        by_name = self.param_dists
        return ((tid, name, value, by_name[name]) for tid, name, value in self.params)


def read_raw(
    engine: sqlalchemy.engine.Engine,
    study_id: int,
    trial_ids: Sequence[int] | None = None,
    *,
    include_waiting: bool = False,
    user_attr_keys: Sequence[str] | None = _FRAME_ATTRS,
    system_attrs: bool = False,
    intermediate: bool = False,
) -> RawTrials:
    """Read trials of a study in one snapshot of the database (``storage.snapshot``).

    ``trial_ids`` limits the read to those trials; ``user_attr_keys`` None reads every user attr.
    """
    waiting = "" if include_waiting else " AND t.state != 'WAITING'"
    keys_sql = "" if user_attr_keys is None else " AND a.key IN :keys"
    with snapshot(engine) as conn:
        trials = _select(
            conn,
            "SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete "
            "FROM trials t WHERE t.study_id = :sid" + waiting + "{ids} ORDER BY t.number",
            study_id,
            trial_ids,
        )
        raw = RawTrials(trials=trials)
        if not trials:
            return raw
        ids = None if trial_ids is None else [r[0] for r in trials]
        raw.values = _select(
            conn,
            "SELECT v.trial_id, v.value, v.value_type FROM trial_values v "
            "JOIN trials t ON t.trial_id = v.trial_id "
            "WHERE t.study_id = :sid AND v.objective = 0" + waiting + "{ids}",
            study_id,
            ids,
        )
        # Distribution JSON is long and usually one per param: fetch it once per param when so.
        dists = _select(
            conn,
            "SELECT DISTINCT p.param_name, p.distribution_json FROM trial_params p "
            "JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :sid" + waiting + "{ids}",
            study_id,
            ids,
        )
        raw.distributions = [tuple(d) for d in dists]
        names = [d[0] for d in dists]
        if len(names) == len(set(names)):
            by_name = dict(dists)
            rows = _select(
                conn,
                "SELECT p.trial_id, p.param_name, p.param_value "
                "FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id "
                "WHERE t.study_id = :sid" + waiting + "{ids} ORDER BY p.param_id",
                study_id,
                ids,
            )
            raw.params, raw.param_dists = rows, by_name
        else:
            raw.params = _select(
                conn,
                "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json "
                "FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id "
                "WHERE t.study_id = :sid" + waiting + "{ids} ORDER BY p.param_id",
                study_id,
                ids,
            )
        if user_attr_keys is None or user_attr_keys:
            sql = (
                "SELECT a.trial_id, a.key, a.value_json FROM trial_user_attributes a "
                "JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = :sid" + waiting + keys_sql + "{ids}"
            )
            extra = None if user_attr_keys is None else {"keys": list(user_attr_keys)}
            raw.user_attrs = _select(conn, sql, study_id, ids, extra)
        if system_attrs:
            raw.system_attrs = _select(
                conn,
                "SELECT a.trial_id, a.key, a.value_json FROM trial_system_attributes a "
                "JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = :sid" + waiting + "{ids}",
                study_id,
                ids,
            )
        if intermediate:
            raw.intermediate = _select(
                conn,
                "SELECT i.trial_id, i.step, i.intermediate_value, i.intermediate_value_type "
                "FROM trial_intermediate_values i JOIN trials t ON t.trial_id = i.trial_id "
                "WHERE t.study_id = :sid" + waiting + "{ids}",
                study_id,
                ids,
            )
    return raw


def _stored_value(value: float | None, value_type: str) -> float:
    if value_type == "INF_POS":
        return math.inf
    if value_type == "INF_NEG":
        return -math.inf
    if value_type == "NAN" or value is None:
        return math.nan
    return float(value)


def _inferred(values: list[Any], index: pd.Index) -> pd.Series:
    """A column with pandas' own inference, as ``DataFrame.from_records`` would make it."""
    return pd.Series(values, index=index)


def _param_groups(raw: RawTrials) -> list[tuple[str, BaseDistribution, np.ndarray, np.ndarray]] | None:
    """``raw.params`` grouped by name: (name, distribution, trial ids, internal values).

    None when some name has more than one distribution in ``raw`` (a space edited on resume:
    ``read_raw`` then leaves ``param_dists`` unset) or a distribution hpdash cannot vectorise:
    the caller then goes row by row. Grouping lets the external values be computed per column
    with NumPy instead of per row in Python, which is much faster on a large study.
    """
    if not raw.params:
        return []
    if raw.param_dists is None:
        return None
    dists = {name: _distribution(dist_json) for name, dist_json in raw.param_dists.items()}
    if not all(isinstance(d, _VECTOR_DISTRIBUTIONS) for d in dists.values()):
        return None
    rows = raw.params
    count = len(rows)
    # map(itemgetter) per column: zip(*rows) is far slower on many rows.
    codes, uniques = pd.factorize(pd.Series(list(map(itemgetter(1), rows)), dtype="object"))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    ids = np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=count)[order]
    internal = np.fromiter(map(itemgetter(2), rows), dtype=np.float64, count=count)[order]
    return [
        (name, dists[name], ids[bounds[k] : bounds[k + 1]], internal[bounds[k] : bounds[k + 1]])
        for k, name in enumerate(uniques)
    ]


_VECTOR_DISTRIBUTIONS = (FloatDistribution, IntDistribution, CategoricalDistribution)


def _external(dist: BaseDistribution, internal: np.ndarray) -> np.ndarray:
    """``dist.to_external_repr`` over an array: float64, int64 or object (categorical)."""
    if isinstance(dist, IntDistribution):
        return internal.astype(np.int64)  # int() truncates toward zero, as astype does
    if isinstance(dist, CategoricalDistribution):
        choices = np.empty(len(dist.choices), dtype="object")
        choices[:] = list(dist.choices)
        return choices[internal.astype(np.int64)]
    return internal


def _param_series(
    raw: RawTrials,
    pos: dict[int, int],
    n: int,
    index: pd.Index,
    types: dict[str, set[type]] | None = None,
) -> dict[str, pd.Series]:
    """``params_<name>`` columns in external representation (NaN where a trial lacks the param).

    ``types`` collects the Python types of the values of each column (for ``TrialsCache``).
    Per column with NumPy (``_param_groups``), else row by row.
    """
    groups = _param_groups(raw)
    if groups is None:
        return _param_series_by_row(raw, pos, n, index, types)
    lookup = pd.Index(np.fromiter(pos.keys(), dtype=np.int64, count=len(pos)))
    rows = np.fromiter(pos.values(), dtype=np.int64, count=len(pos))
    out: dict[str, pd.Series] = {}
    for name, dist, trial_ids, internal in groups:
        where = lookup.get_indexer(trial_ids)
        keep = where >= 0
        if not keep.any():
            continue
        at = rows[where[keep]]
        external = _external(dist, internal[keep])
        if external.dtype == object:
            column = np.full(n, np.nan, dtype="object")
            column[at] = external
            series = _inferred(column.tolist(), index)  # pandas' own inference, as by row
            one_per_choice = np.unique(internal[keep], return_index=True)[1]
            kinds = {type(v) for v in external[one_per_choice]}
        elif external.dtype.kind == "i" and len(at) == n:
            column = np.empty(n, dtype=np.int64)
            column[at] = external
            series = pd.Series(column, index=index)
            kinds = {int}
        else:
            column = np.full(n, np.nan)
            column[at] = external
            series = pd.Series(column, index=index)
            kinds = {int if external.dtype.kind == "i" else float}
        out[PARAM_PREFIX + name] = series
        if types is not None:
            types.setdefault(PARAM_PREFIX + name, set()).update(kinds)
    return out


def _param_series_by_row(
    raw: RawTrials,
    pos: dict[int, int],
    n: int,
    index: pd.Index,
    types: dict[str, set[type]] | None = None,
) -> dict[str, pd.Series]:
    """``_param_series`` one row at a time: any mix of distributions per name."""
    columns: dict[str, list[Any]] = {}
    for trial_id, name, value, dist_json in raw.param_rows():
        i = pos.get(trial_id)
        if i is None:
            continue
        column = columns.get(name)
        if column is None:
            column = columns[name] = [math.nan] * n
        column[i] = external = _distribution(dist_json).to_external_repr(value)
        if types is not None:
            types.setdefault(PARAM_PREFIX + name, set()).add(type(external))
    return {PARAM_PREFIX + name: _inferred(col, index) for name, col in columns.items()}


def _user_attr_series(raw: RawTrials, pos: dict[int, int], n: int, index: pd.Index) -> dict[str, pd.Series]:
    """The user-attr columns of ``trials_frame``, decoded exactly as ``_record`` decodes them."""
    text: dict[str, list[Any]] = {k: [None] * n for k in _FRAME_ATTRS}
    for trial_id, key, value_json in raw.user_attrs:
        row = pos.get(trial_id)
        if row is not None and key in text:
            text[key][row] = value_json
    out: dict[str, pd.Series] = {}
    for key in _NUMERIC_ATTRS:
        strings = pd.Series(text[key], index=index, dtype="object")
        numbers = pd.to_numeric(strings, errors="coerce").astype("float64")
        # JSON that is not a plain number (true, "0.5", null...): decode it like the API path.
        odd = numbers.isna() & strings.notna() & (strings != "NaN")
        for k in np.flatnonzero(odd.to_numpy()):
            numbers.iloc[k] = _float_or_nan(json.loads(strings.iloc[k]))
        out[key] = numbers
    folds: list[Any] = [None] * n
    present = [i for i, v in enumerate(text["fold_scores"]) if v is not None]
    # One json.loads of all of them at once: far fewer Python-level calls than one per trial.
    decoded = json.loads("[" + ",".join(text["fold_scores"][i] for i in present) + "]")
    for i, scores in zip(present, decoded):
        if isinstance(scores, list):
            if all(type(s) is float for s in scores):
                folds[i] = scores
            else:
                folds[i] = [_float_or_nan(s) for s in scores]
    out["fold_scores"] = pd.Series(folds, index=index, dtype="object")
    reasons: list[Any] = [None] * n
    for i, value_json in enumerate(text["fail_reason"]):
        if value_json is not None:
            reason = json.loads(value_json)
            reasons[i] = None if reason is None else str(reason)
    out["fail_reason"] = pd.Series(reasons, index=index, dtype="object")
    pruned: list[Any] = [None] * n
    for i, value_json in enumerate(text["pruned_at_fold"]):
        if value_json is not None:
            at = json.loads(value_json)
            pruned[i] = int(at) if isinstance(at, (int, float)) else None
    out["pruned_at_fold"] = pd.Series(pruned, index=index, dtype="Int64")
    return out


def _base_from_raw(raw: RawTrials, types: dict[str, set[type]] | None = None) -> pd.DataFrame:
    """The per-trial columns of ``trials_frame`` (plus ``trial_id``) from raw rows."""
    if not raw.trials:
        return pd.DataFrame()
    n = len(raw.trials)
    trial_ids = [r[0] for r in raw.trials]
    pos = {tid: i for i, tid in enumerate(trial_ids)}
    index = pd.RangeIndex(n)
    states = [r[2] for r in raw.trials]
    value = np.full(n, np.nan)
    for trial_id, stored, value_type in raw.values:
        i = pos.get(trial_id)
        if i is not None and states[i] == "COMPLETE":
            value[i] = _stored_value(stored, value_type)
    data: dict[str, Any] = {
        "trial_id": pd.Series(trial_ids, index=index, dtype="int64"),
        "number": pd.Series([r[1] for r in raw.trials], index=index, dtype="int64"),
        "state": pd.Series(states, index=index),
        "value": pd.Series(value, index=index),
        "datetime_start": _utc_to_local([r[3] for r in raw.trials]),
        "datetime_complete": _utc_to_local([r[4] for r in raw.trials]),
    }
    data.update(_user_attr_series(raw, pos, n, index))
    data.update(_param_series(raw, pos, n, index, types))
    return pd.DataFrame(data, index=index)


@gc_paused()
def read_trials_dataframe(study: optuna.Study, include_intermediate: bool = True) -> pd.DataFrame:
    """Optuna's ``study.trials_dataframe()`` read by the fast reader, every trial included.

    Columns: number, value, datetime_start, datetime_complete, duration, params_*, user_attrs_*,
    system_attrs_*, intermediate_values_* (with ``include_intermediate``), state; the same
    values as ``study.trials_dataframe(attrs=...)`` with those attrs. Falls back to Optuna's
    API when the storage is not an RDB storage with the pinned schema.
    """
    attrs = [
        "number",
        "value",
        "datetime_start",
        "datetime_complete",
        "duration",
        "params",
        "user_attrs",
        "system_attrs",
    ]
    if include_intermediate:
        attrs.append("intermediate_values")
    attrs.append("state")
    return _trial_source(study).trials_dataframe(tuple(attrs), include_intermediate)


def _trials_dataframe_sql(engine: sqlalchemy.engine.Engine, study_id: int, include_intermediate: bool) -> pd.DataFrame:
    """``read_trials_dataframe`` by the fast reader."""
    raw = read_raw(
        engine,
        study_id,
        include_waiting=True,
        user_attr_keys=None,
        system_attrs=True,
        intermediate=include_intermediate,
    )
    if not raw.trials:
        return pd.DataFrame()
    n = len(raw.trials)
    pos = {r[0]: i for i, r in enumerate(raw.trials)}
    index = pd.RangeIndex(n)
    value: list[Any] = [None] * n
    for trial_id, stored, value_type in raw.values:
        value[pos[trial_id]] = _stored_value(stored, value_type)
    start = _utc_to_local([r[3] for r in raw.trials])
    complete = _utc_to_local([r[4] for r in raw.trials])
    groups: dict[str, dict[str, pd.Series]] = {
        "params": _param_series(raw, pos, n, index),
    }
    for prefix, rows, decode in (
        ("user_attrs_", raw.user_attrs, json.loads),
        ("system_attrs_", raw.system_attrs, json.loads),
    ):
        cols: dict[str, list[Any]] = {}
        for trial_id, key, value_json in rows:
            cols.setdefault(key, [math.nan] * n)[pos[trial_id]] = decode(value_json)
        groups[prefix] = {prefix + k: _inferred(v, index) for k, v in cols.items()}
    if include_intermediate:
        cols_i: dict[int, list[Any]] = {}
        for trial_id, step, stored, value_type in raw.intermediate:
            cols_i.setdefault(int(step), [math.nan] * n)[pos[trial_id]] = _stored_value(stored, value_type)
        groups["intermediate"] = {f"intermediate_values_{k}": _inferred(v, index) for k, v in cols_i.items()}
    data: dict[str, Any] = {
        "number": pd.Series([r[1] for r in raw.trials], index=index),
        "value": _inferred(value, index),
        "datetime_start": start,
        "datetime_complete": complete,
        "duration": complete - start,
    }
    for key in ("params", "user_attrs_", "system_attrs_", "intermediate"):
        if key in groups:
            if key == "intermediate":
                ordered = sorted(groups[key], key=lambda c: int(c.rsplit("_", 1)[1]))
            else:
                ordered = sorted(groups[key])
            data.update({c: groups[key][c] for c in ordered})
    data["state"] = pd.Series([r[2] for r in raw.trials], index=index)
    return pd.DataFrame(data, index=index)


# ============================================================================================
# Incremental reading for live polling
# ============================================================================================

_OPEN_STATES = ("WAITING", "RUNNING")


class TrialsCache:
    """The trials frame of one study for a live page, refreshed by re-reading what changed.

    ``TrialsCache(study)`` picks its reader once: on an RDB storage with the pinned schema it
    is an incremental cache (``_IncrementalTrialsCache``), otherwise this class, which re-reads
    the whole study through Optuna's API on every ``refresh``. Both give ``trials_frame`` of
    the study; ``progress`` gives ``study_progress`` for the same snapshot.

    Not thread-safe: keep one per session (or guard it with a lock).
    """

    def __new__(cls, study: optuna.Study) -> TrialsCache:
        if cls is TrialsCache and _fast_source(study) is not None:
            return super().__new__(_IncrementalTrialsCache)
        return super().__new__(cls)

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.direction = _direction(study)
        self._frame: pd.DataFrame | None = None
        #: Trials (re-)read by the last ``refresh`` (all of them on the first call).
        self.last_changed = 0

    @property
    def incremental(self) -> bool:
        """Whether refreshes read only changes (an RDB storage with the pinned schema)."""
        return False

    def refresh(self) -> pd.DataFrame:
        """The current ``trials_frame`` of the study (equal to ``trials_frame(study)``)."""
        self._frame = trials_frame(self.study)
        self.last_changed = len(self._frame)
        return self._frame

    def log_params(self) -> set[str]:
        """``log_params(study)`` for the trials of the last ``refresh``."""
        return log_params(self.study)

    @property
    def n_complete(self) -> int:
        """COMPLETE trials as of the last ``refresh`` (``completed_count`` of that snapshot)."""
        frame = self._frame if self._frame is not None else self.refresh()
        return int((frame["state"] == "COMPLETE").sum()) if len(frame) else 0

    def completed_trials(self) -> list[FrozenTrial]:
        """``completed_trials(study)`` as of the last ``refresh``. Thread-safe, for a
        background importance computation."""
        frame = self._frame if self._frame is not None else self.refresh()
        numbers = set(frame.loc[frame["state"] == "COMPLETE", "number"].tolist())
        return [t for t in completed_trials(self.study) if t.number in numbers]

    def progress(self) -> StudyProgress:
        """``study_progress(study)`` as of the last ``refresh``."""
        return study_progress(self.study)


class _IncrementalTrialsCache(TrialsCache):
    """``TrialsCache`` on the fast reader: each refresh re-reads only what changed.

    A finished trial (COMPLETE, PRUNED, FAIL) never changes in Optuna, so each ``refresh``
    reads only trials that are new since the previous poll or were WAITING/RUNNING then. The
    poll itself selects ``(trial_id, state)`` from the lowest still-open trial id upwards,
    which for a running study is the few trials at its frontier (for a study that has not
    started, the unused budget slots: two small columns). Params, values and attrs are read
    for the changed trials only. ``progress`` needs no query over the whole study.
    """

    def __init__(self, study: optuna.Study) -> None:
        super().__init__(study)
        fast = _fast_source(study)
        assert fast is not None, "TrialsCache chose the incremental cache for a storage it cannot read"
        self._engine, self._db_study_id = fast
        self._base: pd.DataFrame | None = None  # per-trial columns + trial_id, non-WAITING
        self._open: dict[int, str] = {}  # trial_id -> WAITING / RUNNING at the last poll
        self._max_id = -1
        self._seen_types: dict[str, set[type]] = {}  # param column -> python types of values
        self._retried: set[str] = set()  # distinct ``failed_trial`` system attrs seen (JSON)
        self._retries_read_to = -1  # trial ids up to this one were checked for them
        self._best_params: tuple[int, dict[str, Any]] | None = None  # (trial_id, params)
        self._from_frame: tuple[pd.DataFrame, StudyProgress] | None = None  # (frame, progress)
        self._metric: tuple[str | None] | None = None
        self._distributions: set[tuple[str, str]] = set()  # (param name, JSON) seen by reads
        # COMPLETE trials for importance (``completed_trials``): raw rows read by refreshes and
        # not yet turned into FrozenTrials, and those already built. A COMPLETE trial is never
        # read again, so each one is in exactly one of them.
        self._complete_lock = threading.Lock()
        self._complete_raws: list[RawTrials] = []
        self._complete_built: list[FrozenTrial] = []

    @property
    def incremental(self) -> bool:
        """Whether refreshes read only changes (an RDB storage with the pinned schema)."""
        return True

    def refresh(self) -> pd.DataFrame:
        engine, study_id = self._engine, self._db_study_id
        low = min([self._max_id + 1, *self._open])
        with engine.connect() as conn:
            window = conn.execute(
                sqlalchemy.text("SELECT trial_id, state FROM trials WHERE study_id = :sid AND trial_id >= :low"),
                {"sid": study_id, "low": low},
            ).all()
        changed: list[int] = []
        for trial_id, state in window:
            known = self._open.get(trial_id)
            if trial_id > self._max_id or state == "RUNNING" or (known is not None and known != state):
                changed.append(trial_id)
        for trial_id, state in window:
            if state in _OPEN_STATES:
                self._open[trial_id] = state
            else:
                self._open.pop(trial_id, None)
            self._max_id = max(self._max_id, trial_id)
        self.last_changed = len(changed)
        if self._frame is not None and not changed:
            return self._frame
        read_ids = [t for t in changed if self._open.get(t) != "WAITING"]
        if self._base is None:
            # The full read only: a poll's few rows gain nothing, and pauses that overlap
            # across many polling sessions would keep the collector off.
            with gc_paused():
                raw = read_raw(engine, study_id)
                self._base = _base_from_raw(raw, self._seen_types)
                self._keep_rows(raw)
        elif read_ids:
            raw = read_raw(engine, study_id, read_ids)
            piece = _base_from_raw(raw, self._seen_types)
            self._base = self._merge(self._base, piece)
            self._keep_rows(raw)
        self._frame = _finalize(self._base, self.direction)
        return self._frame

    def _keep_rows(self, raw: RawTrials) -> None:
        """Keep the rows ``completed_trials`` needs (references only: no work on the poll),
        and the distributions for ``log_params``."""
        self._distributions.update(raw.distributions)
        if any(r[2] == "COMPLETE" for r in raw.trials):
            with self._complete_lock:
                self._complete_raws.append(RawTrials(raw.trials, raw.values, raw.params, param_dists=raw.param_dists))

    def log_params(self) -> set[str]:
        """``log_params(study)`` for the trials of the last ``refresh``, from the distributions
        its reads already fetched (no query: otherwise the page would scan every param row
        after every change)."""
        if self._frame is None:
            self.refresh()
        return {name for name, dist_json in self._distributions if _is_log(_distribution(dist_json))}

    @gc_paused()
    def completed_trials(self) -> list[FrozenTrial]:
        """``completed_trials(study)`` as of the last ``refresh``, without reading the study
        again: built from the rows the refreshes read (on first use, then only the trials
        that completed since). Thread-safe, for a background importance computation.
        """
        if self._frame is None:
            self.refresh()
        with self._complete_lock:
            raws, self._complete_raws = self._complete_raws, []
            if raws:
                for raw in raws:
                    self._complete_built.extend(_completed_from_raw(raw))
                self._complete_built.sort(key=lambda t: t.number)
            return list(self._complete_built)

    def progress(self) -> StudyProgress:
        """``study_progress(study)`` as of the last ``refresh`` (which runs first if it never did),
        without a query over the whole study.

        Counts, the best trial and the time span come from the cached frame; WAITING slots are
        the open trials the poll tracks; ``n_replaced`` needs the ``failed_trial`` system attrs
        (heartbeat retries), which are read only for trials that are new since the previous
        call (a retry slot is created with its attrs in one transaction). The best trial's
        params are read once per best trial.
        """
        frame = self._frame if self._frame is not None else self.refresh()
        engine, study_id = self._engine, self._db_study_id
        if self._max_id > self._retries_read_to:
            high = self._max_id  # the trials this frame knows: same snapshot as the counts
            with engine.connect() as conn:
                rows = conn.execute(
                    sqlalchemy.text(
                        "SELECT a.value_json FROM trial_system_attributes a "
                        "JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = :sid "
                        "AND t.trial_id > :low AND t.trial_id <= :high AND a.key = 'failed_trial'"
                    ),
                    {"sid": study_id, "low": self._retries_read_to, "high": high},
                ).all()
            self._retried.update(row[0] for row in rows)
            self._retries_read_to = high
        if self._from_frame is None or self._from_frame[0] is not frame:
            self._from_frame = (frame, self._frame_progress(frame))
        progress = self._from_frame[1]
        return dataclasses.replace(
            progress,
            best_params=dict(progress.best_params or {}),
            n_waiting=sum(1 for state in self._open.values() if state == "WAITING"),
            n_replaced=progress.n_replaced + len(self._retried),
        )

    def _frame_progress(self, frame: pd.DataFrame) -> StudyProgress:
        """The part of ``progress`` that depends on the frame only (computed once per frame):
        WAITING slots (not in the frame) and heartbeat retries are left to ``progress``."""
        engine, study_id = self._engine, self._db_study_id
        counts = {str(state): int(n) for state, n in frame["state"].value_counts().items()}
        failed = frame["fail_reason"].to_numpy()[(frame["state"] == "FAIL").to_numpy()]
        stopped = sum(1 for r in failed if isinstance(r, str) and r.startswith(STOPPED_REASON_PREFIX))
        best = np.flatnonzero(frame["is_best"].to_numpy())
        best_number = int(frame["number"].iat[best[0]]) if len(best) else None
        best_params: dict[str, Any] = {}
        if best_number is not None and self._base is not None:
            numbers = self._base["number"].to_numpy()
            trial_id = int(self._base["trial_id"].to_numpy()[numbers == best_number][0])
            if self._best_params is None or self._best_params[0] != trial_id:
                raw = read_raw(engine, study_id, [trial_id], user_attr_keys=())
                self._best_params = (
                    trial_id,
                    {name: _distribution(dj).to_external_repr(v) for _, name, v, dj in raw.param_rows()},
                )
            best_params = self._best_params[1]
        metric = self._metric
        if metric is None:
            spec = self.study.user_attrs.get(study_attrs.SPEC)
            metric = (spec.get("metric") if isinstance(spec, dict) else None,)
            if isinstance(spec, dict):
                self._metric = metric  # the spec is written once, when the study is created
        summary = StudySummary.from_counts(
            counts,
            best_value=float(frame["value"].iat[best[0]]) if len(best) else None,
            best_params=best_params,
            best_trial_number=best_number,
            direction=self.direction,
            metric=metric[0],
        )
        return StudyProgress.from_summary(
            summary,
            n_replaced=stopped,
            first_start=_local_to_utc(frame["datetime_start"].min()),
            last_complete=_local_to_utc(frame["datetime_complete"].max()),
        )

    def _merge(self, base: pd.DataFrame, piece: pd.DataFrame) -> pd.DataFrame:
        """``base`` with ``piece``'s trials replaced or added, dtypes as a full read gives them."""
        if base.empty:
            return piece
        if piece.empty:
            return base
        kept = base.loc[~base["trial_id"].isin(piece["trial_id"])]
        merged = pd.concat([kept, piece], ignore_index=True)
        merged = merged.sort_values("number", kind="stable").reset_index(drop=True)
        for column in param_columns(merged):
            merged[column] = self._reinfer(merged[column], column)
        return merged

    def _reinfer(self, series: pd.Series, column: str) -> pd.Series:
        """The dtype a full read would infer (concat keeps a wider one, e.g. int -> float)."""
        types = self._seen_types.get(column, set())
        if series.dtype == "object":
            return pd.Series(series.tolist(), index=series.index)
        only_ints = bool(types) and all(issubclass(t, (int, np.integer)) and not issubclass(t, bool) for t in types)
        if series.dtype == "float64" and only_ints and not series.isna().any():
            return series.astype("int64")
        return series


# ============================================================================================
# COMPLETE trials as FrozenTrials (for optuna.importance) and a study-like view over them
# ============================================================================================


def completed_count(study: optuna.Study) -> int:
    """Number of COMPLETE trials (one COUNT on the fast path): the importance cache key."""
    return _trial_source(study).completed_count()


@gc_paused()
def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials with params, distributions and value (no attrs), by number.

    On the fast path these are built from one read of the params and values tables, and trials
    share their distribution objects; otherwise they are Optuna's own.
    """
    return _trial_source(study).completed_trials()


def _completed_from_raw(raw: RawTrials) -> list[FrozenTrial]:
    """The COMPLETE trials of ``raw`` as FrozenTrials (see ``completed_trials``), by number.

    Trials with the same param names share one distributions dict: treat it as read-only.
    """
    values = {tid: _stored_value(v, vt) for tid, v, vt in raw.values}
    params: dict[int, dict[str, Any]] = {r[0]: {} for r in raw.trials if r[2] == "COMPLETE" and r[0] in values}
    groups = _param_groups(raw)
    distributions_of: Callable[[int], dict[str, BaseDistribution] | None]
    if groups is None:
        by_trial: dict[int, dict[str, BaseDistribution]] = {}
        for trial_id, name, value, dist_json in raw.param_rows():
            if trial_id in params:
                dist = _distribution(dist_json)  # one object per distinct JSON (cached)
                params[trial_id][name] = dist.to_external_repr(value)
                by_trial.setdefault(trial_id, {})[name] = dist
        distributions_of = by_trial.get
    else:
        for name, dist, trial_ids, internal in groups:
            for trial_id, external in zip(trial_ids.tolist(), _external(dist, internal).tolist()):
                got = params.get(trial_id)
                if got is not None:
                    got[name] = external
        by_name = {name: dist for name, dist, _, _ in groups}
        shared: dict[tuple[str, ...], dict[str, BaseDistribution]] = {}

        def shared_distributions(trial_id: int) -> dict[str, BaseDistribution]:
            names = tuple(params[trial_id])
            found = shared.get(names)
            if found is None:
                found = shared[names] = {name: by_name[name] for name in names}
            return found

        distributions_of = shared_distributions

    out = []
    for trial_id, number, _, _, _ in raw.trials:
        if trial_id not in params:
            continue
        out.append(
            FrozenTrial(
                number=number,
                state=TrialState.COMPLETE,
                value=values[trial_id],
                datetime_start=None,
                datetime_complete=None,
                params=params[trial_id],
                distributions=distributions_of(trial_id) or {},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=trial_id,
            )
        )
    return out


class TrialsView:
    """Just enough of ``optuna.Study`` for ``optuna.importance`` over a fixed list of trials."""

    def __init__(self, trials: list[FrozenTrial], direction: StudyDirection) -> None:
        self._trials = trials
        self.directions = [direction]
        self.direction = direction

    def _is_multi_objective(self) -> bool:
        return False

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        if states is None:
            return list(self._trials)
        return [t for t in self._trials if t.state in states]

    @property
    def trials(self) -> list[FrozenTrial]:
        return list(self._trials)
