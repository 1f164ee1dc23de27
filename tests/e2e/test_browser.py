"""Real-browser suite: Playwright driving Debian's Chromium against `streamlit run app.py`."""

from __future__ import annotations

import re
import time

import pytest
from browser_helpers import (
    element_screenshot,
    no_exception,
    screenshot,
    start_server,
    table_headers,
    wait_ready,
)

from hpdash import datasets, export_model

pytestmark = pytest.mark.e2e

PAGES = ["", "datasets", "new_study", "studies", "study"]


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-empty")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory, odd_studies_factory):
    names: dict[str, str] = {}

    def setup() -> None:
        names.update(odd_studies_factory())

    server = start_server(tmp_path_factory, "e2e-odd", setup)
    server.names = names
    yield server
    server.stop()


def _open(page, url: str) -> None:
    page.goto(url)
    wait_ready(page)
    no_exception(page)


def test_empty_states_have_no_exception(page, empty_server) -> None:
    for name in PAGES:
        _open(page, f"{empty_server.url}/{name}")
        screenshot(page, f"empty-{name or 'home'}")
    _open(page, f"{empty_server.url}/study?study=deleted-long-ago")
    assert page.get_by_text("There is no study named").count() == 1
    screenshot(page, "deleted-study-link")


def test_odd_states_have_no_exception(page, odd_server) -> None:
    for name in PAGES:
        _open(page, f"{odd_server.url}/{name}")
    screenshot(page, "studies-picker")
    _open(page, f"{odd_server.url}/studies")
    screenshot(page, "studies")
    for state, study in odd_server.names.items():
        _open(page, f"{odd_server.url}/study?study={study}")
        screenshot(page, f"study-{state.replace('_', '-')}")
    _open(page, f"{odd_server.url}/datasets")
    screenshot(page, "datasets-in-use")


def _tab(page, name: str):
    return page.locator('[role="tab"]:visible').filter(has_text=re.compile(f"^{name}$")).first


def _progress_done(page) -> int | None:
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    match = re.search(r"(\d+) / (\d+) trials", text)
    return int(match.group(1)) if match else None


#: Enough trials that the study outlasts several of the header's 1.5 s polls on a fast machine
#: (10 random-forest trials of 3 folds once finished between two polls: the page saw 0, then 10).
N_TRIALS = 30


def test_upload_launch_watch_and_review(page, browser, empty_server, tmp_path) -> None:
    # 1. upload a CSV
    csv = tmp_path / "penguin-like.csv"
    frame = datasets.load_sample("wine")
    frame.insert(0, "sample_id", range(len(frame)))
    frame.to_csv(csv, index=False)
    _open(page, f"{empty_server.url}/datasets")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv))
    page.get_by_text("Stored").first.wait_for()
    wait_ready(page)
    no_exception(page)
    _tab(page, "Columns and roles").click()
    page.get_by_text("sample_id").first.wait_for()
    screenshot(page, "datasets-upload")
    # the roles table: name, role and examples first, "why dropped" last (sample_id is ID-like)
    roles = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first
    headers = table_headers(roles)
    assert headers[:3] == ["name", "role", "examples"], headers
    element_screenshot(roles, "datasets-roles")

    # 2. configure: random forest, N_TRIALS trials, 3 folds
    page.get_by_role("button", name="New study with this dataset").click()
    page.get_by_text("1 · Data").wait_for()
    wait_ready(page)
    no_exception(page)
    page.get_by_role("button", name="Remove Logistic regression").click()
    wait_ready(page)
    page.get_by_role("combobox", name="Model(s)").click()
    page.keyboard.type("Random forest")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    wait_ready(page)
    for label, value in (("Trials (0 = no trial limit)", str(N_TRIALS)), ("CV folds", "3")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Enter")
        wait_ready(page)
    page.get_by_role("textbox", name="Study name").fill("browser-rf")
    page.get_by_role("textbox", name="Study name").press("Enter")
    wait_ready(page)
    no_exception(page)
    page.get_by_text("Estimated run time").first.wait_for()
    screenshot(page, "new-study")

    # 3. launch: the study page opens with ?study= and the progress moves by itself
    page.get_by_role("button", name="Launch study").click()
    page.wait_for_url(re.compile(r".*/study\?study=browser-rf"), timeout=60_000)
    page.locator('[data-testid="stProgress"]').first.wait_for()
    seen: set[int] = set()
    deadline = time.time() + 120
    shot = False
    while time.time() < deadline:
        try:
            done = _progress_done(page)
        except Exception:  # the element is being replaced by a fragment rerun
            done = None
        if done is not None:
            seen.add(done)
            if 0 < done < N_TRIALS and not shot:
                screenshot(page, "study-running")
                shot = True
        if page.get_by_text("finished", exact=True).count() and N_TRIALS in seen:
            break
        time.sleep(0.3)
    assert N_TRIALS in seen, seen
    assert len(seen) >= 3, f"the progress should move while the page is open, saw {sorted(seen)}"
    wait_ready(page)
    no_exception(page)

    # 4. the finished plots are rendered
    page.get_by_text("Holdout").first.wait_for(timeout=60_000)
    wait_ready(page)
    for tab in ("Convergence", "Parallel coordinates", "Importance"):
        _tab(page, tab).click()
        panel = page.locator('[role="tabpanel"]:visible')
        panel.locator(".js-plotly-plot").first.wait_for(state="visible")
        screenshot(page, f"study-{tab.lower().replace(' ', '-')}")
    for tab in ("Slice", "Contour", "Timeline"):
        _tab(page, tab).click()
        page.locator('[role="tabpanel"]:visible .js-plotly-plot').first.wait_for(state="visible")
    no_exception(page)

    # 5. download the trials CSV
    _tab(page, "Trials").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download trials (CSV)").click()
    content = open(info.value.path(), encoding="utf-8").read()
    assert content.startswith("number,state,value")
    assert content.count("\nCOMPLETE") + content.count(",COMPLETE,") >= 1
    assert len(content.strip().splitlines()) == N_TRIALS + 1
    screenshot(page, "study-trials")

    # 5b. the .skops model is made on its first download (export_model.ensure_skops) and is a
    # model that loads with trusted types only and predicts
    with page.expect_download(timeout=120_000) as info:
        page.get_by_role("button", name="Download the model (skops)").click()
    model = export_model.load_skops(info.value.path())
    predictions = model.predict(frame.drop(columns=["target"]).head(5))
    assert len(predictions) == 5
    wait_ready(page)
    no_exception(page)

    # 6. the shared link opens the same study in a fresh browser context
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    other = fresh.new_page()
    other.goto(f"{empty_server.url}/study?study=browser-rf")
    wait_ready(other)
    no_exception(other)
    other.get_by_role("heading", name="browser-rf").first.wait_for()
    other.locator(".js-plotly-plot").first.wait_for(state="visible")
    screenshot(other, "study-shared-link")
    fresh.close()


def test_home_shows_storage_and_recent_studies(page, empty_server) -> None:
    _open(page, f"{empty_server.url}/")
    assert page.get_by_text("Storage in use").count() >= 1
    screenshot(page, "home")
