"""A comparison loaded from storage: an experiment, or hand-picked studies, with their design."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import experiments, results, runner
from hpdash.compare.design import FrameDesign, design_record, differences, split_design, split_seed_of
from hpdash.compare.verdict import not_comparable_text
from hpdash.compare.words import FRAME_DESIGN
from hpdash.errors import SpecError
from hpdash.spec import StudySpec
from hpdash.storage import open_storage


@dataclass
class Comparison:
    """The studies being compared, stacked in one experiment frame."""

    title: str
    frame: pd.DataFrame  # trials_frame of every study + study, strategy, seed
    runs: list[experiments.ExperimentRun]
    direction: str
    metric: str | None
    spec: StudySpec | None
    holdout: dict[str, float | None]
    grid_notes: dict[str, str]
    studies: dict[str, optuna.Study]
    experiment: str | None = None
    #: What differs between the studies in anything but strategy and seed (``differences``).
    differences: list[str] = field(default_factory=list)
    #: Each study's split seed (``split_seed_of`` its spec; None when not recorded).
    split_seeds: dict[str, int | None] = field(default_factory=dict)
    #: Each study's ``design_record`` (its spec and what was resolved at creation).
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage: str | None = None

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.runs))

    @property
    def comparable(self) -> bool:
        """True when the studies differ only in strategy and seed."""
        return not self.differences

    @property
    def banner(self) -> str | None:
        """The banner "Not comparable: <what differs>." or None."""
        return not_comparable_text(self.differences) if self.differences else None

    @property
    def split(self) -> str:
        """The split design: ``SPLIT_SAME``, ``SPLIT_NEW`` or ``SPLIT_UNKNOWN``."""
        return split_design(self.split_seeds.get(r.study) for r in self.runs)


def experiment_frame(entries: Iterable[tuple[optuna.Study, str, int]]) -> pd.DataFrame:
    """Stack ``trials_frame`` of each (study, strategy, seed) with those three columns first."""
    parts = []
    for study, strategy, seed in entries:
        f = results.trials_frame(study)
        f.insert(0, "seed", pd.Series([int(seed)] * len(f), dtype="int64"))
        f.insert(0, "strategy", pd.Series([strategy] * len(f), dtype="object"))
        f.insert(0, "study", pd.Series([study.study_name] * len(f), dtype="object"))
        parts.append(f)
    if not parts:
        return pd.DataFrame(columns=["study", "strategy", "seed", *results.BASE_COLUMNS])
    frame = pd.concat(parts, ignore_index=True)
    params = sorted(c for c in frame.columns if str(c).startswith(results.PARAM_PREFIX))
    return frame[["study", "strategy", "seed", *results.BASE_COLUMNS, *params]]


def _direction_of(study: optuna.Study) -> str:
    return "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"


def _build(
    title: str,
    runs: list[experiments.ExperimentRun],
    studies: dict[str, optuna.Study],
    spec: StudySpec | None,
    experiment: str | None = None,
    storage: str | None = None,
) -> Comparison:
    attrs = {name: study.user_attrs for name, study in studies.items()}  # one read per study
    directions = {name: _direction_of(study) for name, study in studies.items()}
    records = {r.study: design_record(attrs[r.study], directions[r.study]) for r in runs}
    found = differences([records[r.study] for r in runs])
    metrics = {study_attrs.metric_of(a) for a in attrs.values()}
    holdout: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for run in runs:
        info = attrs[run.study].get(runner.REFIT_ATTR)
        holdout[run.study] = float(info["holdout_score"]) if info and "holdout_score" in info else None
        grid = attrs[run.study].get(runner.GRID_ATTR)
        if grid:
            notes[run.study] = experiments.grid_note(grid, records[run.study].get("n_trials"), run.seed)
    split_seeds = {r.study: split_seed_of(records[r.study]) for r in runs}
    frame = experiment_frame((studies[r.study], r.strategy, r.seed) for r in runs)
    metric = metrics.pop() if len(metrics) == 1 else None
    # ``analyse(comparison.frame, ...)`` alone (the CLI's call) still knows the design.
    frame.attrs[FRAME_DESIGN] = FrameDesign(dict(split_seeds), tuple(found), metric)
    return Comparison(
        title=title,
        frame=frame,
        runs=runs,
        direction=directions[runs[0].study] if runs else "maximize",
        metric=metric,
        spec=spec,
        holdout=holdout,
        grid_notes=notes,
        studies=studies,
        experiment=experiment,
        differences=found,
        split_seeds=split_seeds,
        records=records,
        storage=storage,
    )


def load_experiment_comparison(name: str, storage: str | None = None) -> Comparison:
    """The comparison of a recorded experiment (``StudyNotFoundError`` if it or a study is gone)."""
    exp = experiments.load_experiment(name, storage)
    studies = {r.study: runner.load_study(r.study, storage) for r in exp.runs}
    return _build(f"Experiment {name}", exp.runs, studies, exp.spec, experiment=name, storage=storage)


def load_studies_comparison(names: Sequence[str], storage: str | None = None) -> Comparison:
    """A comparison of hand-picked studies: strategy and seed come from each study's spec.

    Raises ``SpecError`` with fewer than two studies. Studies that differ in more than strategy
    and seed (``differences``) still load: the comparison is then not ``comparable``, and
    ``analyse`` makes no claim and no rank.
    """
    if len(set(names)) < 2:
        raise SpecError("Pick at least two studies to compare.")
    studies = {n: runner.load_study(n, storage) for n in dict.fromkeys(names)}
    runs = []
    for n, study in studies.items():
        spec = study_attrs.spec_of(study.user_attrs)
        runs.append(experiments.ExperimentRun(n, str(spec.get("strategy", "unknown")), int(spec.get("seed", 0))))
    return _build("Selected studies", runs, studies, None, storage=storage)


def study_states(comparison: Comparison) -> dict[str, str]:
    """Each compared study's state (``runner.StudyStatus.state``), read in one batch: every
    study's progress in a fixed number of grouped queries (``results.progress_of_studies``) and
    every study's attrs in one listing, not one ``study_status`` per study. On a storage the fast
    reader cannot read, study by study. A study that is gone is "missing"."""
    names = [r.study for r in comparison.runs]
    store = open_storage(comparison.storage, heartbeat=False)
    try:
        progress = results.progress_of_studies(store)
        wanted = set(names)
        attrs = {s.study_name: s.user_attrs for s in store.get_all_studies() if s.study_name in wanted}
        states = {}
        for name in names:
            if name not in attrs:
                states[name] = "missing"
            elif progress is not None and name in progress:
                states[name] = runner.status_from(name, attrs[name], progress[name]).state
            else:
                states[name] = runner.study_status(runner.load_study(name, store=store)).state
        return states
    finally:
        store.engine.dispose()
