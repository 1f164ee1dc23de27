"""The study spec: one study as plain data, shared by the CLI (YAML) and the UI (forms).

A spec is validated field by field; unknown keys and wrong types are a ``SpecError``. Nothing
here is ever ``eval``-ed: YAML text (from a file or a browser upload) goes through
:func:`load_yaml_text`, PyYAML's safe loader behind bounds on size, nesting, aliases and the
size of the document once aliases are expanded, with only finite numbers.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, overload

import yaml

from hpdash import vocabulary
from hpdash.errors import SpecError
from hpdash.yaml_text import (  # noqa: F401  (re-exported: the spec's YAML loader)
    MAX_EXPANDED_CHARS,
    MAX_YAML_ALIASES,
    MAX_YAML_CHARS,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    check_expanded_size,
    load_yaml_text,
)

STRATEGIES = tuple(vocabulary.STRATEGIES)
PRUNERS = tuple(vocabulary.PRUNERS)
TASKS = vocabulary.TASK_CHOICES
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = "1-100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"

#: The largest seed: NumPy's ``RandomState`` (scikit-learn's and Optuna's) takes 32 bits.
MAX_SEED = 2**32 - 1
#: The seeds that follow ``seed`` unless the spec gives them.
SPLIT_SEEDS = ("split_seed", "sampler_seed")


class _FollowsSeed:
    """A seed field that is the spec's ``seed`` unless it was given.

    Reading it on a spec gives the effective seed (an int: the given value, else ``seed``, read
    at that moment); on the class, ``None`` (the dataclass default: "not given"). Whether it was
    given is kept, so ``StudySpec.to_dict`` writes it only then, ``replace(seed=...)`` moves
    a seed that was not given along with ``seed``, and a spec stored before these fields
    existed reads back as it was.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = f"_given_{name}"

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> None: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> int: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> int | None:
        if obj is None:
            return None
        given = obj.__dict__.get(self.slot)
        return int(obj.__dict__["seed"]) if given is None else int(given)

    def __set__(self, obj: object, value: int | None) -> None:
        obj.__dict__[self.slot] = value

    def given(self, obj: object) -> int | None:
        """The value the spec gave, or None when it follows ``seed``."""
        value = obj.__dict__.get(self.slot)
        return None if value is None else int(value)


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
    #: The default of both seeds below (and the study's seed in an experiment's names).
    seed: int = 0
    #: Seeds "the problem": the holdout split, the CV folds, the estimator's ``random_state``
    #: and the smoke fit's row sample. Reads as ``seed`` unless given (an int either way).
    split_seed: _FollowsSeed = _FollowsSeed()
    #: Seeds the search: the Optuna sampler of every strategy (each worker's seed is derived
    #: from it) and the order of a grid. Reads as ``seed`` unless given (an int either way).
    sampler_seed: _FollowsSeed = _FollowsSeed()
    pruner: str = "none"
    workers: int = 1
    #: Random trials before a model-based sampler (TPE, GP, CMA-ES) takes over; None: the
    #: small-budget rule (``strategies.default_startup_trials``).
    startup_trials: int | None = None
    #: Seconds one trial may run before it fails with that reason; None: no limit.
    trial_timeout: float | None = None
    #: The positive class for binary metrics (f1, precision, ...) on string or boolean labels.
    pos_label: str | int | bool | None = None
    #: Columns to keep as features although hpdash would drop them (free text, ID-like).
    keep_columns: list[str] | None = None
    #: Keep each COMPLETE trial's out-of-fold predictions (first CV repeat) as an Optuna
    #: artifact, for the selection-bias estimate (``hpdash.winners_curse``, BBC-CV).
    keep_predictions: bool = True
    #: Start from the best COMPLETE trials of a past study on the same dataset and model:
    #: ``{"study": NAME, "trials": k}`` (``runner.create_study`` enqueues them as the first
    #: budget slots, skipping those outside this spec's space). None: a cold start.
    warm_start: dict[str, Any] | None = None

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

    def seed_given(self, key: str) -> int | None:
        """``split_seed`` or ``sampler_seed`` as the spec gave it; None when it follows ``seed``."""
        if key not in SPLIT_SEEDS:
            raise KeyError(key)
        descriptor = vars(StudySpec)[key]
        assert isinstance(descriptor, _FollowsSeed)
        return descriptor.given(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what is stored in the study's user attrs and written as YAML).

        ``split_seed`` and ``sampler_seed`` are written only when the spec gave them, so a
        spec without them is written exactly as before they existed and keeps following
        ``seed``; ``parse_spec(spec.to_dict()) == spec``."""
        data = asdict(self)
        for key in SPLIT_SEEDS:
            if self.seed_given(key) is None:
                del data[key]
        if data["warm_start"] is None:  # a cold start is written as before warm starts existed
            del data["warm_start"]
        return data

    def __eq__(self, other: object) -> bool:
        # Two specs are equal when they write the same plain data: a seed given equal to
        # ``seed`` still differs from one that follows it (``replace(seed=...)`` moves only
        # the second).
        if not isinstance(other, StudySpec):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, **changes: Any) -> StudySpec:
        """A validated copy with some fields changed."""
        return parse_spec({**self.to_dict(), **changes})


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters: a value from a user may be
    huge, and a message never needs all of it."""
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxtuple, short.maxset = 3, 8, 8, 8, 8
    short.maxstring = short.maxother = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_name(name: Any, what: str = "study name") -> str:
    """Return ``name`` if it is a safe study/experiment name, else raise SpecError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        shown = repr(name)[:60]
        raise SpecError(f"Invalid {what} {shown}: use {NAME_RULE}.")
    return name


def _int(raw: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"'{key}' must be a whole number, got {_shown(value)}.")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SpecError(f"'{key}' must be {bound}, got {value}.")
    return value


def _seed(raw: Mapping[str, Any], key: str) -> int:
    """``split_seed`` / ``sampler_seed``: a whole number in NumPy's seed range, or refused
    with what to write instead (including leaving it out to follow ``seed``)."""
    value = raw[key]
    fix = f"Give a whole number from 0 to {MAX_SEED}, or leave '{key}' out to use 'seed'."
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"'{key}' must be a whole number, got {_shown(value)}. {fix}")
    if not 0 <= value <= MAX_SEED:
        raise SpecError(f"'{key}' must be between 0 and {MAX_SEED}, got {value}. {fix}")
    return value


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = raw[key]
    if value not in allowed:
        raise SpecError(f"Unknown {key} {_shown(value)}: choose one of {', '.join(allowed)}.")
    return value


MAX_WARM_START_TRIALS = 1000


def _warm_start(value: Any, strategy: Any) -> dict[str, Any] | None:
    """``warm_start`` checked: None, or ``{"study": NAME, "trials": k}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"study", "trials"}:
        raise SpecError(
            "'warm_start' must look like {study: NAME, trials: 5}: the past study and how many of its best trials."
        )
    study, trials = value["study"], value["trials"]
    if not isinstance(study, str) or not study:
        raise SpecError(f"'warm_start.study' must be a study name, got {_shown(study)}.")
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_WARM_START_TRIALS:
        raise SpecError(
            f"'warm_start.trials' must be a whole number from 1 to {MAX_WARM_START_TRIALS}, got {_shown(trials)}."
        )
    if strategy == "grid":
        raise SpecError(
            "'warm_start' does not apply to grid search, which runs its own grid points; use another strategy."
        )
    return {"study": study, "trials": trials}


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
        raise SpecError(f"Unknown spec key(s): {', '.join(map(str, unknown))}. Valid keys: {', '.join(sorted(known))}.")
    for key in ("name", "dataset", "target", "model"):
        if raw.get(key) in (None, "", []):
            raise SpecError(f"The spec needs '{key}'.")
    defaults = StudySpec(name="x", dataset="x", target="x", model="x").to_dict()
    data = {**defaults, **{k: v for k, v in raw.items() if v is not None or k in ("n_trials", "timeout")}}

    check_name(data["name"])
    for key in ("dataset", "target"):
        if not isinstance(data[key], str):
            raise SpecError(f"'{key}' must be text, got {_shown(data[key])}.")
    model = data["model"]
    if isinstance(model, list):
        if not model or not all(isinstance(m, str) for m in model):
            raise SpecError("'model' must be a registry key or a non-empty list of keys.")
        if len(set(model)) != len(model):
            raise SpecError("'model' lists the same model twice.")
        if len(model) == 1:
            data["model"] = model[0]
    elif not isinstance(model, str):
        raise SpecError(f"'model' must be a registry key or a list of keys, got {_shown(model)}.")

    _choice(data, "strategy", STRATEGIES)
    _choice(data, "pruner", PRUNERS)
    _choice(data, "task", TASKS)
    _int(data, "grid_points", 2, 1000)
    _int(data, "seed", 0, MAX_SEED)
    for key in SPLIT_SEEDS:
        if data.get(key) is not None:
            _seed(data, key)
    _int(data, "workers", 1, 64)
    if data["n_trials"] is not None:
        _int(data, "n_trials", 1, 100_000)
    if data["timeout"] is not None:
        t = data["timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t < math.inf):
            raise SpecError(f"'timeout' must be a positive number of seconds or null, got {_shown(t)}.")
    if data["n_trials"] is None and data["timeout"] is None and data["strategy"] != "grid":
        raise SpecError("Set a budget: 'n_trials', 'timeout' (seconds), or both.")
    if data["startup_trials"] is not None:
        _int(data, "startup_trials", 0, 100_000)
    if data["trial_timeout"] is not None:
        t = data["trial_timeout"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < t < math.inf):
            raise SpecError(f"'trial_timeout' must be a positive number of seconds or null, got {_shown(t)}.")
    label = data["pos_label"]
    if label is not None and (not isinstance(label, (str, int, bool)) or isinstance(label, float)):
        raise SpecError(
            f"'pos_label' must be one class of the target (text, a whole number or true/false), got {_shown(label)}."
        )
    keep = data["keep_columns"]
    if keep is not None:
        if not isinstance(keep, list) or not all(isinstance(c, str) and c for c in keep):
            raise SpecError(f"'keep_columns' must be a list of column names, got {_shown(keep)}.")
        if len(keep) > 10_000:
            raise SpecError(f"'keep_columns' lists {len(keep):,} columns; at most 10,000.")
        data["keep_columns"] = list(dict.fromkeys(keep))

    data["warm_start"] = _warm_start(data.get("warm_start"), data["strategy"])

    if not isinstance(data["keep_predictions"], bool):
        raise SpecError(f"'keep_predictions' must be true or false, got {_shown(data['keep_predictions'])}.")

    cv = data["cv"]
    if not isinstance(cv, Mapping) or set(cv) - {"folds", "repeats"}:
        raise SpecError("'cv' must look like {folds: 5, repeats: 1}.")
    cv = {"folds": cv.get("folds", 5), "repeats": cv.get("repeats", 1)}
    _int(cv, "folds", 2, 50)
    _int(cv, "repeats", 1, 20)
    data["cv"] = cv

    ts = data["test_size"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 < ts < 0.9:
        raise SpecError(f"'test_size' must be a fraction between 0 and 0.9, got {_shown(ts)}.")
    if not isinstance(data["metric"], str):
        raise SpecError(f"'metric' must be a scikit-learn scorer name or 'auto', got {_shown(data['metric'])}.")
    if data["space"] is not None and not isinstance(data["space"], Mapping):
        raise SpecError("'space' must map hyperparameter names to their ranges.")
    return StudySpec(**data)


def load_spec_text(text: str) -> StudySpec:
    """A spec from YAML/JSON ``text`` that came from a user (a browser upload, a text box):
    always parsed as text, never taken for a file name, through :func:`load_yaml_text`."""
    return parse_spec(load_yaml_text(text))


def load_spec(source: str | Path | Mapping[str, Any]) -> StudySpec:
    """Read a spec from a YAML/JSON file path, YAML text, or a mapping (the CLI's way in).

    A one-line string that names an existing file is read from that file: text from a
    browser must go through :func:`load_spec_text` instead. Text goes through
    :func:`load_yaml_text` (bounded; see there)."""
    if isinstance(source, Mapping):
        return parse_spec(source)
    text: str
    path = Path(source) if isinstance(source, Path) or _may_be_path(str(source)) else None
    if path is not None and path.exists():
        try:
            # one character over the limit is enough to refuse: never read a huge file whole
            with path.open(encoding="utf-8") as handle:
                text = handle.read(MAX_YAML_CHARS + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"Cannot read spec file {path}: {exc}") from exc
        if len(text) > MAX_YAML_CHARS:
            raise SpecError(
                f"The spec file {path} is longer than {MAX_YAML_CHARS:,} characters; the limit "
                f"is {MAX_YAML_CHARS:,} (about 1 MB). A spec lists settings and search ranges, "
                "not data: check that this is the right file."
            )
    elif path is not None and str(source).endswith((".yaml", ".yml", ".json")):
        raise SpecError(f"Spec file not found: {source}")
    else:
        text = str(source)
    return parse_spec(load_yaml_text(text))


def _may_be_path(text: str) -> bool:
    """Whether ``text`` given to :func:`load_spec` could name a file rather than be YAML: one
    line, no NUL, short enough for a path, and the name of something that exists or a
    ``.yaml``/``.yml``/``.json`` name (reported as not found)."""
    if "\n" in text or "\x00" in text or len(text) > 4096:
        return False
    try:
        return Path(text).exists() or text.endswith((".yaml", ".yml", ".json"))
    except (OSError, ValueError):  # a name too long for the file system: YAML text
        return False
