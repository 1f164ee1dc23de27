"""Browser suite fixtures: Debian's headless Chromium (never `playwright install`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import CHROMIUM

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y "
        "chromium) to run the browser suite",
        allow_module_level=True,
    )


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
