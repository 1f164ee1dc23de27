"""The study user attrs hpdash writes, each key named once (docs/ARCHITECTURE.md, "Storage
layout"), with readers for the ones other modules look up.

Every value is JSON in Optuna's ``study_user_attributes`` table, so other Optuna tools see
them too. Trial user attrs (``fold_scores``, ``fail_reason``, ...) are plain keys, written by
``hpdash.objective`` and read by ``hpdash.results``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPEC = "hpdash.spec"  # the full spec, as plain data
DATASET = "hpdash.dataset_sha256"  # the stored dataset the study runs on
DATASET_ARTIFACT = "hpdash.dataset_artifact"  # that dataset in the artifact store: artifact id, SHA-256, format
TASK = "hpdash.task"  # classification or regression, as resolved
METRIC = "hpdash.metric"  # the scorer's name, as resolved
SPACE = "hpdash.space"  # the resolved search space of each model
CREATED_AT = "hpdash.created_at"  # ISO time of creation (UTC)
SAMPLER = "hpdash.sampler"  # which sampler class runs, its start-up trials and seed rule
STATE = "hpdash.state"  # created, running, finished, stopped, failed
STOP = "hpdash.stop"  # the stop flag
BUDGET = "hpdash.budget"  # the trial budget, as budget slots
STARTED = "hpdash.started_at"  # time of the last launch (seconds since the epoch)
REFIT = "hpdash.refit"  # the final model: holdout score, digest
GRID = "hpdash.grid_order"  # the order of a grid study's points
ERROR = "hpdash.error"  # why a worker failed
REPLAY = "hpdash.replay"  # a replayed run: its source, record, oracle, simulated workers
WARM_START = "hpdash.warm_start"  # the past study and trials a study was seeded from, and those skipped
WORKER_PREFIX = "hpdash.worker."  # one record per worker: hpdash.worker.<host>.<pid>
#: Not a study attr: the key of an experiment record's settle plan ("add repeats until the
#: verdict is settled"), kept in the catalogue beside the experiment's spec.
SETTLE_RECORD = "hpdash.until_settled"


def spec_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The study's spec as plain data ({} for a study hpdash did not create)."""
    spec = attrs.get(SPEC)
    return spec if isinstance(spec, dict) else {}


def metric_of(attrs: Mapping[str, Any]) -> str | None:
    """The study's metric: the resolved one, else the spec's, else None."""
    metric = attrs.get(METRIC) or spec_of(attrs).get("metric")
    return str(metric) if metric else None
