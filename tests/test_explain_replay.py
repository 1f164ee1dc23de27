"""hpdash.explain.replay: strategies replayed on a dense study's recorded results.

One real grid study (a decision tree on iris, fitted by hpdash's runner) checks that a replay
gives the values a live run gives on the same points; the other tests replay on synthetic
records (a grid study written by hand into memory: its values are a known function of the
params), which cost no fit.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpdash import attrs as study_attrs
from hpdash import compare, models, objective, runner, space, strategies
from hpdash.explain import replay as rp
from hpdash.explain.record import Oracle
from hpdash.gp_sampler import GP_ATTR, GPSampler
from hpdash.spec import parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

MODEL = "decision_tree"
SPACE = {
    "max_depth": {"type": "int", "low": 1, "high": 12},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 40, "log": True},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
}
START = datetime(2024, 1, 1, 12, 0, 0)


def _score(p: dict) -> float:
    """The synthetic record's value: best at max_depth 6, min_samples_leaf 3, gini."""
    return (
        0.9
        - ((p["max_depth"] - 6) / 12) ** 2
        - 0.02 * (math.log(p["min_samples_leaf"]) - math.log(3)) ** 2
        + (0.01 if p["criterion"] == "gini" else 0.0)
    )


def _seconds(p: dict) -> float:
    return 0.05 + 0.01 * p["max_depth"]


def _synthetic(
    name: str = "synthetic", strategy: str = "grid", n_trials: int | None = None, **grid: object
) -> optuna.Study:
    """An hpdash-like study in memory: the spec, resolved space and grid order a created study
    carries, and one COMPLETE trial per grid point (or ``n_trials`` random points) whose
    value is ``_score`` and whose duration is ``_seconds``."""
    spec = parse_spec(
        {
            "name": name,
            "dataset": "sklearn:iris",
            "target": "target",
            "model": MODEL,
            "strategy": strategy,
            "grid_points": 12,
            "n_trials": n_trials,
            "cv": {"folds": 3},
            "seed": 0,
            "space": SPACE,
        }
    )
    spaces = {MODEL: models.parse_model_space(MODEL, "classification", SPACE)}
    dists = {n: hp.distribution() for n, hp in spaces[MODEL].items()}
    if strategy == "grid":
        points = space.grid_points(spaces, spec.grid_points)
    else:
        rng = np.random.default_rng(1)
        points = [
            {
                "max_depth": int(rng.integers(1, 13)),
                "min_samples_leaf": int(rng.integers(1, 41)),
                "criterion": str(rng.choice(["gini", "entropy"])),
            }
            for _ in range(n_trials or 0)
        ]
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name=name, direction="maximize")
    attrs = {
        study_attrs.SPEC: spec.to_dict(),
        study_attrs.SPACE: {MODEL: space.space_to_dict(spaces[MODEL])},
        study_attrs.METRIC: "accuracy",
        study_attrs.TASK: "classification",
        study_attrs.STATE: "finished",
    }
    if strategy == "grid":
        attrs[study_attrs.GRID] = {"grid_size": len(points), "budget": len(points), "cut": False, **grid}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    clock = START
    for p in points:
        done = clock + timedelta(seconds=_seconds(p))
        trial = FrozenTrial(
            number=0,
            state=TrialState.COMPLETE,
            value=_score(p),
            datetime_start=clock,
            datetime_complete=done,
            params=p,
            distributions=dists,
            user_attrs={"fit_time": _seconds(p) / 3, "cv_std": 0.01},
            system_attrs={},
            intermediate_values={},
            trial_id=0,
        )
        study.add_trial(trial)
        clock = done
    return study


@cache
def _recorded() -> rp.Recorded:
    return rp.recorded_results(_synthetic())


def _params(study: optuna.Study) -> list[dict]:
    return [t.params for t in study.get_trials(deepcopy=False)]


# ------------------------------------------------------------------ against a live run
def test_replayed_random_search_scores_what_a_live_run_scores_on_the_same_points(data_dir) -> None:
    """A real grid study; random search replayed on its record: every replayed trial is the
    grid point nearest to what RandomSampler proposed live (an independent brute-force search
    here), and its value is exactly what cross-validating that point live gives. Grid replayed
    with the source's own seed is the source study itself, point for point."""
    spec = parse_spec(
        {
            "name": "iris-grid",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": MODEL,
            "strategy": "grid",
            "grid_points": 4,
            "n_trials": None,
            "cv": {"folds": 3},
            "seed": 0,
            "space": {k: SPACE[k] for k in ("max_depth", "min_samples_leaf")},
        }
    )
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    problem = plan.problem()
    runner.run_here(spec.name, problem=problem)
    source = runner.load_study(spec.name)
    recorded = rp.load_recorded(spec.name)
    assert len(recorded) == len(plan.grid()) == 16

    replayed = rp.replay(recorded, ["random", "grid"], seeds=[3, 0], n_trials=12, processes=1)
    random_study = replayed.studies[rp.run_name(spec.name, "random", 3)]
    trials = random_study.get_trials(deepcopy=False)
    assert len(trials) == 12
    for t in trials:
        live = objective.cross_validate_params(problem, MODEL, t.params)
        assert t.value is not None and t.value - live.mean == 0.0
    # The live proposals of the same sampler, unsnapped: random search's draws do not depend
    # on the scores, so the replay's trial k is the grid point nearest to live proposal k.
    live_study = optuna.create_study(
        sampler=strategies.sampler_for(spec.replace(strategy="random", sampler_seed=3, n_trials=12))
    )
    grid = plan.grid()
    hps = plan.spaces[MODEL]

    def scaled(p: dict) -> np.ndarray:
        """Unit-scaled coordinates, written out here apart from the oracle's."""
        out = []
        for n, hp in hps.items():
            scale = math.log if hp.log else float
            low, high = hp.bounds()
            out.append((scale(p[n]) - scale(low)) / (scale(high) - scale(low)))
        return np.array(out)

    snapped = 0
    for t in trials:
        proposal = live_study.ask()
        space.suggest(proposal, plan.spaces)
        nearest = min(grid, key=lambda g: float(np.sum((scaled(g) - scaled(proposal.params)) ** 2)))
        assert t.params == nearest
        snapped += proposal.params != nearest
        live_study.tell(proposal, 0.0)
    assert snapped > 6  # most live proposals are off the grid: the oracle really answered them

    grid_study = replayed.studies[rp.run_name(spec.name, "grid", 0)]
    recorded_trials = sorted(source.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    assert [(t.params, t.value) for t in grid_study.get_trials()] == [(t.params, t.value) for t in recorded_trials[:12]]
    # Computed, not stored: the storage still holds the source study alone.
    assert optuna.get_all_study_names(storage=runner.open_storage(None, heartbeat=False)) == [spec.name]


# ------------------------------------------------------------------ simulated workers
def test_simulated_workers_change_the_order_keep_the_budget_and_share_the_time() -> None:
    """Two simulated workers: the same budget of recorded points, another order for TPE and
    the GP (the GP fits with the other worker's running trial pending), and about half the
    simulated time; with one worker a trial starts when the previous one ends."""
    recorded = _recorded()
    one = rp.replay(recorded, ["tpe", "gp"], seeds=[0], n_trials=16, processes=1)
    two = rp.replay(recorded, ["tpe", "gp"], seeds=[0], n_trials=16, workers=2, processes=1)
    answers = {tuple(sorted(p.items())) for p in recorded.params}
    for strategy in ("tpe", "gp"):
        name = rp.run_name(recorded.source, strategy, 0)
        a, b = one.studies[name], two.studies[name]
        assert len(a.trials) == len(b.trials) == 16
        assert all(t.state == TrialState.COMPLETE for t in [*a.trials, *b.trials])
        assert all(tuple(sorted(p.items())) in answers for p in _params(a) + _params(b))
        assert _params(a) != _params(b)
        fa = one.frame[one.frame["study"] == name]
        fb = two.frame[two.frame["study"] == name]
        durations = [_seconds(p) for p in _params(a)]
        assert np.allclose(fa["elapsed_s"], np.cumsum(durations))
        assert fb["elapsed_s"].max() < 0.7 * fb["duration_s"].sum()
    gp_name = rp.run_name(recorded.source, "gp", 0)
    pending = [t.system_attrs[GP_ATTR]["pending"] for t in two.studies[gp_name].trials if GP_ATTR in t.system_attrs]
    assert pending and all(len(p) == 1 for p in pending)
    assert all(not t.system_attrs[GP_ATTR]["pending"] for t in one.studies[gp_name].trials if GP_ATTR in t.system_attrs)


def test_the_gp_maximises_its_expected_improvement_over_the_candidates() -> None:
    """``GPSampler.set_candidates``: each trial the GP chooses is the candidate of largest
    expected improvement under the GP that chose it (rebuilt from the trial's record)."""
    recorded = _recorded()
    sampler = GPSampler(seed=1, n_startup_trials=4)
    sampler.set_candidates(recorded.params)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    spaces = {MODEL: models.parse_model_space(MODEL, "classification", SPACE)}
    for _ in range(8):
        trial = study.ask()
        space.suggest(trial, spaces)
        study.tell(trial, _score(trial.params))
    chosen = [t for t in study.trials if GP_ATTR in t.system_attrs]
    assert len(chosen) == 4 and all(t.system_attrs[GP_ATTR]["candidates"] == len(recorded) for t in chosen)
    for t in chosen:
        surrogate = sampler.surrogate(study, up_to=t.number)
        assert surrogate is not None and surrogate.next_params == t.params
        ei = surrogate.expected_improvement(list(recorded.params))
        assert recorded.params[int(np.argmax(ei))] == t.params


# ------------------------------------------------------------------ refusals
def _random_study(n: int, strategy: str = "random") -> optuna.Study:
    return _synthetic(f"sparse-{strategy}", strategy=strategy, n_trials=n)


def test_a_study_that_is_not_dense_is_refused_with_the_fix() -> None:
    """Too few random trials, a model-based strategy, a cut grid, an unfinished grid and a
    study hpdash did not create are refused, each naming what to do; a dense one is not."""
    cases = {
        "at least 200": _random_study(20),
        "Replay on a finished full grid study": _random_study(30, "tpe"),
        "subset of its grid": _synthetic("cut", cut=True, budget=10),
        "not created by hpdash": optuna.create_study(),
    }
    unfinished = _synthetic("unfinished")
    unfinished.enqueue_trial({"max_depth": 3, "min_samples_leaf": 1, "criterion": "gini"})
    cases["has not finished"] = unfinished
    for words, study in cases.items():
        assert words in (rp.replay_problem(study) or "")
        with pytest.raises(rp.ReplayError, match=words):
            rp.recorded_results(study)
    assert rp.replay_problem(_random_study(rp.MIN_DENSE_TRIALS)) is None
    assert rp.replay_problem(_synthetic()) is None


def test_impossible_replay_settings_are_refused_before_anything_runs() -> None:
    recorded = _recorded()
    with pytest.raises(rp.ReplayError, match="Unknown oracle"):
        rp.replay(recorded, ["random"], seeds=1, n_trials=5, oracle="psychic")
    with pytest.raises(rp.ReplayError, match="different seeds"):
        rp.replay(recorded, ["random"], seeds=[1, 1], n_trials=5)
    with pytest.raises(rp.ReplayError, match="1 to 1000 trials"):
        rp.replay(recorded, ["random"], seeds=1, n_trials=0)
    with pytest.raises(Exception, match="exactly the same random trials"):
        rp.replay(recorded, ["random", "tpe"], seeds=1, n_trials=1, processes=1)


# ------------------------------------------------------------------ the oracles
def test_the_oracles_answer_from_the_record() -> None:
    """Nearest: a recorded point is its own answer; a point between grid values gets the
    nearest one. Surrogate: a recorded point is its own value, another point a weighted mean
    within the range of its neighbours, with the params it was asked with."""
    recorded = _recorded()
    nearest, surrogate = Oracle(recorded, "nearest"), Oracle(recorded, "surrogate")
    first = recorded.params[0]
    assert nearest.answer(first).value == surrogate.answer(first).value == recorded.values[0]
    values = sorted({p["min_samples_leaf"] for p in recorded.params})
    off = {"max_depth": 6, "min_samples_leaf": values[-2] + 1, "criterion": "gini"}
    assert off not in recorded.params
    answer = nearest.answer(off)
    assert answer.params == {**off, "min_samples_leaf": values[-2]} and answer.record is not None
    assert answer.value == _score(answer.params) and answer.duration == pytest.approx(_seconds(answer.params))
    guess = surrogate.answer(off)
    assert guess.params == off and guess.record is None
    assert min(recorded.values) <= guess.value <= max(recorded.values)
    run = rp.replay(recorded, ["random"], seeds=[2], n_trials=10, oracle="surrogate", processes=1)
    assert "surrogate" in run.title and len(run.frame) == 10


# ------------------------------------------------------------------ an ordinary comparison
def test_the_replay_is_an_ordinary_labelled_comparison() -> None:
    """The compare package's analysis runs on it unchanged: bands over 3 seeds, time to
    target, tests, verdict, design rows; labelled, with the oracle named."""
    recorded = _recorded()
    c = rp.replay(recorded, ["grid", "random", "tpe", "qmc"], seeds=3, n_trials=15, processes=1)
    assert rp.REPLAYED in c.title and "nearest recorded configuration" in c.title
    assert [r.study for r in c.runs][:2] == ["synthetic-replay-grid-s0", "synthetic-replay-grid-s1"]
    expected = list(compare.experiment_frame([(c.studies[c.runs[0].study], "grid", 0)]).columns)
    assert list(c.frame.columns) == expected and len(c.frame) == 4 * 3 * 15
    assert c.comparable and c.split == compare.SPLIT_SAME and c.grid_notes
    info = rp.replay_info(c)
    assert info is not None and info["oracle"] == "nearest recorded configuration" and info["stored"] is False
    a = compare.analyse_comparison(c)
    assert set(a.bands_trial["strategy"]) == {"grid", "random", "tpe", "qmc"}
    assert (a.bands_trial[a.bands_trial["x"] == 15]["n"] == 3).all() and len(a.bands_trial) == 4 * 15
    assert len(a.ttt) == 12 and not a.pairs.empty and a.verdict.text
    assert a.bands_time["x"].max() > 0
    assert dict(compare.design_rows(c, a))["seeds/repeats"] == "0, 1, 2 (3 repeats)"
    assert a.baseline is not None and a.baseline.available


@pytest.mark.slow
def test_a_pool_of_processes_gives_the_same_replay() -> None:
    """The process pool changes the time only: the same trials, values and times."""
    recorded = _recorded()
    here = rp.replay(recorded, ["random", "tpe"], seeds=2, n_trials=12, processes=1)
    pooled = rp.replay(recorded, ["random", "tpe"], seeds=2, n_trials=12, processes=2)
    columns = ["study", "number", "value", "elapsed_s", "params_max_depth", "params_min_samples_leaf"]
    assert here.frame[columns].equals(pooled.frame[columns])
