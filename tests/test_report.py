"""hpdash.report: the trials CSV, including formula-injection neutralisation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpdash import report, results

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHOICES = ["gini", "=1+2", "+SUM(A1)", "-cmd", "@A1", "\tx", "\rx", "plain-dash", "ünïcode"]
DISTS = {
    "criterion": CategoricalDistribution(CHOICES),
    "alpha": FloatDistribution(-5.0, 10.0),
}
BASE = dt.datetime(2025, 1, 1, 12, 0, 0)


def build_study() -> optuna.Study:
    """A maximize study of negative scores (like neg_log_loss), one trial per choice, a FAIL."""
    study = optuna.create_study(direction="maximize")
    for i, choice in enumerate(CHOICES):
        value = -0.5 + i / 100
        trial = create_trial(
            value=value,
            params={"criterion": choice, "alpha": -1.5 + i},
            distributions=DISTS,
            user_attrs={"fold_scores": [value - 0.1, value + 0.1], "cv_std": 0.1},
        )
        trial.datetime_start = BASE + dt.timedelta(seconds=i)
        trial.datetime_complete = trial.datetime_start + dt.timedelta(seconds=1)
        study.add_trial(trial)
    failed = create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": '=HYPERLINK("x")'})
    failed.datetime_start = failed.datetime_complete = BASE
    study.add_trial(failed)
    study.enqueue_trial({})
    return study


@pytest.fixture(scope="module")
def csv_rows() -> list[dict[str, Any]]:
    data = report.trials_csv(results.trials_frame(build_study()))
    assert isinstance(data, bytes)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_rows_and_header(csv_rows: list[dict[str, Any]]) -> None:
    assert len(csv_rows) == len(CHOICES) + 1  # WAITING slot excluded
    assert list(csv_rows[0]) == results.BASE_COLUMNS + ["params_alpha", "params_criterion"]


def test_formula_cells_are_neutralised(csv_rows: list[dict[str, Any]]) -> None:
    got = [r["params_criterion"] for r in csv_rows[: len(CHOICES)]]
    assert got == ["gini", "'=1+2", "'+SUM(A1)", "'-cmd", "'@A1", "'\tx", "'\rx", "plain-dash", "ünïcode"]
    assert csv_rows[-1]["fail_reason"] == '\'=HYPERLINK("x")'
    # Nothing in the file starts with a formula character any more, except numbers.
    for row in csv_rows:
        for cell in row.values():
            if cell and cell[0] in "=+-@\t\r":
                float(cell)  # raises if a text cell slipped through


def test_negative_numbers_stay_numbers(csv_rows: list[dict[str, Any]]) -> None:
    assert csv_rows[0]["value"] == "-0.5"
    assert csv_rows[0]["params_alpha"] == "-1.5"
    assert csv_rows[0]["best_so_far"] == "-0.5"
    back = pd.read_csv(io.BytesIO(report.trials_csv(results.trials_frame(build_study()))))
    assert pd.api.types.is_float_dtype(back["value"])
    assert back["value"].iloc[0] == -0.5


def test_fold_scores_are_json(csv_rows: list[dict[str, Any]]) -> None:
    assert json.loads(csv_rows[0]["fold_scores"]) == pytest.approx([-0.6, -0.4])
    assert csv_rows[-1]["fold_scores"] == ""  # the FAIL trial has none
    assert csv_rows[-1]["state"] == "FAIL" and csv_rows[-1]["value"] == ""


def test_input_frame_unchanged_and_empty_frame() -> None:
    frame = results.trials_frame(build_study())
    before = frame.copy()
    report.trials_csv(frame)
    pd.testing.assert_frame_equal(frame, before)
    empty = report.trials_csv(results.trials_frame(optuna.create_study()))
    assert empty.decode("utf-8") == ",".join(results.BASE_COLUMNS) + "\r\n"


def test_write_trials_csv(tmp_path: Path) -> None:
    study = build_study()
    path = report.write_trials_csv(study, tmp_path / "trials.csv")
    assert path.read_bytes() == report.trials_csv(results.trials_frame(study))
    assert "ünïcode" in path.read_text(encoding="utf-8")


def test_neutralise_cell() -> None:
    assert report.neutralise_cell("=x") == "'=x"
    assert report.neutralise_cell(-3.0) == -3.0
    assert report.neutralise_cell(None) is None
    assert report.neutralise_cell("a=b") == "a=b"


# ------------------------------------------------------------------------------ experiment exports
from experiment_data import N_TRIALS, NAME, REPEATS, STRATEGIES, shared_experiment  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


def test_experiment_csv_has_strategy_and_seed_and_is_neutralised() -> None:
    frame = pd.DataFrame(
        {
            "study": ["e-grid-s0", "e-tpe-s1"],
            "strategy": ["grid", "tpe"],
            "seed": [0, 1],
            "number": [0, 0],
            "state": ["COMPLETE", "COMPLETE"],
            "value": [-0.5, -0.25],
            "params_kernel": ['=HYPERLINK("x")', "rbf"],
        }
    )
    rows = list(csv.DictReader(io.StringIO(report.experiment_csv(frame).decode("utf-8"))))
    assert list(rows[0])[:3] == ["study", "strategy", "seed"]
    assert [(r["strategy"], r["seed"]) for r in rows] == [("grid", "0"), ("tpe", "1")]
    assert rows[0]["params_kernel"] == '\'=HYPERLINK("x")' and rows[0]["value"] == "-0.5"


def test_html_page_escapes_text_and_has_no_remote_script() -> None:
    page = report.html_page("Study <b>x</b>", ["<p>ok</p>"], subtitle="a & b")
    assert "<title>Study &lt;b&gt;x&lt;/b&gt;</title>" in page and "a &amp; b" in page
    assert "Made " in page and "<script src" not in page


def test_study_html_of_a_plain_study(tmp_path: Path) -> None:
    html = report.study_html(build_study())
    assert "<h1>Study " in html and html.count('class="plotly-graph-div"') == 5
    assert "not refit" in html


@pytest.mark.slow
def test_experiment_csv_of_a_real_experiment(tmp_path: Path) -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    path = report.write_experiment_csv(NAME, tmp_path / "e.csv", exp.storage)
    frame = pd.read_csv(path)
    assert len(frame) == len(STRATEGIES) * REPEATS * N_TRIALS
    assert set(frame["strategy"]) == set(STRATEGIES) and set(frame["seed"]) == set(range(REPEATS))
    assert (frame.groupby(["strategy", "seed"]).size() == N_TRIALS).all()


def _static_checks(html: str) -> None:
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert bundle in html  # the plotly.js bundle is inlined
    rest = html.replace(bundle, "")  # (the bundle's own strings mention plotly.com)
    assert not re.search(r"<script[^>]+src=", rest), "every script must be inline"
    assert not re.search(r"""(src|href)=["']https?://""", rest)


@pytest.mark.slow
def test_experiment_report_content() -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    html = exp.report.read_text(encoding="utf-8")
    _static_checks(html)
    assert f"<title>Experiment {NAME}</title>" in html and re.search(r"Made \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)
    for heading in ("Verdict", "Summary", "Time to target", "Pairwise tests", "Grid order", "Spec"):
        assert f"<h2>{heading}</h2>" in html
    assert "No significant difference with 2 seeds" in html
    assert "Best so far vs trials (95% band)" in html and "Best so far vs wall-clock time (95% band)" in html
    assert "more than the budget of 10 trials" in html  # the grid cut is stated
    assert "model: k_nearest_neighbors" in html  # the spec
    assert html.count('class="plotly-graph-div"') == 7


def _open_offline(browser: Any, path: Path) -> tuple[int, list[str], list[str]]:
    """Open ``path`` in headless Chromium with every non-file request aborted.

    Returns (plotly divs that drew an SVG, aborted request URLs, page errors)."""
    aborted: list[str] = []
    errors: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def route(r: Any) -> None:
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                aborted.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(path.resolve().as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.plotly-graph-div').length > 0 && "
            "[...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('.main-svg'))",
            timeout=30_000,
        )
        drawn = page.evaluate(
            "[...document.querySelectorAll('.plotly-graph-div')]"
            ".filter(d => d.querySelector('.main-svg') && d._fullLayout).length"
        )
    finally:
        context.close()
    return drawn, aborted, errors


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_reports_open_offline_in_a_browser(browser, tmp_path: Path) -> None:
    """Acceptance: the HTML reports open as files with no network and draw every plot."""
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    drawn, aborted, errors = _open_offline(browser, exp.report)
    assert drawn == 7 and aborted == [] and errors == []
    study_page = tmp_path / "study.html"
    from hpdash import runner

    report.write_study_html(runner.load_study(f"{NAME}-tpe-s0", exp.storage), study_page)
    _static_checks(study_page.read_text(encoding="utf-8"))
    drawn, aborted, errors = _open_offline(browser, study_page)
    assert drawn == 5 and aborted == [] and errors == []


# ------------------------------------------------------------------------------ comparability in the report
def test_report_of_studies_on_two_datasets_claims_nothing_and_says_what_differs(tmp_path: Path) -> None:
    from test_compare import SHA_IRIS, SHA_WINE, _two_tables

    from hpdash import compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    comparison = compare.load_studies_comparison(_two_tables(storage), storage)
    html = report.experiment_html(comparison)
    banner = f"Not comparable: dataset: SHA-256 {SHA_IRIS[:12]}… vs SHA-256 {SHA_WINE[:12]}…."
    assert f'<p class="banner">{banner}</p>' in html  # first, above the verdict
    assert html.index('class="banner"') < html.index("<h2>Verdict</h2>")
    assert "found better" not in html and "No test is run, no strategy is ranked" in html
    assert "none (not comparable: dataset" in html  # the pairwise-tests table says why it is empty
    assert "No ranks: the studies differ in more than strategy and seed." in html
    assert html.count('class="plotly-graph-div"') == 6  # the figures still draw (one param: no placement)
    assert html.count("Not comparable: dataset") >= 6 + 1  # the banner, and on every figure
    assert "strategies: tpe, random" in html and "(differs between the studies)" in html


def test_report_lists_strategies_seeds_and_split_design(tmp_path: Path) -> None:
    from test_compare import make_study

    from hpdash import compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    names = [make_study(storage, s, k, [0.5, 0.8 + k / 100]) for s in ("tpe", "random") for k in range(2)]
    html = report.experiment_html(compare.load_studies_comparison(names, storage))
    spec = html[html.index("<h2>Spec</h2>") :]
    assert "strategies: tpe, random" in spec and "seeds/repeats: 0, 1 (2 repeats)" in spec
    assert "data split: a new split per repeat" in spec
    assert "strategy: tpe" not in spec and "\nseed:" not in spec and "name:" not in spec
    assert "exact Wilcoxon signed-rank" in html  # paired: the test named beside its p
    same = [make_study(storage, s, k, [0.5, 0.8], split_seed=3) for s in ("tpe", "random") for k in range(2)]
    html = report.experiment_html(compare.load_studies_comparison(same, storage))
    assert "same data split for every repeat" in html and "exact Mann-Whitney U" in html


@pytest.mark.slow
def test_experiment_report_names_the_strategies_test_and_band() -> None:
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    html = exp.report.read_text(encoding="utf-8")
    spec = html[html.index("<h2>Spec</h2>") :]
    assert f"strategies: {', '.join(STRATEGIES)}" in spec and "strategy: tpe" not in spec
    assert "seeds/repeats: 0, 1 (2 repeats)" in spec and "a new split per repeat" in html
    assert "Wilcoxon signed-rank" in html and "95% t-interval of the mean over 2 seeds" in html
    assert "Not comparable" not in html
