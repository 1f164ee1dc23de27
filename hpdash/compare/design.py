"""What compared studies share and what differs: the comparability check and the paired or unpaired design."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpdash import attrs as study_attrs
from hpdash.compare.significance import complete_blocks, incomplete_block
from hpdash.compare.words import MANN_WHITNEY, SPLIT_NEW, SPLIT_SAME, SPLIT_UNKNOWN, WILCOXON


# ------------------------------------------------------------------------------ design
@dataclass(frozen=True)
class Design:
    """How the runs may be compared (see "Design" in the module docstring)."""

    paired: bool  # one run per strategy per split seed, the same split seeds for all
    ranked: bool  # every seed holds one run of every strategy: ranks within seeds
    split: str  # SPLIT_SAME, SPLIT_NEW or SPLIT_UNKNOWN
    reason: str  # why the tests are paired or not, for people
    rank_reason: str  # why there are no ranks ("" when ranked)
    blocks: dict[str, Hashable] = field(default_factory=dict)  # study -> split seed (when paired)

    @property
    def test(self) -> str:
        return WILCOXON if self.paired else MANN_WHITNEY


def split_seed_of(spec: Mapping[str, Any]) -> int | None:
    """The seed of a study's holdout split and CV folds: ``split_seed``, else ``seed``."""
    value = spec.get("split_seed", spec.get("seed"))
    return None if value is None or isinstance(value, bool) else int(value)


def split_design(split_seeds: Iterable[int | None]) -> str:
    """``SPLIT_SAME`` when every run has the same split seed, ``SPLIT_NEW`` when they differ,
    ``SPLIT_UNKNOWN`` when one is not recorded."""
    seeds = list(split_seeds)
    if not seeds or any(s is None for s in seeds):
        return SPLIT_UNKNOWN
    return SPLIT_SAME if len(set(seeds)) == 1 else SPLIT_NEW


def design_of(
    runs: pd.DataFrame, split_seeds: Mapping[str, int | None] | None = None, comparable: bool = True
) -> Design:
    """The design of the runs (``final_runs``): paired on the split seeds (study -> split seed;
    None: not known, as for a bare frame) and ranked within the ``seed`` column when their
    blocks are complete, neither when the studies are not ``comparable``."""
    studies = [str(s) for s in runs["study"]] if not runs.empty else []
    known = split_seeds is not None and all(split_seeds.get(s) is not None for s in studies)
    split = split_design(split_seeds.get(s) for s in studies) if split_seeds is not None else SPLIT_UNKNOWN
    if not comparable:
        why = "the studies differ in more than strategy and seed"
        return Design(False, False, split, f"no test: {why}", f"No ranks: {why}.")
    if runs.empty or runs["strategy"].nunique() < 2:
        return Design(False, False, split, "one strategy: nothing to test", "No ranks: one strategy.")
    ranked = complete_blocks(runs, "seed")
    rank_reason = (
        ""
        if ranked
        else f"No ranks: ranks within a seed need every seed to hold one run of each strategy, and "
        f"{incomplete_block(runs, 'seed')}."
    )
    if not known:
        return Design(
            False,
            ranked,
            split,
            "the runs do not record their data split, so they are taken as independent",
            rank_reason,
        )
    assert split_seeds is not None
    block_of = pd.Series([split_seeds[s] for s in studies], index=runs.index)
    if complete_blocks(runs, block_of):
        blocks: dict[str, Hashable] = {s: split_seeds[s] for s in studies}
        return Design(
            True,
            ranked,
            split,
            "paired: within a seed every strategy shares the holdout and the CV folds",
            rank_reason,
            blocks,
        )
    if split == SPLIT_SAME:
        reason = "every run uses the same data split, so no runs pair up: they are taken as independent"
    else:
        reason = (
            "not paired: a paired test needs one run of each strategy per split seed, and "
            f"{incomplete_block(runs, block_of).replace('seed', 'split seed', 1)}"
        )
    return Design(False, ranked, split, reason, rank_reason)


# ------------------------------------------------------------------------------ comparability
#: What compared studies must share: (what people read, the key of a ``design_record``).
#: Strategy, seed, split and sampler seeds are what an experiment varies; the grid points and
#: start-up trials belong to a strategy; name and workers do not change what is measured.
COMPARED_FIELDS: tuple[tuple[str, str], ...] = (
    ("dataset", "dataset"),
    ("target", "target"),
    ("task", "task"),
    ("metric", "metric"),
    ("metric direction", "direction"),
    ("search space", "space"),
    ("CV folds", "folds"),
    ("CV repeats", "cv_repeats"),
    ("test size", "test_size"),
    ("budget", "budget"),
    ("pruner", "pruner"),
    ("positive class", "pos_label"),
    ("kept columns", "keep_columns"),
    ("trial time limit", "trial_timeout"),
)


def design_record(attrs: Mapping[str, Any], direction: str | None = None) -> dict[str, Any]:
    """A study's stored spec (``hpdash.attrs.spec_of``) with what was resolved when it was
    created: the dataset's SHA-256, the task, the metric and the search space (``hpdash.*``
    user attrs), and the study's ``direction``. What ``differences`` compares."""
    spec = dict(study_attrs.spec_of(attrs))
    record: dict[str, Any] = {**spec, "direction": direction}
    if attrs.get(study_attrs.DATASET):
        record["dataset_sha256"] = str(attrs[study_attrs.DATASET])
    if attrs.get(study_attrs.TASK):
        record["task"] = str(attrs[study_attrs.TASK])
    metric = study_attrs.metric_of(attrs)
    if metric:
        record["metric"] = metric
    if attrs.get(study_attrs.SPACE):
        record["resolved_space"] = attrs[study_attrs.SPACE]
    return record


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(value: Any, limit: int = 40) -> str:
    text = "none" if value is None else value if isinstance(value, str) else _canonical(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _facts(spec: Mapping[str, Any], resolved_spaces: bool) -> dict[str, tuple[Any, str]]:
    """Each compared field of one spec: (value to compare, how to show it)."""
    raw_cv = spec.get("cv")
    cv: Mapping[str, Any] = raw_cv if isinstance(raw_cv, Mapping) else {}
    sha = spec.get("dataset_sha256")
    dataset = (sha, f"SHA-256 {str(sha)[:12]}…") if sha else (spec.get("dataset"), _short(spec.get("dataset")))
    model = spec.get("model")
    models = [model] if isinstance(model, str) else list(model or [])
    space = spec.get("resolved_space") if resolved_spaces else spec.get("space")
    n_trials, timeout = spec.get("n_trials"), spec.get("timeout")
    budget = " or ".join(
        part
        for part in (f"{n_trials} trials" if n_trials is not None else "", f"{timeout:g} s" if timeout else "")
        if part
    )
    keep = spec.get("keep_columns")
    facts: dict[str, tuple[Any, str]] = {
        "dataset": dataset,
        "space": ((sorted(models), space), ", ".join(models) or "none"),
        "folds": (cv.get("folds"), _short(cv.get("folds"))),
        "cv_repeats": (cv.get("repeats", 1 if cv else None), _short(cv.get("repeats", 1 if cv else None))),
        "budget": ((n_trials, timeout), budget or "none"),
        "keep_columns": (sorted(keep) if keep else None, f"{len(keep)} columns" if keep else "none"),
    }
    for key in ("target", "task", "metric", "direction", "test_size", "pruner", "pos_label", "trial_timeout"):
        facts[key] = (spec.get(key), _short(spec.get(key)))
    return facts


def differences(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What differs between the compared studies in anything but strategy and seed.

    ``specs``: each study's stored spec as plain data, best a ``design_record`` (which adds the
    dataset's SHA-256, the resolved task, metric and search space, and the direction). One entry
    per field that differs, in ``COMPARED_FIELDS`` order: "dataset: SHA-256 1a2b… vs SHA-256
    9f8e…", "budget: 3 trials vs 10 trials", "search space: different ranges of k_nearest_neighbors".
    Empty when the studies are comparable.
    """
    if len(specs) < 2:
        return []
    resolved = all(s.get("resolved_space") for s in specs)
    facts = [_facts(s, resolved) for s in specs]
    out = []
    for label_, key in COMPARED_FIELDS:
        seen: dict[str, str] = {}
        for f in facts:
            value, shown = f[key]
            seen.setdefault(_canonical(value), shown)
        if len(seen) < 2:
            continue
        shown_values = list(dict.fromkeys(seen.values()))
        if key == "space" and len(shown_values) == 1:
            text = f"different ranges of {shown_values[0]}"
        elif key == "keep_columns" and len(shown_values) == 1:
            text = "different columns kept"
        else:
            text = " vs ".join(shown_values[:3]) + (
                f" (and {len(shown_values) - 3} more)" if len(shown_values) > 3 else ""
            )
        out.append(f"{label_}: {text}")
    return out


# ------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class FrameDesign:
    """What an experiment frame cannot hold in its columns: each study's split seed, what
    differs between the studies, and the metric. Kept in ``frame.attrs[FRAME_DESIGN]``; pandas
    deep-copies ``attrs`` on every operation, so this copies as itself (it is never changed)."""

    split_seeds: Mapping[str, int | None]
    differences: tuple[str, ...] = ()
    metric: str | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> FrameDesign:
        return self
