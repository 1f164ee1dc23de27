"""The Streamlit app through streamlit.testing (AppTest): every page, empty and populated."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from app_text import shown
from streamlit.testing.v1 import AppTest

from hpdash import datasets, runner, strategies

ROOT = Path(__file__).resolve().parents[1]
# The Streamlit script app.py serves (app.py itself is the ASGI app around it).
APP = str(ROOT / "hpdash" / "ui" / "main.py")
PAGES = ["pages/home.py", "pages/datasets.py", "pages/new_study.py", "pages/studies.py", "pages/study.py"]
TIMEOUT = 60


def _app(page: str | None = None, study: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if study is not None:
        at.query_params["study"] = study
    at.run()
    if page and page != "pages/home.py":
        at.switch_page(str(ROOT / page)).run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "info", "warning", "error", "success", "caption", "title", "subheader"):
        parts += [shown(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory, odd_studies_factory) -> tuple[Path, dict[str, str]]:
    """A data directory with finished, one-trial, zero-trial, all-failed and missing-data studies."""
    path = tmp_path_factory.mktemp("populated") / "data"
    path.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPDASH_DATA_DIR", str(path))
        mp.delenv("HPDASH_STORAGE", raising=False)
        names = odd_studies_factory()
    return path, names


@pytest.fixture
def populated_dir(populated, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    path, names = populated
    monkeypatch.setenv("HPDASH_DATA_DIR", str(path))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    return names


# ------------------------------------------------------------------------------ empty state
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_empty(data_dir, page) -> None:
    at = _app(page)
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]


def test_empty_states_say_what_to_do(data_dir) -> None:
    assert "No studies yet" in _texts(_app("pages/home.py"))
    assert "No studies yet" in _texts(_app("pages/studies.py"))
    assert "No studies yet" in _texts(_app("pages/study.py"))
    assert "No uploaded datasets yet" in _texts(_app("pages/datasets.py"))


def test_sidebar_shows_storage(data_dir) -> None:
    at = _app()
    assert any(str(data_dir) in c.value for c in at.sidebar.code)


# (The server's start-up freeze of its imports is tested in tests/test_server.py.)


def test_deleted_study_link_is_explained(data_dir) -> None:
    at = _app("pages/study.py", study="gone-study")
    _no_exception(at)
    assert "no study named" in _texts(at).lower()


# ------------------------------------------------------------------------------ datasets
def test_upload_flow_stores_and_profiles(data_dir) -> None:
    frame = datasets.load_sample("iris")
    frame.insert(0, "id", range(len(frame)))
    at = _app("pages/datasets.py")
    at.file_uploader(key="ds_upload").set_value(("flowers.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    _no_exception(at)
    assert at.success and "flowers" in at.success[0].value
    stored = list((data_dir / "datasets").glob("*.csv"))
    assert len(stored) == 1
    assert at.selectbox(key="ds_pick").value == stored[0].stem
    # the id column is dropped with its reason, the task is inferred
    assert any("`id`" in m.value for m in at.markdown)
    assert any(m.label == "Task" and m.value == "classification" for m in at.metric)
    # the task override is honoured
    at.radio(key=f"ds_task_{stored[0].stem}").set_value("regression").run()
    _no_exception(at)
    # "New study with this dataset" prefills the form
    at.radio(key=f"ds_task_{stored[0].stem}").set_value("auto").run()
    at.button(key="ds_new_study").click().run()
    _no_exception(at)
    assert at.selectbox(key="ns_dataset").value == stored[0].stem
    assert at.selectbox(key="ns_target").value == "target"


def test_rejected_upload_shows_error_and_stores_nothing(data_dir) -> None:
    at = _app("pages/datasets.py")
    at.file_uploader(key="ds_upload").set_value(("broken.csv", b"\x1f\x8b\x08\x00garbage", "text/csv"))
    at.run()
    _no_exception(at)
    assert at.error, "a rejected file must show st.error"
    assert not list((data_dir / "datasets").glob("*.*"))


def test_dataset_used_by_a_study_cannot_be_deleted(populated_dir) -> None:
    at = _app("pages/datasets.py")
    _no_exception(at)
    assert at.button(key="ds_delete_disabled").disabled
    assert "Used by 1 studies" in _texts(at)


def test_unused_dataset_can_be_deleted(data_dir) -> None:
    stored = datasets.store_dataset(
        b"a,b,y\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(30)), "t.csv"
    )
    at = _app("pages/datasets.py")
    at.checkbox(key="ds_delete_confirm").check().run()
    at.button(key="ds_delete").click().run()
    _no_exception(at)
    assert datasets.find_stored(stored.sha256) is None


# ------------------------------------------------------------------------------ new study
def test_new_study_validation_errors_inline(data_dir) -> None:
    at = _app("pages/new_study.py")
    _no_exception(at)
    assert not at.error
    assert at.button(key="ns_launch").disabled is False
    at.text_input(key="ns_name").input("bad name!").run()
    assert any("Invalid study name" in e.value for e in at.error)
    assert at.button(key="ns_launch").disabled


def test_new_study_grid_preview_and_metric_filter(data_dir) -> None:
    at = _app("pages/new_study.py")
    at.selectbox(key="ns_strategy").set_value("grid").run()
    at.number_input(key="ns_grid_points").set_value(3).run()
    _no_exception(at)
    assert any("Grid preview" in e.label for e in at.expander)
    assert "accuracy" in at.selectbox(key="ns_metric").options
    assert "r2" not in at.selectbox(key="ns_metric").options
    assert any("Estimated run time" in i.value for i in at.info)
    # regression sample: regression metrics only
    at.selectbox(key="ns_dataset").set_value("sklearn:diabetes").run()
    _no_exception(at)
    assert "r2" in at.selectbox(key="ns_metric").options
    assert "accuracy" not in at.selectbox(key="ns_metric").options


def test_spec_yaml_upload_prefills_the_form(data_dir) -> None:
    yaml_text = (ROOT / "examples" / "iris-random-forest-tpe.yaml").read_bytes()
    at = _app("pages/new_study.py")
    at.file_uploader(key="ns_spec_upload").set_value(("spec.yaml", yaml_text, "application/x-yaml"))
    at.run()
    _no_exception(at)
    assert at.multiselect(key="ns_models").value == ["random_forest"]
    assert at.number_input(key="ns_n_trials").value == 20
    assert at.text_input(key="ns_name").value == "iris-random-forest-tpe"
    assert at.download_button(key="ns_download_spec")


def test_spec_upload_cannot_read_server_files(data_dir, tmp_path) -> None:
    """A spec naming a server path is refused: browser users may not read server files."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    yaml_text = (f"name: sneaky\ndataset: {secret}\ntarget: b\nmodel: decision_tree\n").encode()
    at = _app("pages/new_study.py")
    at.file_uploader(key="ns_spec_upload").set_value(("spec.yaml", yaml_text, "application/x-yaml"))
    at.run()
    _no_exception(at)
    assert any("not a bundled sample or an uploaded dataset" in e.value for e in at.error)
    assert not (data_dir / "datasets").exists() or not any((data_dir / "datasets").iterdir())


def test_launch_and_poll_until_finished(data_dir) -> None:
    at = _app("pages/new_study.py")
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.selectbox(key="ns_strategy").set_value("random").run()
    at.number_input(key="ns_n_trials").set_value(5)
    at.number_input(key="ns_folds").set_value(3)
    at.text_input(key="ns_name").input("apptest-launch").run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="ns_launch").click().run()
    _no_exception(at)
    assert at.query_params.get("study") in ("apptest-launch", ["apptest-launch"])
    assert [t.value for t in at.title] == ["apptest-launch"]
    # AppTest reruns the page it was switched to last; follow the app's switch
    at.switch_page(str(ROOT / "pages" / "study.py"))
    deadline = time.time() + 90
    while time.time() < deadline:
        state = runner.study_status(runner.load_study("apptest-launch")).state
        if state not in ("running", "created"):
            break
        time.sleep(1)
    at.run()
    _no_exception(at)
    assert state == "finished"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials done"] == "5 / 5"
    assert "finished" in metrics["State"]
    assert at.download_button(key="dl_trials")


# ------------------------------------------------------------------------------ populated
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_populated(populated_dir, page) -> None:
    _no_exception(_app(page))


@pytest.mark.parametrize("state", ["finished", "one_trial", "zero_trials", "all_failed", "missing_data"])
def test_study_page_odd_states(populated_dir, state) -> None:
    at = _app("pages/study.py", study=populated_dir[state])
    _no_exception(at)
    text = _texts(at)
    if state == "all_failed":
        assert "Every finished trial failed" in text
    if state == "zero_trials":
        assert "No trial has finished yet" in text
    if state == "one_trial":
        assert "Only one trial" in text
    if state == "missing_data":
        assert "missing" in text
    if state == "finished":
        assert at.download_button(key="dl_trials")
        assert at.download_button(key="dl_model_skops") and at.download_button(key="dl_model_joblib")
        assert at.code and "cross_val_score" in at.code[0].value


def test_notes_are_saved_and_escaped(populated_dir) -> None:
    name = populated_dir["finished"]
    at = _app("pages/study.py", study=name)
    at.text_area(key=f"note_{name}").input("**good** <script>alert(1)</script>").run()
    at.button(key="save_note").click().run()
    _no_exception(at)
    from hpdash.store import Catalogue

    assert "<script>" in Catalogue().get_note(name)
    # Shown as hpdash's own rendering of the note's Markdown (markup.note_html): the bold
    # kept, the script tag only as text.
    shown = [h for h in at.get("html") if "good" in h.proto.body]
    assert shown and "<strong>good</strong>" in shown[0].proto.body
    assert "<script>" not in shown[0].proto.body and "&lt;script&gt;" in shown[0].proto.body


def test_studies_table_filters_and_delete(populated_dir) -> None:
    at = _app("pages/studies.py")
    _no_exception(at)
    assert len(at.dataframe[0].value) == 5
    at.text_input(key="st_search").input("failed").run()
    assert len(at.dataframe[0].value) == 1
    at.text_input(key="st_search").input("").run()
    at.multiselect(key="st_states").set_value(["finished"]).run()
    assert set(at.dataframe[0].value["state"].str.contains("finished")) == {True}


def test_studies_delete_with_confirmation(data_dir) -> None:
    from hpdash.spec import parse_spec

    runner.create_study(
        parse_spec(
            {
                "name": "to-delete",
                "dataset": "sklearn:iris",
                "target": "target",
                "model": "decision_tree",
                "n_trials": 2,
                "cv": {"folds": 3},
            }
        )
    )
    at = _app("pages/studies.py")
    at.button(key="st_delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="st_delete_yes").click().run()
    _no_exception(at)
    assert not runner.study_exists("to-delete")


def test_home_quick_start_launches(data_dir) -> None:
    at = _app()
    at.button(key="quick_iris-random-forest").click().run()
    _no_exception(at)
    name = at.query_params.get("study")
    name = name[0] if isinstance(name, list) else name
    assert name and runner.study_exists(name)
    runner.stop_study(name)


def test_password_gate_shows_only_the_sign_in_form(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """First render under HPDASH_PASSWORD: the sign-in form and nothing of the app.

    Signing in (wrong, then right password, and shared links) is covered in a real browser by
    tests/e2e/test_security.py: AppTest does not re-run app.py after ``st.navigation`` has
    chosen a page, so it cannot follow the sign-in rerun.
    """
    monkeypatch.setenv("HPDASH_PASSWORD", "team-s3cret")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    _no_exception(at)
    assert at.text_input(key="login_password").label == "Password"
    assert [b.label for b in at.button] == ["Sign in"]
    assert "Parameters vs hyperparameters" not in _texts(at)
    assert not at.sidebar.code  # the storage URL is not shown either


def test_read_only_mode_disables_writes(populated_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    at = _app()
    _no_exception(at)
    assert any("Review-only dashboard" in i.value for i in at.sidebar.info)
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("quick_"))
    at = _app("pages/study.py", study=populated_dir["finished"])
    _no_exception(at)
    assert at.button(key="refit").disabled and at.button(key="save_note").disabled
    at = _app("pages/studies.py")
    _no_exception(at)
    assert at.button(key="st_delete").disabled


def test_compare_strategies_launches_an_experiment(data_dir) -> None:
    """New study -> Compare strategies: S x R studies are created and the Compare page opens."""
    from hpdash import experiments

    at = _app("pages/new_study.py")
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.number_input(key="ns_n_trials").set_value(4)
    at.number_input(key="ns_folds").set_value(3)
    at.text_input(key="ns_name").input("apptest-cmp").run()
    at.multiselect(key="ns_cmp_strategies").set_value(["random", "tpe"])
    at.number_input(key="ns_cmp_repeats").set_value(2).run()
    _no_exception(at)
    assert any("Experiment 'apptest-cmp': 4 studies" in i.value for i in at.info)
    at.button(key="ns_cmp_launch").click().run()
    _no_exception(at)
    exp = experiments.load_experiment("apptest-cmp")
    assert sorted(r.study for r in exp.runs) == [
        "apptest-cmp-random-s0",
        "apptest-cmp-random-s1",
        "apptest-cmp-tpe-s0",
        "apptest-cmp-tpe-s1",
    ]
    for run in exp.runs:
        runner.stop_study(run.study)


def test_an_experiment_with_no_name_typed_is_named_for_itself(data_dir) -> None:
    """With the name field empty, the experiment is "<data>-<model>-compare", not the form's
    suggested study name ("iris-k_nearest_neighbors-tpe", a strategy it need not have)."""
    from hpdash import experiments

    at = _app("pages/new_study.py")
    at.multiselect(key="ns_models").set_value(["k_nearest_neighbors"]).run()
    at.number_input(key="ns_n_trials").set_value(4)
    at.number_input(key="ns_folds").set_value(3)
    at.multiselect(key="ns_cmp_strategies").set_value(["random", "qmc"])
    at.number_input(key="ns_cmp_repeats").set_value(1).run()
    _no_exception(at)
    expected = "iris-k_nearest_neighbors-compare"
    shown = [i.value.replace("\\", "") for i in at.info]  # (names are shown Markdown-escaped)
    assert any(f"Experiment '{expected}': 2 studies" in v for v in shown), shown
    at.button(key="ns_cmp_launch").click().run()
    _no_exception(at)
    exp = experiments.load_experiment(expected)
    assert sorted(r.study for r in exp.runs) == [f"{expected}-qmc-s0", f"{expected}-random-s0"]
    for run in exp.runs:
        runner.stop_study(run.study)


# ------------------------------------------------------------------------------ performance
def _live(at: AppTest, name: str):
    """The session's LiveStudy (TrialsCache and derived data) of study ``name``."""
    from hpdash import config
    from hpdash.ui import common

    return at.session_state[common.LIVE_STUDIES_KEY][(config.storage_url(), name)]


def _importance_chart(at: AppTest):
    charts = [e for e in at.get("plotly_chart") if e.proto.id.endswith("-fig_importance")]
    return charts[0] if charts else None


def test_study_page_computes_importance_in_the_background(populated_dir) -> None:
    """Importance is computed off the page's run: "computing" until it is there, then the chart."""
    from hpdash import plots

    plots.clear_importance_cache()
    at = _app("pages/study.py", study=populated_dir["finished"])
    for _ in range(240):
        _no_exception(at)
        if _importance_chart(at) is not None:
            break
        assert any("Computing importance in the background" in i.value for i in at.info)
        time.sleep(0.25)
        at.run()
    chart = _importance_chart(at)
    assert chart is not None, "the importance never appeared"
    spec = chart.proto.spec
    assert "Hyperparameter importance" in spec and "n_neighbors" in spec
    at.run()  # cached now: shown at once, nothing left to poll
    assert _importance_chart(at) is not None
    assert not any("Computing importance" in i.value for i in at.info)


def test_study_page_importance_error_is_a_warning(populated_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpdash import plots

    def broken(*args, **kwargs):
        raise ValueError("no variance to explain")

    plots.clear_importance_cache()
    monkeypatch.setattr(plots, "_compute_importance", broken)
    at = _app("pages/study.py", study=populated_dir["finished"])
    for _ in range(240):
        _no_exception(at)
        if any("Importance could not be computed" in w.value for w in at.warning):
            break
        time.sleep(0.25)
        at.run()
    warning = [w.value for w in at.warning if "Importance could not be computed" in w.value]
    assert warning and "no variance to explain" in warning[0]
    assert _importance_chart(at) is None
    at.run()  # the failure is remembered: still a warning, not a new computation or a traceback
    _no_exception(at)
    assert any("no variance to explain" in w.value for w in at.warning)


def test_study_page_rerun_reuses_the_trials_cache(populated_dir) -> None:
    """A rerun re-reads nothing: the session keeps the study's TrialsCache and derived data."""
    from hpdash import results

    name = populated_dir["finished"]
    at = _app("pages/study.py", study=name)
    _no_exception(at)
    live = _live(at, name)
    cache = live.cache
    assert live.generation == 1  # one refresh read the trials; the header's and the page's read nothing
    at.run()
    _no_exception(at)
    again = _live(at, name)
    assert again is live and again.cache is cache
    assert cache.last_changed == 0 and live.generation == 1
    frame = cache.refresh()
    pd.testing.assert_frame_equal(frame, results.trials_frame(runner.load_study(name)))
    assert len(frame) == 6
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials done"] == "6 / 6"


def test_study_page_new_cache_for_a_recreated_study(data_dir) -> None:
    """A study deleted and re-created under the same name gets a new TrialsCache."""
    from hpdash.spec import parse_spec

    raw = {
        "name": "again",
        "dataset": "sklearn:iris",
        "target": "target",
        "model": "decision_tree",
        "n_trials": 2,
        "cv": {"folds": 3},
    }
    runner.create_study(parse_spec(raw))
    at = _app("pages/study.py", study="again")
    _no_exception(at)
    first = _live(at, "again")
    assert {m.label: m.value for m in at.metric}["Trials done"] == "0 / 2"
    runner.delete_study("again")
    runner.create_study(parse_spec({**raw, "n_trials": 3}))
    at.run()
    _no_exception(at)
    second = _live(at, "again")
    assert second is not first and second.cache is not first.cache
    assert second.cache.study._study_id == runner.load_study("again")._study_id
    assert {m.label: m.value for m in at.metric}["Trials done"] == "0 / 3"


def test_importance_requests_do_not_queue_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a running study's completed count moves, the page does not ask for a computation
    per poll (each is a background job): one per wait, and a failure is asked for once."""
    from hpdash.ui import common

    state = {"count": 5, "now": 100.0, "ready": set(), "fail": set()}
    calls: list[int] = []

    def fake_async(study, method, seed, source=None):
        calls.append(state["count"])
        if state["count"] in state["fail"]:
            raise ValueError("boom")
        return pd.DataFrame({"param": ["x"], "importance": [1.0]}) if state["count"] in state["ready"] else None

    monkeypatch.setattr(
        common.plots,
        "importance_cache_key",
        lambda study, method, seed, source=None: ("url", 1, method, seed, state["count"]),
    )
    monkeypatch.setattr(common.plots, "importance_data_async", fake_async)
    monkeypatch.setattr(common, "_clock", lambda: state["now"])
    live = common.LiveStudy(identity=(), cache=None)

    def ask() -> common.Importance:
        return live.importance(None, "ped_anova", 0)

    imp = ask()
    assert imp.data is None and not imp.current and imp.error is None and calls == [5]
    ask()  # polling the same count costs nothing new
    assert calls == [5, 5]
    state["count"], state["now"] = 6, state["now"] + 1  # the count moves on while 5 computes
    assert ask().data is None and calls == [5, 5]
    state["now"] += common.IMPORTANCE_RETRY_SECONDS  # after the wait: one request, for 6
    ask()
    assert calls == [5, 5, 6]
    state["ready"].add(6)
    imp = ask()
    assert imp.current and list(imp.data["param"]) == ["x"] and calls == [5, 5, 6, 6]
    assert ask().current and calls == [5, 5, 6, 6]  # a rerun: no call at all
    state["count"], state["fail"] = 7, {7}
    imp = ask()
    assert imp.error == "boom" and not imp.current and imp.data is not None  # the older result
    assert ask().error == "boom" and calls == [5, 5, 6, 6, 7]  # remembered, not asked again
    state["count"], state["ready"] = 8, {8}  # more trials: asked again, and it works
    assert ask().current and calls == [5, 5, 6, 6, 7, 8]


# ------------------------------------------------------------------------------ what a new user hit
def _yes_no_table() -> bytes:
    """60 rows: two numbers, a name column with 45 distinct values (dropped by default as
    many-valued text) and a yes/no target; rows 0 and 1 have no target."""
    lines = ["x1,x2,name,subscribed"]
    for i in range(60):
        label = "" if i < 2 else ("yes" if i % 3 == 0 else "no")
        lines.append(f"{i % 7},{(i * 13) % 11},person{i % 45},{label}")
    return ("\n".join(lines) + "\n").encode()


def test_choosing_grid_runs_the_whole_grid(data_dir) -> None:
    at = _app("pages/new_study.py")
    assert at.number_input(key="ns_n_trials").value == 20
    at.selectbox(key="ns_strategy").set_value("grid").run()
    _no_exception(at)
    assert at.number_input(key="ns_n_trials").value == 0  # every point, not a random 20
    captions = _texts(at)
    assert "Grid search runs the whole grid: all" in captions and "combinations once" in captions
    expander = next(e for e in at.expander if "Grid preview" in e.label)
    values = " ".join(expander.dataframe[0].value["values"])
    assert "0.0316227766" not in values and "0.03162" in values  # rounded grid values
    at.selectbox(key="ns_strategy").set_value("random").run()
    assert at.number_input(key="ns_n_trials").value == 20  # 0 would mean "no limit" here


def test_new_spec_fields_reach_the_spec(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive class for f1 on yes/no labels, a kept text column, start-up trials and a
    per-trial time limit go into the spec the form launches."""
    from hpdash import views

    stored = datasets.store_dataset(_yes_no_table(), "bank.csv")
    launched = []
    monkeypatch.setattr(views, "start_study", lambda spec, storage=None: launched.append(spec) or [])
    at = _app("pages/new_study.py")
    at.selectbox(key="ns_dataset").set_value(stored.sha256).run()
    at.selectbox(key="ns_target").set_value("subscribed").run()
    _no_exception(at)
    assert "2 of 60 rows have no value in the target 'subscribed'" in _texts(at)
    keep = at.multiselect(key="ns_keep_columns")
    assert len(keep.options) == 1 and keep.options[0].startswith("name: ")  # with why it is dropped
    assert "ns_pos_label" not in [s.key for s in at.selectbox]  # accuracy needs no positive class
    at.selectbox(key="ns_metric").set_value("f1").run()
    assert at.selectbox(key="ns_pos_label").value == "yes"
    assert at.selectbox(key="ns_pos_label").options == ["no", "yes"]
    at.multiselect(key="ns_keep_columns").set_value(["name"]).run()
    at.multiselect(key="ns_models").set_value(["decision_tree"]).run()
    at.selectbox(key="ns_strategy").set_value("tpe").run()
    assert at.number_input(key="ns_startup_trials").value == strategies.default_startup_trials(20) == 5
    at.number_input(key="ns_startup_trials").set_value(4).run()
    at.number_input(key="ns_trial_timeout").set_value(30.0).run()
    at.number_input(key="ns_folds").set_value(3).run()
    at.text_input(key="ns_name").input("bank-f1").run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    at.button(key="ns_launch").click().run()
    (spec,) = launched
    assert spec.pos_label == "yes" and spec.metric == "f1"
    assert spec.keep_columns == ["name"]
    assert spec.startup_trials == 4 and spec.trial_timeout == 30.0


def test_untouched_start_up_trials_follow_the_rule(data_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpdash import views

    launched = []
    monkeypatch.setattr(views, "start_study", lambda spec, storage=None: launched.append(spec) or [])
    at = _app("pages/new_study.py")
    at.number_input(key="ns_n_trials").set_value(8).run()
    at.selectbox(key="ns_strategy").set_value("tpe").run()
    assert at.number_input(key="ns_startup_trials").value == strategies.default_startup_trials(8) == 2
    at.button(key="ns_launch").click().run()
    (spec,) = launched
    assert spec.startup_trials is None and spec.trial_timeout is None and spec.pos_label is None
    assert spec.keep_columns is None


def test_datasets_page_roles_table_and_missing_target(data_dir) -> None:
    stored = datasets.store_dataset(_yes_no_table(), "bank.csv")
    at = _app("pages/datasets.py")
    at.selectbox(key="ds_pick").set_value(stored.sha256).run()
    at.selectbox(key=f"ds_target_{stored.sha256}").set_value("subscribed").run()
    _no_exception(at)
    assert any("2 of 60 rows have no value in the target 'subscribed'" in shown(i.value) for i in at.info)
    roles = at.dataframe[1].value  # [0] is the preview
    assert list(roles.columns[:3]) == ["name", "role", "examples"] and roles.columns[-1] == "reason"
    name_row = roles[roles["name"] == "name"].iloc[0]
    assert name_row["role"] == "dropped" and name_row["reason"]
    assert roles[roles["name"] == "x1"].iloc[0]["reason"] == ""
    # keep the text column: it becomes a feature, and the New study form gets it
    at.multiselect(key=f"ds_keep_{stored.sha256}").set_value(["name"]).run()
    _no_exception(at)
    roles = at.dataframe[1].value
    kept = roles[roles["name"] == "name"].iloc[0]
    assert kept["role"] != "dropped" and kept["reason"].startswith("kept as you asked")
    at.button(key="ds_new_study").click().run()
    _no_exception(at)
    assert at.multiselect(key="ns_keep_columns").value == ["name"]


@pytest.fixture(scope="module")
def selection_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished algorithm-selection study (k-NN or a decision tree on iris, 12 trials), with
    one more trial failed as stopped by the user."""
    from hpdash.spec import parse_spec

    path = tmp_path_factory.mktemp("selection") / "data"
    path.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPDASH_DATA_DIR", str(path))
        mp.delenv("HPDASH_STORAGE", raising=False)
        spec = parse_spec(
            {
                "name": "iris-select",
                "dataset": "sklearn:iris",
                "target": "target",
                "model": ["k_nearest_neighbors", "decision_tree"],
                "strategy": "random",
                "n_trials": 12,
                "cv": {"folds": 3},
                "seed": 1,
            }
        )
        runner.create_study(spec)
        runner.wait_for(runner.launch_workers(spec.name, None, 1))
        import optuna
        from optuna.trial import TrialState, create_trial

        from hpdash import results

        study = runner.load_study(spec.name)
        done = study.get_trials(states=[TrialState.COMPLETE])[0]
        study.add_trial(
            create_trial(
                state=TrialState.FAIL,
                params=done.params,
                distributions=done.distributions,
                user_attrs={"fail_reason": results.STOPPED_REASON_PREFIX + " before it finished; resume runs it again"},
            )
        )
        assert isinstance(study, optuna.Study)
    return path, spec.name


def test_study_page_of_an_algorithm_selection(selection_study, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from hpdash import plots, results

    path, name = selection_study
    monkeypatch.setenv("HPDASH_DATA_DIR", str(path))
    monkeypatch.delenv("HPDASH_STORAGE", raising=False)
    at = _app("pages/study.py", study=name)
    _no_exception(at)
    frame = results.trials_frame(runner.load_study(name))
    best = plots.study_models(frame)[0]
    radio = at.radio(key="parallel_model")
    other = ({"k_nearest_neighbors", "decision_tree"} - {best}).pop()
    assert radio.value == best and radio.options == [f"{best} (best)", other, "all models"]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    parcoords = next(c for c in charts if c["data"][0]["type"] == "parcoords")
    labels = [d["label"] for d in parcoords["data"][0]["dimensions"]]
    assert "model" not in labels and not any("__" in label for label in labels)
    # the contour opens on two numeric hyperparameters of one model, never on `model`
    x, y = at.selectbox(key="contour_x").value, at.selectbox(key="contour_y").value
    assert "model" not in (x, y) and x.split("__")[0] == y.split("__")[0]
    assert all(pd.api.types.is_numeric_dtype(frame[f"params_{p}"].dropna()) for p in (x, y))
    # trials table: the model column early, a stopped trial as STOPPED with its reason last
    table = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert list(table.columns[:4]) == ["trial", "state", "value", "model"]
    assert table.columns[-1] == "reason"
    stopped = table[table["state"] == plots.STOPPED_STATE]
    assert len(stopped) == 1 and stopped.iloc[0]["reason"].startswith("stopped by the user")
    assert "FAIL" not in set(table["state"])
    # the best trial names its model above its table, whose names have no model prefix
    assert any("Model:" in shown(m.value) for m in at.markdown)
    best_table = next(d.value for d in at.dataframe if list(d.value.columns) == ["hyperparameter", "value"])
    assert not any("__" in h for h in best_table["hyperparameter"])
    # "all models": the model axis first
    at.radio(key="parallel_model").set_value("__all__").run()
    _no_exception(at)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    parcoords = next(c for c in charts if c["data"][0]["type"] == "parcoords")
    assert parcoords["data"][0]["dimensions"][0]["label"] == "model"


def test_a_model_that_fails_its_smoke_fit_cannot_launch(data_dir) -> None:
    """The smoke fit's error is shown as an error naming the model, and Launch is disabled."""
    at = _app("pages/new_study.py")
    from hpdash.spec import parse_spec
    from hpdash.ui import common

    spec = parse_spec(
        {
            "name": "doomed",
            "dataset": "sklearn:iris",
            "target": "target",
            "model": "logistic_regression",
            "strategy": "random",
            "n_trials": 5,
            "space": {
                "solver": {"type": "categorical", "choices": ["lbfgs"]},
                "penalty": {"type": "categorical", "choices": ["l1"]},
                "C": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
            },
        }
    )
    at.session_state[common.PREFILL_KEY] = spec.to_dict()
    at.run()
    _no_exception(at)
    errors = " ".join(shown(e.value) for e in at.error)
    assert "Model 'logistic_regression' failed its trial fit before launch" in errors
    assert "penalty" in errors
    assert at.button(key="ns_launch").disabled  # AppTest, like a browser, cannot click it


def test_a_comparison_of_random_alikes_is_refused_in_the_form(data_dir) -> None:
    """TPE with 4 trials and 4 start-up trials is random search: comparing it with random
    search is refused before launch, saying why."""
    at = _app("pages/new_study.py")
    at.number_input(key="ns_n_trials").set_value(4).run()
    at.selectbox(key="ns_strategy").set_value("tpe").run()
    at.number_input(key="ns_startup_trials").set_value(4).run()
    at.multiselect(key="ns_cmp_strategies").set_value(["random", "tpe"]).run()
    _no_exception(at)
    assert "would run 4 trial(s) at random" in _texts(at)
    errors = " ".join(shown(e.value) for e in at.error)
    assert "would run exactly the same random trials" in errors
    assert at.button(key="ns_cmp_launch").disabled


def test_study_page_shows_the_configurations_tied_with_the_best(populated_dir) -> None:
    """After the best trial: ROPE and alpha inputs, the library's tie set as a table, the
    cheapest tied trial recommended with the method named; a new ROPE recomputes it; a study
    with one completed trial says why there is none."""
    from hpdash import results, ties

    name = populated_dir["finished"]
    at = _app("pages/study.py", study=name)
    _no_exception(at)
    headings = [s.value for s in at.subheader]
    assert headings.index("Configurations tied with the best") == headings.index("Best trial") + 1
    assert at.number_input(key="ties_rope").value == 0.01 and at.number_input(key="ties_alpha").value == 0.05
    study = runner.load_study(name)
    frame, sizes = results.trials_frame(study), ties.fold_sizes(study)
    for rope in (0.01, 0.0):
        if rope != 0.01:
            at.number_input(key="ties_rope").set_value(rope).run()
            _no_exception(at)
        expected = ties.study_ties(frame, *sizes, "maximize", rope=rope, n_splits=3)
        assert expected.recommended is not None
        table = next(d.value for d in at.dataframe if list(d.value.columns) == ties.TABLE_COLUMNS)
        assert table["trial"].tolist() == [t.number for t in expected.tied]
        assert table.loc[table["recommended"], "trial"].tolist() == [expected.recommended.number]
        text = _texts(at)
        assert f"Recommended: trial {expected.recommended.number}" in text and expected.reason in text
        assert "Nadeau & Bengio" in text and f"rope {rope:g}, alpha 0.05" in text

    one = _app("pages/study.py", study=populated_dir["one_trial"])
    _no_exception(one)
    assert "The tie set needs at least two completed trials" in _texts(one)


def test_study_page_estimates_the_selection_bias_on_request(populated_dir) -> None:
    """The BBC-CV section computes nothing until asked; then it shows the library's estimate
    (raw best, corrected, optimism) with the method named."""
    from hpdash import views, winners_curse

    name = populated_dir["finished"]
    at = _app("pages/study.py", study=name)
    _no_exception(at)
    assert "Selection bias of the best CV score (BBC-CV)" in [s.value for s in at.subheader]
    assert not [m for m in at.metric if m.label == "Corrected (BBC-CV)"]
    at.button(key="winners_curse").click().run()
    _no_exception(at)
    expected = winners_curse.winners_curse_or_reason(runner.load_study(name), n_bootstrap=200, max_configs=10)
    assert not isinstance(expected, str), expected  # the study's trials kept their predictions
    shown = {m.label: m.value for m in at.metric}
    assert shown["Corrected (BBC-CV)"] == views.format_score(expected.corrected)
    assert shown["Optimism of the raw best"] == views.format_score(expected.bias)
    assert "BBC-CV" in _texts(at)
