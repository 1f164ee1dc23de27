"""A dense study's recorded results, and the oracle that answers a replay's suggestions from them.

``recorded_results`` reads the COMPLETE trials of a dense study (a finished full grid, or a
random or QMC study of at least ``MIN_DENSE_TRIALS`` COMPLETE trials) into a ``Recorded``:
each trial's params, value, duration and fold details. Any other study is refused with a
``ReplayError`` that names the problem and the fix; ``replay_problem`` says it without raising,
for a page that offers the replay only where it can run.

``Oracle`` answers a suggestion (Optuna params) from the record (``ORACLES``):

- ``"nearest"``: the nearest recorded configuration, in the unit-scaled space (a log-scaled
  number by its log, a number scaled by its range, a categorical 0 for the same choice and 1
  for another), among the records that use the same hyperparameters (the same model under
  algorithm selection); its params, recorded value and duration. Ties go to the earlier record.
- ``"surrogate"``: the suggestion keeps its params; its value (and duration) is the
  inverse-distance-weighted mean of the ``SURROGATE_NEIGHBOURS`` nearest records' (a record
  itself when the suggestion is one). Fitted once: a KD-tree over the record.

Answers are cached by the suggestion's params. Nothing here reads beyond the study, or writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.spatial import cKDTree

from hpdash import attrs as study_attrs
from hpdash import space, status, vocabulary
from hpdash.errors import HpdashError
from hpdash.spec import StudySpec

NEAREST, SURROGATE = "nearest", "surrogate"
SURROGATE_NEIGHBOURS = 5
#: Each oracle as the replay names it.
ORACLES = {
    NEAREST: "nearest recorded configuration",
    SURROGATE: f"surrogate fitted on the recorded results (inverse-distance-weighted mean of the "
    f"{SURROGATE_NEIGHBOURS} nearest recorded configurations)",
}
#: COMPLETE trials a random or QMC study needs before it is dense enough to replay on.
MIN_DENSE_TRIALS = 200
DENSE_STRATEGIES = ("random", "qmc")
#: The recorded trial attrs a replayed trial carries over (what ``trials_frame`` shows).
TRIAL_ATTRS = ("fold_scores", "cv_mean", "cv_std", "fit_time", "score_time")


class ReplayError(HpdashError):
    """A study that cannot be replayed on, or a replay asked with impossible settings."""


# ------------------------------------------------------------------------------ the record
@dataclass(frozen=True)
class Recorded:
    """A dense study's COMPLETE trials, what a replay answers from (``recorded_results``)."""

    source: str
    spec: StudySpec
    spaces: dict[str, space.SearchSpace]
    direction: Literal["minimize", "maximize"]
    attrs: dict[str, Any]  # the source's resolved dataset, task, metric and space (user attrs)
    numbers: tuple[int, ...]  # recorded trial numbers
    params: tuple[dict[str, Any], ...]
    values: np.ndarray
    durations: np.ndarray  # seconds each recorded trial took
    trial_attrs: tuple[dict[str, Any], ...]  # ``TRIAL_ATTRS`` of each trial
    distributions: dict[str, BaseDistribution]
    started: datetime  # the source's first trial start: the replay's time zero
    kind: str  # what the record is, for people

    @property
    def metric(self) -> str | None:
        return study_attrs.metric_of(self.attrs)

    def __len__(self) -> int:
        return len(self.numbers)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def replay_problem(study: optuna.Study) -> str | None:
    """Why ``study`` cannot be replayed on (the problem and the fix), or None when it can."""
    attrs = study.user_attrs
    spec = study_attrs.spec_of(attrs)
    if not spec or not attrs.get(study_attrs.SPACE):
        return f"Study {study.study_name!r} was not created by hpdash (no spec or resolved space), so it cannot be replayed on."
    strategy, complete = spec.get("strategy"), _complete(study)
    if strategy == "grid":
        grid = attrs.get(study_attrs.GRID) or {}
        size = int(grid.get("grid_size", 0))
        if grid.get("cut"):
            return (
                f"Grid study {study.study_name!r} ran a random {grid.get('budget')}/{size} subset of its grid: a "
                f"replay needs every point. Create a grid study without a trial budget (n_trials: null), or one "
                f"of at least {size} trials, and replay on it."
            )
        left = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        if left or not complete:
            return (
                f"Grid study {study.study_name!r} has not finished: {len(left)} of its {size} points are still "
                "waiting or running. Let it finish (resume it if it stopped), then replay on it."
            )
    elif strategy in DENSE_STRATEGIES:
        if len(complete) < MIN_DENSE_TRIALS:
            return (
                f"{vocabulary.strategy_name(str(strategy))} study {study.study_name!r} has {len(complete)} COMPLETE "
                f"trials; a replay needs at least {MIN_DENSE_TRIALS}, so that a recorded configuration lies near "
                f"every suggestion. Resume it with a larger budget, or replay on a full grid study."
            )
    else:
        return (
            f"Study {study.study_name!r} ran {vocabulary.strategy_name(str(strategy))}, whose trials crowd where "
            "its model expected the best scores, so most of the space has no record near a suggestion. Replay on "
            f"a finished full grid study, or a random or QMC study of at least {MIN_DENSE_TRIALS} trials."
        )
    models = spec.get("model")
    if isinstance(models, list) and len(models) > 1:
        used = {t.params.get(space.MODEL_PARAM) for t in complete}
        missing = [m for m in models if m not in used]
        if missing:
            return f"No trial of study {study.study_name!r} completed with {', '.join(missing)}: nothing answers a suggestion of it."
    return None


def recorded_results(study: optuna.Study) -> Recorded:
    """The COMPLETE trials of a dense study; ``ReplayError`` (``replay_problem``) otherwise."""
    problem = replay_problem(study)
    if problem is not None:
        raise ReplayError(problem)
    attrs = study.user_attrs
    spec = status.load_spec_of(study)
    spaces = {model: space.parse_space(raw) for model, raw in attrs[study_attrs.SPACE].items()}
    trials = _complete(study)
    distributions: dict[str, BaseDistribution] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            distributions.setdefault(name, dist)
    starts = [t.datetime_start or datetime.now() for t in trials]
    durations = [((t.datetime_complete or s) - s).total_seconds() for t, s in zip(trials, starts)]
    kept = (study_attrs.DATASET, study_attrs.TASK, study_attrs.METRIC, study_attrs.SPACE)
    grid = attrs.get(study_attrs.GRID) or {}
    kind = (
        f"full grid of {grid.get('grid_size')} points, {len(trials)} COMPLETE"
        if spec.strategy == "grid"
        else f"{vocabulary.strategy_name(spec.strategy)} study of {len(trials)} COMPLETE trials"
    )
    return Recorded(
        source=study.study_name,
        spec=spec,
        spaces=spaces,
        direction="minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize",
        attrs={k: attrs[k] for k in kept if k in attrs},
        numbers=tuple(t.number for t in trials),
        params=tuple(dict(t.params) for t in trials),
        values=np.array([t.value for t in trials], dtype=float),
        durations=np.array(durations, dtype=float),
        trial_attrs=tuple({k: t.user_attrs[k] for k in TRIAL_ATTRS if k in t.user_attrs} for t in trials),
        distributions=distributions,
        started=min(starts),
        kind=kind,
    )


def load_recorded(name: str, storage: str | None = None) -> Recorded:
    """``recorded_results`` of a stored study (read only)."""
    return recorded_results(status.load_study(name, storage))


# ------------------------------------------------------------------------------ the oracle
@dataclass(frozen=True)
class Answer:
    """What the record says of one suggestion: the params the trial keeps, its value and
    duration, the recorded trial it is (None for the surrogate) and that trial's attrs."""

    params: dict[str, Any]
    value: float
    duration: float
    record: int | None
    attrs: dict[str, Any] = field(default_factory=dict)


def _coordinates(dist: BaseDistribution, value: Any) -> list[float]:
    """One hyperparameter in the unit-scaled space: a number by its (log-)range, a categorical
    one-hot scaled so that two different choices are at distance 1."""
    if isinstance(dist, CategoricalDistribution):
        out = [0.0] * len(dist.choices)
        out[int(dist.to_internal_repr(value))] = math.sqrt(0.5)
        return out
    low, high, log = float(dist.low), float(dist.high), bool(dist.log)  # type: ignore[attr-defined]
    if log:
        low, high, value = math.log(low), math.log(high), math.log(float(value))
    return [(float(value) - low) / (high - low) if high > low else 0.0]


class Oracle:
    """Answers suggestions from a ``Recorded``: ``"nearest"`` or ``"surrogate"`` (``ORACLES``).

    Records are grouped by the hyperparameters they use (one group per model under algorithm
    selection); each group has a KD-tree over its unit-scaled coordinates. Answers are cached
    by the suggestion's params (TPE and the GP often suggest one configuration again)."""

    def __init__(self, recorded: Recorded, kind: str = NEAREST) -> None:
        if kind not in ORACLES:
            raise ReplayError(f"Unknown oracle {kind!r}: choose one of {', '.join(ORACLES)}.")
        self.recorded, self.kind, self.name = recorded, kind, ORACLES[kind]
        members: dict[tuple[str, ...], list[int]] = {}
        for i, params in enumerate(recorded.params):
            members.setdefault(tuple(sorted(params)), []).append(i)
        self._groups = {
            names: (np.array(rows), cKDTree(np.array([self._encode(names, recorded.params[i]) for i in rows])))
            for names, rows in members.items()
        }
        self._cache: dict[tuple[tuple[str, Any], ...], Answer] = {}

    @property
    def candidates(self) -> list[dict[str, Any]] | None:
        """The configurations every answer is one of (the nearest oracle's), else None."""
        return list(self.recorded.params) if self.kind == NEAREST else None

    def _encode(self, names: tuple[str, ...], params: dict[str, Any]) -> list[float]:
        dists = self.recorded.distributions
        return [x for name in names for x in _coordinates(dists[name], params[name])]

    def answer(self, params: dict[str, Any]) -> Answer:
        """The record's answer to the suggestion ``params`` (Optuna param names)."""
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if key in self._cache:
            return self._cache[key]
        names = tuple(sorted(params))
        if names not in self._groups:
            raise ReplayError(f"No recorded configuration uses the hyperparameters {', '.join(names)}.")
        rows, tree = self._groups[names]
        k = 1 if self.kind == NEAREST else min(SURROGATE_NEIGHBOURS, len(rows))
        distance, index = tree.query(self._encode(names, params), k=k)
        distance, index = np.atleast_1d(distance), rows[np.atleast_1d(index)]
        rec = self.recorded
        if self.kind == NEAREST or distance[0] == 0.0:
            i = int(index[0])
            found = Answer(dict(rec.params[i]), float(rec.values[i]), float(rec.durations[i]), i, rec.trial_attrs[i])
        else:
            weights = 1.0 / distance
            value = float(weights @ rec.values[index] / weights.sum())
            found = Answer(dict(params), value, float(weights @ rec.durations[index] / weights.sum()), None)
        self._cache[key] = found
        return found
