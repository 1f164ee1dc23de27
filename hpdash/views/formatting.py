"""Values for people: durations, scores, parameter values, dataset and model labels."""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from hpdash import config, models
from hpdash.storage import redact
from hpdash.store import Catalogue

#: Columns of the search-space editor, in order.
EDITOR_COLUMNS = ["hyperparameter", "type", "low", "high", "log", "choices", "label"]


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


# -------------------------------------------------------------------------------- search space
def _choice_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("..."):
        text = text[:-3].strip()
    return text
