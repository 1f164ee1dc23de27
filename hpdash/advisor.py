"""The decisive-hyperparameter advisor: propose a smaller search space from finished trials.

From one study (``propose``) or the pooled COMPLETE trials of several studies of the same
dataset, target, metric and model (``propose_from``), the advisor:

1. ranks the hyperparameters by PED-ANOVA importance (Optuna's ``PedAnovaImportanceEvaluator``,
   as shares that sum to 1): how differently a hyperparameter is spread in the top
   ``top_quantile`` of trials than in all of them. It is not a variance decomposition (fANOVA
   is), so a share is "of the importance", not "of the variance";
2. keeps the fewest hyperparameters whose shares add up to ``share`` (at least one, at most
   ``max_keep``) and fixes every other one at the best trial's value, as a categorical of
   that one choice, which Optuna and every hpdash strategy treat as a constant;
3. narrows each kept one (``narrow``): a range to the span of the top trials' values plus
   ``MARGIN`` of the old range on each side (on the log scale for a log range), rounded
   outwards and clipped to the old range; a categorical to the choices the top trials use.
   The best trial is a top trial, so every new range holds its value.

The top trials are PED-ANOVA's (the ``ceil(q * n)`` best, ties at the cut-off included); at
least ``MIN_TOP_TRIALS`` are required. The ``Proposal`` gives each decision with its reason,
the new space in the spec's ``space`` form, a follow-up spec and what the narrowing saves.
Algorithm selection studies (several models) are refused: their space is conditional, and
narrowing it would first need choosing the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpdash import attrs as study_attrs
from hpdash import results, space
from hpdash.errors import SpecError
from hpdash.space import HpType, Hyperparameter, SearchSpace
from hpdash.spec import StudySpec, parse_spec

#: The fewest trials the top quantile must hold (Optuna's PED-ANOVA docs advise at least 5).
MIN_TOP_TRIALS = 5
#: A narrowed numeric range is the top trials' span plus this fraction of the old range on
#: each side (measured on the log scale for a log range), then clipped to the old range.
MARGIN = 0.05
#: Grid points per range for the grid savings of a study that has no spec.
DEFAULT_GRID_POINTS = 5
#: Narrowed float bounds are rounded outwards to this many significant digits.
_ROUND_DIGITS = 3

METHOD_NAME = "PED-ANOVA"
#: The defaults: keep the fewest hyperparameters holding this share of the importance, and
#: compare the top quantile of trials against all of them.
SHARE = 0.8
TOP_QUANTILE = 0.1


@dataclass(frozen=True)
class Kept:
    """A hyperparameter the follow-up searches, over its narrowed range."""

    name: str
    #: Its share of the importance (the shares of all ranked hyperparameters sum to 1).
    share: float
    old: Hyperparameter
    new: Hyperparameter
    reason: str

    @property
    def fraction(self) -> float:
        """How much of the old range the new one covers, on the sampler's scale (0..1]."""
        return _extent(self.new) / _extent(self.old)


@dataclass(frozen=True)
class Fixed:
    """A hyperparameter the follow-up does not search: it is held at ``value``."""

    name: str
    #: Its share of the importance; None when it was already fixed in the searched space.
    share: float | None
    value: Any
    old: Hyperparameter
    reason: str


@dataclass(frozen=True)
class Proposal:
    """The advisor's proposal: what to keep and narrow, what to fix, and why."""

    #: The model the space belongs to (None for a study hpdash did not create).
    model: str | None
    kept: tuple[Kept, ...]
    fixed: tuple[Fixed, ...]
    #: The method in words: PED-ANOVA, the quantile and the trial counts.
    method: str
    top_quantile: float
    n_trials: int
    n_top: int
    best_value: float
    best_params: dict[str, Any]
    studies: tuple[str, ...]
    #: The stored dataset's SHA-256 (None for a built-in ``sklearn:`` dataset or a plain study).
    dataset_sha256: str | None
    #: The space the studies searched (their union, when pooled), in the spec's ``space`` form.
    old_space: dict[str, dict[str, Any]]
    #: The proposed space, in the spec's ``space`` form (``space.parse_space`` loads it).
    space: dict[str, dict[str, Any]]
    grid_points: int
    grid_before: int
    grid_after: int
    #: The strategy of the (first) study, for the wording of the savings.
    strategy: str | None
    #: The spec of the first study, the natural base of a follow-up (None for a plain study).
    source_spec: StudySpec | None = None

    @property
    def dims_before(self) -> int:
        """Hyperparameters the studies searched (more than one value)."""
        return sum(1 for hp in space.parse_space(self.old_space).values() if _varies(hp))

    @property
    def dims_after(self) -> int:
        """Hyperparameters the follow-up searches."""
        return sum(1 for hp in space.parse_space(self.space).values() if _varies(hp))

    @property
    def savings(self) -> str:
        """What the narrowing saves, in one or two sentences."""
        before, after, points = self.grid_before, self.grid_after, self.grid_points
        grid = (
            f"a grid at {points} points per range has {after:,} points instead of {before:,} "
            f"({before - after:,} fewer, {after / before:.1%} of the old grid)"
        )
        if self.strategy == "grid":
            return grid[0].upper() + grid[1:] + "."
        covered = ", ".join(f"{k.name} {k.fraction:.0%}" for k in self.kept)
        return (
            f"The follow-up searches {self.dims_after} hyperparameter(s) instead of {self.dims_before}; "
            f"the kept ranges cover {covered} of their old extent. How many trials that saves depends "
            f"on the problem (bench/advisor.py measures it on a synthetic one); for comparison, {grid}."
        )

    def lines(self) -> list[str]:
        """The proposal as short lines of text (method, each decision, the savings)."""
        out = [f"Method: {self.method}."]
        out += [f"Keep {k.name}: {k.old.describe()} -> {k.new.describe()}; {k.reason}." for k in self.kept]
        out += [f"Fix {f.name} = {f.value!r}: {f.reason}." for f in self.fixed]
        out.append(self.savings)
        return out

    def spec(self, base: StudySpec, name: str) -> StudySpec:
        """A follow-up spec: ``base`` with this space and the new ``name`` (validated).

        On a stored dataset the follow-up names it by its SHA-256, so it runs on exactly the
        bytes the trials were scored on."""
        models = base.models
        if len(models) != 1:
            raise SpecError(f"The follow-up spec must have one model; {base.name!r} selects among {', '.join(models)}.")
        if self.model is not None and models[0] != self.model:
            raise SpecError(
                f"The proposed space is for {self.model}, but the base spec {base.name!r} uses {models[0]}."
            )
        changes: dict[str, Any] = {"name": name, "space": self.space}
        if self.dataset_sha256 is not None:
            changes["dataset"] = self.dataset_sha256
        return base.replace(**changes)


@dataclass(frozen=True)
class _Source:
    """What the advisor reads from one study."""

    name: str
    trials: list[FrozenTrial]
    direction: StudyDirection
    spec: StudySpec | None
    dataset_sha256: str | None
    metric: str | None
    space: SearchSpace


def propose(
    study: optuna.Study, *, share: float = SHARE, top_quantile: float = TOP_QUANTILE, max_keep: int | None = None
) -> Proposal:
    """The advisor's proposal from one study's COMPLETE trials (see the module docstring)."""
    return propose_from([study], share=share, top_quantile=top_quantile, max_keep=max_keep)


def propose_from(
    studies: Sequence[optuna.Study],
    *,
    share: float = SHARE,
    top_quantile: float = TOP_QUANTILE,
    max_keep: int | None = None,
) -> Proposal:
    """The advisor's proposal from the pooled COMPLETE trials of ``studies``.

    The studies must share the dataset (its SHA-256, or the built-in dataset's name), the
    target, the metric, the model and the direction; their spaces are joined (the union of
    each hyperparameter's ranges or choices). ``SpecError`` says what differs, or how many
    trials are missing.
    """
    _check_arguments(share, top_quantile, max_keep)
    if not studies:
        raise SpecError("Give at least one study to the advisor.")
    sources = [_read(study) for study in studies]
    _check_poolable(sources)
    old = _joined_space(sources)
    direction = sources[0].direction
    trials = _pooled_trials(sources, old)
    subject = _subject(sources)
    if not _enough(len(trials), top_quantile):
        verb = "has" if len(sources) == 1 else "have"
        raise SpecError(
            f"The advisor needs at least {needed_trials(top_quantile)} COMPLETE trials with a finite score, so "
            f"that the top {_percent(top_quantile)} holds {MIN_TOP_TRIALS} of them and not all; {subject} {verb} "
            f"{len(trials)}. Run more trials, pool more studies of the same dataset and model, or raise "
            f"top_quantile{_quantile_hint(len(trials))}."
        )
    if len({_value(t) for t in trials}) < 2:
        raise SpecError(
            f"All {len(trials)} COMPLETE trials of {subject} have the same score: nothing tells the hyperparameters apart."
        )
    varying = [name for name, hp in old.items() if _varies(hp)]
    if not varying:
        raise SpecError(
            f"{subject[0].upper() + subject[1:]} searched no hyperparameter over more than one value: "
            "there is nothing to narrow."
        )

    top = _top_trials(trials, top_quantile, direction)
    best = top[0]
    shares = _importances(trials, direction, varying, top_quantile)
    ranked = sorted(varying, key=lambda name: (-shares[name], name))
    needed = _needed_for_share(ranked, shares, share)
    keep = set(ranked[: max(1, min(needed, max_keep or needed))])
    pooled = f" pooled from {len(sources)} studies" if len(sources) > 1 else ""
    method = (
        f"{METHOD_NAME} (Optuna's PedAnovaImportanceEvaluator): how differently each hyperparameter is spread "
        f"in the top {_percent(top_quantile)} of {len(trials)} COMPLETE trials{pooled} ({len(top)} trials) "
        "than in all of them, as shares that sum to 1"
    )
    context = f"{METHOD_NAME}, top {_percent(top_quantile)} of {len(trials)} trials"

    kept: list[Kept] = []
    fixed: list[Fixed] = []
    new_space: SearchSpace = {}
    for name, hp in old.items():
        if name in keep:
            narrowed = narrow(hp, [t.params[name] for t in top])
            reason = f"has {shares[name]:.1%} of the importance ({context}); " + _narrow_reason(hp, narrowed, len(top))
            kept.append(Kept(name, shares[name], hp, narrowed, reason))
            new_space[name] = narrowed
            continue
        value = best.params[name]
        if name in shares:
            why = f"has {shares[name]:.1%} of the importance ({context})"
            if ranked.index(name) < needed:
                why += f", but max_keep={max_keep} keeps only the {max_keep} most important"
            share_of: float | None = shares[name]
        else:
            why, share_of = "was already fixed in the searched space", None
        fixed.append(Fixed(name, share_of, value, hp, f"{why}; fixed at the best trial's value"))
        new_space[name] = Hyperparameter(name=name, type="categorical", choices=(value,), label=hp.label)

    first = sources[0]
    points = first.spec.grid_points if first.spec is not None else DEFAULT_GRID_POINTS
    return Proposal(
        model=first.spec.models[0] if first.spec is not None else None,
        kept=tuple(sorted(kept, key=lambda k: (-k.share, k.name))),
        fixed=tuple(fixed),
        method=method,
        top_quantile=top_quantile,
        n_trials=len(trials),
        n_top=len(top),
        best_value=_value(best),
        best_params=dict(best.params),
        studies=tuple(s.name for s in sources),
        dataset_sha256=first.dataset_sha256,
        old_space=space.space_to_dict(old),
        space=space.space_to_dict(new_space),
        grid_points=points,
        grid_before=space.grid_size(old, points),
        grid_after=space.grid_size(new_space, points),
        strategy=first.spec.strategy if first.spec is not None else None,
        source_spec=first.spec,
    )


def narrow(hp: Hyperparameter, values: Sequence[Any], margin: float = MARGIN) -> Hyperparameter:
    """``hp`` narrowed to the region of ``values`` (the top trials' values of it).

    A range: the span of the values widened by ``margin`` of the old range on each side (on
    the log scale when ``hp.log``), rounded outwards (whole numbers for an int, 3 significant
    digits for a float) and clipped to the old range; never empty or inverted, and it
    contains every value that lies in the old range. A categorical: the choices among
    ``values``, in their old order. With no usable value, ``hp`` itself.
    """
    if hp.type == "categorical":
        seen = list(values)  # choices compare by value, as in Optuna (a space never has both 1 and True)
        choices = tuple(c for c in hp.choices or () if c in seen)
        return dataclasses.replace(hp, choices=choices) if choices else hp
    low, high = hp.bounds()
    inside = [float(v) for v in values if _is_number(v) and low <= float(v) <= high]
    if not inside:
        return hp
    to_scale, from_scale = (math.log, math.exp) if hp.log else (float, float)
    lo_s, hi_s = to_scale(float(low)), to_scale(float(high))
    pad = margin * (hi_s - lo_s)
    start = max(lo_s, to_scale(min(inside)) - pad)
    stop = min(hi_s, to_scale(max(inside)) + pad)
    if hp.type == "int":
        new_low = max(int(low), min(math.floor(from_scale(start)), math.floor(min(inside))))
        new_high = min(int(high), max(math.ceil(from_scale(stop)), math.ceil(max(inside))))
        if new_low >= new_high:  # every top value the same: widen to two whole numbers
            if new_high < int(high):
                new_high += 1
            else:
                new_low -= 1
        return dataclasses.replace(hp, low=new_low, high=new_high)
    new_low_f = max(float(low), min(_round(from_scale(start), math.floor), min(inside)))
    new_high_f = min(float(high), max(_round(from_scale(stop), math.ceil), max(inside)))
    if not new_low_f < new_high_f:  # only for a range too narrow for float arithmetic
        return hp
    return dataclasses.replace(hp, low=new_low_f, high=new_high_f)


# --------------------------------------------------------------------------------------------
# Reading and pooling the studies
# --------------------------------------------------------------------------------------------
def _check_arguments(share: float, top_quantile: float, max_keep: int | None) -> None:
    if not 0 < share <= 1:
        raise SpecError(f"share must be a fraction in (0, 1], not {share!r}.")
    if not 0 < top_quantile < 1:
        raise SpecError(f"top_quantile must be a fraction in (0, 1), not {top_quantile!r}.")
    if max_keep is not None and (isinstance(max_keep, bool) or not isinstance(max_keep, int) or max_keep < 1):
        raise SpecError(f"max_keep must be a whole number of at least 1, or None; not {max_keep!r}.")


def _read(study: optuna.Study) -> _Source:
    name = study.study_name
    if len(study.directions) != 1:
        raise SpecError(f"Study {name!r} has {len(study.directions)} objectives; the advisor needs a single score.")
    attrs = study.user_attrs
    raw_spec = study_attrs.spec_of(attrs)
    spec = parse_spec(raw_spec) if raw_spec else None
    trials = [
        t
        for t in results.completed_trials(study)
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if spec is not None and len(spec.models) > 1:
        raise SpecError(
            f"Study {name!r} selects among several models ({', '.join(spec.models)}): the advisor narrows "
            "the space of one model. Run it on a study of one model, such as a follow-up of the best one."
        )
    stored = attrs.get(study_attrs.SPACE)
    if spec is not None and isinstance(stored, Mapping) and isinstance(stored.get(spec.models[0]), Mapping):
        searched = space.parse_space(stored[spec.models[0]])
    else:
        searched = _space_of_trials(name, trials)
    sha = attrs.get(study_attrs.DATASET)
    return _Source(
        name=name,
        trials=trials,
        direction=study.direction,
        spec=spec,
        dataset_sha256=str(sha) if sha else None,
        metric=study_attrs.metric_of(attrs),
        space=searched,
    )


def _space_of_trials(study: str, trials: Sequence[FrozenTrial]) -> SearchSpace:
    """The space of a study hpdash did not create, from its trials' distributions."""
    out: SearchSpace = {}
    for trial in trials:
        for name, dist in trial.distributions.items():
            try:
                hp = _from_distribution(name, dist)
            except SpecError as exc:
                raise SpecError(f"Study {study!r}: {exc}") from None
            out[name] = hp if name not in out else _join(out[name], hp, f"in study {study!r}")
    return out


def _from_distribution(name: str, dist: BaseDistribution) -> Hyperparameter:
    if isinstance(dist, CategoricalDistribution):
        return Hyperparameter(name=name, type="categorical", choices=tuple(dist.choices))
    step, low, high, log = (getattr(dist, key, None) for key in ("step", "low", "high", "log"))
    if step not in (None, 1) or (step == 1 and not isinstance(dist, IntDistribution)):
        raise SpecError(f"parameter {name!r} is searched with a step ({step}), which the advisor cannot narrow.")
    if low == high:
        return Hyperparameter(name=name, type="categorical", choices=(low,))
    kind: HpType = "int" if isinstance(dist, IntDistribution) else "float"
    return Hyperparameter(name=name, type=kind, low=low, high=high, log=bool(log))


def _join(a: Hyperparameter, b: Hyperparameter, where: str) -> Hyperparameter:
    """The union of two versions of one hyperparameter (pooled studies, or a study whose
    trials used different ranges): the hull of two ranges, the union of two choice lists, a
    range widened to a number that a study fixed. ``SpecError`` when they cannot be joined."""
    if a == b:
        return a
    if a.type == b.type == "categorical":
        extra = tuple(c for c in b.choices or () if c not in (a.choices or ()))
        return dataclasses.replace(a, choices=tuple(a.choices or ()) + extra)
    if a.type == "categorical":
        a, b = b, a
    if b.type == "categorical" and len(b.choices or ()) == 1:  # a range and a number a study fixed
        number = (b.choices or ())[0]
        if _is_number(number) and (a.type == "float" or float(number).is_integer()) and not (a.log and number <= 0):
            low, high = a.bounds()
            return dataclasses.replace(a, low=min(low, number), high=max(high, number))
    elif b.type == a.type and b.log == a.log:
        (a_low, a_high), (b_low, b_high) = a.bounds(), b.bounds()
        return dataclasses.replace(a, low=min(a_low, b_low), high=max(a_high, b_high))
    raise SpecError(
        f"Hyperparameter {a.name!r} is {a.describe()} in one place and {b.describe()} in another ({where}); "
        "the advisor pools only studies that search it with the same type and scale."
    )


def _dataset_key(source: _Source) -> str | None:
    if source.dataset_sha256 is not None:
        return source.dataset_sha256
    return source.spec.dataset if source.spec is not None else None


def _check_poolable(sources: Sequence[_Source]) -> None:
    if len(sources) == 1:
        return
    plain = [s.name for s in sources if s.spec is None]
    if plain:
        raise SpecError(
            f"Study {plain[0]!r} was not created by hpdash: its dataset and model are unknown, so its trials "
            "cannot be pooled with other studies. Run the advisor on it alone."
        )
    if len({s.name for s in sources}) != len(sources):
        raise SpecError("The same study is given twice: pool each study once.")
    first = sources[0]
    assert first.spec is not None
    checks: list[tuple[str, Any]] = [
        ("dataset (SHA-256 or built-in name)", _dataset_key),
        ("target", lambda s: s.spec.target),
        ("model", lambda s: s.spec.models[0]),
        ("metric", lambda s: s.metric),
        ("direction", lambda s: s.direction.name.lower()),
    ]
    for what, key in checks:
        for other in sources[1:]:
            if key(other) != key(first):
                raise SpecError(
                    f"Study {other.name!r} has {what} {key(other)!r}, study {first.name!r} has {key(first)!r}: "
                    "the advisor pools only studies of the same dataset, target, metric and model."
                )


def _joined_space(sources: Sequence[_Source]) -> SearchSpace:
    out: SearchSpace = dict(sources[0].space)
    for source in sources[1:]:
        missing = sorted(set(out) ^ set(source.space))
        if missing:
            raise SpecError(
                f"Study {source.name!r} and study {sources[0].name!r} do not search the same hyperparameters "
                f"(only one has {', '.join(missing)}); pool only studies of the same hyperparameters."
            )
        for name, hp in source.space.items():
            out[name] = _join(out[name], hp, f"studies {sources[0].name!r} and {source.name!r}")
    return out


def _pooled_trials(sources: Sequence[_Source], old: SearchSpace) -> list[FrozenTrial]:
    """The COMPLETE trials of all sources, renumbered so that trial ids are unique (PED-ANOVA
    tells trials apart by id, and studies in different storages may share ids)."""
    names = set(old)
    out: list[FrozenTrial] = []
    for source in sources:
        for trial in source.trials:
            if set(trial.params) != names:
                if space.MODEL_PARAM in trial.params:
                    raise SpecError(
                        f"Study {source.name!r} selects among several models (parameter {space.MODEL_PARAM!r}): "
                        "the advisor narrows the space of one model. Run it on a study of one model."
                    )
                raise SpecError(
                    f"Trial {trial.number} of study {source.name!r} has the parameters "
                    f"{', '.join(sorted(trial.params)) or 'none'}, not the searched space's {', '.join(sorted(names))}: "
                    "the advisor needs every trial to set every hyperparameter (no conditional space)."
                )
            index = len(out)  # the number and the trial id (positional: number ... trial_id)
            times = (trial.datetime_start, trial.datetime_complete)
            params, dists = dict(trial.params), dict(trial.distributions)
            out.append(FrozenTrial(index, TrialState.COMPLETE, trial.value, *times, params, dists, {}, {}, {}, index))
    return out


def _subject(sources: Sequence[_Source]) -> str:
    """``"study 'a'"`` or ``"the 3 studies"``, for a message."""
    return f"study {sources[0].name!r}" if len(sources) == 1 else f"the {len(sources)} studies"


# --------------------------------------------------------------------------------------------
# Ranking, keeping, narrowing
# --------------------------------------------------------------------------------------------
def _value(trial: FrozenTrial) -> float:
    assert trial.value is not None  # the pooled trials are COMPLETE with a finite value
    return float(trial.value)


def _top_trials(trials: Sequence[FrozenTrial], quantile: float, direction: StudyDirection) -> list[FrozenTrial]:
    """The top ``quantile`` of ``trials`` as PED-ANOVA takes them (the ``ceil(q * n)``-th
    best score is the cut-off; ties with it are in), best first."""
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    ordered = sorted(trials, key=lambda t: (sign * _value(t), t.number))
    cutoff = sign * _value(ordered[_n_top(len(ordered), quantile) - 1])
    return [t for t in ordered if sign * _value(t) <= cutoff]


def _importances(
    trials: list[FrozenTrial], direction: StudyDirection, params: list[str], quantile: float
) -> dict[str, float]:
    view = results.TrialsView(trials, direction)
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    found = get_param_importances(cast(optuna.Study, view), evaluator=evaluator, params=params, normalize=True)
    return {name: float(found.get(name, 0.0)) for name in params}


def _n_top(n: int, quantile: float) -> int:
    """How many trials the top ``quantile`` of ``n`` holds before ties (PED-ANOVA's rule)."""
    return math.ceil(quantile * n)


def _enough(n: int, quantile: float) -> bool:
    """Whether the top ``quantile`` of ``n`` trials holds ``MIN_TOP_TRIALS`` and not all of them."""
    return MIN_TOP_TRIALS <= _n_top(n, quantile) < n


def needed_trials(top_quantile: float) -> int:
    """The fewest COMPLETE trials the advisor runs on with ``top_quantile`` (41 for 0.1)."""
    # ceil(q * n) >= MIN_TOP_TRIALS needs q * n > MIN_TOP_TRIALS - 1, so n starts just below
    # (MIN_TOP_TRIALS - 1) / q; both conditions only get easier as n grows.
    n = max(MIN_TOP_TRIALS + 1, math.floor((MIN_TOP_TRIALS - 1) / top_quantile))
    while not _enough(n, top_quantile):
        n += 1
    return n


def _quantile_hint(n: int) -> str:
    """`` (to 0.34 for these 15 trials)``: the smallest top_quantile (2 decimals) that ``n``
    trials allow, or nothing when none does."""
    for hundredths in range(1, 100):
        if _enough(n, hundredths / 100):
            return f" (to {hundredths / 100:.2f} for these {n} trials)"
    return ""


def _needed_for_share(ranked: Sequence[str], shares: Mapping[str, float], share: float) -> int:
    """How many of ``ranked`` (most important first) it takes for their shares to reach ``share``."""
    total = 0.0
    for count, name in enumerate(ranked, start=1):
        total += shares[name]
        if total >= share - 1e-9:
            return count
    return len(ranked)


def _narrow_reason(old: Hyperparameter, new: Hyperparameter, n_top: int) -> str:
    if old.type == "categorical":
        kept, total = len(new.choices or ()), len(old.choices or ())
        if kept == total:
            return f"every one of its {total} choices appears among the top {n_top} trials, so all are kept"
        return f"the top {n_top} trials use {kept} of its {total} choices, so only those are kept"
    if new == old:
        return f"its top {n_top} trials spread over the whole range, so it is not narrowed"
    return (
        f"searched over the span of its top {n_top} trials' values plus {MARGIN:.0%} of the old range "
        f"on each side{' (log scale)' if old.log else ''}, within the old range"
    )


def _varies(hp: Hyperparameter) -> bool:
    return hp.type != "categorical" or len(hp.choices or ()) > 1


def _extent(hp: Hyperparameter) -> float:
    """The size of ``hp`` on the sampler's scale: the number of choices, or the range's width
    (of the logarithms for a log range)."""
    if hp.type == "categorical":
        return float(len(hp.choices or ()))
    low, high = hp.bounds()
    return math.log(high) - math.log(low) if hp.log else float(high) - float(low)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _round(x: float, to_whole: Callable[[float], int]) -> float:
    """``x`` rounded by ``to_whole`` (floor or ceil) at ``_ROUND_DIGITS`` significant digits.

    Built from decimal text, so 0.0123 comes out as the float nearest to 0.0123, not as
    0.012300000000000002; the caller widens by the raw value when that lands on the wrong
    side of ``x``."""
    if x == 0 or not math.isfinite(x):
        return x
    exponent = math.floor(math.log10(abs(x))) - _ROUND_DIGITS + 1
    return float(f"{to_whole(x / 10.0**exponent)}e{exponent}")


def _percent(q: float) -> str:
    return f"{q * 100:g}%"
