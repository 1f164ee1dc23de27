"""hpdash against Optuna's internals: conformance, private hooks, and where private names may live.

hpdash's worker storage (``hpdash.storage.WorkerRDBStorage``) rewrites much of Optuna's
``RDBStorage`` in SQL Core and overrides several of its private methods; the runner, the
samplers and the result readers reach into a few more private Optuna names. None of that is
covered by Optuna's compatibility promises, so these tests make an Optuna upgrade fail loudly
instead of quietly:

1. Optuna's own conformance suite for storages (``optuna.testing.pytest_storages``) runs
   against ``open_storage(url, heartbeat=False)`` on SQLite and on PostgreSQL.
2. Every private Optuna name hpdash overrides, calls or reads (``OPTUNA_PRIVATE_NAMES``) must
   still exist with the parameter names hpdash was written for.
3. Private Optuna and Streamlit imports and private Optuna attribute reads stay in the modules
   listed in ``ALLOWED`` / ``ALLOWED_STREAMLIT`` / ``ALLOWED_ATTRS``: the project's goal is
   that Optuna internals live in hpdash/storage.py only, and Streamlit internals in hpdash/ui/.
   A new use elsewhere fails; so does an entry that is no longer needed (shrink the dict).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import pkgutil
import re
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.testing.pytest_storages import StorageTestCase
from pg_helpers import pg_url  # noqa: F401  (fixture)

import hpdash
from hpdash.storage import WorkerRDBStorage, open_storage

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hpdash"

# --------------------------------------------------------------------------------------------
# What the tests below check (read these first)
# --------------------------------------------------------------------------------------------

#: Every private Optuna name hpdash relies on:
#: ``(owner, name, kind, expected, hpdash_override)``.
#:
#: - kind ``"callable"``: ``owner.name`` is a function, method or class whose parameter names
#:   are ``expected`` (a class: its constructor's, without ``self``); ``hpdash_override``, when
#:   given, is the hpdash class that overrides it (or, for ``TrialsView``, stands in for its
#:   owner), whose parameter names must be the same.
#: - kind ``"instance"``: instances of ``owner`` (built by ``_sample_instances``) carry the
#:   attribute ``name``, an instance of ``expected``.
#: - kind ``"global"``: the module ``owner`` has the global ``name``, an instance of ``expected``.
OPTUNA_PRIVATE_NAMES: list[tuple[str, str, str, Any, str | None]] = [
    # WorkerRDBStorage (hpdash/storage.py) overrides these RDBStorage methods...
    (
        "optuna.storages.RDBStorage",
        "_create_new_trial",
        "callable",
        ("self", "study_id", "template_trial"),
        "hpdash.storage.WorkerRDBStorage",
    ),
    (
        "optuna.storages.RDBStorage",
        "_create_new_trial",
        "callable",
        ("self", "study_id", "template_trial"),
        "hpdash.storage.ProxyServerStorage",
    ),
    (
        "optuna.storages.RDBStorage",
        "_get_stale_trial_ids",
        "callable",
        ("self", "study_id"),
        "hpdash.storage.WorkerRDBStorage",
    ),
    (
        "optuna.storages.RDBStorage",
        "_set_trial_param",
        "callable",
        ("self", "trial_id", "param_name", "param_value_internal", "distribution", "previous_distribution"),
        "hpdash.storage.WorkerRDBStorage",
    ),
    (
        "optuna.storages.RDBStorage",
        "_get_trials",
        "callable",
        ("self", "study_id", "states", "included_trial_ids", "trial_id_greater_than"),
        "hpdash.storage.WorkerRDBStorage",
    ),
    # ... and calls these (set_trial_user_attrs on databases without the SQL Core path).
    (
        "optuna.storages.RDBStorage",
        "_set_trial_intermediate_value_without_commit",
        "callable",
        ("self", "session", "trial_id", "step", "intermediate_value"),
        None,
    ),
    (
        "optuna.storages.RDBStorage",
        "_set_trial_attr_without_commit",
        "callable",
        ("self", "session", "model_cls", "trial_id", "key", "value"),
        None,
    ),
    # The version manager swap in WorkerRDBStorage.__init__ (hpdash/storage.py).
    ("optuna.storages._rdb.storage", "_VersionManager", "callable", ("url", "engine", "scoped_session"), None),
    (
        "optuna.storages._rdb.storage._VersionManager",
        "_init_alembic",
        "callable",
        ("self",),
        "hpdash.storage._StampedVersionManager",
    ),
    ("optuna.storages.RDBStorage", "_version_manager", "instance", "hpdash.storage._StampedVersionManager", None),
    (
        "optuna.storages._rdb.storage",
        "_create_scoped_session",
        "callable",
        ("scoped_session", "ignore_integrity_error"),
        None,
    ),
    # Optuna's ORM models, whose tables hpdash/storage.py reads and writes in SQL Core.
    ("optuna.storages._rdb.models", "NOT_FOUND_MSG", "global", str, None),
    ("optuna.storages._rdb.models", "StudyModel", "global", type, None),
    ("optuna.storages._rdb.models", "StudyDirectionModel", "global", type, None),
    ("optuna.storages._rdb.models", "StudyUserAttributeModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialValueModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialParamModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialIntermediateValueModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialUserAttributeModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialSystemAttributeModel", "global", type, None),
    ("optuna.storages._rdb.models", "TrialHeartbeatModel", "global", type, None),
    (
        "optuna.storages._rdb.models.StudyModel",
        "find_or_raise_by_id",
        "callable",
        ("study_id", "session", "for_update"),
        None,
    ),
    (
        "optuna.storages._rdb.models.TrialModel",
        "find_or_raise_by_id",
        "callable",
        ("trial_id", "session", "for_update"),
        None,
    ),
    ("optuna.storages._rdb.models.TrialValueModel", "value_to_stored_repr", "callable", ("value",), None),
    ("optuna.storages._rdb.models.TrialValueModel", "stored_repr_to_value", "callable", ("value", "float_type"), None),
    (
        "optuna.storages._rdb.models.TrialIntermediateValueModel",
        "intermediate_value_to_stored_repr",
        "callable",
        ("value",),
        None,
    ),
    (
        "optuna.storages._rdb.models.TrialIntermediateValueModel",
        "stored_repr_to_intermediate_value",
        "callable",
        ("value", "float_type"),
        None,
    ),
    # Optuna's storage cache, which WorkerStudy._pop_waiting_trial_id (hpdash/storage.py) fills
    # and which storage.py / results.py unwrap with ``getattr(storage, "_backend", storage)``.
    ("optuna.storages._cached_storage._CachedStorage", "__init__", "callable", ("self", "backend"), None),
    ("optuna.storages._cached_storage._CachedStorage", "_backend", "instance", "optuna.storages.RDBStorage", None),
    ("optuna.storages._cached_storage._CachedStorage", "_lock", "instance", type(threading.Lock()), None),
    ("optuna.storages._cached_storage._CachedStorage", "_studies", "instance", dict, None),
    (
        "optuna.storages._cached_storage._CachedStorage",
        "_add_trials_to_cache",
        "callable",
        ("self", "study_id", "trials"),
        None,
    ),
    ("optuna.storages._cached_storage", "_StudyInfo", "callable", (), None),
    # The gRPC proxy (hpdash/storage.py): ProxyStorage is Optuna's client plus a BaseHeartbeat,
    # and make_proxy_server registers a subclass of Optuna's servicer as Optuna's server does.
    (
        "optuna.storages._heartbeat.BaseHeartbeat",
        "_get_stale_trial_ids",
        "callable",
        ("self", "study_id"),
        "hpdash.storage.ProxyStorage",
    ),
    (
        "optuna.storages._grpc.servicer.OptunaStorageProxyService",
        "CreateNewTrial",
        "callable",
        ("self", "request", "context"),
        None,
    ),
    ("optuna.storages._grpc.servicer.OptunaStorageProxyService", "__init__", "callable", ("self", "storage"), None),
    (
        "optuna.storages._grpc.auto_generated.api_pb2_grpc",
        "add_StorageServiceServicer_to_server",
        "callable",
        ("servicer", "server"),
        None,
    ),
    # Study, Trial and FrozenTrial internals read across hpdash.
    ("optuna.Study", "_storage", "instance", "optuna.storages._cached_storage._CachedStorage", None),
    ("optuna.Study", "_study_id", "instance", int, None),
    ("optuna.Study", "_pop_waiting_trial_id", "callable", ("self",), "hpdash.storage.WorkerStudy"),
    ("optuna.Study", "_is_multi_objective", "callable", ("self",), "hpdash.results.TrialsView"),
    ("optuna.Trial", "_trial_id", "instance", int, None),
    ("optuna.Trial", "_cached_frozen_trial", "instance", "optuna.trial.FrozenTrial", None),
    ("optuna.trial.FrozenTrial", "_trial_id", "instance", int, None),
    # GPSampler.sample_relative (hpdash/gp_sampler.py).
    ("optuna.samplers.BaseSampler", "_raise_error_if_multi_objective", "callable", ("self", "study"), None),
    # The trial-loop logger hpdash/runner.py filters (``_OPTIMIZE_LOGGER``) and what logs there.
    ("optuna.study._optimize", "_logger", "global", logging.Logger, None),
    (
        "optuna.study._optimize",
        "_log_failed_trial",
        "callable",
        ("trial_number", "trial_params", "message", "exc_info", "value_or_values"),
        None,
    ),
]

#: Private Optuna imports (``from optuna.x._y import z``, ``import optuna.x._y``,
#: ``from optuna.x import _z``, or ``optuna.x._y`` reached from a public import), by module:
#: the fully qualified names each module imports. Optuna internals belong in hpdash/storage.py.
ALLOWED: dict[str, set[str]] = {
    "hpdash/storage.py": {
        "optuna.storages._rdb.storage",
        "optuna.storages._rdb.models",
        "optuna.storages._rdb.storage._create_scoped_session",
        "optuna.storages._cached_storage._CachedStorage",
        "optuna.storages._cached_storage._StudyInfo",
        # the gRPC proxy: the client's heartbeats, the server's servicer and its registration
        "optuna.storages._heartbeat",
        "optuna.storages._grpc.auto_generated.api_pb2_grpc",
        "optuna.storages._grpc.servicer.OptunaStorageProxyService",
    },
}

#: Private Streamlit imports (``streamlit.runtime``, ``streamlit.web``, any ``_``-prefixed
#: module or name), by module: only modules under hpdash/ui/ may have them.
ALLOWED_STREAMLIT: dict[str, set[str]] = {
    "hpdash/ui/common.py": {"streamlit.runtime.scriptrunner.get_script_run_ctx"},
    "hpdash/ui/server.py": {"streamlit.runtime"},
}

#: Private Optuna attributes read as ``X.<attr>`` or ``getattr(X, "<attr>", ...)``.
PRIVATE_ATTRS = frozenset({"_storage", "_trial_id", "_backend", "_cached_frozen_trial", "_study_id"})

#: The modules that read ``PRIVATE_ATTRS`` today, and which of them each reads.
ALLOWED_ATTRS: dict[str, set[str]] = {
    "hpdash/storage.py": {"_storage", "_study_id", "_trial_id", "_backend", "_cached_frozen_trial"},
}


# --------------------------------------------------------------------------------------------
# 1. Optuna's storage conformance suite on hpdash's worker storage
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """``open_storage(url, heartbeat=False)`` on a fresh SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'conformance.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = open_storage(url, heartbeat=False)
    assert type(store) is WorkerRDBStorage and not store.budgeted
    yield store
    store.engine.dispose()


class TestWorkerStorageConformance(StorageTestCase):
    """Every test of Optuna's ``StorageTestCase``, against ``WorkerRDBStorage``."""


# --------------------------------------------------------------------------------------------
# 2. The private Optuna names hpdash overrides, calls or reads
# --------------------------------------------------------------------------------------------
def _resolve(dotted: str) -> Any:
    """The object at ``dotted``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"nothing importable in {dotted!r}")


def _parameter_names(obj: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(obj).parameters)


def _expected_type(expected: Any) -> type:
    return _resolve(expected) if isinstance(expected, str) else expected


@pytest.fixture(scope="module")
def optuna_instances(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One instance of each Optuna class whose instance attributes hpdash reads, built the way
    hpdash builds them (a study over ``open_storage``)."""
    from optuna.storages._cached_storage import _CachedStorage

    url = f"sqlite:///{tmp_path_factory.mktemp('internals') / 'internals.db'}"
    store = open_storage(url, heartbeat=False)
    plain = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=store, study_name="internals")
    study.enqueue_trial({"x": 0.5})
    done = study.ask()
    study.tell(done, done.suggest_float("x", 0, 1))
    running = study.ask()
    yield {
        "optuna.storages.RDBStorage": store,  # a WorkerRDBStorage: its _version_manager is hpdash's
        "optuna.storages._cached_storage._CachedStorage": _CachedStorage(plain),
        "optuna.Study": study,
        "optuna.Trial": running,
        "optuna.trial.FrozenTrial": study.trials[0],
    }
    store.engine.dispose()
    plain.engine.dispose()


@pytest.mark.parametrize(
    ("owner", "name", "kind", "expected", "override"),
    OPTUNA_PRIVATE_NAMES,
    ids=[f"{row[0]}.{row[1]}" for row in OPTUNA_PRIVATE_NAMES],
)
def test_private_optuna_name_is_still_there(
    owner: str, name: str, kind: str, expected: Any, override: str | None, optuna_instances: dict[str, Any]
) -> None:
    where = f"{owner}.{name} (optuna {optuna.__version__})"
    if kind == "callable":
        target = getattr(_resolve(owner), name, None)
        assert target is not None, f"{where} is gone; hpdash relies on it"
        assert _parameter_names(target) == expected, f"{where} has new parameters"
        if override is not None:
            cls = _resolve(override)
            assert name in vars(cls), f"{override} no longer defines {name}: update OPTUNA_PRIVATE_NAMES"
            assert _parameter_names(getattr(cls, name)) == expected, (
                f"{override}.{name} does not take the parameters of {where}"
            )
    elif kind == "instance":
        instance = optuna_instances[owner]
        assert name in vars(instance), f"{where}: instances no longer carry this attribute"
        assert isinstance(vars(instance)[name], _expected_type(expected)), (
            f"{where} is a {type(vars(instance)[name]).__name__} now, not a {expected}"
        )
    else:
        assert kind == "global", kind
        module = _resolve(owner)
        assert name in vars(module), f"{where} is gone; hpdash relies on it"
        assert isinstance(vars(module)[name], _expected_type(expected)), f"{where} changed type"


def _optuna_classes_under_hpdash() -> list[type]:
    """hpdash classes that subclass an Optuna class (hpdash.ui imports Streamlit: it has none)."""
    found = []
    for info in pkgutil.walk_packages(hpdash.__path__, "hpdash."):
        if info.name.startswith("hpdash.ui") or info.name == "hpdash.__main__":
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if (
                inspect.isclass(cls)
                and cls.__module__ == info.name
                and any(base.__module__.startswith("optuna") for base in cls.__mro__)
            ):
                found.append(cls)
    return found


def test_every_private_override_is_listed() -> None:
    """A private name an hpdash class defines that an Optuna base class also has is an
    override of an Optuna internal: it must be in ``OPTUNA_PRIVATE_NAMES``, with hpdash's class.
    This also catches a new Optuna private method that an hpdash helper shadows by accident."""
    classes = _optuna_classes_under_hpdash()
    assert {"WorkerRDBStorage", "WorkerStudy", "GPSampler"} <= {cls.__name__ for cls in classes}
    listed = {(row[1], row[4]) for row in OPTUNA_PRIVATE_NAMES if row[4]}
    unlisted = []
    for cls in classes:
        optuna_bases = [base for base in cls.__mro__ if base.__module__.startswith("optuna")]
        for base in cls.__mro__:
            if not base.__module__.startswith("hpdash"):
                continue
            for name in vars(base):
                private = _is_private(name) and name != "_abc_impl"  # ABCMeta sets _abc_impl
                if private and any(hasattr(ob, name) for ob in optuna_bases):
                    if (name, f"{base.__module__}.{base.__qualname__}") not in listed:
                        unlisted.append(f"{base.__module__}.{base.__qualname__}.{name}")
    assert not unlisted, f"hpdash overrides private Optuna names not in OPTUNA_PRIVATE_NAMES: {sorted(set(unlisted))}"


def test_version_manager_swap_still_reaches_optuna() -> None:
    """WorkerRDBStorage swaps the module global ``_VersionManager`` while RDBStorage.__init__
    runs: that works only while __init__ looks the global up at call time, and the manager's
    constructor still calls ``_init_alembic``."""
    from optuna.storages._rdb import storage as optuna_rdb_storage

    assert "_VersionManager" in optuna.storages.RDBStorage.__init__.__code__.co_names
    assert "_init_alembic" in optuna_rdb_storage._VersionManager.__init__.__code__.co_names
    assert optuna_rdb_storage._VersionManager.__module__ == "optuna.storages._rdb.storage"


def test_cache_wraps_the_worker_storage(tmp_path: Path) -> None:
    """A study over ``open_storage`` holds it in Optuna's ``_CachedStorage`` (``_backend``),
    whose ``create_new_trial`` goes through the backend's ``_create_new_trial`` (the budget
    guard) and then the cache steps WorkerStudy._pop_waiting_trial_id repeats."""
    from optuna.storages._cached_storage import _CachedStorage

    from hpdash.storage import BudgetExhausted

    store = open_storage(f"sqlite:///{tmp_path / 'cache.db'}", heartbeat=False)
    study = optuna.create_study(storage=store, study_name="cache")
    assert isinstance(study._storage, _CachedStorage) and study._storage._backend is store
    assert {"_create_new_trial", "_lock", "_studies", "_StudyInfo", "_add_trials_to_cache"} <= set(
        _CachedStorage.create_new_trial.__code__.co_names
    )
    store.budgeted = True
    with pytest.raises(BudgetExhausted):
        study.ask()
    store.engine.dispose()


def test_failed_trial_log_records_match_the_runner_filter() -> None:
    """hpdash/runner.py filters Optuna's trial-loop logger by name and parses its two records
    for a failed trial (the error with its traceback, then "Trial N failed with value ...")."""
    import optuna.study._optimize as optimize

    from hpdash import objective, runner

    assert optimize._logger.name == runner._OPTIMIZE_LOGGER == "optuna.study._optimize"
    logger = logging.getLogger(runner._OPTIMIZE_LOGGER)
    records: list[logging.LogRecord] = []
    kept: list[logging.LogRecord] = []
    trial_filter = runner._TrialLogFilter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if trial_filter.filter(record):
                kept.append(record)

    def stopped(trial: optuna.Trial) -> float:
        raise objective.StopRequested()

    def broken(trial: optuna.Trial) -> float:
        raise ValueError("broken")

    # Without the filters a worker run in this process may have installed on the logger.
    handler, level, filters = Collect(level=logging.WARNING), logger.level, logger.filters[:]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.filters.clear()
    try:
        study = optuna.create_study()
        study.optimize(stopped, n_trials=1, catch=(objective.StopRequested,))
        study.optimize(broken, n_trials=1, catch=(ValueError,))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.filters[:] = filters
    assert [type(r.exc_info[1]) if r.exc_info else None for r in records] == [
        objective.StopRequested,
        None,
        ValueError,
        None,
    ]
    assert [bool(re.match(r"Trial \d+ failed with value ", r.getMessage())) for r in records] == [
        False,
        True,
        False,
        True,
    ]
    assert kept == records[2:], "the filter must drop exactly the stopped trial's two records"


# --------------------------------------------------------------------------------------------
# 3. Private names stay in their place
# --------------------------------------------------------------------------------------------
def _sources() -> dict[str, ast.Module]:
    return {
        path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(), filename=str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _private_optuna(qualified: str) -> bool:
    head, *rest = qualified.split(".")
    return head == "optuna" and any(_is_private(p) for p in rest)


def _private_streamlit(qualified: str) -> bool:
    head, *rest = qualified.split(".")
    return head == "streamlit" and bool(rest) and (rest[0] in ("runtime", "web") or any(_is_private(p) for p in rest))


def _private_uses(tree: ast.Module, private: Any) -> set[str]:
    """Qualified names ``private`` flags that ``tree`` imports, or reaches as an attribute
    chain (``optuna.storages._x``, ``st.runtime``) from a public import: the chain is cut
    after its first private part."""
    found: set[str] = set()
    aliases: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if private(alias.name):
                    found.add(alias.name)
                local, target = (alias.asname, alias.name) if alias.asname else ((alias.name.split(".")[0],) * 2)
                aliases.setdefault(local, set()).add(target)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                if private(qualified):
                    found.add(qualified)
                aliases.setdefault(alias.asname or alias.name, set()).add(qualified)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            chain.insert(0, current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            continue
        for root in aliases.get(current.id, ()):
            if private(root):
                continue  # already counted as an import
            parts = root.split(".")
            for part in chain:
                parts.append(part)
                if private(".".join(parts)):
                    found.add(".".join(parts))
                    break
    return found


def _private_attrs(tree: ast.Module) -> set[str]:
    """``PRIVATE_ATTRS`` read as ``X.attr`` or ``getattr(X, "attr", ...)`` in ``tree``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRS:
            found.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE_ATTRS
        ):
            found.add(node.args[1].value)
    return found


SCANNER_CASES = [
    ("from optuna.storages._rdb import models as rdb", "optuna", {"optuna.storages._rdb.models"}),
    ("import optuna.study._optimize", "optuna", {"optuna.study._optimize"}),
    ("from optuna.trial import _Private", "optuna", {"optuna.trial._Private"}),
    ("import optuna\noptuna.storages._cached_storage._CachedStorage", "optuna", {"optuna.storages._cached_storage"}),
    ("import optuna as o\no.study._optimize._logger", "optuna", {"optuna.study._optimize"}),
    ("import optuna\nfrom optuna.trial import TrialState\noptuna.samplers.TPESampler", "optuna", set()),
    (
        "from streamlit.runtime.scriptrunner import get_script_run_ctx",
        "streamlit",
        {"streamlit.runtime.scriptrunner.get_script_run_ctx"},
    ),
    ("from streamlit import runtime", "streamlit", {"streamlit.runtime"}),
    ("import streamlit.web.cli", "streamlit", {"streamlit.web.cli"}),
    ("import streamlit as st\nst.runtime.exists()", "streamlit", {"streamlit.runtime"}),
    ("from streamlit.elements import _util", "streamlit", {"streamlit.elements._util"}),
    ("import streamlit as st\nfrom streamlit import config\nst.cache_data", "streamlit", set()),
]


@pytest.mark.parametrize(("source", "package", "expected"), SCANNER_CASES)
def test_scanner_finds_private_imports(source: str, package: str, expected: set[str]) -> None:
    private = _private_optuna if package == "optuna" else _private_streamlit
    assert _private_uses(ast.parse(source), private) == expected


def test_scanner_finds_private_attrs() -> None:
    tree = ast.parse('a = study._storage\nb = getattr(s, "_backend", s)\nc = trial._other\nd = trial.number')
    assert _private_attrs(tree) == {"_storage", "_backend"}


def _compare(found: dict[str, set[str]], allowed: dict[str, set[str]], what: str) -> None:
    new = {m: sorted(names - allowed.get(m, set())) for m, names in found.items() if names - allowed.get(m, set())}
    stale = {m: sorted(names - found.get(m, set())) for m, names in allowed.items() if names - found.get(m, set())}
    assert not new, f"{what} in new places (keep them in the allowed modules): {new}"
    assert not stale, f"{what} no longer used there: remove them from the allowed dict: {stale}"


def test_private_optuna_imports_stay_in_allowed_modules() -> None:
    found = {m: names for m, tree in _sources().items() if (names := _private_uses(tree, _private_optuna))}
    _compare(found, ALLOWED, "private Optuna imports")


def test_private_streamlit_imports_stay_in_hpdash_ui() -> None:
    assert all(m.startswith("hpdash/ui/") for m in ALLOWED_STREAMLIT)
    found = {m: names for m, tree in _sources().items() if (names := _private_uses(tree, _private_streamlit))}
    outside = {m: sorted(names) for m, names in found.items() if not m.startswith("hpdash/ui/")}
    assert not outside, f"private Streamlit imports outside hpdash/ui/: {outside}"
    _compare(found, ALLOWED_STREAMLIT, "private Streamlit imports")


def test_private_optuna_attributes_stay_in_allowed_modules() -> None:
    found = {m: names for m, tree in _sources().items() if (names := _private_attrs(tree))}
    _compare(found, ALLOWED_ATTRS, "private Optuna attribute reads")
