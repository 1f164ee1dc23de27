"""The audit trail (hpdash/audit.py): every write recorded with who and when, in the storage
database, on SQLite and PostgreSQL; readers create nothing; viewers' refusals write nothing."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from pg_helpers import pg_url  # noqa: F401

from hpdash import access, audit, runner
from hpdash.errors import ReadOnlyError
from hpdash.spec import parse_spec
from hpdash.store import Catalogue


def _spec(name: str):
    return parse_spec(
        {
            "name": name,
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "logistic_regression",
            "strategy": "random",
            "n_trials": 2,
            "cv": {"folds": 2},
            "seed": 0,
        }
    )


@pytest.fixture
def as_user(monkeypatch):
    """Make the calls of this test come from a given actor (as the web app's sessions do)."""
    current: dict[str, access.Actor | None] = {"actor": None}
    monkeypatch.setitem(access._actor_provider, "current", lambda: current["actor"])

    def become(name: str, role: access.Role = "editor") -> None:
        current["actor"] = access.Actor(name, role, "oidc")

    return become


def _has_table(url: str) -> bool:
    return sa.inspect(sa.create_engine(url)).has_table(audit.TABLE)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_records_read_back_newest_first_with_who_and_when(backend, data_dir, request) -> None:
    url = f"sqlite:///{data_dir / 'hpdash.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    audit._made.discard(url)
    # A reader on a database without the table creates nothing and finds nothing.
    assert audit.events(url=url).empty
    assert not _has_table(url)
    audit.record("stop", study="s1", url=url)
    audit.record("write note", study="s2", detail="x" * 1000, url=url)
    audit.record("resume", study="s1", url=url)
    rows = audit.events("s1", url=url)
    assert list(rows["action"]) == ["resume", "stop"]
    assert set(rows["via"]) == {"local"} and set(rows["role"]) == {"editor"}
    assert rows["actor"].iloc[0] == access.local_actor().name
    assert rows["at"].iloc[0] >= rows["at"].iloc[1]
    (note,) = audit.events("s2", url=url).itertuples()
    assert len(note.detail) == audit.MAX_DETAIL
    assert len(audit.events(url=url)) == 3
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("launch the missiles", url=url)


def test_every_write_of_a_study_is_recorded_with_the_signed_in_user(data_dir, as_user) -> None:
    as_user("alice@example.com")
    spec = _spec("audited")
    runner.create_study(spec)
    runner.run_here(spec.name)
    runner.stop_study(spec.name)
    runner.resume_study(spec.name, workers=1)
    runner.refit(spec.name)
    rows = audit.events(spec.name)
    assert list(rows["action"])[::-1] == ["create study", "launch workers", "stop", "resume", "launch workers", "refit"]
    assert set(rows["actor"]) == {"alice@example.com"}
    with Catalogue() as catalogue:
        catalogue.set_note(spec.name, "Looks good.")
        catalogue.set_trial_note(spec.name, 0, "The first one.")
    notes = audit.events(spec.name).head(2)
    assert list(notes["action"]) == ["write note"] * 2
    assert list(notes["detail"]) == ["trial 0: The first one.", "Looks good."]
    runner.delete_study(spec.name)
    # Deleting a study keeps its trail, and records the deletion itself.
    assert audit.events(spec.name)["action"].iloc[0] == "delete study"


def test_a_viewer_is_refused_every_write_and_the_database_stays_as_it_was(data_dir, as_user) -> None:
    as_user("alice@example.com")
    spec = _spec("viewed")
    runner.create_study(spec)
    runner.run_here(spec.name)
    db = data_dir / "hpdash.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    as_user("bob@example.com", "viewer")
    for action in (
        lambda: runner.create_study(_spec("by-a-viewer")),
        lambda: runner.launch_workers(spec.name),
        lambda: runner.stop_study(spec.name),
        lambda: runner.resume_study(spec.name),
        lambda: runner.refit(spec.name),
        lambda: runner.delete_study(spec.name),
    ):
        with pytest.raises(ReadOnlyError, match="bob@example.com, a viewer"):
            action()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert "bob@example.com" not in set(audit.events()["actor"])


def test_a_process_visiting_many_databases_keeps_few_open(tmp_path) -> None:
    """The trail's engines are kept for the last ``MAX_ENGINES`` databases only: recording into
    twenty SQLite files leaves this process's open file count where it was, give or take those."""
    import gc
    import os

    def open_files() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    urls = [f"sqlite:///{tmp_path / f'db{i}' / 'hpdash.db'}" for i in range(20)]
    audit.record("create study", study="warm-up", url=urls[0])
    before = open_files()
    for url in urls:
        audit.record("create study", study="s", url=url)
        assert len(audit.events("s", url=url)) == 1
    assert len(audit._engines) <= audit.MAX_ENGINES
    assert open_files() - before <= 4 * audit.MAX_ENGINES, "the engines of the databases left behind are still open"
