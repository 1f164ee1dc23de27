"""X and y ready for the preprocessing Pipeline, and the check that a table is learnable at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpdash.errors import DatasetError, SpecError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    pass

from hpdash.datasets.profile import (
    OVERRIDABLE_PREFIXES,
    _classify,
    _clean_target,
    _date_kind,
    _is_numeric,
    _naive,
    _parse_dates,
    profile_table,
)
from hpdash.datasets.records import MAX_CLASSES_FOR_INFERENCE, PreparedData, _check_task, _names


# -- preparing X and y ----------------------------------------------------------------------
def _to_float(s: pd.Series) -> pd.Series:
    """A numeric feature as float64; infinities become missing (and are imputed)."""
    if pd.api.types.is_timedelta64_dtype(s):
        out = s.dt.total_seconds()
    else:
        out = pd.to_numeric(s, errors="coerce").astype("float64")
    return out.replace([np.inf, -np.inf], np.nan)


def _to_category(s: pd.Series) -> pd.Series:
    """A categorical feature as object dtype holding strings, missing as ``np.nan``."""
    out = s.astype(object).map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
    return out.where(s.notna(), np.nan).astype(object)


def _datetime_parts(s: pd.Series, name: str) -> pd.DataFrame:
    """Numeric parts of a datetime column: year, month, day, day of week, and hour if present."""
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = _naive(s)
    else:
        kind = _date_kind(s) or {"dayfirst": False}
        dt = _parse_dates(s, kind)
    parts = {
        f"{name}_year": dt.dt.year,
        f"{name}_month": dt.dt.month,
        f"{name}_day": dt.dt.day,
        f"{name}_dayofweek": dt.dt.day_of_week,
    }
    hours = dt.dt.hour
    if bool(((hours.fillna(0) != 0) | (dt.dt.minute.fillna(0) != 0)).any()):
        parts[f"{name}_hour"] = hours
    return pd.DataFrame({k: v.astype("float64") for k, v in parts.items()}, index=s.index)


def prepare(
    df: pd.DataFrame,
    target: str,
    task: str = "auto",
    folds: int = 5,
    keep_columns: list[str] | None = None,
) -> PreparedData:
    """Features and target for the evaluation protocol, or a :class:`DatasetError`.

    Rows with a missing target are dropped and counted in
    ``profile.n_target_missing_dropped``. Classification needs at least two classes and at
    least ``folds`` rows per class; every task needs at least ``2 * folds`` rows. Infinite
    feature values are treated as missing. ``keep_columns`` keeps columns hpdash would drop
    (see :func:`profile_table`).
    """
    _check_task(task)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise SpecError(f"CV folds must be an integer of at least 2, not {folds!r}.")
    folds = int(folds)
    profile = profile_table(df, target, task, keep_columns=keep_columns)
    y, task_name, missing = _clean_target(df, target, task)
    keep = df[target].notna()
    dropped_note = f" after dropping {missing} row(s) with a missing target" if missing else ""
    n = len(y)
    if task_name == "classification":
        counts = y.astype(str).value_counts()
        if len(counts) < 2:
            raise DatasetError(
                f"Target column {target!r} has a single class ({counts.index[0]!r}){dropped_note}; "
                "classification needs at least two classes. Pick another target."
            )
        rare = counts[counts < folds]
        if len(rare):
            listed = ", ".join(f"{c!r} ({k} row{'s' if k != 1 else ''})" for c, k in rare.head(5).items())
            more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
            hint = ""
            if _is_numeric(y) and len(counts) > MAX_CLASSES_FOR_INFERENCE:
                hint = " If the target is a continuous quantity, use task 'regression'."
            raise DatasetError(
                f"Target column {target!r}: class {listed}{more} has fewer rows than the {folds} "
                f"CV folds{dropped_note}. Every class needs at least {folds} rows: add rows, "
                f"merge or remove rare classes, or use fewer folds.{hint}"
            )
    if n < 2 * folds:
        raise DatasetError(
            f"Only {n} row(s) with a target{dropped_note}, too few for {folds}-fold "
            f"cross-validation plus a holdout: hpdash needs at least {2 * folds} rows "
            f"(twice the number of folds). Add rows or use fewer folds."
        )
    in_frame = [info for info in profile.columns if info.in_frame]
    features = [
        (key, info) for key, info in zip(df.columns, in_frame) if info.role in ("numeric", "categorical", "datetime")
    ]
    if not features:
        dropped = [f"{c.name!r} ({c.reason})" for c in profile.dropped()]
        why = f" Dropped: {'; '.join(dropped[:8])}." if dropped else ""
        keepable = [c.name for c in profile.overridable()]
        fix = f", or keep one of {_names(keepable)} with the spec's keep_columns" if keepable else ""
        raise DatasetError(
            f"No usable feature column left besides the target {target!r}.{why} Add feature "
            f"columns (numbers, categories or dates) to the table{fix}."
        )
    rows = df.loc[keep]
    parts: list[pd.DataFrame | pd.Series] = []
    numeric: list[str] = []
    categorical: list[str] = []
    for key, info in features:
        s = rows[key]
        if info.role == "numeric":
            parts.append(_to_float(s).rename(info.name))
            numeric.append(info.name)
        elif info.role == "categorical":
            parts.append(_to_category(s).rename(info.name))
            categorical.append(info.name)
        else:
            expanded = _datetime_parts(s, info.name)
            parts.append(expanded)
            numeric.extend(expanded.columns)
    # One consolidated block per dtype (copy): taking a fold's rows from the concatenated
    # frame of a wide table is far slower.
    X = pd.concat(parts, axis=1).reset_index(drop=True).copy()
    X.attrs = {}
    y_out = y.reset_index(drop=True).rename(target)
    if len(set(X.columns)) != X.shape[1]:
        dup = X.columns[X.columns.duplicated()].tolist()
        raise DatasetError(
            f"Expanding date columns created names that already exist: {_names(dup)}. Rename those columns."
        )
    return PreparedData(X=X, y=y_out, task=task_name, numeric=numeric, categorical=categorical, profile=profile)


def check_learnable(df: pd.DataFrame, display: str) -> None:
    """``DatasetError`` for a table that can give no study: fewer than two columns that vary
    (a target and one feature). Constant and all-missing columns hold nothing to learn; a
    column dropped only by a guess (ID-like, free text) still counts, as ``keep_columns`` can
    keep it. Checked on upload, before the target is known."""
    useful, empty = [], []
    for name in df.columns:
        role, reason = _classify(df[name], len(df))
        if role == "dropped" and not str(reason).startswith(OVERRIDABLE_PREFIXES):
            empty.append(f"{name!r} ({reason})")
        else:
            useful.append(str(name))
    if len(useful) >= 2:
        return
    have = f"only {_names(useful)} varies" if useful else "no column varies"
    raise DatasetError(
        f"{display} cannot be used for a study: {have}, and a study needs a target and at least "
        f"one feature column that vary."
        + (f" Dropped: {'; '.join(empty[:8])}{' and more' if len(empty) > 8 else ''}." if empty else "")
        + " Add the feature columns to the file, or fill in the missing values."
    )
