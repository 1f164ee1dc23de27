"""A table's profile for a target and task: column roles with drop reasons, task inference, the target's distribution."""

from __future__ import annotations

import difflib
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpdash.errors import DatasetError, SpecError

if TYPE_CHECKING:  # the catalogue (sqlite-utils) is imported where used: workers never need it
    pass

from hpdash.datasets.limits import _check_columns
from hpdash.datasets.records import (
    _DATE_RES,
    _ID_NAME_RE,
    HIGH_CARDINALITY_MIN,
    MAX_CLASSES_FOR_INFERENCE,
    MAX_TARGET_MAGNITUDE,
    MIN_ROWS_FOR_ID,
    ColumnInfo,
    DatasetProfile,
    TaskName,
    _check_task,
    _names,
)


# -- task inference and roles ---------------------------------------------------------------
def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _integer_valued(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0))


def infer_task(y: pd.Series) -> TaskName:
    """Classification for non-numeric/bool targets and few distinct integers, else regression.

    A numeric target is a class label when its values are integers with at most 20 distinct
    values, and there are at most 2 of them or they cover at most half of the rows.
    """
    values = y.dropna()
    if values.empty:
        raise DatasetError(f"Target {y.name!r} has no values (every row is missing).")
    if not _is_numeric(values):
        return "classification"
    arr = values.to_numpy(dtype=float)
    n_unique = int(pd.unique(arr).size)
    if _integer_valued(arr) and n_unique <= MAX_CLASSES_FOR_INFERENCE and (n_unique <= 2 or n_unique <= 0.5 * arr.size):
        return "classification"
    return "regression"


def _examples(values: pd.Series, k: int = 3) -> list[str]:
    out: list[str] = []
    for v in values.dropna().unique()[:k]:
        text = str(v)
        out.append(text if len(text) <= 40 else text[:39] + "…")
    return out


def _nunique(s: pd.Series) -> int:
    try:
        return int(s.nunique(dropna=True))
    except TypeError:  # unhashable values
        return int(s.dropna().astype(str).nunique())


def _date_kind(values: pd.Series) -> dict[str, bool] | None:
    """If string ``values`` look like dates, the parsing options for them; else None."""
    sample = values.dropna().astype(str).str.strip()
    sample = sample[sample != ""]
    if sample.empty:
        return None
    sample = pd.Series(sample.unique()[:500])
    dayfirst = False
    matched = 0
    for text in sample:
        for i, pattern in enumerate(_DATE_RES):
            m = pattern.match(text)
            if m:
                matched += 1
                if i == 2 and int(m.group(1)) > 12:
                    dayfirst = True
                break
    if matched < 0.95 * len(sample):
        return None
    parsed = _parse_dates(sample, {"dayfirst": dayfirst})
    if parsed.notna().mean() < 0.95:
        return None
    return {"dayfirst": dayfirst}


def _parse_dates(s: pd.Series, kind: dict[str, bool]) -> pd.Series:
    """Parse date strings (unparseable -> NaT) to naive wall-clock times.

    A single UTC offset is kept as local wall-clock time; mixed offsets are converted to UTC.
    """
    text = s.astype(str).str.strip().where(s.notna())
    out: pd.Series | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=kind["dayfirst"])
        except (ValueError, TypeError):
            out = None
        if out is None or not pd.api.types.is_datetime64_any_dtype(out):
            out = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=kind["dayfirst"], utc=True)
    return _naive(out)


def _naive(dt: pd.Series) -> pd.Series:
    """Drop the time zone of a datetime series, keeping its wall-clock time."""
    if getattr(dt.dt, "tz", None) is not None:
        return dt.dt.tz_localize(None)
    return dt


def _classify(s: pd.Series, n_rows: int) -> tuple[str, str | None]:
    """The role of a feature column and, for dropped columns, the reason."""
    non_null = s.dropna()
    n_non_null = len(non_null)
    if n_non_null == 0:
        return "dropped", "all missing"
    n_unique = _nunique(s)
    if n_unique <= 1:
        return "dropped", f"constant (only value: {_examples(non_null, 1)[0]!r})"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", None
    if pd.api.types.is_bool_dtype(s):
        return "categorical", None
    if pd.api.types.is_timedelta64_dtype(s):
        return "numeric", None
    if _is_numeric(s):
        arr = non_null.to_numpy(dtype=float)
        if n_unique == n_rows and n_non_null == n_rows and _integer_valued(arr):
            consecutive = float(arr.max() - arr.min()) == n_rows - 1
            if _ID_NAME_RE.search(str(s.name)) or (consecutive and n_rows >= MIN_ROWS_FOR_ID):
                return "dropped", (f"ID-like (a different integer on every row: {int(arr.min())}…{int(arr.max())})")
        return "numeric", None
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "categorical", None
    text = non_null.astype(str)
    if _date_kind(text) is not None:
        return "datetime", None
    if len(text) > 5000:  # length statistics from a sample are enough
        text = text.sample(5000, random_state=0)
    mean_len = float(text.str.len().mean())
    mean_words = float(text.str.split().str.len().mean())
    if n_unique > 10 and n_unique > 0.5 * n_non_null and (mean_len >= 30 or mean_words >= 4):
        return "dropped", (f"free text ({n_unique} distinct values, {mean_len:.0f} characters on average)")
    if n_unique == n_rows and n_rows >= MIN_ROWS_FOR_ID:
        return "dropped", "ID-like (a different value on every row)"
    if n_unique > HIGH_CARDINALITY_MIN and n_unique > 0.5 * n_non_null:
        return "dropped", (
            f"high-cardinality text ({n_unique} distinct values in {n_non_null} rows: one-hot "
            f"encoding would make {n_unique} columns, most of them for one or two rows)"
        )
    return "categorical", None


#: Drop reasons the user may overrule with ``keep_columns``: the column holds values a model
#: can use, hpdash only guesses they are not worth it. Constant and all-missing columns hold
#: nothing to learn, and a row index is gone once the table is read.
OVERRIDABLE_PREFIXES = ("ID-like", "free text", "high-cardinality text")


def _kept_role(s: pd.Series) -> str:
    """The role of a column kept by ``keep_columns``: numbers stay numbers (an ID-like integer
    column), everything else is a category (free text one-hot encoded, as the user asked)."""
    return "numeric" if _is_numeric(s) or pd.api.types.is_timedelta64_dtype(s) else "categorical"


def _check_keep(df: pd.DataFrame, target: str | None, keep: list[str] | None) -> set[str]:
    """The names in ``keep_columns`` that are columns of ``df``, or a SpecError naming each
    that is not (with the closest name) or is the target."""
    if not keep:
        return set()
    names = [str(c) for c in df.columns]
    unknown = [k for k in keep if k not in names]
    if unknown:
        hints = []
        for name in unknown[:5]:
            close = difflib.get_close_matches(name, names, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SpecError(
            f"'keep_columns' names {len(unknown)} column(s) the table does not have: "
            f"{', '.join(hints)}. Use column names from the table's header (available: "
            f"{_names(names)})."
        )
    if target is not None and str(target) in keep:
        raise SpecError(
            f"'keep_columns' names the target column {target!r}; the target is never a feature. "
            "Remove it from keep_columns."
        )
    return set(keep)


# -- profiling ------------------------------------------------------------------------------
def _clean_target(df: pd.DataFrame, target: str, task: str) -> tuple[pd.Series, TaskName, int]:
    """Validate the target; returns its non-missing values, the task and the missing count."""
    if target not in df.columns:
        available = [str(c) for c in df.columns]
        close = difflib.get_close_matches(str(target), available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"Target column {target!r} not found.{hint} Available columns: {_names(available)}.")
    raw = df[target]
    missing = int(raw.isna().sum())
    y = raw.dropna()
    if y.empty:
        raise DatasetError(
            f"Target column {target!r} is missing on every row, so there is nothing to learn. "
            "Pick another target column or fill in its values."
        )
    if _is_numeric(y):
        arr = y.to_numpy(dtype=float)
        n_inf = int(np.isinf(arr).sum())
        if n_inf:
            raise DatasetError(
                f"Target column {target!r} contains {n_inf} infinite value(s) (inf/-inf). Replace or remove those rows."
            )
    if task == "auto":
        task_name = infer_task(y)
    else:
        task_name = task  # type: ignore[assignment]
    if task_name == "regression":
        if not _is_numeric(y):
            raise DatasetError(
                f"Target column {target!r} is not numeric (examples: {', '.join(_examples(y))}), "
                "so it cannot be a regression target. Use task 'classification' or pick a "
                "numeric target."
            )
        y = y.astype(float)
        magnitude = float(np.abs(y.to_numpy()).max())
        if magnitude > MAX_TARGET_MAGNITUDE:
            n_big = int((np.abs(y.to_numpy()) > MAX_TARGET_MAGNITUDE).sum())
            raise DatasetError(
                f"Target column {target!r} has {n_big} value(s) larger in magnitude than "
                f"{MAX_TARGET_MAGNITUDE:.0e} (up to {magnitude:.3g}): their squared errors "
                "overflow 64-bit floats, so every regression score and fit would be inf or "
                "NaN. Rescale the target (for example, divide it by a power of ten or take "
                "its logarithm) or remove those rows."
            )
    elif _is_numeric(y) and _integer_valued(values := y.to_numpy(dtype=float)):
        # Whole-number class labels become integers, where int64 holds them exactly (2**53
        # is where floats stop holding every integer); 1e308 stays a float label.
        if float(np.abs(values).max()) < 2.0**53:
            y = y.astype("int64")
    return y, task_name, missing


def _distribution(y: pd.Series, task: TaskName) -> pd.DataFrame:
    """Tidy target distribution: class counts, or a histogram for regression."""
    if task == "classification":
        counts = y.astype(str).value_counts()
        frame = pd.DataFrame({"class": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
        return frame.sort_values(["count", "class"], ascending=[False, True]).reset_index(drop=True)
    values = y.to_numpy(dtype=float)
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) > 31:
        edges = np.histogram_bin_edges(values, bins=30)
    counts, edges = np.histogram(values, bins=edges)
    return pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "count": counts.astype("int64")})


def profile_table(
    df: pd.DataFrame,
    target: str | None = None,
    task: str = "auto",
    keep_columns: list[str] | None = None,
) -> DatasetProfile:
    """Profile a table: column roles with drop reasons, and (with a target) task and distribution.

    ``keep_columns`` (the spec's field) keeps the named columns as features although hpdash
    would drop them as ID-like, free text or high-cardinality text (``ColumnInfo.kept``);
    every column that may be kept so has ``ColumnInfo.overridable`` set, kept or not. A row
    index dropped while reading a CSV is listed first, as a dropped column that is not in the
    frame (``in_frame`` False).

    Raises :class:`DatasetError` for an unusable target (not found, all missing, infinite or
    overflowing values, non-numeric for regression) and :class:`SpecError` for an unknown task
    name, or a ``keep_columns`` entry that is not a column, is the target, or names a column
    that cannot be kept (constant, all missing).
    """
    _check_task(task)
    _check_columns([str(c) for c in df.columns], "The table")
    keep = _check_keep(df, target, keep_columns)
    n_rows, n_cols = df.shape
    y: pd.Series | None = None
    task_name: TaskName | None = None
    missing = 0
    if target is not None:
        y, task_name, missing = _clean_target(df, target, task)
    columns: list[ColumnInfo] = []
    row_index = (df.attrs.get("source") or {}).get("row_index")
    if row_index:
        columns.append(
            ColumnInfo(
                name="(column 1, no header)",
                dtype=str(row_index["dtype"]),
                role="dropped",
                reason=row_index["reason"],
                missing_share=0.0,
                n_unique=n_rows,
                examples=[str(row_index["first"]), str(row_index["first"] + 1), "…"],
                default_reason=row_index["reason"],
                in_frame=False,
            )
        )
    not_keepable: list[str] = []
    for col in df.columns:
        s = df[col]
        kept = False
        default_reason = None
        if target is not None and col == target:
            role, reason = "target", None
        else:
            role, reason = _classify(s, n_rows)
            default_reason = reason
        overridable = role == "dropped" and str(reason).startswith(OVERRIDABLE_PREFIXES)
        if str(col) in keep and role == "dropped":
            if overridable:
                role, reason, kept = _kept_role(s), None, True
            else:
                not_keepable.append(f"{str(col)!r} ({reason})")
        columns.append(
            ColumnInfo(
                name=str(col),
                dtype=str(s.dtype),
                role=role,
                reason=reason,
                missing_share=float(s.isna().mean()) if n_rows else 0.0,
                n_unique=_nunique(s),
                examples=_examples(s),
                overridable=overridable,
                kept=kept,
                default_reason=default_reason,
            )
        )
    if not_keepable:
        raise SpecError(
            f"'keep_columns' names column(s) that hold nothing a model can learn from: "
            f"{'; '.join(not_keepable[:8])}. Only ID-like, free-text and high-cardinality "
            "columns can be kept: remove these from keep_columns."
        )
    distribution = _distribution(y, task_name) if y is not None and task_name else pd.DataFrame()
    return DatasetProfile(
        n_rows=n_rows,
        n_cols=n_cols + (1 if row_index else 0),
        target=target,
        task=task_name,
        columns=columns,
        target_distribution=distribution,
        n_target_missing_dropped=missing,
    )
