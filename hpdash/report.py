"""Exports of a study: the trials as CSV (an HTML report comes later).

The CSV is opened in spreadsheets, so text cells that a spreadsheet would run as a formula
(CSV/formula injection) are neutralised as OWASP advises: a leading ``'`` before a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return. Only text cells are touched;
numbers, including negative ones, stay numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from hpdash.results import trials_frame

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``'`` + value for text that a spreadsheet would read as a formula; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _fold_scores_json(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return json.dumps([float(v) for v in value])
    return None


def trials_csv(frame: pd.DataFrame) -> bytes:
    """The trials frame as UTF-8 CSV bytes (no index, CRLF line ends, ``fold_scores`` as a
    JSON list, formula-like text cells neutralised)."""
    out = frame.copy()
    if "fold_scores" in out.columns:
        out["fold_scores"] = out["fold_scores"].map(_fold_scores_json).astype("object")
    for column in out.columns:
        series = out[column]
        if (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            continue  # no text cells in these columns
        out[column] = series.astype("object").map(neutralise_cell)
    # RFC 4180 line ends: the csv writer quotes a field that contains any character of the
    # line terminator, so with a bare "\n" a text cell holding "\r" would go out unquoted and
    # split the row in spreadsheets.
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def write_trials_csv(study: optuna.Study, path: str | Path) -> Path:
    """Write ``trials_csv(trials_frame(study))`` to ``path`` and return the path."""
    target = Path(path)
    target.write_bytes(trials_csv(trials_frame(study)))
    return target
