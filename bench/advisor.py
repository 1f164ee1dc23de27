"""The decisive-hyperparameter advisor (issue "propose a smaller space"): does a follow-up study
on the advisor's space reach the first study's best score in fewer trials?

The problem is synthetic and cheap (no model is fitted): six hyperparameters of four kinds
(a float, a log float, an int, a log int, a categorical and another float), of which only
two matter, ``lr`` (log) and ``x``; the other four add at most 4e-4 to a score that spans
about 0.5. For each seed:

1. a first study: ``FIRST_TRIALS`` random trials on the full space; its best score is the
   target;
2. ``hpdash.advisor.propose`` on it (default settings: PED-ANOVA on the top 10%, keep 80% of
   the importance);
3. two studies with the same sampler and the same sampler seed, up to ``BUDGET`` trials each:
   a follow-up on the proposed space and a fresh study on the full space. Each counts the
   trials until its best score reaches the target (``BUDGET`` when it never does: censored,
   which only makes the follow-up look worse, as the fresh study is the one that runs out).

Reported per second-stage sampler (random, and hpdash's TPE from ``strategies.make_sampler``):
the median of the per-seed ratio follow-up trials / fresh trials, with a 95% bootstrap
interval of that median over the seeds (``scipy.stats.bootstrap``, percentile method), and
how often the advisor kept exactly the two that matter, after a random first study and
after a TPE one (not followed up). Informational: there is no target
ratio, the result is whatever it turns out to be.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from bench.common import Report, fmt_s

FIRST_TRIALS = 100
BUDGET = 300
SEEDS = 20
QUICK_SEEDS = 6
MATTER = {"lr", "x"}


def score(params: dict[str, Any]) -> float:
    """The synthetic problem: the optimum is at ``lr = 1e-2``, ``x = -2``."""
    u = (math.log10(params["lr"]) + 5) / 5
    v = (params["x"] + 5) / 10
    noise = params["n"] / 100 + (params["kind"] == "a") + params["d"] + math.log(params["m"]) / 7
    return -((u - 0.6) ** 2) - (v - 0.3) ** 2 + 1e-4 * noise


def full_space() -> dict[str, Any]:
    """The full search space, in the spec's ``space`` form."""
    return {
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        "x": {"type": "float", "low": -5.0, "high": 5.0},
        "n": {"type": "int", "low": 1, "high": 100},
        "m": {"type": "int", "low": 1, "high": 1000, "log": True},
        "kind": {"type": "categorical", "choices": ["a", "b", "c"]},
        "d": {"type": "float", "low": 0.0, "high": 1.0},
    }


def _objective(raw_space: dict[str, Any]) -> Callable[[optuna.Trial], float]:
    from hpdash import space

    spaces = {"synthetic": space.parse_space(raw_space)}

    def objective(trial: optuna.Trial) -> float:
        _, params = space.suggest(trial, spaces)
        return score(params)

    return objective


def _sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    from hpdash import strategies

    return strategies.make_sampler(kind, seed)


def trials_to_reach(raw_space: dict[str, Any], kind: str, seed: int, target: float, budget: int = BUDGET) -> int:
    """Trials a ``kind`` study of ``seed`` on ``raw_space`` takes until its best reaches ``target``
    (``budget`` when it never does)."""
    study = optuna.create_study(direction="maximize", sampler=_sampler(kind, seed))
    reached: list[int] = []

    def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.value is not None and trial.value >= target:
            reached.append(trial.number + 1)
            study.stop()

    study.optimize(_objective(raw_space), n_trials=budget, callbacks=[stop])
    return reached[0] if reached else budget


def _median_interval(ratios: list[float], seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of ``ratios`` (percentile method)."""
    from scipy import stats

    if len(set(ratios)) < 2:
        return ratios[0], ratios[0]
    result = stats.bootstrap((np.asarray(ratios),), np.median, n_resamples=2000, method="percentile", random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def run(report: Report, workdir: Path, quick: bool = False) -> None:
    from hpdash import advisor

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = range(QUICK_SEEDS if quick else SEEDS)
    started = time.perf_counter()
    exact, dims, proposals = 0, [], []
    targets: dict[int, float] = {}
    for seed in seeds:
        first = optuna.create_study(direction="maximize", sampler=_sampler("random", seed))
        first.optimize(_objective(full_space()), n_trials=FIRST_TRIALS)
        proposal = advisor.propose(first)
        exact += {k.name for k in proposal.kept} == MATTER
        dims.append(proposal.dims_after)
        proposals.append(proposal)
        targets[seed] = first.best_value

    for kind in ("random", "tpe"):
        follow, fresh, ratios = [], [], []
        for seed, proposal in zip(seeds, proposals):
            second_seed = 1000 + seed
            a = trials_to_reach(proposal.space, kind, second_seed, targets[seed])
            b = trials_to_reach(full_space(), kind, second_seed, targets[seed])
            follow.append(a)
            fresh.append(b)
            ratios.append(a / b)
        low, high = _median_interval(ratios)
        report.add(
            f"advisor: trials to reach the best of {FIRST_TRIALS} random trials, follow-up on the proposed "
            f"space vs a fresh study on the full space ({kind}, {len(ratios)} seeds, 6 hyperparameters, 2 matter)",
            f"{statistics.median(follow):g} trials",
            f"{statistics.median(fresh):g} trials",
            f"{statistics.median(ratios):.2f}x (95% CI {low:.2f}-{high:.2f})",
            "informational",
            None,
        )
        report.notes.append(
            f"advisor ({kind}): per-seed ratios follow-up/fresh {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"runs that did not reach the target within {BUDGET} trials (counted as {BUDGET}): "
            f"{follow.count(BUDGET)} follow-up(s), {fresh.count(BUDGET)} fresh of {len(ratios)} each."
        )
    tpe_exact, tpe_dims = 0, []
    for seed in seeds:
        first = optuna.create_study(direction="maximize", sampler=_sampler("tpe", seed))
        first.optimize(_objective(full_space()), n_trials=FIRST_TRIALS)
        proposal = advisor.propose(first)
        tpe_exact += {k.name for k in proposal.kept} == MATTER
        tpe_dims.append(proposal.dims_after)
    report.notes.append(
        f"advisor: after a random first study it kept exactly lr and x (the two that matter) in {exact} of "
        f"{len(proposals)} seeds (kept {', '.join(map(str, dims))}); after a TPE first study of as many trials, in "
        f"{tpe_exact} of {len(tpe_dims)} (kept {', '.join(map(str, tpe_dims))}: TPE samples the unimportant ones "
        f"unevenly too, which PED-ANOVA reads as importance); whole benchmark {fmt_s(time.perf_counter() - started)}."
    )


if __name__ == "__main__":  # python -m bench.advisor [--quick]: this benchmark alone
    import sys
    import tempfile

    from bench.common import machine

    print(f"advisor on a synthetic problem, on {machine()}", flush=True)
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="hpdash-bench-") as tmp:
        run(rep, Path(tmp), quick="--quick" in sys.argv)
    print(rep.table())
    for note in rep.notes:
        print(f"- {note}")
