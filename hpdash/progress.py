"""The summary of a study: counts by trial state, the best trial, the time span.

One record, built by the readers in ``hpdash.results`` (study by study, every study at once,
or from a live study's cached frame) and read by the pages, the CLI, the reports and the
status logic in ``hpdash.runner``.

Each record is also a read-only mapping of its fields, so it prints, compares and serialises
like the dict of the same keys (``dict(record)``, ``record["n_complete"]``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Optuna's trial states, as the storage spells them.
STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")


class _Record(Mapping[str, Any]):
    """The mapping view of a dataclass record: its fields, in declaration order."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class StudySummary(_Record):
    """Counts by state, the best trial and the direction of a study.

    ``n_trials`` counts every trial but the WAITING ones (hpdash's unused budget slots). The
    best trial is the lowest-numbered COMPLETE trial with the best value. ``best_value``,
    ``best_trial_number`` are None and ``best_params`` is empty when nothing is COMPLETE;
    ``best_params`` and ``best_trial_number`` are also None where a reader does not read them
    (``results.progress_of_studies``, which shows every study in one table).
    """

    n_trials: int
    n_complete: int
    n_pruned: int
    n_fail: int
    n_running: int
    n_waiting: int
    best_value: float | None
    best_params: dict[str, Any] | None
    best_trial_number: int | None
    direction: str
    metric: str | None

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        *,
        best_value: float | None,
        best_params: dict[str, Any] | None,
        best_trial_number: int | None,
        direction: str,
        metric: str | None,
    ) -> StudySummary:
        """The summary from trial counts by state name (missing states count 0)."""
        n = {state: int(counts.get(state, 0)) for state in STATES}
        return cls(
            n_trials=sum(v for state, v in n.items() if state != "WAITING"),
            n_complete=n["COMPLETE"],
            n_pruned=n["PRUNED"],
            n_fail=n["FAIL"],
            n_running=n["RUNNING"],
            n_waiting=n["WAITING"],
            best_value=best_value,
            best_params=best_params,
            best_trial_number=best_trial_number,
            direction=direction,
            metric=metric,
        )

    @property
    def n_finished(self) -> int:
        """Trials that ended, in any state (COMPLETE, PRUNED or FAIL)."""
        return self.n_complete + self.n_pruned + self.n_fail


@dataclass(frozen=True, eq=False)
class StudyProgress(StudySummary):
    """``StudySummary`` plus what a progress header needs.

    ``n_replaced`` counts FAIL trials whose work was given a new slot (a heartbeat retry, or a
    trial cut by a user stop), so they do not use budget. ``first_start`` / ``last_complete``
    are timezone-aware UTC datetimes (or None).
    """

    n_replaced: int = 0
    first_start: datetime.datetime | None = None
    last_complete: datetime.datetime | None = None

    @classmethod
    def from_summary(
        cls,
        summary: StudySummary,
        *,
        n_replaced: int,
        first_start: datetime.datetime | None,
        last_complete: datetime.datetime | None,
    ) -> StudyProgress:
        fields = {f.name: getattr(summary, f.name) for f in dataclasses.fields(StudySummary)}
        return cls(**fields, n_replaced=n_replaced, first_start=first_start, last_complete=last_complete)

    @property
    def n_done(self) -> int:
        """Finished trials that used budget: ``n_finished`` less the replaced failures."""
        return self.n_finished - self.n_replaced
