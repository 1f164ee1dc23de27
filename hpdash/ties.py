"""The configurations of a study that cannot be told apart from its best, and the cheapest of them.

A tie set (``statistics.tie_set``) on the study's shared CV splits: every trial of a study is
scored on the same splits in the same order (``objective.make_problem``: the holdout and the
(Repeated)(Stratified)KFold splitter both follow the study's ``split_seed``, and a trial stores
its scores split by split in the ``fold_scores`` user attr), so trial against best is a paired
comparison, tested with the Nadeau & Bengio corrected resampled t-test against a region of
practical equivalence. Among the tied configurations the one cheapest to fit is recommended.
Library code: no Streamlit; nothing is cached here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from hpdash import attrs as study_attrs
from hpdash import datasets, objective, results, runner, statistics

__all__ = ["MAX_TRIALS", "TieSet", "TiedTrial", "fold_sizes", "params_text", "study_ties", "ties_table"]

#: Trials tested against the best at most: the best ones by CV mean (a trial far down the
#: ranking is tied only if its fold scores spread very widely). Each corrected t-test costs
#: about 1 ms, most of it SciPy making its t distribution: 0.2-0.5 s for 200 (tie set and
#: the tied trials' p-values).
MAX_TRIALS = 200
TABLE_COLUMNS = ["trial", "CV mean", "difference to best", "p-value", "fit time (s)", "recommended", "params"]


def fold_sizes(study: optuna.Study) -> tuple[int, int]:
    """``(n_train, n_test)`` of one CV split of ``study``: the rows a fold trains on and tests on.

    The study does not record its row count, so it is computed the way a worker gets it
    (``runner.load_problem`` without the CV splits): the stored dataset (a bundled sample or
    the file recorded by its SHA-256, verified), ``datasets.prepare`` with the spec's target,
    task, folds and kept columns (rows with a missing target dropped), then the holdout split
    ``objective.holdout_split`` with the spec's ``test_size`` and ``split_seed``. Of the
    training part's N rows, k-fold CV (``StratifiedKFold``/``KFold``, repeated or not) tests
    on N // k or N // k + 1 rows per split; n_test is N // k (rounded down: the smallest test
    fold) and n_train = N - n_test. Raises ``SpecError`` for a study hpdash did not create and
    ``DatasetError`` when its dataset cannot be read. Nothing is cached: call it once per study.
    """
    spec = runner.load_spec_of(study)
    ref = runner.stored_dataset_ref(spec.dataset, study.user_attrs.get(study_attrs.DATASET))
    expected = None if ref.startswith("sklearn:") else ref
    frame, _ = datasets.load_dataset(ref, expected_sha256=expected)
    prepared = datasets.prepare(frame, spec.target, task=spec.task, folds=spec.folds, keep_columns=spec.keep_columns)
    _, _, y_train, _ = objective.holdout_split(prepared.X, prepared.y, prepared.task, spec.test_size, spec.split_seed)
    n = len(y_train)
    n_test = n // spec.folds
    return n - n_test, n_test


@dataclass(frozen=True)
class TiedTrial:
    """One configuration of a tie set (``params``: a plain dict, treat it as read-only)."""

    number: int
    cv_mean: float  # the mean of its fold scores (the trial's value)
    difference: float  # cv_mean minus the best's (<= 0 maximizing, >= 0 minimizing)
    p_value: float  # one-sided corrected test of "the best leads by more than rope"; NaN for the best
    fit_time: float  # mean seconds per fold; NaN when not recorded
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TieSet:
    """The configurations tied with the best (``tied``, best first by CV mean) and the cheapest.

    ``unavailable`` says why there is no tie set (then ``tied`` is empty and ``recommended``
    None). ``n_eligible``: COMPLETE trials with finite fold scores on every split;
    ``n_skipped``: COMPLETE trials left out (no, short or non-finite fold scores);
    ``n_tested``: the eligible trials tested against the best (the ``max_trials`` best by CV
    mean, the best included); ``note`` says so when fewer than all eligible were tested.
    """

    tied: tuple[TiedTrial, ...]
    recommended: TiedTrial | None
    reason: str
    method: str
    direction: str
    rope: float
    alpha: float
    n_train: int
    n_test: int
    n_splits: int
    n_eligible: int
    n_tested: int
    n_skipped: int
    note: str | None = None
    unavailable: str | None = None

    @property
    def best(self) -> TiedTrial | None:
        return self.tied[0] if self.tied else None


def params_text(params: dict[str, Any]) -> str:
    """``name=value, ...`` in name order (floats to 6 significant digits)."""
    return ", ".join(f"{k}={_value_text(v)}" for k, v in sorted(params.items()))


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _row_params(frame: pd.DataFrame, row: int, columns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in columns:
        value = frame[column].iat[row]
        if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            continue  # a conditional param this trial did not use
        out[results.param_name(column)] = _plain(value)
    return out


def _method(rope: float, alpha: float, n_splits: int, n_train: int, n_test: int) -> str:
    return (
        f"corrected resampled t-test (Nadeau & Bengio 2003), one-sided, on {n_splits} shared CV splits "
        f"(n_train {n_train}, n_test {n_test}), rope {rope:g}, alpha {alpha:g}; each trial against the best, "
        "no multiplicity correction"
    )


def study_ties(
    frame: pd.DataFrame,
    n_train: int,
    n_test: int,
    direction: str,
    rope: float = 0.01,
    alpha: float = 0.05,
    max_trials: int = MAX_TRIALS,
    n_splits: int | None = None,
) -> TieSet:
    """The tie set of a study's trials (``results.trials_frame``) and the cheapest tied trial.

    ``n_train``, ``n_test``: one split's sizes (``fold_sizes``). Eligible are the COMPLETE
    trials whose ``fold_scores`` are finite and as many as ``n_splits`` (the spec's folds x
    repeats; when None, as many as the best trial's, the best being the one with the best mean
    over its finite fold scores); the other COMPLETE trials are skipped and counted. Of the
    eligible trials the ``max_trials`` best by CV mean (ties: lower number first) go to
    ``statistics.tie_set`` with ``rope`` and ``alpha``: a trial is tied unless the one-sided
    corrected resampled t-test rejects "the best leads it by at most rope". Each tied trial gets
    its p-value of that test (``statistics.corrected_resampled_t_test``, "greater", on the
    fold scores oriented so that larger is better). ``recommended``: the tied trial with the
    smallest fit time (a missing fit time last; equal times: better CV mean, then lower number).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
    if not (rope >= 0 and 0 < alpha < 1 and max_trials >= 2 and n_train > 0 and n_test >= 0):
        raise ValueError("need rope >= 0, 0 < alpha < 1, max_trials >= 2, n_train > 0 and n_test >= 0")
    sign = 1.0 if direction == "maximize" else -1.0

    complete = np.flatnonzero((frame["state"] == "COMPLETE").to_numpy())
    folds = frame["fold_scores"].to_numpy()[complete]
    numbers_all = frame["number"].to_numpy()
    lengths = np.fromiter(
        (len(f) if isinstance(f, (list, tuple)) else 0 for f in folds), dtype=np.int64, count=len(folds)
    )
    # One matrix per length (a study has one, so usually one matrix), finite rows only:
    # length -> (positions in ``complete``, fold scores).
    groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for length in np.unique(lengths[lengths > 0]).tolist():
        at = np.flatnonzero(lengths == length)
        scores = np.array([folds[i] for i in at], dtype=np.float64).reshape(len(at), length)
        finite = np.isfinite(scores).all(axis=1)
        if finite.any():
            groups[length] = (at[finite], scores[finite])

    if n_splits is None and groups:

        def best_of(length: int) -> tuple[float, int]:  # (best oriented mean, minus its number)
            at, scores = groups[length]
            means = sign * scores.mean(axis=1)
            i = int(np.lexsort((numbers_all[complete[at]], -means))[0])
            return float(means[i]), -int(numbers_all[complete[at[i]]])

        n_splits = max(groups, key=best_of)  # the best trial's number of splits
    k = int(n_splits or 0)
    at, scores = groups.get(k, (np.zeros(0, dtype=np.int64), np.zeros((0, k))))
    n_eligible = len(at)
    n_skipped = len(complete) - n_eligible
    skipped = f"{n_skipped} completed trial(s) skipped: no finite fold score for each of the {k} splits."

    def result(
        tied: tuple[TiedTrial, ...], recommended: TiedTrial | None, reason: str, n_tested: int, note: str | None
    ) -> TieSet:
        return TieSet(
            tied=tied,
            recommended=recommended,
            reason=reason,
            method=_method(rope, alpha, k, n_train, n_test),
            direction=direction,
            rope=float(rope),
            alpha=float(alpha),
            n_train=int(n_train),
            n_test=int(n_test),
            n_splits=k,
            n_eligible=n_eligible,
            n_tested=n_tested,
            n_skipped=n_skipped,
            note=note,
            unavailable=None if tied else reason,
        )

    if 0 < k < 2:
        return result((), None, "The trials have a single CV split: a paired test needs at least two.", 0, None)
    if n_eligible < 2:
        why = (
            "A tie set needs at least two completed trials with fold scores on every split; "
            f"there {'is' if n_eligible == 1 else 'are'} {n_eligible}."
        )
        return result((), None, why, 0, skipped if n_skipped else None)

    rows = complete[at]
    numbers = numbers_all[rows]
    means = scores.mean(axis=1)
    order = np.lexsort((numbers, -sign * means))[:max_trials]  # best first; equal means: lower number
    tested = {int(numbers[i]): scores[i] for i in order}
    position = {int(numbers[i]): int(i) for i in order}
    tied_numbers = statistics.tie_set(tested, n_train, n_test, direction, rope=rope, alpha=alpha)

    best_i = position[tied_numbers[0]]
    best_scores = sign * scores[best_i]
    fit_times = frame["fit_time"].to_numpy(dtype=np.float64)
    param_cols = results.param_columns(frame)
    tied: list[TiedTrial] = []
    for number in tied_numbers:
        i = position[number]
        p = math.nan
        if i != best_i:
            p = statistics.corrected_resampled_t_test(
                best_scores, sign * scores[i], n_train, n_test, rope, "greater"
            ).p_value
        fit = float(fit_times[rows[i]])
        tied.append(
            TiedTrial(
                number=number,
                cv_mean=float(means[i]),
                difference=float(means[i] - means[best_i]),
                p_value=float(p),
                fit_time=fit,
                params=_row_params(frame, int(rows[i]), param_cols),
            )
        )

    def cost(t: TiedTrial) -> tuple[bool, float, float, int]:
        missing = not math.isfinite(t.fit_time)
        return missing, 0.0 if missing else t.fit_time, -sign * t.cv_mean, t.number

    recommended = min(tied, key=cost)
    test = f"within rope={rope:g}, corrected resampled t-test, alpha={alpha:g}"
    if not math.isfinite(recommended.fit_time):
        reason = f"no fit time is recorded for the {len(tied)} configuration(s) tied with the best ({test}): the best is recommended"
    elif len(tied) == 1:
        reason = f"the best is the only configuration in its tie set: every other trial tested is worse by more than the rope ({test})"
    else:
        reason = f"cheapest to fit among the {len(tied)} configurations tied with the best ({test})"
    n_tested = len(order)
    notes = []
    if n_tested < n_eligible:
        notes.append(
            f"Only the {n_tested} best of {n_eligible} eligible trials by CV mean were tested against the best "
            f"(max_trials={max_trials}); the others are left out of the tie set."
        )
    if n_skipped:
        notes.append(skipped)
    return result(tuple(tied), recommended, reason, n_tested, " ".join(notes) or None)


def ties_table(ties: TieSet) -> pd.DataFrame:
    """The tie set for a page: one row per tied trial, best first (``TABLE_COLUMNS``)."""
    chosen = ties.recommended.number if ties.recommended is not None else None
    rows = [
        {
            "trial": t.number,
            "CV mean": t.cv_mean,
            "difference to best": t.difference,
            "p-value": t.p_value,
            "fit time (s)": t.fit_time,
            "recommended": t.number == chosen,
            "params": params_text(t.params),
        }
        for t in ties.tied
    ]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.astype(
        {
            "trial": "int64",
            "CV mean": "float64",
            "difference to best": "float64",
            "p-value": "float64",
            "fit time (s)": "float64",
            "recommended": "bool",
            "params": "object",
        }
    )
