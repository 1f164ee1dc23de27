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
    assert html.count('class="plotly-graph-div"') == 7 + 3  # and the three figures across repeats


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
    assert drawn == 7 + 3 and aborted == [] and errors == []
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


# ------------------------------------------------------------------------------ across repeats, random baseline, JSON
_VALUES = {
    "random": [[0.60, 0.62, 0.70], [0.55, 0.65, 0.61], [0.58, 0.59, 0.71], [0.52, 0.66, 0.63]],
    "tpe": [[0.75, 0.80, 0.79], [0.70, 0.83, 0.85], [0.64, 0.69, 0.90], [0.72, 0.81, 0.84]],
    "grid": [[0.52, 0.68, 0.68], [0.66, 0.67, 0.60], [0.70, 0.72, 0.50], [0.61, 0.62, 0.64]],
}


def _three_strategies(storage: str) -> list[str]:
    """random, tpe and grid x 4 seeds (a new split per seed), 3 trials each; tpe's seed 0 refit."""
    from test_compare import make_study

    return [
        make_study(storage, s, k, _VALUES[s][k], holdout=0.9 if (s, k) == ("tpe", 0) else None)
        for k in range(4)
        for s in _VALUES
    ]


@pytest.fixture
def three(tmp_path: Path) -> Any:
    from hpdash import compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    comparison = compare.load_studies_comparison(_three_strategies(storage), storage)
    return comparison, compare.analyse_comparison(comparison)


def test_experiment_report_has_the_figures_across_repeats_and_names_every_method(three: Any) -> None:
    comparison, analysis = three
    html = report.experiment_html(comparison, analysis)
    _static_checks(html)
    assert not re.search(r"""<script[^>]+src=["']?https?://""", html)
    for div in ("fig-average-rank", "fig-critical-difference", "fig-runtime-ecdf"):
        assert f'id="{div}"' in html
    for method in (
        "expected best of n random draws without replacement (Bayesmark)",
        "Friedman test, Nemenyi post-hoc (Demšar 2006)",
        "ECDF of runtime to target (COCO)",
        "normalised score (Bayesmark)",
    ):
        assert method in html, method
    assert "<h2>Across repeats</h2>" in html
    assert "random search, expected best (pooled 12 trials)" in html and "random search at twice the budget" in html
    assert "Normalised score (Bayesmark): 0 = the best value seen in the experiment" in html
    assert html.count('class="plotly-graph-div"') == 6 + 3  # one hyperparameter: no placement figure


def test_report_without_random_search_or_complete_blocks_says_why(tmp_path: Path) -> None:
    from test_compare import make_study

    from hpdash import compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    names = [make_study(storage, s, k, [0.5, 0.6 + k / 100]) for s in ("tpe", "grid") for k in range(2)]
    names.append(make_study(storage, "tpe", 2, [0.7], n_trials=2))  # still running: one trial so far
    html = report.experiment_html(compare.load_studies_comparison(names, storage))
    assert "No random search in this experiment" in html and "random search at twice" not in html
    assert "No average rank over budget, critical-difference diagram or runtime-to-target ECDF: " in html
    assert "seed 2 holds only TPE" in html and 'id="fig-critical-difference"' not in html


def _no_nan(text: str) -> dict[str, Any]:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in the JSON")

    document = json.loads(text, parse_constant=refuse)
    assert isinstance(document, dict)
    return document


def test_experiment_json_holds_the_library_numbers(three: Any) -> None:
    import numpy as np
    from scipy import stats

    from hpdash import compare, statistics

    comparison, analysis = three
    doc = _no_nan(report.experiment_json(comparison, analysis))
    assert doc["format"] == "hpdash.comparison/1" and doc["metric"] == "accuracy" and doc["direction"] == "maximize"
    design = doc["design"]
    assert design["strategies"] == ["random", "tpe", "grid"] and design["seeds"] == {s: [0, 1, 2, 3] for s in _VALUES}
    assert design["comparable"] is True and design["differences"] == [] and design["banner"] is None
    assert design["paired"] is True and design["ranked"] is True and design["split"] == "a new split per repeat"

    runs = {(r["strategy"], r["seed"]): r for r in doc["runs"]}
    for (s, k), r in runs.items():
        assert r["best"] == max(_VALUES[s][k]) and r["finished_trials"] == 3
    assert runs[("tpe", 0)]["holdout"] == 0.9 and runs[("grid", 1)]["holdout"] is None  # NaN -> null

    best = {s: np.array([max(v) for v in _VALUES[s]]) for s in _VALUES}
    tests = {(t["metric"], t["a"], t["b"]): t for t in doc["pairwise_tests"]["tests"]}
    family = [tests[(compare.METRIC_BEST, a, b)] for a, b in (("random", "tpe"), ("random", "grid"), ("tpe", "grid"))]
    for t in family:
        ref = stats.wilcoxon(best[t["a"]] - best[t["b"]], method="exact")
        assert t["test"].startswith("exact Wilcoxon signed-rank")
        assert (t["statistic"], t["p"]) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert [t["p_holm"] for t in family] == pytest.approx(compare.holm([t["p"] for t in family]))

    pool = np.concatenate([np.array(v) for v in _VALUES["random"]])
    curve = statistics.expected_best_curve(pool, "maximize")
    baseline = doc["random_search_expected_best"]
    assert baseline["method"] == "expected best of n random draws without replacement (Bayesmark)"
    assert baseline["pooled_trials"] == 12 and baseline["label"] == "random search, expected best (pooled 12 trials)"
    assert [p["expected_best"] for p in baseline["curve"]] == pytest.approx(curve[:3].tolist())
    assert [p["twice"] for p in baseline["curve"]] == pytest.approx([curve[1], curve[3], curve[5]])

    scores = doc["normalised_scores"]
    assert scores["method"] == "normalised score (Bayesmark)" and scores["optimum"] == 0.90
    for row in scores["strategies"]:
        mine = statistics.normalised_score(best[row["strategy"]], 0.90, curve[2], "maximize")
        assert row["mean"] == pytest.approx(float(np.mean(mine))) and row["std"] == pytest.approx(
            float(np.std(mine, ddof=1))
        )
    for (s, k), r in runs.items():
        assert r["normalised_score"] == pytest.approx(
            statistics.normalised_score(max(_VALUES[s][k]), 0.9, curve[2], "maximize")
        )

    matrix = np.column_stack([best[s] for s in _VALUES])
    res = statistics.friedman_nemenyi(matrix, "maximize", 0.05)
    friedman = doc["friedman_nemenyi"]
    assert friedman["name"] == "Friedman test, Nemenyi post-hoc (Demšar 2006)" and friedman["method"] == res.method
    assert [friedman["average_ranks"][s] for s in _VALUES] == pytest.approx(list(res.average_ranks))
    assert (friedman["statistic"], friedman["p_value"], friedman["critical_difference"]) == pytest.approx(
        (res.statistic, res.p_value, res.critical_difference)
    )
    names = list(_VALUES)
    assert friedman["groups"] == [
        [names[i] for i in g] for g in statistics.cd_groups(res.average_ranks, res.critical_difference)
    ]
    last = {p["strategy"]: p["average_rank"] for p in doc["average_ranks"]["over_budget"] if p["trial"] == 3}
    assert [last[s] for s in _VALUES] == pytest.approx(list(res.average_ranks))

    ecdf = doc["runtime_to_target_ecdf"]
    assert ecdf["method"] == "ECDF of runtime to target (COCO)" and ecdf["target"] == pytest.approx(analysis.target)
    for strategy in _VALUES:
        points = [p for p in ecdf["points"] if p["strategy"] == strategy]
        seconds = analysis.ttt.loc[analysis.ttt["strategy"] == strategy, "seconds"].tolist()
        grid = [p["seconds"] for p in points]
        assert [p["fraction"] for p in points] == pytest.approx(
            statistics.ecdf_of_runtime_to_target(seconds, grid).tolist()
        )
    # the studies' data cannot be loaded (made-up datasets): no tie set, no BBC-CV estimate, each said so
    assert set(doc["ties"]) == {r.study for r in comparison.runs} and set(doc["ties"].values()) == {None}
    assert doc["winners_curse"] is not None and all(r["reason"] for r in doc["winners_curse"]["studies"])


def test_experiment_json_of_studies_that_are_not_comparable(tmp_path: Path) -> None:
    from test_compare import _two_tables

    from hpdash import compare

    storage = f"sqlite:///{tmp_path / 's.db'}"
    doc = _no_nan(report.experiment_json(compare.load_studies_comparison(_two_tables(storage), storage), extras=False))
    assert doc["design"]["comparable"] is False and doc["design"]["banner"].startswith("Not comparable: dataset")
    assert doc["pairwise_tests"]["tests"] == [] and doc["pairwise_tests"]["reason"].startswith("not comparable")
    assert doc["friedman_nemenyi"] is None and doc["average_ranks"]["reason"].startswith("Not comparable")
    assert doc["random_search_expected_best"]["curve"] == [] and doc["normalised_scores"]["strategies"] == []
    assert doc["ties"] is None and doc["winners_curse"] is None  # extras=False


def test_json_safe_turns_nan_and_infinities_into_null() -> None:
    import numpy as np

    from hpdash import compare

    data = {"a": float("nan"), "b": np.float64(np.inf), "c": [np.int64(3), -np.inf, 1.5], "d": pd.NA, ("k"): (1, 2)}
    assert compare.json_safe(data) == {"a": None, "b": None, "c": [3, None, 1.5], "d": None, "k": [1, 2]}
    assert (
        json.dumps(compare.json_safe(pd.DataFrame({"x": [1.0, np.nan]})), allow_nan=False)
        == '[{"x": 1.0}, {"x": null}]'
    )
