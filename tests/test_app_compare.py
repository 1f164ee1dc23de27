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
    assert len(at.get("plotly_chart")) == 7
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
    assert "Selected studies" in _texts(at) and len(at.get("plotly_chart")) == 7


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
