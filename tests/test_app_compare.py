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
