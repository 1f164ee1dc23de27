"""The New study form's data: spec -> form keys -> the same spec, and the browser-spec rule."""

from __future__ import annotations

import pytest

from hpdash.errors import SpecError
from hpdash.spec import check_expanded_size, parse_spec
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


# ------------------------------------------------------------------------------ bounded uploads
def _amplifying_bomb(k: int = 25, size: int = 900_000) -> bytes:
    """A 0.9 MB spec that passes the alias count: one long string, a list of ``k`` aliases of
    it, and ``k`` hyperparameters sharing that list, so ``k * k`` copies once written out."""
    text = "name: bomb\ndataset: sklearn:iris\ntarget: target\nmodel: decision_tree\nspace:\n"
    text += "  criterion:\n    type: categorical\n    choices: &L [&s " + "x" * size + ", "
    text += ", ".join(["*s"] * (k - 1)) + "]\n"
    text += "".join(f"  h{i}:\n    type: categorical\n    choices: *L\n" for i in range(k - 1))
    return text.encode()


def _billion_laughs(levels: int = 9) -> bytes:
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


BOMBS = {
    "amplifying": (_amplifying_bomb(), "once its YAML aliases .* are replaced by what they refer to"),
    "billion laughs": (_billion_laughs(), "aliases"),
    "deep": (b"name: deep\nspace: " + b"[" * 200 + b"]" * 200 + b"\n", "levels deep"),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_yaml_bomb_from_the_browser_is_refused_quickly_and_small(kind: str) -> None:
    import time
    import tracemalloc

    data, message = BOMBS[kind]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SpecError, match=message):
            study_form.read_browser_spec(data, {"sklearn:iris": "Iris"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 30 * 2**20, f"{kind}: {peak / 2**20:.0f} MB"


def test_expanded_size_counts_every_shared_value_and_stops_early() -> None:
    long = "y" * 1000
    shared = [long] * 10
    assert check_expanded_size({"a": shared}, limit=20_000) == {"a": shared}
    with pytest.raises(SpecError, match="more than 5,000 characters once its YAML aliases"):
        check_expanded_size({"a": shared}, limit=5_000)
    many = [shared] * 10**6  # a million references to one list: refused after a few
    with pytest.raises(SpecError):
        check_expanded_size(many, limit=50_000)
    # an ordinary spec is far below the limit
    assert check_expanded_size(parse_spec(SPEC).to_dict())


# ------------------------------------------------------------------------------ read-only
def test_a_read_only_dashboard_loads_no_spec_file(monkeypatch) -> None:
    """Refused before anything is parsed: not the spec, not a bomb."""
    from hpdash.errors import ReadOnlyError

    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    for data in (parse_spec(SPEC).to_yaml().encode(), _amplifying_bomb(), b"x" * (study_form.MAX_YAML_CHARS + 1)):
        with pytest.raises(ReadOnlyError, match="so you cannot load a spec file into the form"):
            study_form.read_browser_spec(data, {"sample:iris": "Iris"})


def test_the_new_study_page_of_a_viewer_runs_no_smoke_fit(data_dir, monkeypatch) -> None:
    """Read-only: the spec uploader and both launches are off, and the page never calls the
    smoke fit (it would fit models on the server): it says why there is no estimate."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from hpdash import objective

    def no_smoke_fit(*args, **kwargs):
        raise AssertionError("the smoke fit ran on a read-only dashboard")

    monkeypatch.setattr(objective, "smoke_check", no_smoke_fit)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(str(root / "pages" / "new_study.py")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="ns_launch").disabled and at.button(key="ns_cmp_launch").disabled
    captions = " ".join(c.value for c in at.caption)
    assert "No run-time estimate" in captions and "it loads no spec file" in captions
    assert not [i for i in at.info if "Estimated run time" in i.value]
    uploader = at.file_uploader(key="ns_spec_upload")
    assert uploader.proto.disabled and uploader.proto.max_upload_size_mb == 1


def test_a_loaded_warm_start_survives_the_form_and_is_named() -> None:
    spec = parse_spec({**SPEC, "warm_start": {"study": "past", "trials": 4}})
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
    assert study_form.carried_note(state) == (
        "From the loaded spec: split_seed = 3, sampler_seed = 11 (the Seed field sets only what these leave to it); "
        "a warm start from the best 4 trials of study 'past'."
    )
