"""Optuna storage: WAL, busy timeout and the budget guard."""

import sqlite3
import time
from datetime import datetime, timedelta

import optuna
import pytest
import sqlalchemy
from pg_helpers import pg_url  # noqa: F401  (fixture)

from hpdash.storage import BudgetExhausted, open_storage, redact, snapshot, unwrap_rdb


def test_sqlite_file_is_wal(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="a")
    with sqlite3.connect(tmp_path / "o.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_budget_guard_pops_slots_then_stops(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="b")
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING))
    guarded = optuna.load_study(study_name="b", storage=open_storage(url, budgeted=True, heartbeat=False))
    with pytest.raises(BudgetExhausted):
        guarded.optimize(lambda t: t.suggest_float("x", 0, 1))
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3


def test_unguarded_storage_creates_trials(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="c")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2


def test_redact_hides_password() -> None:
    assert redact("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"
    assert redact("sqlite:///data/hpdash.db") == "sqlite:///data/hpdash.db"


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_claim_of_a_waiting_trial_is_atomic(tmp_path, monkeypatch, tz) -> None:
    """Two storages racing for one WAITING trial: exactly one claim succeeds.

    Run under several time zones: the start time must read back as local "now", as it does
    for trials Optuna starts itself.
    """
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    from hpdash.storage import WorkerRDBStorage

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="d")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING))
    trial_id = study.get_trials()[0]._trial_id
    a, b = WorkerRDBStorage(url), WorkerRDBStorage(url)
    running = optuna.trial.TrialState.RUNNING
    assert a.set_trial_state_values(trial_id, running) is True
    assert b.set_trial_state_values(trial_id, running) is False
    frozen = study.get_trials()[0]
    assert frozen.state == running and frozen.datetime_start is not None
    assert abs((frozen.datetime_start - datetime.now()).total_seconds()) < 60


@pytest.fixture(autouse=True)
def _restore_tz():
    yield
    time.tzset()


def test_sqlite_connections_commit_without_waiting_for_fsync(tmp_path) -> None:
    """synchronous=NORMAL (1) on every pooled connection, including the first ones."""
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat=False)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.parametrize("hpdash_storage", [True, False])
def test_trial_user_attrs_written_together_read_back_through_optuna(tmp_path, hpdash_storage) -> None:
    """One transaction on hpdash's storage, one call per key elsewhere: same result."""
    from hpdash.storage import set_trial_user_attrs

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = open_storage(url, heartbeat=False) if hpdash_storage else optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="attrs")
    attrs = {"fold_scores": [0.5, 0.75], "cv_mean": 0.625, "note": "x"}

    def objective(trial: optuna.Trial) -> float:
        set_trial_user_attrs(trial, attrs, intermediate_values={0: 0.5, 1: 0.75})
        assert trial.user_attrs == attrs  # Optuna's in-trial copy stays in step
        return 0.625

    study.optimize(objective, n_trials=1)
    again = optuna.load_study(study_name="attrs", storage=url).trials[0]
    assert again.user_attrs == attrs
    assert again.intermediate_values == {0: 0.5, 1: 0.75}


def _frozen(trials: list) -> list[tuple]:
    return [
        (t._trial_id, t.number, t.state, t.params, t.user_attrs, t.system_attrs, t.intermediate_values, t.values)
        for t in trials
    ]


def test_trial_reads_equal_optunas_while_slots_are_claimed_and_finished(tmp_path) -> None:
    """WorkerRDBStorage serves still-WAITING trials from memory: every read must equal
    Optuna's own read, with the same arguments, as slots are claimed, finished and added."""
    from hpdash.storage import WorkerRDBStorage

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="memo")
    for i in range(6):
        study.enqueue_trial({"x": float(i)})
    ours, plain = WorkerRDBStorage(url), optuna.storages.RDBStorage(url)
    sid = study._study_id

    def same(included: set[int], greater_than: int) -> None:
        assert _frozen(ours._get_trials(sid, None, included, greater_than)) == _frozen(
            plain._get_trials(sid, None, included, greater_than)
        )

    ids = [t._trial_id for t in study.get_trials()]
    same(set(), -1)
    same(set(ids), ids[1])
    first = ours.claim_waiting_trial(sid)._trial_id
    assert first == ids[0]
    same(set(ids), -1)
    ours.set_trial_param(first, "x", 0.0, optuna.distributions.FloatDistribution(0, 10))
    ours.set_trial_state_values(first, optuna.trial.TrialState.COMPLETE, [1.0])
    same(set(ids[1:]), ids[0])
    second = ours.claim_waiting_trial(sid)
    assert second._trial_id == ids[1] and second.state == optuna.trial.TrialState.RUNNING  # lowest first
    study.enqueue_trial({"x": 9.0})  # a new slot after the memo was filled
    same(set(ids[1:]), ids[0])
    same(set(ids[2:]), ids[1])


def test_worker_studies_claim_each_slot_once(tmp_path) -> None:
    """Two worker studies on one file share out the queue: every slot runs once, in order."""
    from hpdash.runner import WorkerStudy

    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat=False), study_name="pop")
    for i in range(6):
        study.enqueue_trial({"x": float(i)})
    a, b = (WorkerStudy(study_name="pop", storage=open_storage(url, budgeted=True, heartbeat=False)) for _ in range(2))
    seen = []
    for worker in (a, b, a, a, b, b):
        trial = worker.ask()
        seen.append(trial.suggest_float("x", 0, 10))
        worker.tell(trial, seen[-1])
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(BudgetExhausted):
        a.ask()
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 6


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claim.db'}"
    return request.getfixturevalue("pg_url")


def test_claim_study_user_attr_has_one_winner(any_url: str) -> None:
    """Workers finishing a study together: exactly one marks it finished (and refits), on
    SQLite and PostgreSQL alike, through separate storages as separate processes have."""
    import threading

    from hpdash.storage import claim_study_user_attr

    url = any_url
    name = f"claim-{time.time_ns()}"
    optuna.create_study(storage=open_storage(url, heartbeat=False), study_name=name)
    studies = [optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False)) for _ in range(4)]
    # No such attr yet: the first claim creates it.
    assert claim_study_user_attr(studies[0], "state", "running") is True
    assert claim_study_user_attr(studies[1], "state", "running") is False  # already so
    won: list[bool] = []
    barrier = threading.Barrier(len(studies))

    def finish(study: optuna.Study) -> None:
        barrier.wait()
        won.append(claim_study_user_attr(study, "state", "finished"))

    threads = [threading.Thread(target=finish, args=(s,)) for s in studies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False, False, False, True]
    assert studies[2].user_attrs["state"] == "finished"
    # Other storages: a read and a write.
    memory = optuna.create_study()
    assert claim_study_user_attr(memory, "state", "finished") is True
    assert claim_study_user_attr(memory, "state", "finished") is False


def test_add_waiting_trials_stores_what_add_trial_stores(any_url: str) -> None:
    """Budget slots in one transaction: the same rows as Optuna's add_trial/enqueue_trial
    (numbers following on from existing trials, state, no start time, system attrs), and
    workers claim them in order."""
    from hpdash.runner import WorkerStudy

    attrs = [{"hpdash_slot": True}, {"fixed_params": {"x": 0.5, "k": "a"}}, {"fixed_params": {"x": 1.5}}]
    studies = {}
    for how in ("optuna", "bulk"):
        name = f"slots-{how}-{time.time_ns()}"
        study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name=name)
        study.add_trial(
            optuna.trial.create_trial(
                value=1.0, params={"x": 0.1}, distributions={"x": optuna.distributions.FloatDistribution(0, 2)}
            )
        )
        if how == "optuna":
            for a in attrs:
                study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, system_attrs=a))
        else:
            study._storage._backend.add_waiting_trials(study._study_id, attrs)
        studies[how] = optuna.load_study(study_name=name, storage=open_storage(any_url, heartbeat=False))

    def rows(study: optuna.Study) -> list:
        return [
            (t.number, t.state, t.datetime_start, t.datetime_complete, t.system_attrs, t.params)
            for t in study.get_trials()
        ]

    # The first trial (COMPLETE, made by create_trial) differs only by when it was made.
    assert rows(studies["bulk"])[1:] == rows(studies["optuna"])[1:]
    assert [t.number for t in studies["bulk"].get_trials()] == [0, 1, 2, 3]
    worker = WorkerStudy(
        study_name=studies["bulk"].study_name, storage=open_storage(any_url, budgeted=True, heartbeat=False)
    )
    first = worker.ask()
    assert first.number == 1 and worker._storage.get_trial(first._trial_id).system_attrs == {"hpdash_slot": True}
    second = worker.ask()
    assert second.suggest_float("x", 0, 2) == 0.5  # the fixed params of an enqueued slot


def test_claim_writes_the_workers_attrs_with_it(any_url: str) -> None:
    """The worker's name goes in with the claim (one transaction), visible to other readers
    while the trial runs; a slot another worker took is skipped."""
    name = f"claim-attrs-{time.time_ns()}"
    study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name=name)
    study._storage._backend.add_waiting_trials(study._study_id, [{"hpdash_slot": True}] * 2)
    a, b = (open_storage(any_url, budgeted=True, heartbeat=False) for _ in range(2))
    first = a.claim_waiting_trial(study._study_id, {"worker": "host:1"})
    second = b.claim_waiting_trial(study._study_id, {"worker": "host:2"})
    assert first.user_attrs == {"worker": "host:1"} and second.user_attrs == {"worker": "host:2"}
    assert first.number == 0 and second.number == 1
    seen = {
        t.number: (t.state, t.user_attrs)
        for t in optuna.load_study(study_name=name, storage=open_storage(any_url, heartbeat=False)).get_trials()
    }
    assert seen == {
        0: (optuna.trial.TrialState.RUNNING, {"worker": "host:1"}),
        1: (optuna.trial.TrialState.RUNNING, {"worker": "host:2"}),
    }
    assert a.claim_waiting_trial(study._study_id, {"worker": "host:1"}) is None


def _every_kind_of_trial(study: optuna.Study) -> None:
    """Trials in every state, with every distribution type, value type and attr kind."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "f": FloatDistribution(0.0, 1.0, step=0.25),
        "n": IntDistribution(1, 9, step=2),
        "m": IntDistribution(1, 100, log=True),
        "c": CategoricalDistribution(["a", None, True, 2.5]),
    }
    params = {"lr": 0.01, "f": 0.5, "n": 3, "m": 10, "c": None}
    running = study.ask(dists)  # first: ask would run a WAITING trial
    running.report(0.125, 0)
    running.set_user_attr("worker", "host:1")
    state = optuna.trial.TrialState
    for kind, value in [
        (state.COMPLETE, 0.5),
        (state.COMPLETE, float("inf")),
        (state.COMPLETE, float("-inf")),
        (state.PRUNED, None),
        (state.FAIL, None),
        (state.WAITING, None),
    ]:
        study.add_trial(
            optuna.trial.create_trial(
                state=kind,
                value=value,
                params=params if kind != state.WAITING else {},
                distributions=dists if kind != state.WAITING else {},
                user_attrs={"fold_scores": [0.5, None], "nested": {"a": [1, "x"]}, "é": "ü"},
                system_attrs={"fixed_params": {"n": 3}},
                intermediate_values={0: 0.25, 1: float("nan"), 2: float("inf"), 3: float("-inf")}
                if kind != state.WAITING
                else {},
            )
        )


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_read_trial_equals_optunas_get_trial(any_url: str, monkeypatch, tz) -> None:
    """WorkerRDBStorage.read_trial (SQL Core) returns exactly Optuna's ORM read of a trial:
    states, values (finite, infinite, several objectives), params of every distribution,
    attrs, intermediate values (NaN and infinities), local datetimes."""
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    name = f"read-trial-{time.time_ns()}"
    ours = open_storage(any_url, heartbeat=False)
    _every_kind_of_trial(optuna.create_study(storage=ours, study_name=name))
    multi = optuna.create_study(storage=ours, study_name=name + "-multi", directions=["maximize", "minimize"])
    multi.add_trial(
        optuna.trial.create_trial(
            values=[1.0, float("-inf")],
            params={"x": 1.0},
            distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
        )
    )
    plain = optuna.storages.RDBStorage(any_url)
    ids = [
        t._trial_id
        for s in (name, name + "-multi")
        for t in optuna.load_study(study_name=s, storage=plain).get_trials()
    ]
    assert len(ids) == 8
    running = [
        t
        for t in optuna.load_study(study_name=name, storage=plain).get_trials()
        if t.state == optuna.trial.TrialState.RUNNING
    ][0]
    # hpdash's one-transaction writer (SQL Core upserts), read back both ways below
    ours.set_trial_user_attrs(
        running._trial_id, {"worker": "host:2", "cv_mean": 0.5}, {0: 0.75, 1: float("nan"), 2: float("-inf")}
    )
    assert plain.get_trial(running._trial_id).user_attrs == {"worker": "host:2", "cv_mean": 0.5}
    for trial_id in ids:
        mine, theirs = ours.read_trial(trial_id), plain.get_trial(trial_id)
        # NaN != NaN: compare the intermediate values by repr, the rest as FrozenTrials.
        assert repr(mine.intermediate_values) == repr(theirs.intermediate_values)
        assert mine.intermediate_values.keys() == theirs.intermediate_values.keys()
        mine.intermediate_values = theirs.intermediate_values = {}
        assert mine == theirs
        assert (mine.datetime_start, mine.datetime_complete) == (theirs.datetime_start, theirs.datetime_complete)
        assert list(mine.params) == list(theirs.params)  # in the order they were suggested
        assert mine.values == theirs.values or (mine.values is None and theirs.values is None)
    with pytest.raises(KeyError):
        ours.read_trial(max(ids) + 1000)
    # Many trials at once, as Optuna's cache asks: by id, above a trial id, or both; the last
    # one past the longest id list read in SQL Core (Optuna's own read then answers).
    sid = optuna.load_study(study_name=name, storage=plain)._study_id
    for included, above, max_ids in [
        (set(), -1, 500),
        (set(ids[:3]), ids[1], 500),
        (set(), ids[3], 500),
        ({ids[0], ids[5]}, ids[6], 500),
        (set(ids[:3]), ids[5], 2),
    ]:
        monkeypatch.setattr("hpdash.storage._MAX_IDS", max_ids)
        mine, theirs = ours.read_trials(sid, included, above), plain._get_trials(sid, None, included, above)
        assert [t._trial_id for t in mine] == [t._trial_id for t in theirs] and mine
        for a, b in zip(mine, theirs):
            assert repr(a.intermediate_values) == repr(b.intermediate_values)
            a.intermediate_values = b.intermediate_values = {}
            assert a == b and (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)
    with pytest.raises(KeyError):
        ours.read_trials(sid + 1000, set(), -1)


def _run_the_same_trials(storage: optuna.storages.BaseStorage, name: str) -> list:
    """Ask, suggest, report and tell trials through ``storage``; return what each step
    raised (by type) so two storages can be compared."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    study = optuna.create_study(storage=storage, study_name=name, sampler=optuna.samplers.RandomSampler(seed=0))
    space = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "n": IntDistribution(1, 9, step=2),
        "c": CategoricalDistribution(["a", None, True]),
    }
    outcomes = []
    for value, state in [
        (0.5, optuna.trial.TrialState.COMPLETE),
        (float("inf"), optuna.trial.TrialState.COMPLETE),
        (None, optuna.trial.TrialState.PRUNED),
        (None, optuna.trial.TrialState.FAIL),
    ]:
        trial = study.ask(space)
        trial.report(0.25, 0)
        study.tell(trial, value, state=state)
        try:  # a finished trial takes no more params, states or values
            study._storage.set_trial_param(trial._trial_id, "x", 0.5, FloatDistribution(0, 1))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        try:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, [1.0])
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    trial = study.ask()
    try:  # the same name with an incompatible distribution
        trial.suggest_int("lr", 1, 3)
    except Exception as exc:
        outcomes.append(type(exc).__name__)
    for bad in (
        lambda: study._storage.set_trial_param(10**6, "x", 0.5, FloatDistribution(0, 1)),
        lambda: study._storage.set_trial_state_values(10**6, optuna.trial.TrialState.COMPLETE, [1.0]),
    ):
        try:
            bad()
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    multi = optuna.create_study(
        storage=storage,
        study_name=name + "-multi",
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    multi.tell(multi.ask({"x": FloatDistribution(0, 1)}), [1.0, float("-inf")])
    return outcomes


def test_finishing_and_param_writes_equal_optunas(any_url: str) -> None:
    """WorkerRDBStorage's SQL Core ``set_trial_state_values`` (finished states) and
    ``_set_trial_param`` store what Optuna's own do, and refuse what they refuse."""
    from hpdash.storage import WorkerRDBStorage

    name = f"writes-{time.time_ns()}"
    ours = open_storage(any_url, heartbeat=False)
    assert type(ours) is WorkerRDBStorage
    plain = optuna.storages.RDBStorage(any_url)
    assert (
        _run_the_same_trials(ours, name + "-ours")
        == _run_the_same_trials(plain, name + "-plain")
        == ["UpdateFinishedTrialError", "UpdateFinishedTrialError"] * 4 + ["ValueError", "KeyError", "KeyError"]
    )

    def stored(study_name: str) -> list:
        trials = optuna.load_study(study_name=study_name, storage=plain).get_trials()
        assert all(
            t.datetime_complete is None or abs((t.datetime_complete - datetime.now()).total_seconds()) < 60
            for t in trials
        )
        return [
            (t.number, t.state, t.values, t.params, t.distributions, t.intermediate_values, t.datetime_complete is None)
            for t in trials
        ]

    for suffix in ("", "-multi"):
        assert stored(name + "-ours" + suffix) == stored(name + "-plain" + suffix)


def test_heartbeats_and_stale_trials_agree_with_optuna(any_url: str) -> None:
    """hpdash's SQL Core heartbeat write and stale-trial query against Optuna's: a trial whose
    last beat is an hour old is stale to both, a fresh one (beaten twice: insert, then
    update) and one that never beat are not; beats written by either are read by the other."""
    import sqlalchemy

    # SQLite's CURRENT_TIMESTAMP has 1 s resolution: a beat is 0-1 s old at once, and
    # at least 2 s old (so stale, > 1 s) after 2.2 s.
    beat = {"heartbeat_interval": 1, "grace_period": 1}
    name = f"beats-{time.time_ns()}"
    ours = open_storage(any_url, heartbeat=False)
    ours.heartbeat_interval, ours.grace_period = beat["heartbeat_interval"], beat["grace_period"]
    plain = optuna.storages.RDBStorage(any_url, **beat)
    study = optuna.create_study(storage=ours, study_name=name)
    old, fresh, silent, theirs = (study.ask()._trial_id for _ in range(4))
    for trial_id in (old, fresh, fresh):
        ours.record_heartbeat(trial_id)
    plain.record_heartbeat(theirs)
    with ours.engine.begin() as conn:
        now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar().replace(tzinfo=None)
        conn.execute(
            sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :t WHERE trial_id = :i"),
            {"t": now - timedelta(hours=1), "i": old},
        )
        rows = conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats ORDER BY trial_id")).scalars().all()
    assert rows == [old, fresh, theirs]
    assert ours._get_stale_trial_ids(study._study_id) == plain._get_stale_trial_ids(study._study_id) == [old]
    time.sleep(2.2)  # now every beat is older than the grace period
    ours.record_heartbeat(fresh)
    assert (
        sorted(ours._get_stale_trial_ids(study._study_id))
        == sorted(plain._get_stale_trial_ids(study._study_id))
        == [old, theirs]
    )


def _study_rows(url: str, name: str) -> dict:
    """Every row a study has in Optuna's tables, with ids replaced by what they stand for
    (the study by its name, a trial by its number), so two studies can be compared."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:

            def rows(sql: str, **params) -> list:
                return [tuple(r) for r in conn.execute(sqlalchemy.text(sql), params).all()]

            (study_id,) = conn.execute(
                sqlalchemy.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
            ).one()
            trials = rows(
                "SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials "
                "WHERE study_id = :s ORDER BY trial_id",
                s=study_id,
            )
            number = {t[0]: t[1] for t in trials}
            ids = list(number) or [-1]

            def per_trial(table: str, columns: str) -> list:
                found = conn.execute(
                    sqlalchemy.text(f"SELECT trial_id, {columns} FROM {table} WHERE trial_id IN :ids").bindparams(
                        sqlalchemy.bindparam("ids", expanding=True)
                    ),
                    {"ids": ids},
                ).all()
                return sorted((number[r[0]], *[str(v) for v in r[1:]]) for r in found)

            return {
                "direction": rows("SELECT objective, direction FROM study_directions WHERE study_id = :s", s=study_id),
                "user_attrs": sorted(
                    rows("SELECT key, value_json FROM study_user_attributes WHERE study_id = :s", s=study_id)
                ),
                "system_attrs": sorted(
                    rows("SELECT key, value_json FROM study_system_attributes WHERE study_id = :s", s=study_id)
                ),
                # numbers in creation order, from 0, and the same states and (empty) times
                "trials": [(t[1], str(t[2]), t[3], t[4]) for t in trials],
                "trial_system_attrs": per_trial("trial_system_attributes", "key, value_json"),
                "trial_user_attrs": per_trial("trial_user_attributes", "key, value_json"),
                "params": per_trial("trial_params", "param_name, param_value, distribution_json"),
                "values": per_trial("trial_values", "objective, value, value_type"),
                "steps": per_trial("trial_intermediate_values", "step, intermediate_value"),
                "beats": per_trial("trial_heartbeats", "heartbeat"),
            }
    finally:
        engine.dispose()


_ATTRS = {
    "hpdash.spec": {"name": "x", "cv": {"folds": 3, "repeats": 1}, "space": None},
    "hpdash.dataset_sha256": None,
    "hpdash.task": "classification",
    "hpdash.metric": "accuracy",
    "hpdash.space": {"knn": {"k": {"type": "int", "low": 1, "high": 9}}},
    "hpdash.created_at": "2024-01-01T00:00:00+00:00",
    "hpdash.state": "created",
    "hpdash.grid_order": {"grid_size": 3, "budget": 3, "cut": False},
    "hpdash.budget": 3,
    "unicode": "é ✓",
}
_SLOTS = [
    {"fixed_params": {"k": 1, "w": "uniform"}},
    {"fixed_params": {"k": 5, "w": None}},
    {"hpdash_slot": True},
    {},
    {"hpdash_slot": True, "fixed_params": {"k": 2.5}},
]


def test_study_with_slots_in_one_transaction_stores_what_the_commits_did(any_url: str) -> None:
    """create_study_with_slots writes the rows Optuna's create_study, one set_user_attr per
    attr and add_waiting_trials wrote with one commit each (the old creation path), on SQLite
    and PostgreSQL; create_budgeted_study's fallback for other storages stores them too."""
    from optuna.study import StudyDirection

    from hpdash.storage import WorkerRDBStorage, create_budgeted_study

    stamp = time.time_ns()
    ours = open_storage(any_url, heartbeat=False)
    old = optuna.create_study(storage=ours, study_name=f"old-{stamp}", direction="maximize")
    for key, value in _ATTRS.items():
        old.set_user_attr(key, value)
    ours.add_waiting_trials(old._study_id, _SLOTS)

    study_id = ours.create_study_with_slots(f"new-{stamp}", StudyDirection.MAXIMIZE, _ATTRS, _SLOTS)
    assert study_id == ours.get_study_id_from_name(f"new-{stamp}")
    made = create_budgeted_study(open_storage(any_url, heartbeat=False), f"api-{stamp}", "maximize", _ATTRS, _SLOTS)
    plain = optuna.storages.RDBStorage(any_url)
    assert not isinstance(plain, WorkerRDBStorage)
    create_budgeted_study(plain, f"fallback-{stamp}", "maximize", _ATTRS, _SLOTS)
    expected = _study_rows(any_url, f"old-{stamp}")
    assert expected["trials"] == [(i, "WAITING", None, None) for i in range(len(_SLOTS))]
    assert len(expected["user_attrs"]) == len(_ATTRS) and len(expected["trial_system_attrs"]) == 5
    for name in (f"new-{stamp}", f"api-{stamp}", f"fallback-{stamp}"):
        assert _study_rows(any_url, name) == expected, name

    # Read back through Optuna: what a worker and the UI see.
    again = optuna.load_study(study_name=f"new-{stamp}", storage=any_url)
    assert again.direction == StudyDirection.MAXIMIZE and again.user_attrs == _ATTRS
    assert [(t.number, t.state, t.system_attrs) for t in again.get_trials()] == [
        (i, optuna.trial.TrialState.WAITING, a) for i, a in enumerate(_SLOTS)
    ]
    assert made.study_name == f"api-{stamp}" and made.user_attrs == _ATTRS


def test_study_with_slots_is_all_or_nothing(any_url: str) -> None:
    """An existing name raises DuplicatedStudyError and changes nothing; a failure after the
    study row and the slots were written (an attr that cannot be stored) leaves no study."""
    from hpdash.storage import create_budgeted_study

    stamp = time.time_ns()
    ours = open_storage(any_url, heartbeat=False)
    ours.create_study_with_slots(f"dup-{stamp}", "maximize", _ATTRS, _SLOTS)
    before = _study_rows(any_url, f"dup-{stamp}")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError, match="already exists"):
        ours.create_study_with_slots(f"dup-{stamp}", "minimize", {"other": 1}, [{"hpdash_slot": True}] * 7)
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        create_budgeted_study(ours, f"dup-{stamp}", "maximize", {}, [])
    assert _study_rows(any_url, f"dup-{stamp}") == before
    names = set(optuna.get_all_study_names(storage=any_url))
    with pytest.raises(TypeError):  # json.dumps of the last slot's attr, after the rest was flushed
        ours.create_study_with_slots(f"broken-{stamp}", "maximize", _ATTRS, [*_SLOTS, {"bad": object()}])
    assert set(optuna.get_all_study_names(storage=any_url)) == names
    import sqlalchemy

    engine = sqlalchemy.create_engine(any_url)
    with engine.connect() as conn:  # no orphan trial rows either
        orphans = conn.execute(
            sqlalchemy.text("SELECT count(*) FROM trials WHERE study_id NOT IN (SELECT study_id FROM studies)")
        ).scalar()
    engine.dispose()
    assert orphans == 0


def test_conditional_study_attr_never_overwrites_the_blocked_values(any_url: str) -> None:
    """set_study_user_attr_unless: "failed" (with its error) lands on a running study, never
    on a finished one; a missing attr is created; other storages behave the same."""
    from hpdash.storage import set_study_user_attr_unless

    name = f"unless-{time.time_ns()}"
    study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name=name)
    assert set_study_user_attr_unless(study, "state", "running", unless=("finished",)) is True  # created
    assert set_study_user_attr_unless(study, "state", "failed", unless=("finished",), extra={"error": "boom"})
    assert study.user_attrs == {"state": "failed", "error": "boom"}
    study.set_user_attr("state", "finished")
    study.set_user_attr("error", None)
    assert set_study_user_attr_unless(study, "state", "failed", unless=("finished",), extra={"error": "late"}) is False
    assert study.user_attrs == {"state": "finished", "error": None}
    memory = optuna.create_study()
    memory.set_user_attr("state", "finished")
    assert set_study_user_attr_unless(memory, "state", "failed", unless=("finished",), extra={"e": 1}) is False
    assert memory.user_attrs == {"state": "finished"}


def test_a_trial_failed_as_stale_is_never_finished_or_written_by_its_late_worker(any_url: str) -> None:
    """The late worker's tell and result writes are refused once another worker failed its
    trial as stale, and nothing it sent is left on the trial; taken_over tells the two apart."""
    from hpdash.storage import set_trial_user_attrs, taken_over

    name = f"late-{time.time_ns()}"
    late_store, other = open_storage(any_url, heartbeat=False), open_storage(any_url, heartbeat=False)
    study = optuna.create_study(storage=late_store, study_name=name)
    mine = study.ask()
    mine.suggest_float("x", 0, 1)
    set_trial_user_attrs(mine, {"fold_scores": [0.5]}, intermediate_values={0: 0.5})
    assert not taken_over(mine)
    # Another worker fails it as stale (the conditional RUNNING -> FAIL of fail_stale_trials).
    assert other.set_trial_state_values(mine._trial_id, optuna.trial.TrialState.FAIL) is True
    before = optuna.load_study(study_name=name, storage=any_url).trials[0]
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_user_attrs(mine, {"fold_scores": [0.5, 0.9], "cv_mean": 0.7}, intermediate_values={1: 0.9})
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        late_store.set_trial_state_values(mine._trial_id, optuna.trial.TrialState.COMPLETE, [0.7])
    after = optuna.load_study(study_name=name, storage=any_url).trials[0]
    assert (
        (after.state, after.values, after.user_attrs, after.intermediate_values)
        == (before.state, before.values, before.user_attrs, before.intermediate_values)
        == (optuna.trial.TrialState.FAIL, None, {"fold_scores": [0.5]}, {0: 0.5})
    )
    assert taken_over(mine)
    # A trial this storage finished itself is not "taken over".
    own = study.ask()
    study.tell(own, 1.0)
    assert not taken_over(own)


def test_a_storage_of_another_schema_gets_optunas_own_check(tmp_path) -> None:
    """open_storage skips Optuna's schema check only for the pinned schema: an older one is
    refused with Optuna's message (upgrade the storage), not opened."""
    from hpdash.errors import StorageError

    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_storage(url).engine.dispose()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    with pytest.raises(StorageError, match="optuna storage upgrade"):
        open_storage(url)


def test_a_new_storage_is_stamped_without_importing_alembic_once_it_is(tmp_path) -> None:
    """A new database gets Optuna's alembic stamp (through Optuna's own code); a stamped one
    is opened without importing alembic (one SELECT answers whether it is stamped)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys; from hpdash.storage import open_storage, schema_version; "
        f"s = open_storage({url!r}, heartbeat=False); "
        "print(schema_version(s.engine), 'alembic' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "(12, 'v3.2.0.a') True", first.stdout
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "(12, 'v3.2.0.a') False", again.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_opening_a_new_storage_at_once_all_succeed(tmp_path, request, backend) -> None:
    """Six processes open one new database at the same moment (a run, a dashboard and
    workers started together): Optuna creates its tables one at a time, so some of them
    lose a CREATE TABLE race; every one of them still opens the storage."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    start = time.time() + 4  # every process has imported hpdash by then
    code = (
        "import time; from hpdash.storage import open_storage; "
        f"time.sleep(max(0.0, {start} - time.time())); "
        f"open_storage({url!r}, heartbeat=False); print('opened')"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.splitlines()[-1] for _, err in results if err]
    assert all(out.strip() == "opened" for out, _ in results)


def test_a_snapshot_does_not_see_commits_made_after_its_first_read(any_url: str) -> None:
    """``storage.snapshot``: every statement of the transaction sees the database as of its
    first read, on SQLite (in WAL mode, as hpdash opens it) and PostgreSQL, while another
    connection commits."""
    study = optuna.create_study(storage=open_storage(any_url, heartbeat=False), study_name="snap")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    writer = optuna.load_study(study_name="snap", storage=optuna.storages.RDBStorage(any_url))
    count = sqlalchemy.text("SELECT COUNT(*) FROM trials")
    engine = unwrap_rdb(study._storage).engine
    with snapshot(engine) as conn:
        before = conn.execute(count).scalar()
        writer.add_trial(optuna.trial.create_trial(value=2.0))
        during = conn.execute(count).scalar()
    with snapshot(engine) as conn:
        after = conn.execute(count).scalar()
    assert (before, during, after) == (1, 1, 2)
