"""The study user attr keys are named once, in hpdash/attrs.py."""

import re
from pathlib import Path

from hpdash import attrs, runner, strategies

ROOT = Path(__file__).resolve().parents[1]
#: ``"hpdash.<word>"`` string literals; module paths that happen to match are not attr keys.
LITERAL = re.compile(r"[\"']hpdash\.[a-z_]+\.?[\"']")
NOT_KEYS = {'"hpdash.db"', '"hpdash.objective"'}


def test_no_attr_key_is_spelled_outside_attrs_module() -> None:
    found = {}
    for path in [*(ROOT / "hpdash").rglob("*.py"), *(ROOT / "pages").glob("*.py")]:
        if path.name == "attrs.py":
            continue
        hits = set(LITERAL.findall(path.read_text(encoding="utf-8"))) - NOT_KEYS
        if hits:
            found[str(path.relative_to(ROOT))] = sorted(hits)
    assert found == {}, f"use the names in hpdash/attrs.py: {found}"


def test_runner_and_strategies_use_the_same_keys() -> None:
    assert runner.SPEC_ATTR == attrs.SPEC and runner.STATE_ATTR == attrs.STATE
    assert runner.WORKER_PREFIX == attrs.WORKER_PREFIX and strategies.SAMPLER_ATTR == attrs.SAMPLER
    keys = [v for k, v in vars(attrs).items() if k.isupper()]
    assert len(keys) == len(set(keys)) and all(k.startswith("hpdash.") for k in keys)


def test_readers() -> None:
    assert attrs.spec_of({}) == {} and attrs.spec_of({attrs.SPEC: "not a dict"}) == {}
    assert attrs.metric_of({attrs.METRIC: "f1", attrs.SPEC: {"metric": "accuracy"}}) == "f1"
    assert attrs.metric_of({attrs.SPEC: {"metric": "accuracy"}}) == "accuracy"
    assert attrs.metric_of({}) is None
