"""Browser: demo mode. The Study page's slider played from the first to the last trial of a
Gaussian-process study (the surrogate and its expected improvement on the way), and a TPE
study's good/bad split and densities. (The one-click demo: test_one_click_demo.py.)"""

from __future__ import annotations

import re
import time

import pytest
from browser_helpers import element_screenshot, no_exception, start_server, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GP, TPE = "cancer-svm-gp", "cancer-svm-tpe"
N_TRIALS = 12


def _make_studies() -> None:
    """Real 12-trial GP and TPE studies of an RBF SVM's C and gamma on the breast-cancer sample."""
    from hpdash import runner
    from hpdash.spec import parse_spec

    procs = []
    for name, strategy in ((GP, "gp"), (TPE, "tpe")):
        spec = parse_spec(
            {
                "name": name,
                "dataset": "sklearn:breast_cancer",
                "target": "target",
                "model": "svm",
                "strategy": strategy,
                "n_trials": N_TRIALS,
                "space": {
                    "C": {"type": "float", "low": 1e-2, "high": 1e3, "log": True},
                    "gamma": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                },
                "cv": {"folds": 3},
                "seed": 0,
            }
        )
        runner.create_study(spec)
        procs += runner.launch_workers(spec.name, None, 1)
    assert runner.wait_for(procs) == [0] * len(procs)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-demo", _make_studies)
    yield server
    server.stop()


def _open_step_through(page, url: str):
    page.goto(url)
    wait_ready(page, timeout=60)
    no_exception(page)
    page.locator('[role="tab"]:visible').filter(has_text=re.compile("^Step through$")).first.click()
    panel = page.locator('[role="tabpanel"]:visible')
    panel.get_by_text("Step through this study").click()
    wait_ready(page, timeout=60)
    no_exception(page)
    return panel


def _slider_value(panel) -> int:
    return int(panel.locator('[data-testid="stSlider"] input[type="range"]').first.get_attribute("value"))


def test_playing_a_gp_study_from_the_first_to_the_last_trial(page, demo_server) -> None:
    panel = _open_step_through(page, f"{demo_server.url}/study?study={GP}")
    assert _slider_value(panel) == N_TRIALS - 1  # opens after the last trial
    panel.get_by_role("button", name="Play").click()
    page.get_by_role("button", name="Pause").wait_for()
    seen: list[int] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        value = _slider_value(page.locator('[role="tabpanel"]:visible'))
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == N_TRIALS - 1 and len(seen) > 1:
            break
        time.sleep(0.2)
    no_exception(page)
    assert seen[0] == 0 and seen[-1] == N_TRIALS - 1, seen
    assert seen == sorted(seen) and len(seen) >= N_TRIALS // 2, seen  # it walked up through the trials
    wait_ready(page, timeout=60)
    panel = page.locator('[role="tabpanel"]:visible')
    panel.get_by_role("button", name="Play").wait_for(timeout=60_000)  # stopped by itself at the end
    assert panel.get_by_text(re.compile("Inside the Gaussian process")).count() >= 1
    for title in ("posterior mean", "expected improvement"):
        assert panel.locator(".js-plotly-plot").filter(has_text=title).count() >= 1, title
    no_exception(page)
    element_screenshot(
        panel.locator(".js-plotly-plot").filter(has_text="expected improvement").first, "study-step-through-gp"
    )


def test_inside_tpe_shows_its_split_and_densities(page, demo_server) -> None:
    panel = _open_step_through(page, f"{demo_server.url}/study?study={TPE}")
    assert panel.get_by_text(re.compile("Inside TPE")).count() >= 1
    assert panel.locator(".js-plotly-plot").filter(has_text="gamma threshold").count() == 1
    assert panel.locator(".js-plotly-plot").filter(has_text="l(x)").count() >= 1
    assert panel.get_by_text(re.compile("reconstruction of TPE")).count() >= 1
    no_exception(page)
    element_screenshot(panel.locator(".js-plotly-plot").filter(has_text="l(x)").first, "study-step-through-tpe")
