"""hpdash.config: the limits read from the environment."""

from __future__ import annotations

import pytest

from hpdash import config
from hpdash.errors import DatasetError, SpecError, StorageError


@pytest.fixture(autouse=True)
def _no_limits_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HPDASH_MAX_WORKERS", "HPDASH_MAX_EXPERIMENT_STUDIES", "HPDASH_MAX_EXPERIMENT_TRIALS"):
        monkeypatch.delenv(name, raising=False)


def test_max_workers_defaults_to_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.max_workers() == config.usable_cpus() >= 1
    monkeypatch.setenv("HPDASH_MAX_WORKERS", "7")
    assert config.max_workers() == 7


@pytest.mark.parametrize(
    ("func", "env", "default"),
    [
        (config.max_experiment_studies, "HPDASH_MAX_EXPERIMENT_STUDIES", 60),
        (config.max_experiment_trials, "HPDASH_MAX_EXPERIMENT_TRIALS", 100_000),
    ],
)
def test_experiment_caps(func, env: str, default: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert func() == default
    monkeypatch.setenv(env, "")
    assert func() == default
    monkeypatch.setenv(env, "12")
    assert func() == 12
    monkeypatch.setenv(env, "0")
    assert func() == 1  # a cap is at least 1, as HPDASH_MAX_WORKERS
    monkeypatch.setenv(env, "lots")
    with pytest.raises(
        SpecError,
        match=rf"{env} must be a whole number, got 'lots'. Set it to a number such as "
        rf"{default}, or unset it",
    ):
        func()


def test_every_setting_is_read_in_config_and_documented_in_readme() -> None:
    """One settings module: no other library module reads the environment, and every
    ``HPDASH_*`` variable the code names is in README's configuration table."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [p for p in (root / "hpdash").rglob("*.py") if p.name != "config.py"]
    readers = [
        str(p.relative_to(root))
        for p in sources
        if re.search(r"os\.environ\.get|os\.getenv|os\.environ\[", p.read_text(encoding="utf-8"))
    ]
    assert readers == [], f"read the environment through hpdash.config: {readers}"
    names = set()
    for p in [*sources, root / "hpdash" / "config.py"]:
        names |= set(re.findall(r"HPDASH_[A-Z0-9_]+", p.read_text(encoding="utf-8")))
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert names and all(f"`{name}`" in readme for name in names), sorted(n for n in names if f"`{n}`" not in readme)


@pytest.mark.parametrize(
    ("func", "env", "error", "unit"),
    [
        (config.max_rows, "HPDASH_MAX_ROWS", DatasetError, ""),
        (config.heartbeat_interval, "HPDASH_HEARTBEAT_INTERVAL", StorageError, " of seconds"),
    ],
)
def test_every_whole_number_setting_is_read_one_way(func, env, error, unit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Table limits and heartbeat settings go through the one reader: blank is the default,
    a non-number and a number below 1 are refused with the setting's kind of error."""
    default = func()
    monkeypatch.setenv(env, "  ")
    assert func() == default
    monkeypatch.setenv(env, " 7 ")
    assert func() == 7
    monkeypatch.setenv(env, "many")
    with pytest.raises(error, match=rf"{env} must be a whole number{unit}, got 'many'\. Set it to a number such as"):
        func()
    monkeypatch.setenv(env, "0")
    with pytest.raises(error, match=rf"{env} must be at least 1.*, got 0: raise it, or unset it for the default"):
        func()


def test_the_dask_scheduler_setting_is_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.DASK_SCHEDULER_ENV, raising=False)
    assert config.dask_scheduler() is None
    monkeypatch.setenv(config.DASK_SCHEDULER_ENV, " tcp://10.0.0.5:8786 ")
    assert config.dask_scheduler() == "tcp://10.0.0.5:8786"
    for wrong in ("10.0.0.5:8786", "tcp://10.0.0.5", "tcp://:8786", "tcp://host:99999"):
        monkeypatch.setenv(config.DASK_SCHEDULER_ENV, wrong)
        with pytest.raises(SpecError, match="HPDASH_DASK_SCHEDULER must be a Dask scheduler address"):
            config.dask_scheduler()
