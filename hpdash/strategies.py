"""Strategy names -> seeded Optuna samplers, pruner names -> Optuna pruners.

Also what a strategy needs before it can run: its package (``check_strategy``), its start-up
phase (``startup_trials_of``, ``startup_warning``), the comparisons that would be random search
against itself (``check_comparison``), and each worker's seed (``worker_seed``, derived from
the spec's ``sampler_seed``; the data split follows ``split_seed`` and never reaches a sampler).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from hpdash import attrs as study_attrs
from hpdash import gp_sampler, storage, vocabulary
from hpdash.errors import SpecError

if TYPE_CHECKING:
    from hpdash.spec import StudySpec

#: The form's label of each strategy and pruner (``hpdash.vocabulary``).
STRATEGY_LABELS = {key: s.description for key, s in vocabulary.STRATEGIES.items()}
#: Strategies that fit a model of the scores after a random start-up phase.
MODEL_BASED = tuple(key for key, s in vocabulary.STRATEGIES.items() if s.model_based)
PRUNER_LABELS = {key: p.description for key, p in vocabulary.PRUNERS.items()}
TORCH_HINT = (
    "The gp_torch strategy (Optuna's GPSampler) needs PyTorch, which is not installed. Install the "
    "CPU build with `pip install -r requirements-gp.txt` (or `make install-gp`), or pick gp "
    "(hpdash's Gaussian process on scikit-learn, no PyTorch needed), TPE, random or grid."
)
CMAES_HINT = (
    "The cmaes strategy needs the `cmaes` package, which is not installed. Install it with "
    "`pip install -r requirements.txt` (or `make install`), or pick another strategy."
)
#: Study user attr: which sampler class runs the study, with its start-up trials and seed rule.
SAMPLER_ATTR = study_attrs.SAMPLER
STARTUP_RULE = (
    "min(10, max(1, n_trials // 4)) random trials (10 with a time budget only): a "
    "quarter of the budget explores at random, at most 10 (Optuna's default, enough "
    "for the spaces hpdash offers), and at least the one trial a model needs to start"
)


def torch_available() -> bool:
    """Whether PyTorch can be imported (the gp_torch strategy needs it)."""
    return importlib.util.find_spec("torch") is not None


def cmaes_available() -> bool:
    """Whether the ``cmaes`` package can be imported (Optuna's CmaEsSampler needs it)."""
    return importlib.util.find_spec("cmaes") is not None


def missing_dependency(strategy: str) -> str | None:
    """What to install before ``strategy`` can run (a message with the command), or None."""
    if strategy == "gp_torch" and not torch_available():
        return TORCH_HINT
    if strategy == "cmaes" and not cmaes_available():
        return CMAES_HINT
    return None


def available_strategies() -> list[str]:
    """The strategies that can run here, in the order of ``STRATEGY_LABELS``."""
    return [s for s in STRATEGY_LABELS if missing_dependency(s) is None]


def check_strategy(strategy: str) -> None:
    """Raise SpecError for an unknown strategy, or one whose package is not installed."""
    if strategy not in STRATEGY_LABELS:
        raise SpecError(f"Unknown strategy {strategy!r}: choose one of {', '.join(STRATEGY_LABELS)}.")
    hint = missing_dependency(strategy)
    if hint is not None:
        raise SpecError(hint)


# ------------------------------------------------------------------------------ start-up phase
def default_startup_trials(n_trials: int | None) -> int:
    """Random trials before a model-based strategy takes over, for a budget of ``n_trials``
    (see ``STARTUP_RULE``): 10 of 10 would make a small study random search."""
    if n_trials is None:
        return 10
    return min(10, max(1, int(n_trials) // 4))


def startup_trials_of(spec: StudySpec) -> int | None:
    """The start-up trials a study runs: the spec's ``startup_trials``, else the default for
    its budget. None for a strategy without a start-up phase (grid, random, QMC)."""
    if spec.strategy not in MODEL_BASED:
        return None
    if spec.startup_trials is not None:
        return int(spec.startup_trials)
    return default_startup_trials(spec.n_trials)


def _label(strategy: str) -> str:
    """A strategy in a sentence: a model-based one by its name (TPE), the others by key (random)."""
    return vocabulary.strategy_name(strategy) if strategy in MODEL_BASED else strategy


def startup_warning(spec: StudySpec) -> str | None:
    """A warning when a model-based strategy's start-up phase covers the whole trial budget,
    so every trial is random search; None otherwise (and with a time budget only).

    A budget of one trial is always random: a model needs a finished trial before it can
    choose one (hpdash's GP starts after at least one, whatever ``startup_trials`` says)."""
    startup = startup_trials_of(spec)
    n = spec.n_trials
    if startup is None or n is None:
        return None
    label = _label(spec.strategy)
    if n <= 1:
        return (
            f"{label} would run 1 trial(s) at random: a model needs at least one finished trial "
            f"before it can choose one, so a study of one trial is random search. Raise n_trials "
            f"above 1, or pick random search."
        )
    if startup < n:
        return None
    if spec.startup_trials is not None:
        given = f"startup_trials ({startup} random trials)"
        fix = (
            f"Set startup_trials below {n} (or leave it unset: the default start-up phase for "
            f"{n} trials is {default_startup_trials(n)}), or raise n_trials above {startup}."
        )
    else:
        given = f"the default start-up phase ({startup} random trials)"
        fix = f"Set startup_trials below {n}, or raise n_trials above {startup}."
    return (
        f"{label} would run {n} trial(s) at random: {given} covers the whole budget of {n}, so "
        f"its model never chooses a trial and the study is random search. {fix}"
    )


def conditional_warning(spec: StudySpec) -> str | None:
    """A warning when CMA-ES would be random search because it cannot model the space:
    Optuna's CmaEsSampler models only numeric hyperparameters that every trial has, and under
    algorithm selection no hyperparameter is in every trial."""
    if spec.strategy == "cmaes" and len(spec.models) > 1:
        return (
            "CMA-ES would be random search here: it models only numeric hyperparameters shared by "
            f"every trial, and under algorithm selection ({', '.join(spec.models)}) each model has its "
            "own. Pick TPE or GP, which model conditional spaces, or tune one model at a time."
        )
    return None


def check_comparison(spec: StudySpec, strategies: Sequence[str]) -> None:
    """Refuse a comparison in which two strategies would run the same trials.

    Every strategy is checked as ``check_strategy`` does (its package installed). A
    model-based strategy still in its random start-up phase for the whole budget, or CMA-ES
    under algorithm selection, draws every trial with ``RandomSampler`` and the seed of random
    search: put against random search (or against another such strategy) both run identical
    trials, and the comparison would show a difference of zero that says nothing about them.
    """
    for strategy in strategies:
        check_strategy(strategy)
    random_alike: list[tuple[str, str]] = []
    for strategy in strategies:
        if strategy == "random":
            random_alike.append((strategy, ""))
            continue
        one = spec.replace(strategy=strategy)
        reason = startup_warning(one) or conditional_warning(one)
        if reason is not None:
            random_alike.append((strategy, reason))
    if len(random_alike) < 2:
        return
    names = " and ".join(_label(s) for s, _ in random_alike)
    reasons = " ".join(r for _, r in random_alike if r)
    raise SpecError(
        f"This comparison would pit {names} against each other, but they would run exactly the "
        f"same random trials with the same seeds, so it could show no difference between them. "
        f"{reasons}"
    )


# ------------------------------------------------------------------------------ seeds
def worker_seed(seed: int, worker_index: int) -> int:
    """The sampler seed of worker ``worker_index`` of a study with seed ``seed``.

    Derived with ``numpy.random.SeedSequence([seed, worker_index])``, which hashes both
    numbers into the seed: ``seed + worker_index`` gave worker 1 of repeat 0 the seed of worker
    0 of repeat 1 (an experiment's repeats use consecutive seeds), so they ran the same trials.
    32 bits, the range of the NumPy ``RandomState`` that Optuna's samplers seed.
    """
    return int(np.random.SeedSequence([int(seed), int(worker_index)]).generate_state(1, dtype=np.uint32)[0])


# ------------------------------------------------------------------------------ samplers
class SamplerFailure(RuntimeError):
    """A sampler raised while choosing a trial's hyperparameters (the message says which)."""


class _FailureReason:
    """Mixin for a sampler: an exception while it samples becomes the trial's ``fail_reason``.

    Optuna calls ``infer_relative_search_space`` and ``sample_relative`` at the trial's first
    ``suggest_*`` and ``sample_independent`` at each one, inside the objective, so a sampler
    error fails the trial; but hpdash's objective records ``fail_reason`` only for errors of
    the fit, and the trial would be FAIL with no reason. The reason (the strategy, the error
    and what to do) is written here, where the error is known, and the error is raised again
    as ``SamplerFailure``.
    """

    strategy: str = "?"

    @contextlib.contextmanager
    def _reason_on_failure(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Iterator[None]:
        try:
            yield
        except SamplerFailure:
            raise
        except Exception as exc:
            if isinstance(exc, ImportError):
                fix = missing_dependency(self.strategy) or (
                    "Install the missing package (`pip install -r requirements.txt`), or pick another strategy."
                )
            else:
                fix = (
                    "The sampler failed, not the model or the data: pick another strategy, and report "
                    "this with the study's spec."
                )
            message = (
                f"The {self.strategy} strategy's sampler failed while choosing this trial's "
                f"hyperparameters: {type(exc).__name__}: {exc}. {fix}"
            )[:2000]
            storage.write_sampler_attr(study, trial, "fail_reason", message, system=False)
            raise SamplerFailure(message) from exc

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Any:
        with self._reason_on_failure(study, trial):
            return super().infer_relative_search_space(study, trial)  # type: ignore[misc]

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: Any) -> Any:
        with self._reason_on_failure(study, trial):
            return super().sample_relative(study, trial, search_space)  # type: ignore[misc]

    def sample_independent(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        with self._reason_on_failure(study, trial):
            return super().sample_independent(study, trial, param_name, param_distribution)  # type: ignore[misc]


class RandomSampler(_FailureReason, optuna.samplers.RandomSampler):
    """Optuna's RandomSampler; its failures become the trial's fail_reason."""


class TPESampler(_FailureReason, optuna.samplers.TPESampler):
    """Optuna's TPESampler; its failures become the trial's fail_reason."""


class CmaEsSampler(_FailureReason, optuna.samplers.CmaEsSampler):
    """Optuna's CmaEsSampler; its failures become the trial's fail_reason."""


class QMCSampler(_FailureReason, optuna.samplers.QMCSampler):
    """Optuna's QMCSampler; its failures become the trial's fail_reason."""


class TorchGPSampler(_FailureReason, optuna.samplers.GPSampler):
    """Optuna's GPSampler (needs PyTorch); its failures become the trial's fail_reason."""


class GPSampler(_FailureReason, gp_sampler.GPSampler):
    """hpdash's scikit-learn GP sampler (``hpdash.gp_sampler``); its failures become the
    trial's fail_reason."""


def make_sampler(
    strategy: str, seed: int, n_startup_trials: int = 10, study_seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler for ``strategy`` (see ``_make_sampler``), without experimental-API noise.

    ``study_seed``: the study's own seed where it differs from this sampler's ``seed`` (a
    worker's, ``worker_seed``); QMC scrambles its sequence with it, see ``_make_sampler``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = _make_sampler(strategy, seed, n_startup_trials, seed if study_seed is None else study_seed)
    assert isinstance(sampler, optuna.samplers.BaseSampler)  # each class here adds the mixin to an Optuna sampler
    sampler.strategy = strategy
    return sampler


def _make_sampler(strategy: str, seed: int, n_startup_trials: int, study_seed: int) -> _FailureReason:
    """A seeded sampler for ``strategy``.

    Grid search does not use a sampler to pick points: the runner enqueues every grid point as
    a budget slot, so each point runs exactly once even with several workers (Optuna's
    GridSampler may repeat points under concurrency). Its trials all carry fixed params, so the
    sampler is never asked; a seeded RandomSampler stands in.
    """
    check_strategy(strategy)
    if strategy in ("grid", "random"):
        return RandomSampler(seed=seed)
    if strategy == "tpe":
        # multivariate TPE handles correlated hyperparameters; group=True handles the
        # conditional spaces of algorithm selection. constant_liar spreads parallel workers.
        return TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=True,
            group=True,
            constant_liar=True,
        )
    if strategy == "gp":
        return GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if strategy == "gp_torch":
        return TorchGPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if strategy == "cmaes":
        return CmaEsSampler(seed=seed, n_startup_trials=n_startup_trials, warn_independent_sampling=False)
    # Workers of one study share one scrambled Sobol sequence (Optuna hands out its points in
    # order through the storage), so the scramble uses the study's seed, the same in every
    # worker; the first trial, drawn before the search space is known, uses the worker's.
    return QMCSampler(
        seed=study_seed,
        qmc_type="sobol",
        scramble=True,
        warn_independent_sampling=False,
        independent_sampler=RandomSampler(seed=seed),
    )


def sampler_for(spec: StudySpec, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler worker ``worker_index`` of a study runs: the spec's strategy, the worker's
    own seed (``worker_seed`` of the spec's ``sampler_seed``) and the study's start-up trials
    (``startup_trials_of``).

    Only ``spec.sampler_seed`` (``seed`` unless given) seeds the search; the data split, the
    folds and the models follow ``spec.split_seed`` (``hpdash.objective``), so two studies
    with one split seed and two sampler seeds differ only in the trials their samplers choose.
    """
    startup = startup_trials_of(spec)
    seed = spec.sampler_seed
    return make_sampler(
        spec.strategy, worker_seed(seed, worker_index), 10 if startup is None else startup, study_seed=seed
    )


def sampler_class_name(sampler: optuna.samplers.BaseSampler) -> str:
    """The library class behind a sampler made here, e.g. ``optuna.samplers.TPESampler`` or
    ``hpdash.gp_sampler.GPSampler`` (this module's subclasses only add failure reasons)."""
    for cls in type(sampler).__mro__:
        if cls.__module__ == __name__ or cls is _FailureReason:
            continue
        if getattr(optuna.samplers, cls.__name__, None) is cls:
            return f"optuna.samplers.{cls.__name__}"
        return f"{cls.__module__}.{cls.__qualname__}"
    return type(sampler).__qualname__


def sampler_record(spec: StudySpec) -> dict[str, Any]:
    """What the study records under ``SAMPLER_ATTR``: the sampler class that runs it (so a
    reader knows which GP ran), its start-up trials, its seed (``spec.sampler_seed``) and how
    worker seeds are derived from it."""
    sampler = sampler_for(spec, 0)
    return {
        "strategy": spec.strategy,
        "class": sampler_class_name(sampler),
        "startup_trials": startup_trials_of(spec),
        "sampler_seed": spec.sampler_seed,
        "worker_seeds": f"numpy.random.SeedSequence([{spec.sampler_seed}, worker_index])",
    }


class FoldMedianPruner(optuna.pruners.BasePruner):
    """Stop a trial whose mean score over folds 0..k is below the median of the completed
    trials' means over the same folds 0..k, ties counting half.

    Written by hand because Optuna's ``MedianPruner`` compares a trial's *best* step value
    with the others' values at the current step. That suits learning curves, where later
    steps are better, but not CV folds, which differ in difficulty: the best fold so far is
    often an easy one, so a poor trial is rarely stopped (bench/pruning.py measures it).
    Means over the same folds compare like with like.

    Ties are ranked as in rank tests (mid-ranks): the trial's position is the share of
    completed trials it beats plus half the share it ties, and it stops below 0.5. Fold
    scores such as accuracy on a hundred rows take few distinct values, so many trials tie
    at the median; with ``<`` alone every one of them would run on, and far fewer trials would
    be pruned than with mid-ranks (bench/pruning.py compares the two). A trial tied with the
    best, or with all the others, is never stopped.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        folds = range(step + 1)
        values = trial.intermediate_values
        if any(k not in values for k in folds):
            return False
        others = []
        for done in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            seen = done.intermediate_values
            if all(k in seen for k in folds):
                others.append(sum(seen[k] for k in folds) / len(folds))
        if len(others) < max(1, self.n_startup_trials):
            return False
        mine = sum(values[k] for k in folds) / len(folds)
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        beaten = ties = 0
        for other in others:
            if math.isclose(other, mine, rel_tol=1e-9, abs_tol=1e-12):
                ties += 1
            elif sign * (mine - other) > 0:
                beaten += 1
        return beaten + 0.5 * ties < 0.5 * len(others)


WILCOXON_P_THRESHOLD = 0.13


def make_pruner(name: str, n_folds: int) -> optuna.pruners.BasePruner:
    """A pruner that acts on fold scores (step k = fold k)."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return FoldMedianPruner(n_startup_trials=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(n_folds, 2))
    if name == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # With 5 folds a one-sided exact signed-rank p is 1/8 at best after 3 folds and
            # 1/16 after 4, so Optuna's default 0.1 could only ever skip the last fold. Just
            # above 1/8: a trial worse than the best on each of its first 3 folds stops there.
            return optuna.pruners.WilcoxonPruner(p_threshold=WILCOXON_P_THRESHOLD, n_startup_steps=2)
    raise SpecError(f"Unknown pruner {name!r}: choose one of {', '.join(PRUNER_LABELS)}.")
