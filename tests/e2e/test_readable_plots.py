"""Browser: what a new user reads at 1400 px. A 10-hyperparameter study's parallel
coordinates (no title, tick label or range number runs into another or out of the figure),
an algorithm-selection study (one model's lines, the model column, the best trial's model),
the Studies and Datasets tables and the New study form under grid search. (The roles table
with a dropped column is pictured by test_browser.py's upload.)"""

from __future__ import annotations

import re

import pytest
from browser_helpers import (
    PARCOORDS_TEXT_JS,
    convex_overlap,
    element_screenshot,
    no_exception,
    screenshot,
    start_server,
    table_headers,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEN = "wine-rf-10"
SELECT = "wine-select"
#: A random forest's ten hyperparameters: names of every length, logs, categories, booleans.
TEN_SPACE = {
    "criterion": {"type": "categorical", "choices": ["gini", "entropy", "log_loss"]},
    "max_depth": {"type": "int", "low": 2, "high": 16},
    "max_features": {"type": "float", "low": 0.1, "high": 1.0},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},
    "n_estimators": {"type": "int", "low": 5, "high": 40, "log": True},
    "min_samples_split": {"type": "int", "low": 2, "high": 20},
    "bootstrap": {"type": "categorical", "choices": [True, False]},
    "max_leaf_nodes": {"type": "int", "low": 8, "high": 128, "log": True},
    "min_impurity_decrease": {"type": "float", "low": 0.0, "high": 0.05},
    "ccp_alpha": {"type": "float", "low": 1e-6, "high": 0.01, "log": True},
}


def _make_studies() -> None:
    """Real fits on the wine sample: 16 random trials of the 10-hyperparameter forest, and the
    30-point grid of an algorithm selection between k-NN (12 points) and a decision tree (18)."""
    from hpdash import runner
    from hpdash.spec import parse_spec

    base = {"dataset": "sklearn:wine", "target": "target", "strategy": "random", "cv": {"folds": 3}, "seed": 0}
    procs = []
    for raw in (
        {**base, "name": TEN, "model": "random_forest", "space": TEN_SPACE, "n_trials": 16},
        {
            **base,
            "name": SELECT,
            "model": ["k_nearest_neighbors", "decision_tree"],
            "strategy": "grid",
            "grid_points": 3,
            "n_trials": None,
        },
    ):
        spec = parse_spec(raw)
        runner.create_study(spec)
        procs += runner.launch_workers(spec.name, None, 1)
    runner.wait_for(procs)


@pytest.fixture(scope="module")
def plots_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-plots", _make_studies)
    yield server
    server.stop()


def _tab(page, name: str):
    return page.locator('[role="tab"]:visible').filter(has_text=re.compile(f"^{name}$")).first


def _open_tab(page, url: str, tab: str):
    page.goto(url)
    wait_ready(page, timeout=60)
    no_exception(page)
    _tab(page, tab).click()
    panel = page.locator('[role="tabpanel"]:visible')
    return panel


def _parcoords_texts(page) -> dict:
    plot = page.locator('[role="tabpanel"]:visible .js-plotly-plot').first
    plot.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelectorAll('[role=\"tabpanel\"] .axis-title').length > 0", timeout=30_000
    )
    page.wait_for_timeout(500)  # Plotly lays out the axes after the first frame
    return plot.evaluate(PARCOORDS_TEXT_JS)


def _check_layout(texts: dict) -> None:
    left, top, right, bottom = texts["figure"]
    items = [(kind, t["text"], t["corners"]) for kind in ("titles", "ticks", "ranges") for t in texts[kind]]
    for kind, text, corners in items:
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        assert min(xs) >= left - 0.5 and max(xs) <= right + 0.5, f"{kind} {text!r} leaves the figure: {xs}"
        assert min(ys) >= top - 0.5 and max(ys) <= bottom + 0.5, f"{kind} {text!r} leaves the figure: {ys}"
    clashes = [(a[1], b[1]) for i, a in enumerate(items) for b in items[i + 1 :] if convex_overlap(a[2], b[2])]
    assert not clashes, clashes[:10]


def test_ten_hyperparameters_parallel_coordinates_are_readable(page, plots_server) -> None:
    _open_tab(page, f"{plots_server.url}/study?study={TEN}", "Parallel coordinates")
    texts = _parcoords_texts(page)
    titles = [t["text"] for t in texts["titles"]]
    assert len(titles) == 11, titles  # ten hyperparameters and the score, full names
    assert "min_impurity_decrease" in titles and "ccp_alpha (log)" in titles
    _check_layout(texts)
    # the first axis (bootstrap: True/False) keeps its tick labels inside the figure
    assert {"True", "False"} <= {t["text"] for t in texts["ticks"]}
    height = page.locator('[role="tabpanel"]:visible .js-plotly-plot').first.bounding_box()["height"]
    assert height >= 500, height
    no_exception(page)
    element_screenshot(page.locator('[role="tabpanel"]:visible .js-plotly-plot').first, "study-parallel-coordinates-10")


def test_algorithm_selection_study_is_readable(page, plots_server) -> None:
    url = f"{plots_server.url}/study?study={SELECT}"
    panel = _open_tab(page, url, "Parallel coordinates")
    texts = _parcoords_texts(page)
    titles = [t["text"] for t in texts["titles"]]
    assert "model" not in titles and not any("__" in t for t in titles), titles  # one model's axes
    assert all(t["text"] != "(none)" for t in texts["ticks"])
    _check_layout(texts)
    element_screenshot(panel, "study-parallel-one-model")
    panel.get_by_text("all models").click()
    wait_ready(page)
    texts = _parcoords_texts(page)
    assert texts["titles"][0]["text"] == "model"  # the model axis first
    _check_layout(texts)

    # the contour opens on two numeric hyperparameters of one model
    _tab(page, "Contour").click()
    contour = page.locator('[role="tabpanel"]:visible')
    contour.locator(".js-plotly-plot").first.wait_for(state="visible")
    title = contour.locator(".gtitle").first.text_content()
    match = re.match(r"Score over (\S+) and (\S+)", title)
    assert match and "model" not in match.groups(), title
    assert match.group(1).split("__")[0] == match.group(2).split("__")[0], title
    element_screenshot(contour, "study-contour")

    # trials: the model column is on screen, left of the hyperparameters
    _tab(page, "Trials").click()
    table = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first
    table.wait_for(state="visible")
    header = table_headers(table)
    assert header[:4] == ["trial", "state", "accuracy", "model"], header
    assert header.index("model") < min(i for i, h in enumerate(header) if "__" in h), header
    element_screenshot(table, "study-trials-table")

    # the best trial: its model named in full above a table of rounded values
    best = page.locator('[data-testid="stVerticalBlock"]').filter(has=page.get_by_text("Model:", exact=False)).last
    page.get_by_text("Model:").first.wait_for()
    assert re.search(r"Model: .*\((k_nearest_neighbors|decision_tree)\)", page.get_by_text("Model:").first.inner_text())
    element_screenshot(
        page.locator('[data-testid="stHorizontalBlock"]').filter(has=page.get_by_text("Model:")).first,
        "study-best-trial",
    )
    assert best is not None
    no_exception(page)


def test_studies_list_shows_score_and_metric(page, plots_server) -> None:
    page.goto(f"{plots_server.url}/studies")
    wait_ready(page)
    no_exception(page)
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for(state="visible")
    box = table.bounding_box()
    # the best score and the metric come right after the study, its state and progress
    header = table_headers(table)
    assert header[:5] == ["study", "state", "done / budget", "best CV score", "metric"], header
    assert box["x"] + box["width"] <= 1400
    element_screenshot(table, "studies-table")


def test_datasets_roles_and_grid_form(page, plots_server) -> None:
    page.goto(f"{plots_server.url}/datasets")
    wait_ready(page)
    _tab(page, "Columns and roles").click()
    table = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first
    table.wait_for(state="visible")
    header = table_headers(table)
    assert header[:3] == ["name", "role", "examples"], header
    assert "why dropped" not in header  # iris (the first sample) drops no column: no empty column
    no_exception(page)

    page.goto(f"{plots_server.url}/new_study")
    wait_ready(page)
    page.get_by_role("combobox", name="Strategy").click()
    page.keyboard.type("Grid search")
    page.keyboard.press("Enter")
    wait_ready(page, timeout=60)
    no_exception(page)
    # the strategy's rerun sets Trials to 0 and says so (waited for: a busy server is slow)
    page.get_by_text("Grid search runs the whole grid").first.wait_for(timeout=60_000)
    assert page.get_by_label("Trials (0 = the whole grid)").input_value() == "0"
    screenshot(page, "new-study-grid")
