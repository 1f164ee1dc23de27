"""The New study form's data: spec -> form keys -> the same spec, and the browser-spec rule."""

from __future__ import annotations

import pytest

from hpdash.errors import SpecError
from hpdash.spec import parse_spec
from hpdash.ui import study_form

SPEC = {
    "name": "form-round-trip",
    "dataset": "sample:iris",
    "target": "target",
    "task": "classification",
    "model": "random_forest",
    "space": {"n_estimators": {"type": "int", "low": 10, "high": 50}},
    "strategy": "tpe",
    "n_trials": 12,
    "timeout": 120.0,
    "cv": {"folds": 4, "repeats": 2},
    "metric": "balanced_accuracy",
    "test_size": 0.25,
    "seed": 7,
    "split_seed": 3,
    "sampler_seed": 11,
    "pruner": "median",
    "workers": 1,
    "startup_trials": 4,
    "trial_timeout": 30.0,
}


def _form_after(values: dict) -> dict:
    """The session keys after a prefill, with the defaults the page sets first."""
    state: dict = {"ns_space_version": 0, "ns_space_init": {}, "ns_startup_auto": True, "ns_grid_points": 5}
    study_form.apply_prefill(state, values)
    return state


def test_a_loaded_spec_survives_the_form_unchanged() -> None:
    spec = parse_spec(SPEC)
    state = _form_after(spec.to_dict())
    model = state["ns_models"][0]
    again = study_form.spec_values(
        state,
        name=state["ns_name"],
        task=state["ns_task"],
        spaces={model: state["ns_space_init"][model]},
        model_based=True,
        pos_label=None,
        keep_columns=[],
    )
    assert parse_spec(again) == spec
    assert (parse_spec(again).split_seed, parse_spec(again).sampler_seed) == (3, 11)
    assert study_form.carried_note(state) == (
        "From the loaded spec: split_seed = 3, sampler_seed = 11 (the Seed field sets only what these leave to it)."
    )


def test_a_prefill_without_seeds_carries_none() -> None:
    state = _form_after({"dataset": "sample:iris", "target": "target"})
    assert state["ns_split_seed"] is None and state["ns_sampler_seed"] is None
    assert study_form.carried_note(state) is None
    assert state["ns_space_version"] == 1


def test_a_browser_spec_may_name_only_an_offered_dataset() -> None:
    offered = {"sample:iris": "Iris (sample)"}
    text = parse_spec(SPEC).to_yaml().encode()
    assert study_form.read_browser_spec(text, offered)["dataset"] == "sample:iris"
    on_disk = parse_spec({**SPEC, "dataset": "/etc/passwd"}).to_yaml().encode()
    with pytest.raises(SpecError, match="not a bundled sample or an uploaded dataset. Upload the table"):
        study_form.read_browser_spec(on_disk, offered)


def test_an_oversized_browser_spec_is_refused_before_it_is_parsed() -> None:
    big = b"name: x\n" + b"#" * (study_form.MAX_YAML_CHARS + 1)
    with pytest.raises(SpecError, match="a spec may have at most .* A spec lists settings, not data"):
        study_form.read_browser_spec(big, {})
