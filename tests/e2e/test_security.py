"""Security and access in a real browser: no user string rendered as HTML, and the optional
password (issue 5, "Security and access"). Review-only mode has its own tour,
tests/e2e/test_read_only.py.

Each test starts its own `streamlit run app.py` (with extra environment where needed) over a
temporary HPDASH_DATA_DIR filled through the library before the server starts.
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import no_exception, start_server, wait_ready

pytestmark = pytest.mark.e2e

IMG = "<img src=x onerror=window.__xss=1>"
SCRIPT = "<script>window.__xss=1</script>"
TARGET = "<b>label</b><img src=x onerror=window.__xss=2>"
NOTE = f"{IMG}\n\n{SCRIPT}\n\nplain words after the payload"
XSS_STUDIES = ("xss-study", "xss-study-b")
PASSWORD = "correct horse battery staple"
SECRET_STUDY = "secret-budget-forecast"

#: Injected markup that ran or was parsed as HTML: the flag, an <img src=x>, a script with it.
_XSS_PROBE = """() => ({
    flag: typeof window.__xss,
    imgs: document.querySelectorAll('img[src="x"]').length,
    scripts: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
})"""


def _run_studies(specs: list[dict]) -> None:
    """Create and run ``specs`` to completion (one worker each, all at once)."""
    from hpdash import runner
    from hpdash.spec import parse_spec

    procs = []
    for raw in specs:
        spec = parse_spec(raw)
        runner.create_study(spec)
        procs += runner.launch_workers(spec.name, None, 1)
    runner.wait_for(procs)


def _base(name: str, dataset: str, target: str = "target", **extra) -> dict:
    return {
        "name": name,
        "dataset": dataset,
        "target": target,
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "cv": {"folds": 3},
        "seed": 0,
        "n_trials": 4,
        **extra,
    }


def _xss_setup() -> None:
    """A dataset named, and with columns and a constant value, like an HTML payload; two finished
    studies on it (so Compare has something to compare); a note full of markup."""
    from hpdash import datasets
    from hpdash.store import Catalogue

    frame = datasets.load_sample("iris").rename(columns={"target": TARGET})
    frame.insert(len(frame.columns) - 1, IMG, IMG)  # constant: dropped, value shown in the reason
    stored = datasets.store_dataset(frame.to_csv(index=False).encode(), f"{IMG}.csv")
    _run_studies(
        [_base(XSS_STUDIES[0], stored.sha256, TARGET), _base(XSS_STUDIES[1], stored.sha256, TARGET, strategy="tpe")]
    )
    Catalogue().set_note(XSS_STUDIES[0], NOTE)


def _password_setup() -> None:
    from hpdash import runner
    from hpdash.spec import parse_spec

    runner.create_study(parse_spec(_base(SECRET_STUDY, "sklearn:iris")))


@pytest.fixture(scope="module")
def xss_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-xss", _xss_setup)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "e2e-password", _password_setup, extra_env={"HPDASH_PASSWORD": PASSWORD})
    yield server
    server.stop()


# ------------------------------------------------------------------------------ helpers
def assert_no_xss(page, where: str) -> None:
    """Nothing injected ran or became DOM (an <img src=x> fires onerror asynchronously: wait)."""
    page.wait_for_timeout(200)
    probe = page.evaluate(_XSS_PROBE)
    assert probe == {"flag": "undefined", "imgs": 0, "scripts": 0}, f"{where}: {probe}"


def _check(page, where: str) -> None:
    wait_ready(page)
    no_exception(page)
    assert_no_xss(page, where)


def _open(page, url: str) -> None:
    page.goto(url)
    wait_ready(page)
    no_exception(page)


def _tab(page, name: str):
    return page.locator('[role="tab"]:visible').filter(has_text=re.compile(f"^{name}$")).first


def _pick(page, label: str, option_text: str) -> None:
    """Choose the option of a selectbox/multiselect whose text contains ``option_text``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option").filter(has_text=option_text).first.click()
    wait_ready(page)


def _main_text(page) -> str:
    """All text of the page, also in hidden tabs and collapsed expanders."""
    return page.evaluate("document.body.textContent")


# ------------------------------------------------------------------------------ probe self-test
def test_xss_probe_catches_rendered_markup(page) -> None:
    """The probe is not vacuous: the same payload rendered as HTML is caught."""
    page.set_content(f"<main><h1>t</h1><p>{IMG}</p></main>")
    with pytest.raises(AssertionError, match="flag"):
        assert_no_xss(page, "raw html")
    page.evaluate("delete window.__xss")
    page.set_content(f"<main><p>{SCRIPT}</p></main>")
    with pytest.raises(AssertionError):
        assert_no_xss(page, "raw script")
    page.evaluate("delete window.__xss")
    page.set_content("<main><p>&lt;img src=x onerror=window.__xss=1&gt;</p></main>")
    assert_no_xss(page, "escaped text")


# ------------------------------------------------------------------------------ 1. XSS
def test_user_strings_are_never_rendered_as_html(page, xss_server) -> None:
    url = xss_server.url
    for path in ("", "studies", "study", "compare"):
        _open(page, f"{url}/{path}")
        assert_no_xss(page, path or "home")

    # Study page: the note is shown as text, escaped, with the dataset and target names
    _open(page, f"{url}/study?study={XSS_STUDIES[0]}")
    page.get_by_text("plain words after the payload").first.wait_for()
    _check(page, "study")
    body = _main_text(page)
    assert "onerror=window.__xss=1" in body, "the note/dataset payload should be shown as text"
    assert "onerror=window.__xss=2" in body, "the target payload should be shown as text"
    page.get_by_text("Edit notes (Markdown)").click()
    _check(page, "study, notes editor open")
    _tab(page, "Trials").click()
    _check(page, "study, trials tab")

    # Datasets: pick the payload-named upload, go through every tab
    _open(page, f"{url}/datasets")
    assert_no_xss(page, "datasets")
    _pick(page, "Dataset", "onerror")
    _check(page, "datasets, payload dataset")
    page.get_by_text("Not used as features").first.wait_for(state="attached")
    for tab in ("Columns and roles", "Target distribution", "Preview"):
        _tab(page, tab).click()
        _check(page, f"datasets, {tab}")
    assert "onerror=window.__xss=1" in _main_text(page), "the dropped column should be listed"
    picked = page.get_by_role("combobox", name="Dataset", exact=True).input_value()
    assert "onerror=window.__xss=1" in picked, picked

    # New study, prefilled with that dataset from the Datasets page
    page.get_by_role("button", name="New study with this dataset").click()
    page.get_by_text("1 · Data").wait_for()
    _check(page, "new study with the payload dataset")
    picked = page.get_by_role("combobox", name="Dataset", exact=True).input_value()
    assert "onerror=window.__xss=1" in picked, "the payload dataset should be selected"
    target = page.get_by_role("combobox", name="Target column", exact=True).input_value()
    assert target == TARGET, target

    # Compare: the two studies on that dataset side by side
    _open(page, f"{url}/compare")
    for name in XSS_STUDIES:
        page.get_by_role("combobox", name="Studies", exact=True).click()
        page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        wait_ready(page)
    page.get_by_text("Verdict").first.wait_for()
    _check(page, "compare, hand-picked")


# ------------------------------------------------------------------------------ 2. password
def _sign_in_form_only(page) -> None:
    page.get_by_label("Password", exact=True).wait_for()
    wait_ready(page)
    no_exception(page)
    body = _main_text(page)
    assert "password-protected" in body
    for leak in (SECRET_STUDY, "Quick start", "Storage in use", "Studies", "Datasets"):
        assert leak not in body, f"{leak!r} is visible before signing in"
    # No app sidebar (storage, data directory) and no navigation at all: not even Streamlit's
    # legacy pages/ file list, which the first sessions of a fresh server once showed.
    sidebar = page.locator('[data-testid="stSidebarUserContent"]')
    assert sidebar.count() == 0 or not sidebar.inner_text().strip(), sidebar.inner_text()
    assert page.get_by_role("link", name="New study", exact=True).count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0


def _sign_in(page, password: str) -> None:
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    wait_ready(page)


def test_password_guards_every_page(page, browser, password_server) -> None:
    url = password_server.url
    page.goto(f"{url}/")
    _sign_in_form_only(page)

    _sign_in(page, "wrong-" + PASSWORD)
    page.get_by_text("Wrong password").first.wait_for()
    _sign_in_form_only(page)

    _sign_in(page, PASSWORD)
    page.get_by_text("Quick start").first.wait_for()
    no_exception(page)
    assert page.get_by_label("Password", exact=True).count() == 0
    # Home lists recent studies once its rerun after sign-in has finished (seen under load:
    # "Quick start" already drawn while the list was not yet).
    page.get_by_text(SECRET_STUDY).first.wait_for()
    assert SECRET_STUDY in _main_text(page)

    # a shared study link in a fresh browser context asks first, and so does every other page
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        other = fresh.new_page()
        other.set_default_timeout(30_000)
        other.goto(f"{url}/study?study={SECRET_STUDY}")
        _sign_in_form_only(other)
        for path in ("datasets", "studies", "compare", "new_study"):
            other.goto(f"{url}/{path}")
            _sign_in_form_only(other)
    finally:
        fresh.close()


def test_study_link_opens_that_study_after_sign_in(browser, password_server) -> None:
    url = password_server.url
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        first = contexts[0].new_page()  # the link also works for a server's first session
        first.goto(f"{url}/")
        first.get_by_label("Password", exact=True).wait_for()
        other = contexts[1].new_page()
        other.set_default_timeout(30_000)
        other.goto(f"{url}/study?study={SECRET_STUDY}")
        _sign_in_form_only(other)
        _sign_in(other, PASSWORD)
        other.get_by_label("Password", exact=True).wait_for(state="detached")
        wait_ready(other)
        no_exception(other)
        heading = other.locator('[data-testid="stMain"] h1').first.inner_text()
        assert heading == SECRET_STUDY, f"signed in on {other.url} but the page is {heading!r}"
    finally:
        for context in contexts:
            context.close()
