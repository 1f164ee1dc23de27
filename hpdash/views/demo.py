"""The one-click demo: a dense study on a bundled sample, replayed by every strategy.

The demo's study is a full 15 x 15 grid of an RBF support vector machine's ``C`` and ``gamma``
(both on a log scale) on scikit-learn's breast-cancer table: 225 configurations whose scores
are known once it has run (about 20 seconds with two workers). Every strategy is then
*replayed* on those recorded results (``hpdash.explain.replay``): each suggestion is answered
by the nearest recorded configuration, so 30 seeds of five strategies cost no model fit. The
landscape has what a demo needs: a ridge of good (C, gamma) pairs, a plateau where gamma is
too large, and a cliff where C is too small.

``ReplaySettings`` is what a Compare-page link (``?replay=STUDY&...``) asks for, bounded so a
link cannot make the server work without limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpdash import runner, status, vocabulary
from hpdash.errors import SpecError
from hpdash.spec import StudySpec, parse_spec

#: The demo study's name (reused when it exists and finished).
DEMO_STUDY = "demo-breast-cancer-svm-grid"
#: The strategies the demo replays, in the order the figures list them.
DEMO_STRATEGIES = ("grid", "random", "qmc", "tpe", "gp")
DEMO_SEEDS = 30
#: Trials per replayed run: the GP's fits make a run's cost grow with it (docs/PERFORMANCE.md).
DEMO_TRIALS = 50
#: Configurations the demo study scores (15 values of C x 15 of gamma).
DEMO_GRID_SIZE = 225
#: Bounds on what a replay link may ask for.
MAX_REPLAY_SEEDS = 50
MAX_REPLAY_TRIALS = 400
MAX_REPLAY_WORKERS = 8
REPLAYABLE = frozenset({"grid", "random", "qmc", "tpe", "gp"})


def demo_spec() -> StudySpec:
    """The demo's grid study: SVC(C, gamma) on breast cancer, 15 x 15 points, 3-fold CV."""
    return parse_spec(
        {
            "name": DEMO_STUDY,
            "dataset": "sklearn:breast_cancer",
            "target": "target",
            "model": "svm",
            "strategy": "grid",
            "n_trials": None,
            "grid_points": 15,
            "space": {
                "C": {"type": "float", "low": 1e-2, "high": 1e3, "log": True},
                "gamma": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
            },
            "cv": {"folds": 3, "repeats": 1},
            "metric": "accuracy",
            "test_size": 0.2,
            "seed": 0,
            "workers": 2,
        }
    )


def demo_state(storage: str | None = None) -> status.StudyStatus | None:
    """The demo study's status, or None when it was never created."""
    if not runner.study_exists(DEMO_STUDY, storage):
        return None
    return status.study_status(status.load_study(DEMO_STUDY, storage))


def start_demo(storage: str | None = None) -> status.StudyStatus | None:
    """Create the demo study and start its workers unless it exists; resume it when its
    workers were lost or it was stopped. Its status afterwards (None right after creation)."""
    current = demo_state(storage)
    if current is None:
        spec = demo_spec()
        runner.create_study(spec, storage)
        runner.launch_workers(spec.name, storage, spec.workers)
        return None
    if current.state in ("worker lost", "stopped"):
        runner.resume_study(DEMO_STUDY, storage)
    return current


@dataclass(frozen=True)
class ReplaySettings:
    """What a replay link asks for: the recorded study, the strategies, seeds, trials per run
    and simulated parallel workers."""

    source: str
    strategies: tuple[str, ...] = DEMO_STRATEGIES
    seeds: int = DEMO_SEEDS
    n_trials: int = DEMO_TRIALS
    workers: int = 1
    guided: bool = False

    def query(self) -> dict[str, str]:
        """The Compare page's query parameters for these settings."""
        out = {
            "replay": self.source,
            "strategies": ",".join(self.strategies),
            "seeds": str(self.seeds),
            "trials": str(self.n_trials),
            "workers": str(self.workers),
        }
        if self.guided:
            out["guided"] = "1"
        return out


def _bounded_int(query: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise SpecError(f"The link's {key}={raw!r} is not a whole number; use {low}..{high}.") from None
    if not low <= value <= high:
        raise SpecError(f"The link's {key}={value} is outside {low}..{high}; use a value in that range.")
    return value


def replay_settings(query: Mapping[str, Any]) -> ReplaySettings:
    """``ReplaySettings`` from the Compare page's query parameters, checked and bounded."""
    source = str(query.get("replay") or "")
    if not source:
        raise SpecError("The link names no recorded study to replay (?replay=STUDY).")
    raw = str(query.get("strategies") or ",".join(DEMO_STRATEGIES))
    strategies = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
    unknown = [s for s in strategies if s not in REPLAYABLE]
    if unknown or not strategies:
        raise SpecError(
            f"Cannot replay {', '.join(map(repr, unknown)) or 'no strategy'}: a replay takes "
            f"{', '.join(sorted(REPLAYABLE))}."
        )
    return ReplaySettings(
        source=source,
        strategies=strategies,
        seeds=_bounded_int(query, "seeds", DEMO_SEEDS, 1, MAX_REPLAY_SEEDS),
        n_trials=_bounded_int(query, "trials", DEMO_TRIALS, 2, MAX_REPLAY_TRIALS),
        workers=_bounded_int(query, "workers", 1, 1, MAX_REPLAY_WORKERS),
        guided=str(query.get("guided", "")) == "1",
    )


def demo_replay_settings() -> ReplaySettings:
    """The one-click demo's replay: every demo strategy, 30 seeds, 50 trials, guided."""
    return ReplaySettings(source=DEMO_STUDY, guided=True)


# ------------------------------------------------------------------------------ the guide
#: Plain words for each section of the guided Compare view, in the product's vocabulary.
GUIDE: dict[str, str] = {
    "intro": (
        "A model's **parameters** are learned from the data (here, the support vectors and their "
        "weights). Its **hyperparameters** are set before training: here `C` (how hard the SVM "
        "tries to classify every training row correctly) and `gamma` (how far one row's influence "
        "reaches). The choices about the search itself, such as the number of cross-validation "
        "folds or the budget of trials, are **hyper-hyperparameters**. Every strategy below had the "
        "same budget and the same folds; only the way it picks the next configuration differs."
    ),
    "replay": (
        "These runs are **replayed on recorded results**: the demo first scored all 225 grid "
        "configurations once, and each strategy's suggestion was answered with the score of the "
        "nearest recorded configuration. So 30 seeds of each strategy cost no model fit, and "
        "every strategy saw exactly the same scores."
    ),
    "verdict": (
        "The verdict compares the strategies' best scores seed by seed (the same seed number is a "
        "pair) and says whether a difference is larger than chance would give."
    ),
    "time": (
        "Time to target: how many trials (and how much of the recorded fit time) each strategy "
        "needed before it first reached the target score."
    ),
    "convergence": (
        "Convergence: the best score found so far after each trial. The band is where the mean over "
        "the seeds lies; a strategy whose band rises earlier finds good configurations sooner. "
        "Random and QMC do not learn from earlier trials; TPE and the Gaussian process (GP) do, "
        "after a few random start-up trials."
    ),
    "final": (
        "Final scores: each dot is one seed's best score at the end of its budget. A narrow box means "
        "the strategy's result depends little on luck."
    ),
    "placement": (
        "Sample placement: where each strategy put its trials in (C, gamma). Press play: random "
        "spreads evenly, QMC spreads even more evenly, grid marches through its lattice, and TPE "
        "and the GP concentrate on the ridge of good configurations."
    ),
    "importance": (
        "Importance: how much of the score's variation each hyperparameter explains among the trials a strategy ran."
    ),
}


def guide_text(section: str) -> str:
    """The guided view's words for one section (``GUIDE``)."""
    return GUIDE[section]


def strategy_names(strategies: Sequence[str]) -> str:
    """``Grid, Random, QMC, TPE and GP``: the strategies in words."""
    names = [vocabulary.strategy_name(s) for s in strategies]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
