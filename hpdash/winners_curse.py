"""The winner's curse meter: the best configuration's CV score corrected for selection bias.

The best of many cross-validated configurations is optimistic: it won partly by luck on
these folds. BBC-CV (Tsamardinos, Greasidou & Borboudakis 2018; ``statistics.bbc_cv``)
estimates what the winner would score on new rows without refitting anything: it bootstraps
the rows of the configurations' out-of-fold predictions, picks the winner on each in-bag
sample and scores it on the out-of-bag rows.

The predictions are those each COMPLETE trial kept (``objective.PredictionStore``: the first
CV repeat, one Optuna artifact per trial). They are scored with the study's own scorer
(``Problem.scorer``, with its positive class) called on ``objective.ReplayClassifier`` /
``ReplayRegressor``, which answers with the stored outputs of the rows asked for: the same
public call that scored the folds, so the replay of fold k gives exactly its stored score.
The target is the training part of the study's own dataset, prepared and split as its
workers did (``runner.load_problem``), and checked against the digest and folds stored with
the predictions.

Every score call goes through scikit-learn's scorer (about a millisecond each, more for
ROC AUC), and BBC-CV makes about ``n_bootstrap * (configs + 1)`` of them: ``max_configs``
keeps the best configurations by CV score (the in-bag winner is almost always one of them),
and configurations with identical predictions are scored once.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState
from sklearn.exceptions import UndefinedMetricWarning

from hpdash import access, config, objective, runner, statistics
from hpdash.errors import HpdashError

log = logging.getLogger("hpdash")

#: Configurations BBC-CV selects among by default: the best by CV score.
DEFAULT_MAX_CONFIGS = 20
DEFAULT_N_BOOTSTRAP = 1000
#: BBC-CV results kept in this process (a page is drawn again on every interaction).
CACHE_SIZE = 32


@dataclass(frozen=True)
class WinnersCurse:
    """How much a study's search overfitted its CV estimate.

    ``raw_best`` is the best configuration's score on its pooled out-of-fold predictions of
    the first CV repeat (trial ``raw_trial``), ``corrected`` the BBC-CV estimate with its
    percentile interval ``ci_low``..``ci_high`` (``level``), ``bias = raw_best - corrected``
    (negated for a metric to minimise), so a positive bias means the raw best is optimistic.
    ``best_cv`` is the study's best trial value as the study shows it (the mean of its fold
    scores, every repeat; trial ``best_trial``), ``holdout`` the refit final model's holdout
    score (None before the refit). ``trials`` are the configurations used (the columns of the
    OOF matrix, in this order), of the ``n_available`` COMPLETE trials with stored
    predictions out of ``n_complete``; ``note`` says when some were left out.
    """

    study: str
    metric: str
    direction: str
    raw_best: float
    raw_trial: int
    corrected: float
    ci_low: float
    ci_high: float
    level: float
    bias: float
    best_cv: float
    best_trial: int
    holdout: float | None
    n_configs: int
    n_available: int
    n_complete: int
    rows: int
    trials: tuple[int, ...]
    n_bootstrap: int
    method: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "trials": list(self.trials)}


def winners_curse(
    study: optuna.Study,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    max_configs: int | None = DEFAULT_MAX_CONFIGS,
    level: float = 0.95,
) -> WinnersCurse | None:
    """The study's selection-bias estimate (BBC-CV), or None when it cannot be made (the
    reason is logged; ``winners_curse_or_reason`` returns it)."""
    result = winners_curse_or_reason(study, n_bootstrap, seed, max_configs, level)
    if isinstance(result, str):
        log.info("No BBC-CV estimate for study %s: %s", study.study_name, result)
        return None
    return result


def winners_curse_or_reason(
    study: optuna.Study,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    max_configs: int | None = DEFAULT_MAX_CONFIGS,
    level: float = 0.95,
    *,
    problem: objective.Problem | None = None,
) -> WinnersCurse | str:
    """``winners_curse``, or a sentence saying why there is none: the spec kept no predictions
    (``keep_predictions: false``), the training part was over ``HPDASH_MAX_OOF_ROWS``, no
    COMPLETE trial stored any (a study run before hpdash kept them), storing failed, the files
    are gone, or the study's data no longer match them.

    ``max_configs``: BBC-CV selects among the best that many COMPLETE trials by CV score
    (None: all of them). ``problem``: the study's ``runner.load_problem``, when the caller
    has it (otherwise it is loaded here, only when there are predictions to replay).
    """
    return _assess(study, n_bootstrap, seed, max_configs, level, lambda spec: problem or _load_problem(spec, study))


def on_request(
    study: optuna.Study, n_bootstrap: int = DEFAULT_N_BOOTSTRAP, max_configs: int | None = DEFAULT_MAX_CONFIGS
) -> WinnersCurse | str:
    """``winners_curse_or_reason`` asked for from a page (the Study page's button): refused
    on a read-only dashboard (``ReadOnlyError``), where a viewer must not make the server
    replay hundreds of bootstraps."""
    access.require_writable("estimate the selection bias (BBC-CV bootstraps every stored prediction on this server)")
    return winners_curse_or_reason(study, n_bootstrap=n_bootstrap, max_configs=max_configs)


def _load_problem(spec: Any, study: optuna.Study) -> objective.Problem:
    return runner.load_problem(spec, study.user_attrs.get(runner.DATASET_ATTR))


def _assess(
    study: optuna.Study,
    n_bootstrap: int,
    seed: int,
    max_configs: int | None,
    level: float,
    load: Callable[[Any], objective.Problem],
) -> WinnersCurse | str:
    try:
        spec = runner.load_spec_of(study)
    except HpdashError as exc:
        return str(exc)
    if not spec.keep_predictions:
        return "The study keeps no out-of-fold predictions (keep_predictions: false in its spec)."
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "The study has no completed trial."
    stored = [t for t in complete if objective.oof_artifacts(t)]
    if not stored:
        return _why_none_stored(complete)
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    direction = "maximize" if sign > 0 else "minimize"
    stored.sort(key=lambda t: (-sign * float(t.value or 0.0), t.number))
    chosen = stored if max_configs is None else stored[: max(1, max_configs)]
    chosen.sort(key=lambda t: t.number)
    key = (
        str(config.data_dir()),
        study.study_name,
        tuple((t.number, tuple(m.artifact_id for m in objective.oof_artifacts(t))) for t in chosen),
        direction,
        n_bootstrap,
        seed,
        level,
    )
    cached = _CACHE.get(key)
    if cached is None:
        try:
            problem = load(spec)
        except HpdashError as exc:
            return f"The study's data cannot be loaded to replay its predictions: {exc}"
        computed = _compute(study.study_name, chosen, problem, direction, n_bootstrap, seed, level)
        if isinstance(computed, str):
            return computed
        _CACHE.put(key, computed)
        cached = computed
    bbc, raw_trial, metric, rows, trials, distinct, skipped = cached
    n_used = len(trials)
    best = study.best_trial
    refit = runner.refit_info(study)
    notes = []
    if len(chosen) < len(stored):
        notes.append(f"BBC-CV selected among the {len(chosen)} best of {len(stored)} configurations by CV score.")
    if len(stored) < len(complete):
        notes.append(f"{len(complete) - len(stored)} of {len(complete)} completed trials stored no predictions.")
    if distinct < n_used:
        notes.append(
            f"{n_used - distinct} of the {n_used} configurations predicted exactly as another one did and "
            "were scored once."
        )
    notes += skipped
    return WinnersCurse(
        study=study.study_name,
        metric=metric,
        direction=direction,
        raw_best=bbc.raw_best,
        raw_trial=raw_trial,
        corrected=bbc.corrected,
        ci_low=bbc.ci_low,
        ci_high=bbc.ci_high,
        level=level,
        bias=bbc.bias,
        best_cv=float(best.value) if best.value is not None else float("nan"),
        best_trial=best.number,
        holdout=float(refit["holdout_score"]) if refit else None,
        n_configs=n_used,
        n_available=len(stored),
        n_complete=len(complete),
        rows=rows,
        trials=trials,
        n_bootstrap=bbc.n_bootstrap,
        method=bbc.method,
        note=" ".join(notes) or None,
    )


_Computed = tuple[statistics.BBCResult, int, str, int, tuple[int, ...], int, tuple[str, ...]]


class _LRU:
    """A small thread-safe LRU of BBC-CV results (pages run in several threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], _Computed] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> _Computed | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple[Any, ...], value: _Computed) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _LRU(CACHE_SIZE)


def _compute(
    study_name: str,
    chosen: list[optuna.trial.FrozenTrial],
    problem: objective.Problem,
    direction: str,
    n_bootstrap: int,
    seed: int,
    level: float,
) -> _Computed | str:
    """BBC-CV on the chosen trials' stored predictions: (its result, the raw winner's trial,
    the metric, rows, the trials used, how many distinct, notes on trials left out)."""
    loaded = _load(study_name, chosen, problem)
    if isinstance(loaded, str):
        return loaded
    predictions, skipped = loaded
    n = len(problem.y_train)
    scorer = problem.scorer
    y, as_codes = _target_for(problem, predictions)
    # Configurations with the same outputs are one column: BBC-CV's first-on-ties winner and
    # its scores are the same as with every column, for fewer scorer calls.
    distinct = sorted(set(_distinct_columns(predictions)))
    replays = [predictions[j].replay(as_codes) for j in distinct]
    codes = np.arange(n)[:, None] + n * np.arange(len(distinct))[None, :]
    sign = 1.0 if direction == "maximize" else -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", UserWarning)
        bbc = statistics.bbc_cv(
            codes, y, _replay_score(scorer, replays, n), direction, n_bootstrap=n_bootstrap, seed=seed, level=level
        )
        raw_trial = _raw_winner(scorer, [predictions[j] for j in distinct], y, as_codes, sign)
    trials = tuple(p.trial for p in predictions)
    return bbc, raw_trial, problem.metric, n, trials, len(distinct), tuple(skipped)


def _why_none_stored(complete: list[optuna.trial.FrozenTrial]) -> str:
    """Why no COMPLETE trial has stored predictions, from what the trials recorded."""
    for key, prefix in (("oof_skipped", ""), ("oof_error", "Storing the out-of-fold predictions failed: ")):
        reasons = [str(t.user_attrs[key]) for t in complete if t.user_attrs.get(key)]
        if reasons:
            return prefix + max(set(reasons), key=reasons.count)
    return (
        "No completed trial stored out-of-fold predictions: the study ran before hpdash kept "
        "them (run it again, or resume it for new trials)."
    )


def _load(
    study_name: str, trials: list[optuna.trial.FrozenTrial], problem: objective.Problem
) -> tuple[list[objective.OOFPredictions], list[str]] | str:
    """Each trial's stored predictions, checked against the study's training part (rows, target
    digest, folds of the first repeat, the scorer's method); those that fail a check are left
    out and said so, and when none is left the reason is returned."""
    digest = objective.target_digest(problem.y_train)
    folds = objective.fold_of_rows(problem)
    folder = objective.artifacts_folder(study_name)
    missing = (
        f"its predictions file is not in {folder} (deleted, or the workers' data directory is another "
        "one: set HPDASH_DATA_DIR to it)"
    )
    out: list[objective.OOFPredictions] = []
    problems: dict[str, list[int]] = {}
    for trial in trials:
        try:
            oof = objective.load_oof(study_name, trial)
        except ArtifactNotFound:
            problems.setdefault(missing, []).append(trial.number)
            continue
        except (OSError, ValueError, KeyError) as exc:
            problems.setdefault(f"its predictions file cannot be read ({type(exc).__name__})", []).append(trial.number)
            continue
        if oof is None:
            continue
        if oof.meta.get("target_sha256") != digest or not np.array_equal(oof.fold, folds):
            problems.setdefault("the study's data no longer give the rows it was stored for", []).append(trial.number)
        elif oof.meta.get("scored_with") not in oof.outputs:
            problems.setdefault(f"it lacks the {oof.meta.get('scored_with')} the metric scores", []).append(
                trial.number
            )
        else:
            out.append(oof)
    notes = [f"Left out trial(s) {', '.join(map(str, numbers))}: {why}." for why, numbers in problems.items()]
    if not out:
        return " ".join(notes) if notes else "No stored out-of-fold predictions could be read."
    return out, notes


def _distinct_columns(predictions: list[objective.OOFPredictions]) -> list[int]:
    """For each configuration, the first one with the same outputs of the scorer's method
    (BBC-CV scores it once; its first-on-ties winner is the same configuration)."""
    first: dict[bytes, int] = {}
    columns = []
    for j, oof in enumerate(predictions):
        values = np.ascontiguousarray(oof.outputs[str(oof.meta["scored_with"])])
        key = str(values.dtype).encode() + repr(values.shape).encode() + values.tobytes()
        columns.append(first.setdefault(key, j))
    return columns


def _replay_score(scorer: Callable[..., float], replays: list[Any], n: int) -> Callable[[Any, Any], float]:
    """``score(y_true, codes)`` for ``statistics.bbc_cv``: the OOF "matrix" holds
    ``j * n + row`` for configuration j, so each call is the study's scorer on configuration
    j's replay estimator for those rows."""

    def score(y_true: Any, codes: Any) -> float:
        codes = np.asarray(codes)
        j = int(codes[0]) // n
        return float(scorer(replays[j], objective.index_column(codes - j * n), y_true))

    return score


def _target_for(problem: objective.Problem, predictions: list[objective.OOFPredictions]) -> tuple[np.ndarray, bool]:
    """The training part's target to score on, and whether as class positions: for a metric
    that scores positions as it scores labels (``objective.codes_score_as_labels``), when
    every configuration has the same classes and they hold every label (sorting text labels
    is most of a scorer call's time)."""
    y = problem.y_train.to_numpy()
    classes = predictions[0].classes
    if (
        classes is None
        or not objective.codes_score_as_labels(problem.metric)
        or not all(p.classes is not None and np.array_equal(p.classes, classes) for p in predictions)
    ):
        return y, False
    codes = objective.label_codes(y, classes)
    return (y, False) if codes is None else (codes, True)


def _raw_winner(
    scorer: Callable[..., float],
    predictions: list[objective.OOFPredictions],
    y: np.ndarray,
    as_codes: bool,
    sign: float,
) -> int:
    """The trial whose pooled out-of-fold score is the best (first on ties), as BBC-CV picks it."""
    rows = objective.index_column(np.arange(len(y)))
    scores = [sign * float(scorer(p.replay(as_codes), rows, y)) for p in predictions]
    signed = np.where(np.isnan(scores), -np.inf, scores)
    return predictions[int(np.argmax(signed))].trial


def winners_curse_by_strategy(
    studies: Iterable[optuna.Study],
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    max_configs: int | None = DEFAULT_MAX_CONFIGS,
) -> pd.DataFrame:
    """One row per study: its strategy and seeds (from its spec), best CV, the BBC-CV raw best,
    corrected estimate, interval and bias, the holdout score, the configurations used, the
    method, and ``reason`` when there is no estimate (the other numbers are then missing).
    Studies on the same data and split share one loaded training part."""
    rows = []
    problems: dict[tuple[Any, ...], objective.Problem] = {}
    for study in studies:
        row: dict[str, Any] = {"study": study.study_name}
        try:
            spec = runner.load_spec_of(study)
        except HpdashError as exc:
            rows.append({**row, "reason": str(exc)})
            continue
        row.update(strategy=spec.strategy, seed=spec.seed, split_seed=spec.split_seed)
        key = _data_key(spec, study)

        def load(spec: Any, key: tuple[Any, ...] = key, study: optuna.Study = study) -> objective.Problem:
            if key not in problems:
                problems[key] = _load_problem(spec, study)
            return problems[key]

        result = _assess(study, n_bootstrap, seed, max_configs, 0.95, load)
        if isinstance(result, str):
            rows.append({**row, "reason": result})
            continue
        rows.append(
            {
                **row,
                "metric": result.metric,
                "best_cv": result.best_cv,
                "raw_best": result.raw_best,
                "corrected": result.corrected,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "bias": result.bias,
                "holdout": result.holdout,
                "n_configs": result.n_configs,
                "method": result.method,
                "note": result.note,
                "reason": None,
            }
        )
    columns = [
        "study",
        "strategy",
        "seed",
        "split_seed",
        "metric",
        "best_cv",
        "raw_best",
        "corrected",
        "ci_low",
        "ci_high",
        "bias",
        "holdout",
        "n_configs",
        "method",
        "note",
        "reason",
    ]
    return pd.DataFrame(rows, columns=columns)


def _data_key(spec: Any, study: optuna.Study) -> tuple[Any, ...]:
    """What decides a study's training part, folds, metric and positive class: studies that
    agree on it load the same ``Problem``'s target."""
    return (
        spec.dataset,
        study.user_attrs.get(runner.DATASET_ATTR),
        spec.target,
        spec.task,
        tuple(spec.keep_columns or ()),
        spec.test_size,
        spec.split_seed,
        spec.folds,
        spec.repeats,
        spec.metric,
        repr(spec.pos_label),
        tuple(spec.models),
    )
