"""hpdash.config: the limits read from the environment."""

from __future__ import annotations

import pytest

from hpdash import config
from hpdash.errors import SpecError


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
