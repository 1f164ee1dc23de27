"""Sign-in with OIDC (``st.login``) in a real browser against a real local identity provider
(the PyPI package ``oidc-provider-mock``): an editor (in ``HPDASH_EDITORS``) can write, a
viewer signed in the same way cannot use any write or compute control, and the Study page's
audit trail names who did what. The library's refusals for viewers (``ReadOnlyError``) are
tested in tests/test_access.py and tests/test_audit.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_helpers import free_port, no_exception, start_server, wait_ready
from test_read_only import assert_viewer_controls

pytestmark = pytest.mark.e2e

STUDY = "oidc-study"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice"},
    "bob": {"email": "bob@example.com", "email_verified": True, "name": "Bob"},
}


def _setup() -> None:
    from hpdash import runner, storage
    from hpdash.spec import parse_spec

    spec = parse_spec(
        {
            "name": STUDY,
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "logistic_regression",
            "strategy": "random",
            "n_trials": 3,
            "cv": {"folds": 2},
            "seed": 0,
        }
    )
    runner.create_study(spec)
    runner.run_here(spec.name)
    storage.close_all()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the identity provider exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s")


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """``oidc-provider-mock`` on a free port, with alice and bob as its users."""
    port = free_port()
    folder = tmp_path_factory.mktemp("oidc")
    log_path = folder / "provider.log"
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)]
    for sub, claims in USERS.items():
        command += ["--user-claims", json.dumps({"sub": sub, **claims})]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/.well-known/openid-configuration", proc, log_path)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory, provider):
    port = free_port()
    secrets = tmp_path_factory.mktemp("oidc-secrets") / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "a-test-cookie-secret-of-enough-length"\n'
        'client_id = "hpdash"\n'
        'client_secret = "hpdash-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    srv = start_server(
        tmp_path_factory,
        "e2e-oidc",
        _setup,
        extra_env={"HPDASH_EDITORS": "alice@example.com"},
        port=port,
        extra_args=["--secrets.files", str(secrets)],
    )
    yield srv
    srv.stop()


def _sign_in(page, server, provider: str, sub: str) -> None:
    page.goto(server.url)
    wait_ready(page)
    # Nothing but the sign-in button before sign-in: no navigation, no study.
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert STUDY not in page.locator('[data-testid="stMain"]').inner_text()
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(re.escape(provider)), timeout=30_000)
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(re.compile(re.escape(server.url)), timeout=30_000)
    wait_ready(page)
    no_exception(page)
    page.get_by_text(re.compile("^Signed in as")).first.wait_for(timeout=30_000)


def _sidebar_text(page) -> str:
    """The sidebar's text without the invisible word joiners hpdash puts where Markdown would
    turn an e-mail address into a link (hpdash/markup.py)."""
    return page.locator('[data-testid="stSidebar"]').inner_text().replace("\u2060", "")


def _study_page(page, server) -> None:
    page.goto(f"{server.url}/study?study={STUDY}")
    wait_ready(page, timeout=60)
    no_exception(page)


def _activity_text(page) -> str:
    """The audit table's cells as text (Streamlit's dataframe keeps an accessible table of
    the rows in view beside its canvas)."""
    table = page.locator('[data-testid="stDataFrame"]').last
    table.scroll_into_view_if_needed()
    table.locator('[role="gridcell"]').first.wait_for(state="attached", timeout=30_000)
    return " ".join(table.locator('[role="gridcell"]').all_text_contents()).replace("\u2060", "")


def test_an_editor_writes_a_viewer_cannot_and_the_trail_names_them(browser, server, provider) -> None:
    editor = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = editor.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, server, provider, "alice")
    assert "Signed in as alice@example.com (editor)" in _sidebar_text(page)
    _study_page(page, server)
    refit = page.get_by_role("button", name=re.compile("^Refit"))
    assert refit.is_enabled()
    refit.click()
    wait_ready(page, timeout=120)
    no_exception(page)
    _study_page(page, server)
    trail = _activity_text(page)
    assert "alice@example.com" in trail and "refit" in trail, trail
    editor.close()

    viewer = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = viewer.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, server, provider, "bob")
    assert "Signed in as bob@example.com (viewer)" in _sidebar_text(page)
    home = assert_viewer_controls(page, "Home")
    assert [c for c in home if c["kind"] == "button" and c["disabled"]], "the quick starts should be shown, disabled"
    for path in ("datasets", "new_study", "studies"):
        page.goto(f"{server.url}/{path}")
        wait_ready(page, timeout=60)
        no_exception(page)
        assert_viewer_controls(page, path)
    _study_page(page, server)
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Edit notes").first.click()
    wait_ready(page)
    controls = assert_viewer_controls(page, "Study")
    off = {c["label"] for c in controls if c["kind"] == "button" and c["disabled"]}
    assert {"Refit again", "Estimate the selection bias", "Save notes"} <= off, off
    trail = _activity_text(page)
    assert "alice@example.com" in trail and "bob@example.com" not in trail, trail
    viewer.close()
