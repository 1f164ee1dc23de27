"""The study spec: one study as plain data, shared by the CLI (YAML) and the UI (forms).

A spec is validated field by field; unknown keys and wrong types are a ``SpecError``. Nothing
here is ever ``eval``-ed: YAML is read with ``yaml.safe_load``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from hpdash.errors import SpecError

STRATEGIES = ("grid", "random", "tpe", "gp", "cmaes", "qmc")
PRUNERS = ("none", "median", "hyperband", "wilcoxon")
TASKS = ("auto", "classification", "regression")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = "1-100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"


@dataclass
class StudySpec:
    """Everything needed to run (and re-run) one study. See DESIGN.md, "Spec file"."""

    name: str
    dataset: str
    target: str
    model: str | list[str]
    strategy: str = "tpe"
    task: str = "auto"
    space: dict[str, Any] | None = None
    grid_points: int = 5
    n_trials: int | None = 50
    timeout: float | None = None
    cv: dict[str, int] = field(default_factory=lambda: {"folds": 5, "repeats": 1})
    metric: str = "auto"
    test_size: float = 0.2
    seed: int = 0
    pruner: str = "none"
    workers: int = 1

    @property
    def models(self) -> list[str]:
        """The model keys as a list (one entry unless this is algorithm selection)."""
        return [self.model] if isinstance(self.model, str) else list(self.model)

    @property
    def folds(self) -> int:
        return int(self.cv["folds"])

    @property
    def repeats(self) -> int:
        return int(self.cv.get("repeats", 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what is stored in the study's user attrs and written as YAML)."""
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, **changes: Any) -> "StudySpec":
        """A validated copy with some fields changed."""
        return parse_spec({**self.to_dict(), **changes})


def check_name(name: Any, what: str = "study name") -> str:
    """Return ``name`` if it is a safe study/experiment name, else raise SpecError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        shown = repr(name)[:60]
        raise SpecError(f"Invalid {what} {shown}: use {NAME_RULE}.")
    return name


def _int(raw: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"'{key}' must be a whole number, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SpecError(f"'{key}' must be {bound}, got {value}.")
    return value


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = raw[key]
    if value not in allowed:
        raise SpecError(f"Unknown {key} {value!r}: choose one of {', '.join(allowed)}.")
    return value


def parse_spec(raw: Mapping[str, Any]) -> StudySpec:
    """Validate a plain mapping and return a ``StudySpec``.

    Checks the shape of every field here; the search space and model keys are checked
    against the registry by ``validate_spec`` (it needs the task, which needs the data).
    """
    if not isinstance(raw, Mapping):
        raise SpecError("A spec must be a mapping of keys to values (a YAML dictionary).")
    known = {f.name for f in fields(StudySpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(
            f"Unknown spec key(s): {', '.join(map(str, unknown))}. Valid keys: {', '.join(sorted(known))}."
        )
    for key in ("name", "dataset", "target", "model"):
        if raw.get(key) in (None, "", []):
            raise SpecError(f"The spec needs '{key}'.")
    defaults = StudySpec(name="x", dataset="x", target="x", model="x").to_dict()
    data = {**defaults, **{k: v for k, v in raw.items() if v is not None or k in ("n_trials", "timeout")}}

    check_name(data["name"])
    for key in ("dataset", "target"):
        if not isinstance(data[key], str):
            raise SpecError(f"'{key}' must be text, got {data[key]!r}.")
    model = data["model"]
    if isinstance(model, list):
        if not model or not all(isinstance(m, str) for m in model):
            raise SpecError("'model' must be a registry key or a non-empty list of keys.")
        if len(set(model)) != len(model):
            raise SpecError("'model' lists the same model twice.")
        if len(model) == 1:
            data["model"] = model[0]
    elif not isinstance(model, str):
        raise SpecError(f"'model' must be a registry key or a list of keys, got {model!r}.")

    _choice(data, "strategy", STRATEGIES)
    _choice(data, "pruner", PRUNERS)
    _choice(data, "task", TASKS)
    _int(data, "grid_points", 2, 1000)
    _int(data, "seed", 0, 2**32 - 1)
    _int(data, "workers", 1, 64)
    if data["n_trials"] is not None:
        _int(data, "n_trials", 1, 100_000)
    if data["timeout"] is not None:
        t = data["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise SpecError(f"'timeout' must be a positive number of seconds or null, got {t!r}.")
    if data["n_trials"] is None and data["timeout"] is None and data["strategy"] != "grid":
        raise SpecError("Set a budget: 'n_trials', 'timeout' (seconds), or both.")

    cv = data["cv"]
    if not isinstance(cv, Mapping) or set(cv) - {"folds", "repeats"}:
        raise SpecError("'cv' must look like {folds: 5, repeats: 1}.")
    cv = {"folds": cv.get("folds", 5), "repeats": cv.get("repeats", 1)}
    _int(cv, "folds", 2, 50)
    _int(cv, "repeats", 1, 20)
    data["cv"] = cv

    ts = data["test_size"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 0.9:
        raise SpecError(f"'test_size' must be a fraction between 0 and 0.9, got {ts!r}.")
    if not isinstance(data["metric"], str):
        raise SpecError(f"'metric' must be a scikit-learn scorer name or 'auto', got {data['metric']!r}.")
    if data["space"] is not None and not isinstance(data["space"], Mapping):
        raise SpecError("'space' must map hyperparameter names to their ranges.")
    return StudySpec(**data)


def load_spec(source: str | Path | Mapping[str, Any]) -> StudySpec:
    """Read a spec from a YAML/JSON file path, YAML text, or a mapping."""
    if isinstance(source, Mapping):
        return parse_spec(source)
    text: str
    path = Path(source) if isinstance(source, Path) or "\n" not in str(source) else None
    if path is not None and path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"Cannot read spec file {path}: {exc}") from exc
    elif path is not None and str(source).endswith((".yaml", ".yml", ".json")):
        raise SpecError(f"Spec file not found: {source}")
    else:
        text = str(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"The spec is not valid YAML: {exc}") from exc
    return parse_spec(raw)
