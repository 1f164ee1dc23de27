"""Browser: the Home page's one-click demo on an empty data directory. It builds the dense grid
study with real fits, replays five strategies with 30 seeds on its records and opens the
guided Compare view, explained, with the animated sample placement."""

from __future__ import annotations

import re

import pytest
from browser_helpers import element_screenshot, no_exception, screenshot, start_server, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-one-click")
    yield server
    server.stop()


def test_the_one_click_demo_builds_replays_and_explains(page, empty_server) -> None:
    page.goto(empty_server.url)
    wait_ready(page, timeout=60)
    page.get_by_role("button", name=re.compile("watch the strategies think", re.I)).click()
    # The demo study scores its 225 grid points with real fits, then the replay opens Compare.
    page.wait_for_url(re.compile(r"/compare\?replay="), timeout=300_000)
    page.get_by_text(re.compile("Replayed on recorded results")).first.wait_for(timeout=300_000)
    wait_ready(page, timeout=120)
    no_exception(page)
    main = page.locator('[data-testid="stMain"]')
    for words in ("are learned from the data", "hyper-hyperparameters", "Convergence: the best score found so far"):
        main.get_by_text(re.compile(re.escape(words))).first.wait_for(timeout=120_000)
    assert main.get_by_text(re.compile("30 seeds x 50 trials")).count() >= 1
    animated = main.locator(".js-plotly-plot").filter(has_text="Sample placement over trials")
    animated.first.wait_for(timeout=120_000)
    wait_ready(page, timeout=120)
    assert main.locator(".js-plotly-plot").count() >= 6 and animated.count() == 1
    no_exception(page)
    screenshot(page, "compare-demo-guided")
    element_screenshot(animated, "compare-demo-placement")
