"""Spec parsing: every field checked, unknown keys rejected, YAML round trip."""

import pytest

from hpdash.errors import SpecError
from hpdash.spec import StudySpec, check_name, load_spec, parse_spec

BASE = {"name": "s1", "dataset": "sklearn:iris", "target": "target", "model": "random_forest"}


def test_defaults_fill_in() -> None:
    spec = parse_spec(BASE)
    assert spec.strategy == "tpe" and spec.n_trials == 50 and spec.folds == 5 and spec.repeats == 1
    assert spec.models == ["random_forest"]


def test_yaml_round_trip(tmp_path) -> None:
    spec = parse_spec({**BASE, "model": ["svm", "ridge"], "cv": {"folds": 3, "repeats": 2}})
    path = tmp_path / "s.yaml"
    path.write_text(spec.to_yaml())
    again = load_spec(path)
    assert again == spec and again.models == ["svm", "ridge"] and again.repeats == 2


def test_single_item_model_list_becomes_key() -> None:
    assert parse_spec({**BASE, "model": ["svm"]}).model == "svm"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "Unknown spec key(s): colour"),
        ({"strategy": "annealing"}, "Unknown strategy 'annealing'"),
        ({"pruner": "eager"}, "Unknown pruner"),
        ({"task": "clustering"}, "Unknown task"),
        ({"n_trials": 0}, "'n_trials' must be between 1"),
        ({"n_trials": -5}, "'n_trials' must be between 1"),
        ({"n_trials": "ten"}, "'n_trials' must be a whole number"),
        ({"n_trials": None, "timeout": None}, "Set a budget"),
        ({"timeout": -1}, "'timeout' must be a positive number"),
        ({"cv": {"folds": 1}}, "'folds' must be between 2"),
        ({"cv": {"folds": 5, "shuffle": True}}, "'cv' must look like"),
        ({"test_size": 1.5}, "'test_size' must be a fraction"),
        ({"grid_points": 1}, "'grid_points' must be between 2"),
        ({"workers": 0}, "'workers' must be between 1"),
        ({"model": []}, "needs 'model'"),
        ({"model": ["svm", "svm"]}, "same model twice"),
        ({"model": 3}, "'model' must be a registry key"),
        ({"name": "../etc/passwd"}, "Invalid study name"),
        ({"name": "<script>alert(1)</script>"}, "Invalid study name"),
        ({"name": "x" * 101}, "Invalid study name"),
        ({"space": ["max_depth"]}, "'space' must map"),
        ({"seed": True}, "'seed' must be a whole number"),
    ],
)
def test_invalid_specs_name_the_problem(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change})
    assert message in str(err.value)


def test_missing_required_key() -> None:
    with pytest.raises(SpecError, match="needs 'target'"):
        parse_spec({k: v for k, v in BASE.items() if k != "target"})


def test_bad_yaml_and_non_mapping() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec("name: [unclosed\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec("- a\n- b\n")
    with pytest.raises(SpecError, match="not found"):
        load_spec("nope/missing.yaml")


def test_yaml_is_never_executed() -> None:
    with pytest.raises(SpecError):
        load_spec("name: !!python/object/apply:os.system ['echo hacked']\n")


def test_grid_without_n_trials_is_allowed() -> None:
    spec = parse_spec({**BASE, "strategy": "grid", "n_trials": None})
    assert spec.n_trials is None


def test_replace_revalidates() -> None:
    spec = parse_spec(BASE)
    assert spec.replace(workers=3).workers == 3
    with pytest.raises(SpecError):
        spec.replace(workers=-1)


def test_check_name_accepts_safe_names() -> None:
    assert check_name("penguins-rf_tpe.v2") == "penguins-rf_tpe.v2"
    assert isinstance(parse_spec(BASE), StudySpec)


# -- bounded YAML -----------------------------------------------------------------------------
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

from hpdash import spec as spec_module  # noqa: E402
from hpdash.spec import load_yaml_text  # noqa: E402

SPEC_YAML = "name: s1\ndataset: sklearn:iris\ntarget: target\nmodel: random_forest\n"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic alias bomb: each level lists the previous one ``width`` times."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC_YAML + "# " + "x" * spec_module.MAX_YAML_CHARS, "characters long; the limit is 1,000,000"),
        ("a: " + "[" * 100_000 + "]" * 100_000, "more than 50 levels deep (at line 1); the limit is 50"),
        (
            "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n",
            "more than 50 levels deep (at line 51)",
        ),
        (billion_laughs(), "the limit is 100,000"),
        (
            "a: &a [" + ", ".join(["x"] * 2000) + "]\nb: [" + ", ".join(["*a"] * 49) + "]\n",
            "expands to more than 100,000 values",
        ),
        ("a: &a 1\nb: [" + ", ".join(["*a"] * 51) + "]\n", "more than 50 aliases (*name); the limit is 50"),
        ("a: [" + ", ".join(["1"] * 100_001) + "]\n", "has more than 100,000 values; the limit is 100,000"),
        ("a: &a [1, *a]\n", "alias *a refers to a value that contains it"),
        ("a: &a {b: *a}\n", "alias *a refers to a value that contains it"),
        (SPEC_YAML + "timeout: .inf\n", "not finite at 'timeout': .inf"),
        (SPEC_YAML + "timeout: -.inf\n", "not finite at 'timeout': -.inf"),
        (SPEC_YAML + "timeout: 1.0e+999\n", "not finite at 'timeout': .inf"),
        (SPEC_YAML + "n_trials: .nan\n", "not finite at 'n_trials': .nan"),
        (SPEC_YAML + "space: {max_depth: {type: int, low: 1, high: .inf}}\n", "not finite at 'space.max_depth.high'"),
        (
            SPEC_YAML + "space: {criterion: {type: categorical, choices: [gini, .NaN]}}\n",
            "not finite at 'space.criterion.choices[1]'",
        ),
        (SPEC_YAML + "seed: " + "9" * 5000 + "\n", "cannot be read (Exceeds the limit (4300 digits)"),
        (SPEC_YAML + "seed: 2021-13-45\n", "cannot be read (month must be in 1..12)"),
        ("a: *nowhere\n", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
    ids=[
        "huge",
        "deep_flow",
        "deep_block",
        "billion_laughs",
        "expanded_nodes",
        "many_aliases",
        "many_values",
        "self_list",
        "self_map",
        "inf",
        "minus_inf",
        "overflow",
        "nan",
        "inf_in_space",
        "nan_in_choices",
        "huge_int",
        "bad_date",
        "undefined_alias",
        "two_documents",
    ],
)
def test_yaml_limits_are_spec_errors_that_name_them(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(text)
    assert message in str(err.value), str(err.value)
    with pytest.raises(SpecError):
        load_yaml_text(text)


def test_yaml_within_the_limits_still_loads() -> None:
    text = SPEC_YAML.replace("model: random_forest\n", "") + textwrap.dedent("""\
        model: &m [svm, ridge]
        space:
          svm: {C: &range {type: float, low: 0.01, high: 100.0, log: true}}
          ridge: {alpha: *range}
        cv: {folds: 3}
        timeout: 60.5
        """)
    spec = load_spec(text)
    assert spec.models == ["svm", "ridge"] and spec.space["ridge"]["alpha"]["high"] == 100.0
    assert load_yaml_text("a: " + "[" * 49 + "]" * 49)["a"] is not None
    assert load_yaml_text("") is None
    assert load_yaml_text("v: " + ", ".join(["x"] * 50_000)) == {"v": ", ".join(["x"] * 50_000)}
    with pytest.raises(SpecError, match="must be YAML text, got bytes"):
        load_yaml_text(b"a: 1")  # type: ignore[arg-type]


def test_timeout_must_be_finite_in_a_mapping_too() -> None:
    for bad in (math.inf, math.nan):
        with pytest.raises(SpecError, match="'timeout' must be a positive number of seconds"):
            parse_spec({**BASE, "timeout": bad})


def test_spec_files_are_not_read_whole(tmp_path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(SPEC_YAML + "# " + "x" * (3 * spec_module.MAX_YAML_CHARS) + "\n")
    with pytest.raises(SpecError, match=r"big.yaml is longer than 1,000,000 characters"):
        load_spec(path)
    with pytest.raises(SpecError, match=r"is longer than 1,000,000 characters"):
        load_spec(str(path))


def test_one_line_yaml_longer_than_a_file_name_is_text() -> None:
    flow = "{" + ", ".join(f"{k}: {v}" for k, v in BASE.items()) + ", metric: " + "a" * 300 + "}"
    assert load_spec(flow).metric == "a" * 300
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec("a: [\x00")


#: Peak-memory helpers for a child process (Linux /proc; tests that use them skip elsewhere).
PEAK_HELPERS = '''
def peak_mb():
    """Peak resident memory of this process in MB: VmHWM, which a write of "5" to
    /proc/self/clear_refs resets (getrusage's ru_maxrss also counts the parent's memory)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
'''


def test_alias_bomb_is_refused_in_bounded_memory_and_time() -> None:
    """The nine-level bomb as the value of ``n_trials`` (9**9 = 387 million strings once
    expanded), in a fresh process: refused in well under 2 s and 100 MB. Unbounded, the safe
    loader builds it cheaply (aliases share objects) but the error message's repr of the value
    expands it: gigabytes and minutes."""
    levels = [f"&l0 [{', '.join(['lol'] * 9)}]"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = SPEC_YAML + "n_trials: [" + ", ".join(levels) + "]\n"
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak memory is read from Linux's /proc/self/status")
    script = PEAK_HELPERS + textwrap.dedent(f"""
        import json, time
        from hpdash.errors import SpecError
        from hpdash.spec import load_spec
        before = reset_peak()
        start = time.perf_counter()
        try:
            load_spec({text!r})
            message = None
        except SpecError as exc:
            message = str(exc)
        seconds = time.perf_counter() - start
        print(json.dumps({{"message": message, "seconds": seconds, "mb": peak_mb() - before}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["message"] and "limit is 100,000" in result["message"], result
    assert result["seconds"] < 2 and result["mb"] < 100, result


def test_text_from_a_browser_is_never_a_file_name(tmp_path) -> None:
    from hpdash.spec import load_spec_text

    path = tmp_path / "server.yaml"
    path.write_text(SPEC_YAML)
    assert load_spec(str(path)).name == "s1"  # the CLI reads a path
    with pytest.raises(SpecError, match="A spec must be a mapping"):
        load_spec_text(str(path))  # an upload whose content is a path stays text
    assert load_spec_text(SPEC_YAML).name == "s1"
    with pytest.raises(SpecError, match="not finite at 'timeout'"):
        load_spec_text(SPEC_YAML + "timeout: .inf\n")


# ------------------------------------------------------------------------------ split and sampler seeds
def test_split_and_sampler_seeds_follow_seed_unless_given() -> None:
    spec = parse_spec({**BASE, "seed": 4})
    assert (spec.seed, spec.split_seed, spec.sampler_seed) == (4, 4, 4)
    assert isinstance(spec.split_seed, int) and isinstance(spec.sampler_seed, int)
    assert spec.seed_given("split_seed") is None and spec.seed_given("sampler_seed") is None
    # not given: written as before these keys existed, and they keep following seed
    assert "split_seed" not in spec.to_dict() and "sampler_seed" not in spec.to_dict()
    moved = spec.replace(seed=9)
    assert (moved.split_seed, moved.sampler_seed) == (9, 9)
    # null is "not given"
    assert parse_spec({**BASE, "seed": 4, "split_seed": None}) == spec


def test_given_split_and_sampler_seeds_are_kept_and_round_trip(tmp_path) -> None:
    spec = parse_spec({**BASE, "seed": 1, "split_seed": 7, "sampler_seed": 0})
    assert (spec.seed, spec.split_seed, spec.sampler_seed) == (1, 7, 0)
    data = spec.to_dict()
    assert data["split_seed"] == 7 and data["sampler_seed"] == 0 and data["seed"] == 1
    assert parse_spec(data) == spec
    path = tmp_path / "s.yaml"
    path.write_text(spec.to_yaml())
    again = load_spec(path)
    assert again == spec and (again.split_seed, again.sampler_seed) == (7, 0)
    # a given seed stays where it is when seed moves; a seed that follows moves with it
    half = parse_spec({**BASE, "seed": 1, "split_seed": 7})
    moved = half.replace(seed=3)
    assert (moved.split_seed, moved.sampler_seed) == (7, 3)
    # given equal to seed is still given: it is written, and does not move with seed
    same = parse_spec({**BASE, "seed": 2, "sampler_seed": 2})
    assert same.to_dict()["sampler_seed"] == 2 and same.replace(seed=5).sampler_seed == 2
    assert same != parse_spec({**BASE, "seed": 2})


def test_a_stored_spec_from_before_the_seed_keys_loads_unchanged() -> None:
    old = parse_spec({**BASE, "seed": 3}).to_dict()
    assert "split_seed" not in old
    assert parse_spec(old).to_dict() == old
    assert parse_spec(old).split_seed == parse_spec(old).sampler_seed == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"split_seed": "one"}, "'split_seed' must be a whole number, got 'one'."),
        ({"sampler_seed": 1.5}, "'sampler_seed' must be a whole number, got 1.5."),
        ({"split_seed": True}, "'split_seed' must be a whole number, got True."),
        ({"sampler_seed": -1}, "'sampler_seed' must be between 0 and 4294967295, got -1."),
        ({"split_seed": 2**32}, "'split_seed' must be between 0 and 4294967295, got 4294967296."),
    ],
)
def test_invalid_split_or_sampler_seed_names_the_problem_and_the_fix(change: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change})
    key = next(iter(change))
    assert message in str(err.value)
    assert f"Give a whole number from 0 to 4294967295, or leave '{key}' out to use 'seed'." in str(err.value)


def test_an_unknown_seed_key_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, "data_seed": 1})
    assert "Unknown spec key(s): data_seed" in str(err.value)
    assert "sampler_seed" in str(err.value) and "split_seed" in str(err.value)
    with pytest.raises(KeyError):
        parse_spec(BASE).seed_given("seed")


def test_keep_predictions_defaults_to_true_and_round_trips(tmp_path) -> None:
    """Out-of-fold predictions are kept unless the spec says false; a stored spec from before
    the key reads as keeping them; anything but true/false is refused."""
    assert parse_spec(BASE).keep_predictions is True
    assert parse_spec({**BASE, "keep_predictions": None}).keep_predictions is True
    off = parse_spec({**BASE, "keep_predictions": False})
    assert off.keep_predictions is False and off.to_dict()["keep_predictions"] is False
    path = tmp_path / "s.yaml"
    path.write_text(off.to_yaml())
    assert "keep_predictions: false" in path.read_text() and load_spec(path) == off
    assert off.replace(seed=2).keep_predictions is False
    for value in ("no", 0, 1, "false"):
        with pytest.raises(SpecError, match=r"^'keep_predictions' must be true or false, got "):
            parse_spec({**BASE, "keep_predictions": value})


def test_warm_start_is_checked_and_written_only_when_given() -> None:
    base = {"name": "w", "dataset": "sklearn:iris", "target": "target", "model": "k_nearest_neighbors"}
    assert "warm_start" not in parse_spec(base).to_dict()
    warm = parse_spec({**base, "warm_start": {"study": "past", "trials": 3}})
    assert warm.warm_start == {"study": "past", "trials": 3}
    assert parse_spec(warm.to_dict()) == warm
    for bad, message in (
        ({"study": "past"}, "must look like"),
        ({"study": "", "trials": 3}, "must be a study name"),
        ({"study": "past", "trials": 0}, "whole number from 1"),
        ({"study": "past", "trials": True}, "whole number from 1"),
        ("past", "must look like"),
    ):
        with pytest.raises(SpecError, match=message):
            parse_spec({**base, "warm_start": bad})
