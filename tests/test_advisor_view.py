"""hpdash.ui.advisor_view on the Study page (AppTest): propose on request, then open New study
prefilled with the proposal's space."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from app_text import shown
from streamlit.testing.v1 import AppTest

from hpdash import advisor, runner, space
from hpdash.spec import parse_spec
from hpdash.ui import advisor_view

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "hpdash" / "ui" / "main.py")
NAME = "advised"


def _filled_study(n_trials: int) -> optuna.Study:
    """A stored study whose score depends on max_depth and min_samples_leaf only (the trials
    told directly: the advisor reads trials, it fits nothing)."""
    spec = parse_spec(
        {
            "name": NAME,
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "decision_tree",
            "strategy": "random",
            "n_trials": n_trials,
            "cv": {"folds": 3},
            "seed": 0,
        }
    )
    plan = runner.plan_study(spec)
    runner.create_study(spec, plan=plan)
    study = optuna.load_study(study_name=NAME, storage=runner.load_study(NAME)._storage)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for _ in range(n_trials):
        trial = study.ask()
        _, params = space.suggest(trial, plan.spaces)
        score = 1.0 - (params["max_depth"] - 4) ** 2 / 400 - math.log(params["min_samples_leaf"]) / 10
        study.tell(trial, score)
    return runner.load_study(NAME)


def _study_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["study"] = NAME
    at.run()
    at.switch_page(str(ROOT / "pages" / "study.py")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_advisor_proposes_on_request_and_prefills_new_study(data_dir) -> None:
    study = _filled_study(60)
    at = _study_page()
    assert not any("Method: PED-ANOVA" in shown(m.value) for m in at.markdown), "proposed before being asked"
    at.button(key="advisor_propose").click().run()
    assert not at.exception, [e.value for e in at.exception]
    expected = advisor.propose(study)
    text = "\n".join(shown(m.value) for m in at.markdown)
    assert "Method: PED-ANOVA" in text and expected.savings in text
    assert all(f"Keep {k.name}" in text for k in expected.kept) and all(f"Fix {f.name}" in text for f in expected.fixed)
    at.button(key="advisor_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    form_space = at.session_state["ns_space_init"]["decision_tree"]
    assert form_space == expected.space
    assert at.session_state["ns_name"] == advisor_view.follow_up_name(NAME)


def test_too_few_trials_say_how_many_are_needed(data_dir) -> None:
    _filled_study(12)
    at = _study_page()
    needed = advisor.needed_trials(advisor.TOP_QUANTILE)
    assert any(f"needs at least {needed} complete trials; this study has 12" in shown(i.value) for i in at.info)
    with pytest.raises(KeyError):
        at.button(key="advisor_propose")
