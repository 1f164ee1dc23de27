"""The Compare page (pages/compare.py) through streamlit.testing (AppTest) on a real experiment."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_text import shown
from experiment_data import NAME, shared_experiment
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "compare.py")


def _page(**query: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "info", "warning", "error", "caption", "subheader"):
        parts += [shown(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_empty_catalogue(data_dir) -> None:
    at = _page()
    assert not at.exception
    assert "No experiments yet" in _texts(at)


def test_unknown_experiment(data_dir) -> None:
    at = _page(experiment="nope")
    assert not at.exception
    assert "No experiment with ID 'nope'" in _texts(at)


@pytest.mark.slow
def test_experiment_page_shows_every_view(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    monkeypatch.setenv("HPDASH_DATA_DIR", str(exp.data_dir))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    at = _page(experiment=NAME)
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == [
        "Verdict",
        "Summary",
        "Time to target",
        "Convergence",
        "Final scores",
        "Sample placement",
        "Hyperparameter importance",
        "Reports",
    ]
    assert at.info[0].value.startswith("No significant difference with 2 seeds")
    assert len(at.get("plotly_chart")) == 7 + 3 + 1  # the three figures across repeats, the animated placement
    summary = at.dataframe[0].value
    assert list(summary["strategy"]) and set(summary["strategy"]) == {"Grid", "Random", "TPE"}
    ttt = at.dataframe[1].value
    assert "reached" in ttt.columns and len(ttt) == 3
    assert "seeded random permutation" in _texts(at)

    # a hand-set target nobody reaches: every strategy shows 0/2 and the verdict claims nothing
    at.number_input[0].set_value(1.5).run()
    assert not at.exception
    assert set(at.dataframe[1].value["reached"]) == {"0/2 (0%)"}
    assert "No significant difference" in at.info[0].value

    # importance by another method, with the method named
    method = next(s for s in at.selectbox if s.label == "Method")
    method.set_value("fanova").run()
    assert not at.exception and "fANOVA" in _texts(at)


@pytest.mark.slow
def test_hand_picked_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = shared_experiment()
    monkeypatch.setenv("HPDASH_DATA_DIR", str(exp.data_dir))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    at = _page()
    at.radio[0].set_value("Hand-picked studies").run()
    at.multiselect[0].set_value([f"{NAME}-grid-s0", f"{NAME}-tpe-s0"]).run()
    assert not at.exception, [e.value for e in at.exception]
    # one seed: a complete block; and the animated placement
    assert "Selected studies" in _texts(at) and len(at.get("plotly_chart")) == 7 + 3 + 1


def test_new_study_compare_form_launches_a_shared_split(data_dir) -> None:
    """New study -> Compare strategies with "The same split for every repeat": every study
    of the experiment has the form's seed as its split seed, and the sampler seeds differ."""
    from hpdash import experiments, runner

    at = AppTest.from_file(str(ROOT / "hpdash" / "ui" / "main.py"), default_timeout=90).run()
    at.switch_page(str(ROOT / "pages" / "new_study.py")).run()
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.number_input(key="ns_n_trials").set_value(4)
    at.number_input(key="ns_folds").set_value(3)
    at.text_input(key="ns_name").input("apptest-split").run()
    at.multiselect(key="ns_cmp_strategies").set_value(["random", "tpe"])
    at.number_input(key="ns_cmp_repeats").set_value(2).run()
    split = at.radio(key="ns_cmp_split")
    assert split.label == "Data split across repeats" and split.value == "per_repeat"
    assert list(split.options) == [
        "A new split per repeat (split and sampler luck)",
        "The same split for every repeat (only sampler luck varies)",
    ]
    split.set_value("shared").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Data split: the same split for every repeat (only sampler luck varies)" in i.value for i in at.info)
    at.button(key="ns_cmp_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    exp = experiments.load_experiment("apptest-split")
    try:
        specs = experiments.study_specs(exp.study_names)
        assert sorted(exp.study_names) == [
            "apptest-split-random-s0",
            "apptest-split-random-s1",
            "apptest-split-tpe-s0",
            "apptest-split-tpe-s1",
        ]
        assert {s["split_seed"] for s in specs.values()} == {0}
        assert sorted(s["sampler_seed"] for s in specs.values()) == [0, 0, 1, 1]
        assert experiments.experiment_split("apptest-split") == "shared"
    finally:
        for run in exp.runs:
            runner.stop_study(run.study)


def _verdict(at: AppTest) -> str:
    return next(shown(i.value) for i in at.info if i.icon == ":material/balance:")


def test_hand_picked_studies_on_two_datasets_show_the_banner_and_no_claim(data_dir) -> None:
    from test_compare import _two_tables

    from hpdash import config

    names = _two_tables(config.storage_url())
    at = _page()
    at.radio[0].set_value("Hand-picked studies").run()
    at.multiselect[0].set_value([names[0], names[1], names[4], names[5]]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert shown(at.error[0].value).startswith("Not comparable: dataset: SHA-256 aaaaaaaaaaaa")
    verdict = _verdict(at)
    assert verdict.startswith("Not comparable") and "found better" not in verdict
    assert set(at.dataframe[0].value["mean rank"]) == {"-"}
    assert len(at.get("plotly_chart")) == 6  # one hyperparameter: no placement figure
    texts = _texts(at)
    assert "95% t-interval of the mean over 2 seeds" in texts
    band = next(r for r in at.radio if r.label == "Band")
    band.set_value("bootstrap").run()
    assert not at.exception and "95% bootstrap percentile interval of the mean over 2 seeds" in _texts(at)


def test_hand_picked_paired_studies_name_the_wilcoxon_test(data_dir) -> None:
    from test_compare import make_study

    from hpdash import config

    storage = config.storage_url()
    names = [make_study(storage, s, k, [0.5, 0.8 + k / 100]) for s in ("tpe", "random") for k in range(2)]
    at = _page()
    at.radio[0].set_value("Hand-picked studies").run()
    at.multiselect[0].set_value(names).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert "Wilcoxon signed-rank" in _verdict(at)
    assert "data split: a new split per repeat" in _texts(at)


def _compare_form(name: str) -> AppTest:
    """The New study page with k-NN on iris, 3 trials, 3 folds (a fresh session)."""
    at = AppTest.from_file(str(ROOT / "hpdash" / "ui" / "main.py"), default_timeout=90).run()
    at.switch_page(str(ROOT / "pages" / "new_study.py")).run()
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.number_input(key="ns_n_trials").set_value(3)
    at.number_input(key="ns_folds").set_value(3)
    at.text_input(key="ns_name").input(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plan_lines(at: AppTest) -> list[str]:
    return [shown(i.value) for i in at.info if i.icon == ":material/calculate:"]


def test_new_study_compare_form_plans_repeats_from_a_past_experiment(data_dir) -> None:
    """No past run: the pilot route. With a finished experiment on the same problem (iris,
    accuracy, 3 folds, 3 trials), the repeats that detect the smallest difference, and the power
    of the form's repeats; the until-settled option shows its rule, and refuses the shared split."""
    import numpy as np
    from test_planning import _experiment

    from hpdash import planning, statistics

    assert _plan_lines(_compare_form("apptest-pilot")) == [planning.PILOT_TEXT]

    _experiment("pilot-knn", {"random": [0.90, 0.93, 0.92], "tpe": [0.91, 0.95, 0.92]}, sha="sklearn:iris")
    at = _compare_form("apptest-plan")
    at.multiselect(key="ns_cmp_strategies").set_value(["random", "tpe"])
    at.number_input(key="ns_cmp_difference").set_value(0.02).run()
    assert not at.exception, [e.value for e in at.exception]
    (line,) = _plan_lines(at)
    sd = float(np.std(np.subtract([0.90, 0.93, 0.92], [0.91, 0.95, 0.92]), ddof=1))
    needed = statistics.repeats_needed(0.02, sd, 0.05, 0.8, paired=True)
    assert line == (
        f"To detect a difference of 0.02 in accuracy with 80% power at alpha 0.05 you need about {needed} repeats "
        f"(paired, exact Wilcoxon; sd {sd:.2g} from 1 past experiment: pilot-knn). "
        "The form's 3 repeats give power 0%."
    )
    at.checkbox(key="ns_cmp_until").check().run()
    at.number_input(key="ns_cmp_cap").set_value(8).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(shown(c.value) for c in at.caption)
    assert "each at alpha 0.05/6 = 0.00833 (Bonferroni over the looks" in captions
    assert "within ±0.02" in captions and "With repeats added up to the cap of 8: at most 16 studies" in captions
    at.radio(key="ns_cmp_split").set_value("shared").run()
    assert any("needs a new split per repeat" in shown(e.value) for e in at.error)
    assert at.button(key="ns_cmp_launch").disabled
    (unpaired,) = _plan_lines(at)
    assert "(unpaired, exact Mann-Whitney; sd" in unpaired


# ------------------------------------------------------------------------------ random baseline and repeats
def _charts(at: AppTest) -> dict[str, dict]:
    """The page's Plotly figures as JSON, by title."""
    import json

    out = {}
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        out[str(figure["layout"].get("title", {}).get("text"))] = figure
    return out


def _hand_picked(at: AppTest, names: list[str]) -> AppTest:
    at.radio[0].set_value("Hand-picked studies").run()
    at.multiselect[0].set_value(names).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_shows_the_random_baseline_normalised_scores_and_ranks(data_dir) -> None:
    from test_compare import make_study

    from hpdash import config

    storage = config.storage_url()
    names = [
        make_study(storage, s, k, [0.5 + shift + k / 100, 0.6 + shift, 0.55 + shift])
        for k in range(3)
        for s, shift in (("random", 0.0), ("tpe", 0.1), ("grid", 0.05))
    ]
    at = _hand_picked(_page(), names)
    summary = at.dataframe[0].value
    assert "normalised score (Bayesmark)" in summary.columns
    texts = _texts(at)
    assert "Normalised score (Bayesmark): 0 = the best value seen in the experiment, 1 = random search" in texts
    assert "expected best of n random draws without replacement (Bayesmark)" in texts
    assert "ECDF of runtime to target (COCO)" in texts and "Friedman test, Nemenyi post-hoc (Demšar 2006)" in texts
    assert "Average rank over budget" in texts
    assert len(at.get("plotly_chart")) == 6 + 3  # one hyperparameter: no placement figure
    charts = _charts(at)
    band = charts["Best so far vs trials (95% band)"]
    names_drawn = [t.get("name") for t in band["data"]]
    assert "random search, expected best (pooled 9 trials)" in names_drawn
    assert "random search at twice the budget" in names_drawn
    assert {"Average rank over budget", "ECDF of runtime to target (COCO)"} <= set(charts)
    assert any(t.startswith("Critical-difference diagram") for t in charts)
    # another widget reruns the page from the cached statistics
    method = next(s for s in at.selectbox if s.label == "Method")
    method.set_value("fanova").run()
    assert not at.exception and "normalised score (Bayesmark)" in at.dataframe[0].value.columns


def test_compare_page_without_random_search_or_complete_blocks_says_why(data_dir) -> None:
    from test_compare import make_study

    from hpdash import config

    storage = config.storage_url()
    names = [make_study(storage, s, k, [0.5, 0.6 + k / 100]) for s in ("tpe", "grid") for k in range(2)]
    names.append(make_study(storage, "tpe", 2, [0.7], n_trials=2))
    at = _hand_picked(_page(), names)
    texts = _texts(at)
    assert "No random search in this experiment" in texts
    assert "normalised score (Bayesmark)" not in at.dataframe[0].value.columns
    assert "No average rank over budget, critical-difference diagram or runtime-to-target ECDF: " in texts
    assert "seed 2 holds only TPE" in texts
    assert len(at.get("plotly_chart")) == 6


def test_replay_links_that_cannot_run_say_why(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay link names a study that is not there, asks too much, or reaches a read-only
    dashboard: a message that names the problem and the fix, no replay started."""
    at = _page(replay="nope")
    assert not at.exception
    assert "nope" in _texts(at) and at.error
    at = _page(replay="nope", seeds="1000")
    assert not at.exception and "outside 1..50" in _texts(at)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    at = _page(replay="nope")
    assert not at.exception
    assert "read-only" in _texts(at).lower() and "replay strategies on recorded results" in _texts(at)
