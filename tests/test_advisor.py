"""The decisive-hyperparameter advisor (hpdash.advisor) on real Optuna studies."""

from __future__ import annotations

import math
import random
from typing import Any

import optuna
import pytest

from hpdash import advisor, runner, space
from hpdash import attrs as study_attrs
from hpdash.errors import SpecError
from hpdash.space import Hyperparameter
from hpdash.spec import parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

MATTER = {"lr", "x"}
NOISE = {"n", "m", "kind", "d"}
SPEC = {"name": "synthetic", "dataset": "sklearn:iris", "target": "target", "model": "decision_tree", "n_trials": 20}


def six(trial: optuna.Trial) -> float:
    """Six hyperparameters of four kinds; only ``lr`` (log float) and ``x`` (float) matter.

    The optimum is at ``lr = 10**-2`` and ``x = -2`` (60% and 30% along their ranges on the
    sampler's scale); the other four add at most 4e-4 to a score that spans about 0.5."""
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    x = trial.suggest_float("x", -5.0, 5.0)
    n = trial.suggest_int("n", 1, 100)
    m = trial.suggest_int("m", 1, 1000, log=True)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    d = trial.suggest_float("d", 0.0, 1.0)
    u, v = (math.log10(lr) + 5) / 5, (x + 5) / 10
    return -((u - 0.6) ** 2) - (v - 0.3) ** 2 + 1e-4 * (n / 100 + (kind == "a") + d + math.log(m) / 7)


def study_of(objective: Any, n_trials: int, seed: int = 0, name: str | None = None) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name)
    study.optimize(objective, n_trials=n_trials)
    return study


@pytest.fixture(scope="module")
def synthetic() -> optuna.Study:
    return study_of(six, 100)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keeps_exactly_the_two_that_matter_and_fixes_the_rest_at_the_best_trial(seed: int) -> None:
    study = study_of(six, 100, seed=seed)
    proposal = advisor.propose(study)
    assert {k.name for k in proposal.kept} == MATTER
    assert {f.name for f in proposal.fixed} == NOISE
    best = study.best_trial.params
    for fixed in proposal.fixed:
        assert fixed.value == best[fixed.name]
        assert proposal.space[fixed.name] == {
            "type": "categorical",
            "choices": [best[fixed.name]],
            "label": fixed.old.label,
        }
        assert "fixed at the best trial's value" in fixed.reason
        assert "PED-ANOVA, top 10% of 100 trials" in fixed.reason
    shares = [k.share for k in proposal.kept] + [f.share for f in proposal.fixed if f.share is not None]
    assert sum(shares) == pytest.approx(1.0)
    assert sum(k.share for k in proposal.kept) >= 0.8
    assert [k.share for k in proposal.kept] == sorted((k.share for k in proposal.kept), reverse=True)
    assert proposal.best_value == study.best_value and proposal.best_params == best


def test_the_method_is_named_with_its_quantile_and_counts(synthetic: optuna.Study) -> None:
    proposal = advisor.propose(synthetic)
    assert "PED-ANOVA" in proposal.method and "PedAnovaImportanceEvaluator" in proposal.method
    assert "top 10% of 100 COMPLETE trials (10 trials)" in proposal.method
    assert (proposal.n_trials, proposal.n_top, proposal.top_quantile) == (100, 10, 0.1)
    assert proposal.lines()[0].startswith("Method: PED-ANOVA")


def test_narrowed_ranges_hold_the_best_values_within_the_old_ranges(synthetic: optuna.Study) -> None:
    proposal = advisor.propose(synthetic)
    best = synthetic.best_trial.params
    for kept in proposal.kept:
        old_low, old_high = kept.old.bounds()
        low, high = kept.new.bounds()
        assert old_low <= low <= best[kept.name] <= high <= old_high
        assert low < high
        assert kept.new.log == kept.old.log and kept.new.type == kept.old.type
        assert 0 < kept.fraction < 0.8  # narrowed, not the whole range
        assert "of the importance" in kept.reason and "top 10 trials" in kept.reason
    # the optimum itself (lr = 1e-2, x = -2) is in the narrowed space
    new = space.parse_space(proposal.space)
    assert new["lr"].bounds()[0] < 1e-2 < new["lr"].bounds()[1]
    assert new["x"].bounds()[0] < -2 < new["x"].bounds()[1]


def test_a_categorical_that_matters_keeps_only_the_choices_of_the_top_trials() -> None:
    penalty = {"good": 0.0, "fine": 0.01, "bad": 0.5, "worse": 0.6}

    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", list(penalty))
        x = trial.suggest_float("x", 0.0, 1.0)
        depth = trial.suggest_int("depth", 1, 20)
        return -penalty[kind] - 0.2 * (x - 0.5) ** 2 + 1e-4 * depth

    study = study_of(objective, 80, seed=3)
    proposal = advisor.propose(study, top_quantile=0.15)
    kept = {k.name: k for k in proposal.kept}
    assert "kind" in kept
    choices = set(kept["kind"].new.choices or ())
    assert study.best_trial.params["kind"] in choices
    assert choices <= {"good", "fine"}
    assert "choices, so only those are kept" in kept["kind"].reason
    assert "depth" in {f.name for f in proposal.fixed}


def test_max_keep_caps_the_kept_and_says_why_the_next_one_is_fixed(synthetic: optuna.Study) -> None:
    proposal = advisor.propose(synthetic, max_keep=1)
    assert len(proposal.kept) == 1
    second = next(f for f in proposal.fixed if f.name in MATTER)
    assert "max_keep=1" in second.reason
    assert {f.name for f in proposal.fixed} == (MATTER | NOISE) - {proposal.kept[0].name}


def test_share_one_keeps_everything_and_a_small_share_keeps_one(synthetic: optuna.Study) -> None:
    assert len(advisor.propose(synthetic, share=1.0).kept) == 6
    assert len(advisor.propose(synthetic, share=0.01).kept) == 1


def test_the_new_space_parses_and_the_follow_up_spec_validates(synthetic: optuna.Study) -> None:
    proposal = advisor.propose(synthetic)
    parsed = space.parse_space(proposal.space)
    assert list(parsed) == ["lr", "x", "n", "m", "kind", "d"]
    assert proposal.dims_before == 6 and proposal.dims_after == 2
    base = parse_spec({**SPEC, "strategy": "tpe"})
    follow = proposal.spec(base, "synthetic-narrowed")
    assert follow.name == "synthetic-narrowed" and follow.space == proposal.space
    assert parse_spec(follow.to_dict()) == follow
    assert follow.dataset == base.dataset  # a built-in dataset keeps its name
    with pytest.raises(SpecError, match="one model"):
        proposal.spec(base.replace(model=["decision_tree", "random_forest"]), "x")


def test_the_proposed_space_runs_in_optuna_and_pools_with_the_first_study() -> None:
    first = study_of(six, 100, name="first")
    first.set_user_attr(study_attrs.SPEC, {**SPEC, "name": "first"})
    proposal = advisor.propose(first)
    new = space.parse_space(proposal.space)
    follow = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1), study_name="follow"
    )
    follow.set_user_attr(study_attrs.SPEC, {**SPEC, "name": "follow"})

    def narrowed(trial: optuna.Trial) -> float:
        _, params = space.suggest(trial, {"decision_tree": new})
        return six(optuna.trial.FixedTrial(params))

    follow.optimize(narrowed, n_trials=30)
    for trial in follow.trials:
        for fixed in proposal.fixed:
            assert trial.params[fixed.name] == fixed.value
    # Both in-memory studies number their trials from 0: pooling must keep them apart.
    pooled = advisor.propose_from([first, follow])
    assert pooled.n_trials == 130 and pooled.studies == ("first", "follow")
    assert "pooled from 2 studies" in pooled.method
    assert pooled.old_space == proposal.old_space  # the fixed values lie inside the first ranges
    assert pooled.best_value == max(first.best_value, follow.best_value)


def test_grid_savings_and_dimension_statement(synthetic: optuna.Study) -> None:
    proposal = advisor.propose(synthetic)
    # 5 points for each of the five ranges, 3 choices: 5**5 * 3; after: lr x x at 5 points
    assert (proposal.grid_points, proposal.grid_before, proposal.grid_after) == (5, 9375, 25)
    assert "searches 2 hyperparameter(s) instead of 6" in proposal.savings
    assert "25 points instead of 9,375" in proposal.savings


def test_a_grid_study_states_the_grid_points_saved() -> None:
    study = study_of(six, 60)
    study.set_user_attr(study_attrs.SPEC, {**SPEC, "strategy": "grid", "grid_points": 3, "n_trials": None})
    proposal = advisor.propose(study, top_quantile=0.2)
    assert proposal.grid_before == 3**5 * 3
    assert proposal.savings.startswith(
        f"A grid at 3 points per range has {proposal.grid_after:,} points instead of 729"
    )


# --------------------------------------------------------------------------------------------
# Narrowing one hyperparameter: never empty, never inverted, always inside the old range
# --------------------------------------------------------------------------------------------
def test_narrow_an_int_whose_top_trials_agree_still_gives_a_range() -> None:
    hp = Hyperparameter(name="depth", type="int", low=1, high=20)
    assert advisor.narrow(hp, [7, 7, 7], margin=0.0).bounds() == (7, 8)
    assert advisor.narrow(hp, [20, 20], margin=0.0).bounds() == (19, 20)
    assert advisor.narrow(hp, [1, 1]).bounds() == (1, 2)  # 5% of 19 is under one step: 1..1.95 -> 1..2


def test_narrow_a_log_range_widens_on_the_log_scale() -> None:
    hp = Hyperparameter(name="lr", type="float", low=1e-6, high=1.0, log=True)
    new = advisor.narrow(hp, [1e-3, 2e-3])
    low, high = new.bounds()
    pad = 0.05 * math.log(1e6)
    assert low <= 1e-3 * math.exp(-pad) and high >= 2e-3 * math.exp(pad)
    assert low >= 1e-3 * math.exp(-pad) * 0.99 and high <= 2e-3 * math.exp(pad) * 1.01
    assert new.log and f"{low}" == f"{low:.3g}"  # rounded to 3 significant digits, no float noise


def test_narrow_a_categorical_keeps_the_order_and_never_empties() -> None:
    hp = Hyperparameter(name="kind", type="categorical", choices=("a", "b", "c"))
    assert advisor.narrow(hp, ["c", "a", "c"]).choices == ("a", "c")
    assert advisor.narrow(hp, ["zzz"]) == hp
    assert advisor.narrow(hp, []) == hp


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("log", [False, True])
def test_narrow_random_ranges_is_never_empty_inverted_or_outside(kind: str, log: bool) -> None:
    rng = random.Random(f"{kind}{log}")
    for _ in range(300):
        if kind == "int":
            low = rng.randint(1 if log else -50, 40)
            high = low + rng.choice([1, 2, 3, 10, 1000])
            values: list[Any] = [rng.randint(low, high) for _ in range(rng.randint(1, 6))]
        else:
            low = rng.choice([1e-9, 1e-3, 0.5, 3.0]) if log else rng.uniform(-100, 100)
            high = low * rng.choice([1.0001, 2, 1e6]) if log else low + rng.choice([1e-9, 1e-3, 1.0, 1e4])
            values = [rng.uniform(low, high) for _ in range(rng.randint(1, 6))]
            values += rng.sample([low, high], rng.randint(0, 1))
        hp = Hyperparameter(name="h", type=kind, low=low, high=high, log=log)  # type: ignore[arg-type]
        new = advisor.narrow(hp, values, margin=rng.choice([0.0, 0.05, 0.5]))
        new_low, new_high = new.bounds()
        assert low <= new_low < new_high <= high, (hp, values, new)
        assert all(new_low <= v <= new_high for v in values), (hp, values, new)
        assert type(new_low) is type(low) and new.log == log


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------
def test_too_few_trials_says_how_many_are_needed() -> None:
    study = study_of(six, 12, name="small")
    message = r"at least 41 COMPLETE trials .* top 10% holds 5 of them and not all; study 'small' has 12"
    with pytest.raises(SpecError, match=message + r".*raise top_quantile \(to 0.34 for these 12 trials\)"):
        advisor.propose(study)
    with pytest.raises(SpecError, match="at least 14 COMPLETE trials"):
        advisor.propose(study, top_quantile=0.3)
    assert advisor.propose(study, top_quantile=0.34).n_top >= 5  # ceil(0.34 * 12) = 5
    assert [advisor.needed_trials(q) for q in (0.1, 0.2, 0.5, 0.99)] == [41, 21, 9, 100]
    with pytest.raises(SpecError, match="at least 41 COMPLETE trials .* the 2 studies have 8"):
        advisor.propose_from([_tagged("p", n_trials=4), _tagged("q", n_trials=4)])


def test_refuses_all_equal_scores_and_multiple_objectives_and_bad_arguments(synthetic: optuna.Study) -> None:
    flat = study_of(lambda t: t.suggest_float("x", 0, 1) * 0.0, 60, name="flat")
    with pytest.raises(SpecError, match="same score"):
        advisor.propose(flat)
    two = optuna.create_study(directions=["maximize", "minimize"], study_name="two")
    with pytest.raises(SpecError, match="2 objectives"):
        advisor.propose(two)
    with pytest.raises(SpecError, match="share"):
        advisor.propose(synthetic, share=0.0)
    with pytest.raises(SpecError, match="top_quantile"):
        advisor.propose(synthetic, top_quantile=1.0)
    with pytest.raises(SpecError, match="max_keep"):
        advisor.propose(synthetic, max_keep=0)
    with pytest.raises(SpecError, match="at least one study"):
        advisor.propose_from([])


def test_refuses_algorithm_selection_and_conditional_spaces() -> None:
    selection = study_of(six, 60, name="selection")
    selection.set_user_attr(study_attrs.SPEC, {**SPEC, "model": ["decision_tree", "random_forest"]})
    with pytest.raises(SpecError, match="several models .*decision_tree, random_forest.* one model"):
        advisor.propose(selection)

    def conditional(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        return x + (trial.suggest_float("y", 0, 1) if x > 0.5 else 0.0)

    with pytest.raises(SpecError, match="every trial to set every hyperparameter"):
        advisor.propose(study_of(conditional, 60, name="conditional"))


def _tagged(name: str, n_trials: int = 60, **spec: Any) -> optuna.Study:
    """A study of ``six`` that carries an hpdash spec (and so can be pooled)."""
    study = study_of(six, n_trials, name=name)
    study.set_user_attr(study_attrs.SPEC, {**SPEC, "name": name, **spec})
    return study


def test_pooling_refuses_other_datasets_models_and_plain_studies() -> None:
    a = _tagged("a")
    a.set_user_attr(study_attrs.DATASET, "a" * 64)
    b = _tagged("b")
    b.set_user_attr(study_attrs.DATASET, "b" * 64)
    with pytest.raises(SpecError, match="Study 'b' has dataset .*'bbbb.* study 'a' has 'aaaa.*same dataset"):
        advisor.propose_from([a, b])
    with pytest.raises(SpecError, match="model 'random_forest'"):
        advisor.propose_from([_tagged("c"), _tagged("d", model="random_forest")])
    with pytest.raises(SpecError, match="target 'other'"):
        advisor.propose_from([_tagged("e"), _tagged("f", target="other")])
    with pytest.raises(SpecError, match="'plain' was not created by hpdash"):
        advisor.propose_from([_tagged("g"), study_of(six, 60, name="plain")])


def test_pooling_refuses_a_hyperparameter_of_another_kind() -> None:
    first = _tagged("first")
    other = optuna.create_study(direction="maximize", study_name="other")
    other.set_user_attr(study_attrs.SPEC, {**SPEC, "name": "other"})

    def as_text(trial: optuna.Trial) -> float:
        params = {name: trial.suggest_float(name, 1e-5, 1.0, log=True) for name in ("lr",)}
        params["x"] = trial.suggest_categorical("x", ["low", "high"])
        for name in ("n", "m", "kind", "d"):
            params[name] = trial.suggest_categorical(name, [first.best_params[name]])
        return params["lr"]

    other.optimize(as_text, n_trials=10)
    with pytest.raises(SpecError, match="'x' is float -5.0..5.0 in one place and one of low, high in another"):
        advisor.propose_from([first, other])


# --------------------------------------------------------------------------------------------
# A real hpdash study and its follow-up
# --------------------------------------------------------------------------------------------
def test_a_real_study_gets_a_follow_up_that_plans_and_runs(data_dir: Any) -> None:
    spec = parse_spec(
        {
            "name": "iris-tree",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "decision_tree",
            "strategy": "random",
            "n_trials": 15,
            "cv": {"folds": 3},
            "seed": 0,
        }
    )
    runner.create_study(spec)
    runner.run_here(spec.name)
    study = runner.load_study(spec.name)
    proposal = advisor.propose(study, top_quantile=0.35)
    assert proposal.model == "decision_tree" and proposal.studies == ("iris-tree",)
    assert proposal.source_spec == spec
    assert {k.name for k in proposal.kept} | {f.name for f in proposal.fixed} == {
        "max_depth",
        "min_samples_leaf",
        "criterion",
    }
    assert proposal.kept and proposal.old_space == study.user_attrs[study_attrs.SPACE]["decision_tree"]
    follow = proposal.spec(spec, "iris-tree-narrowed").replace(n_trials=3)
    plan = runner.plan_study(follow)
    assert space.space_to_dict(plan.spaces["decision_tree"]) == proposal.space
    runner.create_study(follow, plan=plan)
    assert runner.run_here(follow.name) == 3
    done = runner.load_study(follow.name).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 3
    for trial in done:
        for fixed in proposal.fixed:
            assert trial.params[fixed.name] == fixed.value
        for kept in proposal.kept:
            value = trial.params[kept.name]
            if kept.new.type == "categorical":
                assert value in (kept.new.choices or ())
            else:
                low, high = kept.new.bounds()
                assert low <= value <= high


def test_a_plain_study_with_a_stepped_range_is_refused_by_name() -> None:
    def stepped(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0.0, 1.0, step=0.1) + trial.suggest_float("y", 0.0, 1.0)

    with pytest.raises(SpecError, match=r"Study 'stepped': parameter 'x' is searched with a step \(0.1\)"):
        advisor.propose(study_of(stepped, 60, name="stepped"))
