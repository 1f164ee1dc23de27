"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh hpdash data directory (``HPDASH_DATA_DIR``) with the default embedded storage."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("HPDASH_DATA_DIR", str(path))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    return path


@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    """Streamlit caches live in the process: clear them so app tests never see each other's data."""
    try:
        import streamlit as st
    except ImportError:  # pragma: no cover - streamlit is a runtime dependency
        yield
        return
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def make_odd_studies(storage: str | None = None) -> dict[str, str]:
    """Create the studies the UI must handle (used by tests/test_app.py and tests/e2e).

    Returns state -> study name: ``finished`` (k-NN on iris, 6 trials), ``one_trial``,
    ``zero_trials`` (created, never launched), ``all_failed`` and ``missing_data`` (its
    uploaded dataset file is deleted afterwards). Needs ``HPDASH_DATA_DIR`` set.
    """
    from hpdash import config, datasets, runner
    from hpdash.spec import parse_spec

    base = {
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "k_nearest_neighbors",
        "strategy": "random",
        "cv": {"folds": 3},
        "seed": 0,
    }
    csv = datasets.load_sample("iris").to_csv(index=False).encode()
    stored = datasets.store_dataset(csv, "flowers.csv")
    specs = {
        "finished": {**base, "name": "iris-knn-finished", "n_trials": 6},
        "one_trial": {**base, "name": "iris-tree-one", "model": "decision_tree", "n_trials": 1},
        "zero_trials": {**base, "name": "iris-zero-trials", "n_trials": 5},
        "all_failed": {
            **base,
            "name": "iris-all-failed",
            "model": "logistic_regression",
            "strategy": "grid",
            "n_trials": None,
            "grid_points": 2,
            "space": {
                "solver": {"type": "categorical", "choices": ["lbfgs"]},
                "penalty": {"type": "categorical", "choices": ["l1"]},
                "C": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
            },
        },
        "missing_data": {**base, "name": "flowers-missing-data", "dataset": stored.sha256, "n_trials": 2},
    }
    procs = []
    for key, raw in specs.items():
        spec = parse_spec(raw)
        runner.create_study(spec, storage)
        if key != "zero_trials":
            procs += runner.launch_workers(spec.name, storage, 1)
    runner.wait_for(procs)
    for path in config.datasets_dir().glob(f"{stored.sha256}.*"):
        path.unlink()
    return {key: raw["name"] for key, raw in specs.items()}


@pytest.fixture(scope="session")
def odd_studies_factory():
    """``make_odd_studies`` as a fixture, so app and browser tests share it without imports."""
    return make_odd_studies


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole run (never `playwright install`).

    Session-wide and shared by tests/e2e and the report tests: Playwright's sync API cannot
    start a second instance while one is running in the same process.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


#: The user property that carries the conformance result (``SUMMARY_KEY`` in
#: tests/test_conformance.py).
CONFORMANCE_KEY = "hpdash_conformance"


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the conformance matrix's size and result (tests/test_conformance.py records it
    as a user property of its report, which reaches this controller process also from
    pytest-xdist workers, where the test's own output is not shown)."""
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == CONFORMANCE_KEY:
                    terminalreporter.write_sep("-", "conformance matrix")
                    terminalreporter.write_line(str(value))
