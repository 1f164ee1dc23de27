"""Browser: the Compare page of a real 3-strategy x 2-seed experiment, and a study that keeps
running after the browser that launched it is closed."""

from __future__ import annotations

import time

import pytest
from browser_helpers import Server, no_exception, screenshot, start_server, wait_ready
from experiment_data import NAME, REPEATS, STRATEGIES, shared_experiment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def experiment_server():
    exp = shared_experiment()
    assert exp.returncode == 0, exp.stderr[-3000:]
    server = Server(exp.data_dir)
    yield server
    server.stop()


def test_compare_page_draws_every_plot(page, experiment_server) -> None:
    """Tests of issue 4: an experiment with 3 strategies x 2 seeds, every plot, no exception."""
    assert len(STRATEGIES) == 3 and REPEATS == 2
    page.goto(f"{experiment_server.url}/compare?experiment={NAME}")
    wait_ready(page, timeout=60)
    page.get_by_text("Verdict").first.wait_for()
    no_exception(page)
    # band vs trials, band vs time, EDF, best box, holdout box, sample placement, importance,
    # and across repeats: average rank over budget, critical-difference diagram, runtime ECDF;
    # and the sample placement animated over trials
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')].filter(d => d.querySelector('.main-svg')).length >= 7 + 3 + 1",
        timeout=60_000,
    )
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == 7 + 3 + 1
    text = page.locator('[data-testid="stMain"]').inner_text()
    for strategy in ("grid", "random", "tpe"):
        assert strategy in text.lower()
    assert "Time to target" in text
    no_exception(page)
    screenshot(page, "compare")


def test_closing_the_browser_does_not_stop_the_study(browser, tmp_path_factory) -> None:
    """Launch from the browser, close it at once: the worker processes finish the budget."""
    from hpdash import runner, views

    server = start_server(tmp_path_factory, "detach")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}/")
        wait_ready(page)
        page.get_by_role("button", name="Tune a random forest on iris (TPE, 10 trials)").click()
        page.wait_for_url("**/study?study=*", timeout=90_000)  # creating + starting a worker, under load
        context.close()  # the user closes the tab right after launching

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HPDASH_DATA_DIR", str(server.data_dir))
            mp.delenv("HPDASH_STORAGE", raising=False)
            (name,) = views.list_study_names()
            study = runner.load_study(name)
            deadline = time.time() + 180
            while runner.study_status(study).state in ("created", "running") and time.time() < deadline:
                time.sleep(1)
            status = runner.study_status(study)
            assert status.state == "finished", status
            assert status.done == status.budget == 10
    finally:
        server.stop()
