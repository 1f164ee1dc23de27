"""A table's target and columns for the Datasets and New study pages: classes, positive label, column roles, keepable columns, the dataset choices."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpdash import datasets, objective
from hpdash.store import Catalogue


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
    for row in Catalogue(storage=storage).list_datasets():
        out[row["sha256"]] = f"{row['name']} ({row['filename']}, {row['n_rows']} rows)"
    return out


def default_target(columns: list[str]) -> str | None:
    """The likely target column, by ``datasets.guess_target``'s rule: a generic target name
    (``target``, ``label``, ``class``, ``outcome``, ``response``, or ``y`` when it is not a
    coordinate beside ``x``/``z``), then the target of a conventional public table
    (``species``, ``price``, ``mpg``, ``survived``, ...), else the last column."""
    return datasets.guess_target(list(columns))
