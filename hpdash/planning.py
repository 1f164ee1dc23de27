"""Planned comparisons: how many repeats a strategy comparison needs, decided before it runs.

From the finished past runs on the **same problem** (``past_spread``) comes the spread of
the per-repeat best CV scores, and from it and the smallest difference worth detecting the
repeats that detect it with 80% power (``plan_repeats``), with the power the form's repeats give.

- **Same problem.** A study counts when it finished (``hpdash.state`` is ``finished``) and has
  the spec's dataset (SHA-256, else the ``sklearn:NAME`` reference), target, task, metric (as
  resolved when the study was created: ``hpdash.attrs.DATASET``, ``TASK``, ``METRIC``), CV folds
  and repeats, test size and budget (``n_trials`` and ``timeout``). Model, space and strategy
  may differ: the spread is a planning figure, not a test.
- **Past experiments.** An experiment of the catalogue counts when every study of it still in
  the storage has finished and is on the same problem. Finished same-problem studies outside
  every experiment (hand-made groups) count together as one more group, their strategy and
  seeds read from their specs.
- **Spread.** ``sd``: the standard deviation of the per-repeat best CV scores within a
  strategy, pooled over the (group, strategy) cells with at least two runs: sqrt(sum of squared
  deviations from each cell's mean / sum of (runs - 1)). ``paired_sd``: the same for the
  per-repeat differences between two strategies, pooled over every pair of strategies of every
  **paired** group (each strategy has exactly one run per split seed and all have the same
  split seeds, as in an experiment with a new split per repeat; at least two split seeds).
- **Plan.** ``statistics.repeats_needed`` (the two-sided t-test's power by the noncentral t,
  the repeats divided by 3/π for the rank tests hpdash runs, and at least the repeats at which
  the exact test can reach p < alpha at all): paired on ``paired_sd`` (the exact Wilcoxon
  signed-rank test of a new split per repeat), unpaired on ``sd`` (the exact Mann-Whitney U of
  one split for every repeat). Without a paired group the sd of the differences is taken as
  √2·sd (runs of one repeat uncorrelated: the larger figure when they share split luck). The
  power at the form's repeats is ``statistics.power_of`` with sd/√(3/π) (the same efficiency),
  and 0 below the exact test's minimum-p floor.
- **Pilot.** With nothing comparable, ``PILOT_TEXT``: run a small pilot experiment (2-3
  repeats) first; once it has finished it is a past experiment, and the form plans from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy

from hpdash import attrs as study_attrs
from hpdash import config, datasets, experiments, objective, results, runner, statistics
from hpdash.errors import StorageError
from hpdash.spec import StudySpec
from hpdash.storage import open_storage, redact
from hpdash.store import Catalogue

DEFAULT_DIFFERENCE = experiments.DEFAULT_MARGIN  # in the metric's units
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
#: Most repeats ``plan_repeats`` looks for (``statistics.repeats_needed``' ``max_repeats``).
MAX_PLANNED = 200
PILOT_TEXT = "No finished experiment on this problem yet: run a small pilot (2-3 repeats), then plan from it."
OUTSIDE = "studies outside experiments"
PAIRED_TEST = "exact Wilcoxon"
UNPAIRED_TEST = "exact Mann-Whitney"


# ------------------------------------------------------------------------------ the problem
@dataclass(frozen=True)
class Problem:
    """What makes two studies runs of the same problem (see the module docstring). ``task``
    and ``metric`` None: not resolved yet (a spec's ``auto`` without its data), any matches."""

    dataset: str | None
    target: str | None
    task: str | None
    metric: str | None
    folds: int | None
    cv_repeats: int | None
    test_size: float | None
    n_trials: int | None
    timeout: float | None

    def matches(self, other: Problem) -> bool:
        """Whether ``other`` (a stored study's problem) is this one."""
        loose = ("task", "metric")
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in loose and mine is None:
                continue
            if isinstance(mine, float) or isinstance(theirs, float):
                if mine is None or theirs is None or not math.isclose(float(mine), float(theirs), abs_tol=1e-12):
                    return False
            elif mine != theirs:
                return False
        return True


def _int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def _dataset_of_spec(spec: StudySpec) -> str:
    """The spec's dataset as stored studies record it: a SHA-256 (given, or of the file at
    the path), else the ``sklearn:NAME`` reference."""
    ref = spec.dataset
    if ref.startswith("sklearn:") or (len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)):
        return ref
    path = Path(ref)
    return datasets.sha256_bytes(path.read_bytes()) if path.is_file() else ref


def problem_of(spec: StudySpec, plan: runner.Plan | None = None) -> Problem:
    """The problem of a spec about to run. ``plan`` (``runner.plan_study(spec)``, as the form
    has it) gives the dataset's SHA-256, the task and the metric as they will be resolved;
    without it an ``auto`` task or metric matches any, and a metric resolves from a given task."""
    dataset: str
    task: str | None
    metric: str | None
    if plan is not None:
        dataset, task, metric = plan.dataset_sha256 or spec.dataset, plan.task, plan.metric
    else:
        dataset = _dataset_of_spec(spec)
        task = None if spec.task == "auto" else spec.task
        metric = spec.metric
        if spec.metric == "auto":
            metric = None if task is None else objective.resolve_metric("auto", task)
    return Problem(
        dataset=dataset,
        target=spec.target,
        task=task,
        metric=metric,
        folds=spec.folds,
        cv_repeats=spec.repeats,
        test_size=float(spec.test_size),
        n_trials=spec.n_trials,
        timeout=_float(spec.timeout),
    )


def _problem_of_study(attrs: Mapping[str, Any]) -> Problem:
    spec = study_attrs.spec_of(attrs)
    raw_cv = spec.get("cv")
    cv: Mapping[str, Any] = raw_cv if isinstance(raw_cv, Mapping) else {}
    return Problem(
        dataset=str(attrs.get(study_attrs.DATASET) or spec.get("dataset") or "") or None,
        target=spec.get("target"),
        task=attrs.get(study_attrs.TASK) or spec.get("task"),
        metric=study_attrs.metric_of(attrs),
        folds=_int(cv.get("folds", 5)),
        cv_repeats=_int(cv.get("repeats", 1)),
        test_size=_float(spec.get("test_size", 0.2)),
        n_trials=_int(spec.get("n_trials")),
        timeout=_float(spec.get("timeout")),
    )


# ------------------------------------------------------------------------------ the spread
@dataclass(frozen=True)
class Run:
    """One finished past study: its group (experiment name, or ``OUTSIDE``), strategy, split
    seed and best CV score."""

    study: str
    group: str
    strategy: str
    split_seed: int | None
    best: float


@dataclass(frozen=True)
class Spread:
    """The spread of per-repeat best CV scores on one problem, from past runs."""

    sd: float | None  # pooled within-strategy sd of the per-repeat bests (None: no cell of 2 runs)
    runs: int  # the runs sd rests on
    df: int  # its degrees of freedom: sum of (runs - 1) over the cells
    paired_sd: float | None  # pooled sd of the per-repeat differences between strategies (paired groups)
    differences: int  # the per-repeat differences paired_sd rests on
    paired_df: int
    experiments: tuple[str, ...]  # the past experiments it came from
    outside: int  # studies outside experiments it came from
    studies: tuple[str, ...]  # every study used
    metric: str | None

    @property
    def source(self) -> str:
        """Where it came from: "3 past experiments: a, b, c" (and studies outside experiments)."""
        parts = []
        if self.experiments:
            n = len(self.experiments)
            parts.append(f"{n} past experiment{'s' if n != 1 else ''}: {', '.join(self.experiments)}")
        if self.outside:
            parts.append(f"{self.outside} {'study' if self.outside == 1 else 'studies'} outside experiments")
        return " and ".join(parts) or "no past runs"


def _pooled(groups: Iterable[Sequence[float]]) -> tuple[float | None, int, int]:
    """(pooled sd, values, degrees of freedom) over the groups of at least two values."""
    ss, df, n = 0.0, 0, 0
    for values in groups:
        if len(values) < 2:
            continue
        mean = math.fsum(values) / len(values)
        ss += math.fsum((v - mean) ** 2 for v in values)
        df += len(values) - 1
        n += len(values)
    return (math.sqrt(ss / df) if df else None), n, df


def _paired_differences(runs: Sequence[Run]) -> list[list[float]]:
    """Per pair of strategies, the per-split-seed differences of a paired group (else [])."""
    by_strategy: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.split_seed is None:
            return []
        seeds = by_strategy.setdefault(run.strategy, {})
        if run.split_seed in seeds:  # two runs of one strategy on one split: not paired
            return []
        seeds[run.split_seed] = run.best
    blocks = {frozenset(seeds) for seeds in by_strategy.values()}
    if len(by_strategy) < 2 or len(blocks) != 1 or len(next(iter(blocks))) < 2:
        return []
    order = sorted(next(iter(blocks)))
    return [
        [by_strategy[a][s] - by_strategy[b][s] for s in order]
        for a, b in itertools.combinations(sorted(by_strategy), 2)
    ]


def spread_of(runs: Sequence[Run], metric: str | None = None) -> Spread | None:
    """The ``Spread`` of the given past runs (grouped by ``Run.group``); None without a cell
    of two runs and without a paired group."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    cells: list[list[float]] = []
    differences: list[list[float]] = []
    used: list[str] = []
    for name, group in groups.items():
        by_strategy: dict[str, list[float]] = {}
        for run in group:
            by_strategy.setdefault(run.strategy, []).append(run.best)
        mine = [values for values in by_strategy.values() if len(values) > 1]
        paired = _paired_differences(group)
        if mine or paired:
            used.append(name)
        cells += mine
        differences += paired
    sd, n_runs, df = _pooled(cells)
    paired_sd, n_differences, paired_df = _pooled(differences)
    if sd is None and paired_sd is None:
        return None
    return Spread(
        sd=sd,
        runs=n_runs,
        df=df,
        paired_sd=paired_sd,
        differences=n_differences,
        paired_df=paired_df,
        experiments=tuple(sorted(name for name in used if name != OUTSIDE)),
        outside=len(groups[OUTSIDE]) if OUTSIDE in used else 0,
        studies=tuple(sorted(r.study for name in used for r in groups[name])),
        metric=metric,
    )


def _bests(store: Any, names: Sequence[str]) -> dict[str, float | None]:
    """The best value of each study in ``names``: every study's progress in a fixed number of
    grouped queries (``results.progress_of_studies``), else study by study."""
    progress = results.progress_of_studies(store)
    if progress is not None:
        return {n: progress[n].best_value if n in progress else None for n in names}
    out: dict[str, float | None] = {}
    for name in names:
        try:
            out[name] = store.get_best_trial(store.get_study_id_from_name(name)).value
        except (KeyError, ValueError):
            out[name] = None
    return out


def past_runs(problem: Problem, storage: str | None = None) -> list[Run]:
    """The finished runs on ``problem``: the studies of past experiments (every study of the
    experiment finished and on the problem) and finished studies outside experiments, with a
    best CV score. One pass over the storage's studies, one over the catalogue."""
    catalogue = Catalogue(storage=storage)
    try:
        membership: dict[str, tuple[str, str, int]] = {}
        for row in catalogue.list_experiments():
            for member in catalogue.experiment_studies(row["name"]):
                membership[member["study"]] = (row["name"], member["strategy"], int(member["seed"]))
    finally:
        catalogue.close()
    store = open_storage(storage, heartbeat=False)
    try:
        try:
            studies = store.get_all_studies()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise StorageError(
                f"Could not read the past studies from {redact(config.storage_url(storage))}: {exc}. "
                "Try again in a moment."
            ) from exc
        on_problem: dict[str, Mapping[str, Any]] = {}
        spoiled: set[str] = set()  # experiments with a study unfinished or on another problem
        for study in studies:
            attrs = study.user_attrs
            ok = attrs.get(study_attrs.STATE) == "finished" and problem.matches(_problem_of_study(attrs))
            group = membership.get(study.study_name, (OUTSIDE,))[0]
            if ok:
                on_problem[study.study_name] = attrs
            elif group != OUTSIDE:
                spoiled.add(group)
        names = [n for n in on_problem if membership.get(n, (OUTSIDE,))[0] not in spoiled]
        bests = _bests(store, names)
    finally:
        store.engine.dispose()
    runs = []
    for name in names:
        best = bests.get(name)
        if best is None or not math.isfinite(best):
            continue
        spec = study_attrs.spec_of(on_problem[name])
        group, strategy = membership[name][:2] if name in membership else (OUTSIDE, str(spec.get("strategy")))
        split = spec.get("split_seed", spec.get("seed"))
        runs.append(Run(name, group, strategy, _int(split), float(best)))
    return runs


def past_spread(spec: StudySpec, storage: str | None = None, *, plan: runner.Plan | None = None) -> Spread | None:
    """The spread of the finished past runs on ``spec``'s problem (``problem_of``), or None
    when nothing comparable has finished. ``plan``: the spec's ``runner.plan_study``, for the
    dataset, task and metric as resolved."""
    problem = problem_of(spec, plan)
    return spread_of(past_runs(problem, storage), problem.metric)


# ------------------------------------------------------------------------------ the plan
def _floor(alpha: float, paired: bool) -> int:
    """The fewest repeats at which the exact test can give p < alpha at all: 2/2^n paired
    (Wilcoxon signed-rank), 2/C(2n, n) unpaired (Mann-Whitney U)."""
    n = 1
    while (statistics.min_paired_p_value(n) if paired else 2.0 / math.comb(2 * n, n)) >= alpha:
        n += 1
    return n


def _needed(difference: float, sd: float, alpha: float, power: float, paired: bool) -> int | None:
    if sd <= 0:  # no spread at all: only the exact test's floor stands in the way
        return _floor(alpha, paired)
    return statistics.repeats_needed(difference, sd, alpha, power, paired, max_repeats=MAX_PLANNED)


def rank_test_power(n: int, difference: float, sd: float, alpha: float = DEFAULT_ALPHA, paired: bool = True) -> float:
    """The approximate power of the exact rank test with n repeats: the t-test's
    (``statistics.power_of``) with sd / √(3/π) (the rank tests' efficiency, as in
    ``statistics.repeats_needed``); 0 below the exact test's floor (``_floor``)."""
    if n < max(2, _floor(alpha, paired)):
        return 0.0
    if sd <= 0:
        return 1.0
    return statistics.power_of(n, difference, sd / math.sqrt(statistics.WILCOXON_ARE), alpha, paired)


@dataclass(frozen=True)
class RepeatPlan:
    """Repeats per strategy to detect ``difference`` with ``power`` at ``alpha`` (``plan_repeats``)."""

    difference: float
    alpha: float
    power: float
    sd: float | None  # the per-run sd (unpaired)
    paired_sd: float | None  # the sd of the per-repeat differences (paired)
    paired_sd_assumed: bool  # paired_sd is √2·sd: no past group was paired
    paired: int | None  # repeats needed, paired (None: more than MAX_PLANNED, or no sd)
    unpaired: int | None
    repeats: int | None  # the form's repeats
    power_paired: float | None  # the power those repeats give
    power_unpaired: float | None
    source: str
    method: str

    def text(self, metric: str | None, paired: bool = True) -> str:
        """The form's line: "To detect a difference of 0.01 in accuracy with 80% power at
        alpha 0.05 you need about N repeats (paired, exact Wilcoxon; sd 0.012 from ...). The
        form's R repeats give power P." """
        sd = self.paired_sd if paired else self.sd
        needed = self.paired if paired else self.unpaired
        power_now = self.power_paired if paired else self.power_unpaired
        what = f"a difference of {self.difference:g}" + (f" in {metric}" if metric else "")
        head = f"To detect {what} with {self.power:.0%} power at alpha {self.alpha:g}"
        if sd is None:
            return f"{head}: no past run gives the spread of this design ({self.source})."
        if needed is None:
            need = f"you need more than {MAX_PLANNED} repeats"
        else:
            need = f"you need about {needed} repeat{'s' if needed != 1 else ''}"
            if needed > experiments.MAX_REPEATS:
                need += f", more than an experiment may have ({experiments.MAX_REPEATS})"
        design = f"paired, {PAIRED_TEST}" if paired else f"unpaired, {UNPAIRED_TEST}"
        if paired and self.paired_sd_assumed and self.sd is not None:
            spread = (
                f"sd of the differences taken as √2 × {self.sd:.2g} (the per-run sd; no past experiment was "
                f"paired) from {self.source}"
            )
        else:
            spread = f"sd {sd:.2g} from {self.source}"
        text = f"{head} {need} ({design}; {spread})."
        if self.repeats is not None and power_now is not None:
            text += f" The form's {self.repeats} repeat{'s' if self.repeats != 1 else ''} give power {power_now:.0%}."
        return text


def plan_repeats(
    difference: float,
    spread: Spread,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    *,
    repeats: int | None = None,
) -> RepeatPlan:
    """The repeats needed to detect ``difference`` (in the metric's units) with ``power`` at
    ``alpha``, paired and unpaired (``statistics.repeats_needed`` on the spread's sds), and the
    power ``repeats`` give (``rank_test_power``). See the module docstring."""
    if not (isinstance(difference, int | float) and math.isfinite(difference) and difference > 0):
        raise ValueError(f"the difference to detect must be a positive number, got {difference!r}")
    assumed = spread.paired_sd is None and spread.sd is not None
    paired_sd = (
        spread.paired_sd if spread.paired_sd is not None else (None if spread.sd is None else math.sqrt(2) * spread.sd)
    )
    floors = (_floor(alpha, True), _floor(alpha, False))
    method = (
        f"Planned from the two-sided t-test's power (noncentral t) at alpha {alpha:g}: on the per-repeat "
        "differences (paired) or on two groups of per-repeat bests (unpaired), the repeats divided by 3/π ≈ "
        "0.955, the asymptotic efficiency of the rank tests hpdash runs (exact Wilcoxon signed-rank paired, "
        "exact Mann-Whitney U unpaired) to the t-test for normal data, and at least the repeats at which the "
        f"exact test can reach p < {alpha:g} at all ({floors[0]} paired, {floors[1]} unpaired). The power at "
        "the form's repeats uses the same efficiency. Assumes roughly normal per-repeat scores and that the "
        "past spread holds for this experiment."
    )
    return RepeatPlan(
        difference=float(difference),
        alpha=alpha,
        power=power,
        sd=spread.sd,
        paired_sd=paired_sd,
        paired_sd_assumed=assumed,
        paired=None if paired_sd is None else _needed(difference, paired_sd, alpha, power, True),
        unpaired=None if spread.sd is None else _needed(difference, spread.sd, alpha, power, False),
        repeats=repeats,
        power_paired=None
        if repeats is None or paired_sd is None
        else rank_test_power(repeats, difference, paired_sd, alpha, True),
        power_unpaired=None
        if repeats is None or spread.sd is None
        else rank_test_power(repeats, difference, spread.sd, alpha, False),
        source=spread.source,
        method=method,
    )


def form_text(
    spread: Spread | None,
    difference: float,
    repeats: int,
    metric: str | None,
    paired: bool = True,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> str:
    """The compare form's planning line: the plan from the past spread, or ``PILOT_TEXT``."""
    if spread is None:
        return PILOT_TEXT
    return plan_repeats(difference, spread, alpha, power, repeats=repeats).text(metric, paired)
