"""The one-click demo's study and the replay links (hpdash/views/demo.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpdash import experiments
from hpdash.errors import SpecError
from hpdash.views import demo

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_study_is_a_full_grid_of_c_and_gamma() -> None:
    spec = demo.demo_spec()
    assert spec.name == demo.DEMO_STUDY and spec.strategy == "grid" and spec.n_trials is None
    assert experiments.grid_size_of(spec) == demo.DEMO_GRID_SIZE == 225
    assert set(spec.space) == {"C", "gamma"} and all(spec.space[p]["log"] for p in ("C", "gamma"))


def test_replay_settings_round_trip_through_the_link() -> None:
    settings = demo.ReplaySettings("s", ("random", "tpe"), 7, 40, 3, guided=True)
    assert demo.replay_settings(settings.query()) == settings
    assert demo.replay_settings({"replay": "s"}) == demo.ReplaySettings("s")
    assert demo.demo_replay_settings().query()["guided"] == "1"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({}, "names no recorded study"),
        ({"replay": "s", "seeds": "0"}, "outside 1..50"),
        ({"replay": "s", "seeds": "1e9"}, "not a whole number"),
        ({"replay": "s", "trials": "100000"}, "outside 2..400"),
        ({"replay": "s", "workers": "99"}, "outside 1..8"),
        ({"replay": "s", "strategies": "grid,cmaes"}, "Cannot replay 'cmaes'"),
        ({"replay": "s", "strategies": ","}, "Cannot replay no strategy"),
    ],
)
def test_a_link_asking_too_much_is_refused_with_the_fix(query, words) -> None:
    with pytest.raises(SpecError, match=re.escape(words)):
        demo.replay_settings(query)


def test_every_guided_section_the_compare_page_shows_has_words() -> None:
    used = set(re.findall(r'guide\("(\w+)"', (ROOT / "pages" / "compare.py").read_text()))
    used |= set(re.findall(r'guide\("(\w+)"', (ROOT / "hpdash" / "ui" / "strategy_views.py").read_text()))
    assert used and used <= set(demo.GUIDE)
    for section in used:
        assert len(demo.guide_text(section)) > 60


def test_strategy_names_in_words() -> None:
    assert demo.strategy_names(["grid"]) == "Grid"
    assert demo.strategy_names(["grid", "random", "tpe"]) == "Grid, Random and TPE"
