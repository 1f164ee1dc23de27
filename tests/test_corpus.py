"""Hostile and malformed input: a corpus of bad uploads, specs and names (issue 5).

Every case either gets a specific ``HpdashError`` message or, where the input is usable
(emoji/RTL column names, formula-like cells, mixed encodings), is accepted; any other
exception is a crash and fails the test. After each rejected case the database (a logical
dump of every table: Optuna's and the catalogue) and every file under ``data/`` are exactly
as before. Small files live in tests/corpus/uploads/ (regenerate with
``python tests/corpus/make_uploads.py``); big ones come from ``big_cases`` at test time.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from hpdash import datasets, runner
from hpdash.errors import HpdashError
from hpdash.spec import check_name, load_spec, parse_spec

sys.path.insert(0, str(Path(__file__).parent / "corpus"))
from make_uploads import BIG_CASE_ENV, big_cases, nested_parquet, parquet_index_clash, small_cases  # noqa: E402

UPLOADS = Path(__file__).parent / "corpus" / "uploads"
MAX_MB = 8

# name -> (target, expected message fragments); None = accepted (usable input)
UPLOAD_CASES: dict[str, tuple[str, list[str] | None]] = {
    "empty.csv": ("label", ["empty.csv is empty (0 bytes)"]),
    "binary.csv": ("label", ["contains binary data", "not a text CSV"]),
    "png_renamed.csv": ("label", ["contains binary data (a NUL byte at byte 8)"]),
    "gzip_renamed.csv": ("label", ["looks like a gzip archive", "unpack it first"]),
    "zip_renamed.csv": ("label", ["looks like a zip archive"]),
    "xlsx_renamed.csv": ("label", ["zip archive (or an Excel .xlsx workbook)", "export the sheet as CSV"]),
    "pdf_renamed.csv": ("label", ["looks like a PDF document"]),
    "utf16_no_bom.csv": ("label", ["binary data", "UTF-16 text without a byte-order mark"]),
    "mixed_encoding.csv": ("label", None),
    "ragged_rows.csv": ("label", ["line 42 has 5 fields but the header has 3"]),
    "duplicate_headers.csv": ("label", ["duplicate column names: 'a'"]),
    "blank_header.csv": ("label", ["column 2 of 3 has no name (blank header)"]),
    "header_only.csv": ("label", ["has a header but no data rows"]),
    "one_row.csv": ("label", ["has only 1 data row", "at least 2"]),
    "no_data_only_newlines.csv": ("label", ["contains only whitespace"]),
    "whitespace_only.csv": ("label", ["contains only whitespace"]),
    "html_as_csv.csv": ("label", ["has only one column", "needs at least one feature column and a target"]),
    "nan_target.csv": ("label", ["Target column 'label' is missing on every row"]),
    "inf_target.csv": ("y", ["Target column 'y' contains 10 infinite value(s)"]),
    "mixed_target.csv": ("y", ["Target column 'y'", "fewer rows than the 5 CV folds"]),
    "single_class.csv": ("label", ["has a single class ('yes')", "at least two classes"]),
    "emoji_rtl_columns.csv": ("label", None),
    "formula_cells.csv": ("label", None),
    "parquet_truncated.parquet": ("label", ["not a readable Parquet file", "truncated or corrupted"]),
    "csv_named_parquet.parquet": ("label", ["not a valid Parquet file", "rename it to .csv"]),
    "unsupported_extension.xls": ("label", ["is a spreadsheet (.xls)", "CSV and Parquet"]),
    "nested_types.parquet": ("label", ["nested Parquet column(s)", "'tags (list<element: int64>)'"]),
    "ten_thousand_columns.csv": ("label", ["has 10,001 columns; the limit is 2,000"]),
    "huge_cell.csv": ("label", None),
    "over_size_limit.csv": ("label", ["over the upload limit of 8.0 MB", "HPDASH_MAX_UPLOAD_MB"]),
    "over_row_limit.csv": (
        "label",
        [
            "over_row_limit.csv has up to 1,001 data rows (counted 1,002 lines",
            "the limit is 1,000 rows",
            "a sample of the rows",
            "HPDASH_MAX_ROWS",
        ],
    ),
    "over_cell_limit.csv": (
        "label",
        [
            "over_cell_limit.csv has up to 600 data rows",
            "x 6 columns = 3,600 cells",
            "the limit is 3,000 cells",
            "HPDASH_MAX_CELLS",
        ],
    ),
    "over_cell_limit.parquet": (
        "label",
        ["has 200 rows x 10 columns = 2,000 cells; the limit is 1,000 cells", "HPDASH_MAX_CELLS"],
    ),
    "five_million_rows.parquet": (
        "label",
        [
            "five_million_rows.parquet has 5,000,000 data rows; the limit is 1,000,000 rows",
            "a sample of the rows",
            "HPDASH_MAX_ROWS",
        ],
    ),
    "repeated_text_bomb.parquet": (
        "label",
        ["would take more than 1000.0 MB decoded (column 'text'", "more than the 762.9 MB", "HPDASH_MAX_CELLS"],
    ),
    "compressed_text_bomb.parquet": (
        "label",
        ["declares 20.0 MB of uncompressed data", "more than the 15.3 MB", "HPDASH_MAX_CELLS"],
    ),
    "missing_target.csv": ("no_such_column", ["no_such_column"]),
    "r_write_csv.csv": ("label", None),
    "pandas_index.csv": ("label", None),
    "huge_regression_target.csv": (
        "y",
        [
            "Target column 'y' has 10 value(s) larger in magnitude than 1e+150 (up to 1e+308)",
            "overflow 64-bit floats",
            "Rescale the target",
        ],
    ),
    "parquet_index_clash.parquet": (
        "label",
        ["stores a row index named 'a' and also a column of that name", "df.to_parquet(path, index=False)"],
    ),
}

BASE = {
    "dataset": "sklearn:iris",
    "target": "target",
    "model": "k_nearest_neighbors",
    "strategy": "random",
    "n_trials": 5,
    "cv": {"folds": 3},
}
SPEC_CASES: dict[str, tuple[dict | str, list[str]]] = {
    "unknown_key": ({"learning_rate": 0.1}, ["Unknown spec key(s): learning_rate"]),
    "wrong_type_trials": ({"n_trials": "ten"}, ["'n_trials' must be a whole number, got 'ten'"]),
    "bool_trials": ({"n_trials": True}, ["'n_trials' must be a whole number, got True"]),
    "zero_budget": ({"n_trials": 0}, ["'n_trials' must be between 1 and 100000, got 0"]),
    "negative_budget": ({"n_trials": -5}, ["'n_trials' must be between 1 and 100000, got -5"]),
    "negative_timeout": ({"timeout": -1}, ["'timeout' must be a positive number of seconds"]),
    "no_budget": ({"n_trials": None}, ["Set a budget"]),
    "low_gt_high": (
        {"space": {"n_neighbors": {"type": "int", "low": 9, "high": 3}}},
        ["'n_neighbors': low (9) must be less than high (3)"],
    ),
    "log_with_zero": (
        {"space": {"n_neighbors": {"type": "int", "low": 0, "high": 10, "log": True}}},
        ["log-scaled range needs low > 0, but low is 0"],
    ),
    "log_with_zero_float": (
        {"model": "svm", "space": {"C": {"type": "float", "low": 0.0, "high": 10, "log": True}}},
        ["'C': a log-scaled range needs low > 0"],
    ),
    "grid_explodes": (
        {"strategy": "grid", "n_trials": None, "grid_points": 1000, "model": "random_forest"},
        ["more than the limit of 10,000"],
    ),
    "unknown_model": ({"model": "deep_magic"}, ["unknown model 'deep_magic'"]),
    "model_not_text": ({"model": 42}, ["'model' must be a registry key or a list of keys, got 42"]),
    "regressor_for_classification": ({"model": "linear_regression"}, ["linear_regression"]),
    "unknown_metric": ({"metric": "awesomeness"}, ["Unknown metric 'awesomeness'"]),
    "metric_wrong_task": ({"metric": "r2"}, ["Metric 'r2' is for regression, but this is a classification task"]),
    "unknown_strategy": ({"strategy": "genetic"}, ["Unknown strategy 'genetic'"]),
    "folds_one": ({"cv": {"folds": 1}}, ["'folds' must be between 2 and 50, got 1"]),
    "test_size_too_big": ({"test_size": 1.5}, ["'test_size' must be a fraction between 0 and 0.9"]),
    "workers_zero": ({"workers": 0}, ["'workers' must be between 1 and 64, got 0"]),
    "unknown_hyperparameter": ({"space": {"n_trees": {"type": "int", "low": 1, "high": 3}}}, ["n_trees"]),
    "bad_hp_type": ({"space": {"n_neighbors": {"type": "integer", "low": 1, "high": 3}}}, ["integer"]),
    "empty_choices": ({"space": {"weights": {"type": "categorical", "choices": []}}}, ["weights"]),
    "missing_target_column": ({"target": "nope"}, ["nope"]),
    "timeout_inf_value": ({"timeout": float("inf")}, ["'timeout' must be a positive number of seconds"]),
    # YAML text (the spec above plus these lines, as load_spec reads an upload or a file)
    "alias_bomb": (
        "n_trials: [&l0 ["
        + ", ".join(["lol"] * 9)
        + "], "
        + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9))
        + "]\n",
        ["expands to more than 100,000 values", "the limit is 100,000"],
    ),
    "deep_nesting": ("space: " + "[" * 10_000 + "]" * 10_000 + "\n", ["more than 50 levels deep", "the limit is 50"]),
    "huge_document": ("metric: auto\n" + "# padding\n" * 110_000, ["characters long; the limit is 1,000,000"]),
    "timeout_inf": ("timeout: .inf\n", ["not finite at 'timeout': .inf"]),
    "n_trials_nan": ("n_trials: .nan\n", ["not finite at 'n_trials': .nan"]),
    # work that would never end or blow up: refused with the sizes, before anything is written
    "million_choices": (
        {"space": {"weights": {"type": "categorical", "choices": list(range(1_000_000))}}},
        [
            "hyperparameter 'weights': 1,000,000 choices, more than the limit of 1,000 per "
            "hyperparameter (HPDASH_MAX_CHOICES)"
        ],
    ),
    "grid_100k_points": (
        {
            "model": "random_forest",
            "strategy": "grid",
            "n_trials": None,
            "grid_points": 1000,
            "space": {
                "n_estimators": {"type": "int", "low": 10, "high": 2000},
                "max_depth": {"type": "int", "low": 1, "high": 100},
            },
        },
        [
            "the grid has 100,000 points (random_forest: n_estimators 1,000 x max_depth 100 = "
            "100,000), more than the limit of 10,000"
        ],
    ),
    "budget_100k": (
        {"n_trials": 100_000},
        ["The budget is 100,000 trials, more than the limit of 10,000 trials per study (HPDASH_MAX_TRIALS)"],
    ),
    # checked too late before: the protocol on the real training part
    "fifty_folds": (
        {"cv": {"folds": 50}},
        ["have fewer rows in the training part than the 50 CV folds", "use at most 40 CV folds"],
    ),
    "holdout_too_small_for_classes": (
        {"test_size": 0.01},
        [
            "The holdout of test_size 0.01 is 2 row(s) of 150, fewer than the 3 classes of the target 'target'",
            "Use a test_size of at least 0.02",
        ],
    ),
}
YAML_CASES = {
    "not_a_mapping": ("- a\n- b", ["A spec must be a mapping"]),
    "invalid_yaml": ("name: [unclosed", ["The spec is not valid YAML"]),
    "python_tag": ("!!python/object/apply:os.system ['echo pwned']", ["could not determine a constructor"]),
}
NAME_CASES = {
    "too_long": "x" * 101,
    "path_traversal": "../etc/passwd",
    "slash": "a/b",
    "backslash": "a\\b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape_sequence": "a\x1b[31mred",
    "script_tag": "<script>alert(1)</script>",
    "img_onerror": "<img src=x onerror=window.__xss=1>",
    "empty": "",
    "leading_space": " lead",
    "rtl_override": "con\u202eexe.sh",
    # Markdown that Streamlit would render (issue "Sign-in that cannot be raced", point 7)
    "markdown_image": "![x](http://127.0.0.1:9/canary.png)",
    "markdown_link": "[click](https://phish.example/login)",
    "colour_directive": ":red[urgent]",
    "latex": "$x^2$",
}


def _db_dump(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def _state(root: Path) -> tuple[str, dict[str, str], int]:
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("hpdash.db")
    }
    with sqlite3.connect(f"file:{root / 'hpdash.db'}?mode=ro", uri=True) as conn:
        rows = sum(
            conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
    return _db_dump(root / "hpdash.db"), files, rows


@pytest.fixture
def world(data_dir, monkeypatch):
    """A data dir with a study, a stored dataset and a note: what must survive every case."""
    from hpdash.store import Catalogue

    monkeypatch.setenv("HPDASH_MAX_UPLOAD_MB", str(MAX_MB))
    runner.create_study(parse_spec({**BASE, "name": "existing"}))
    datasets.store_dataset(datasets.load_sample("iris").to_csv(index=False).encode(), "iris.csv")
    Catalogue().set_note("existing", "keep me")
    before = _state(data_dir)
    yield data_dir
    assert _state(data_dir) == before, "a rejected input changed the database or data/"


def _upload_bytes(name: str) -> bytes:
    if name == "missing_target.csv":
        return small_cases()["one_row.csv"].replace(b"1,2,yes\n", b"1,2,yes\n3,4,no\n5,6,yes\n")
    if name in small_cases():
        return (UPLOADS / name).read_bytes() if (UPLOADS / name).exists() else small_cases()[name]
    if name == "nested_types.parquet":
        return nested_parquet()
    if name == "parquet_index_clash.parquet":
        return parquet_index_clash()
    return big_cases(MAX_MB * 1024 * 1024)[name]


def test_corpus_is_big_enough() -> None:
    total = len(UPLOAD_CASES) + len(SPEC_CASES) + len(YAML_CASES) + len(NAME_CASES) + 1  # + CSV export
    assert total >= 40, total
    assert set(small_cases()) <= set(UPLOAD_CASES)


@pytest.mark.parametrize("name", sorted(n for n, (_, msg) in UPLOAD_CASES.items() if msg is not None))
def test_bad_upload_is_rejected_with_a_specific_message(world, monkeypatch, name) -> None:
    target, fragments = UPLOAD_CASES[name]
    for key, value in BIG_CASE_ENV.get(name, {}).items():  # a lowered limit keeps the file small
        monkeypatch.setenv(key, value)
    with pytest.raises(HpdashError) as info:
        datasets.store_dataset(_upload_bytes(name), name, target=target)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_usable_odd_uploads_are_accepted(data_dir, monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_MAX_UPLOAD_MB", str(MAX_MB))
    emoji = datasets.store_dataset(_upload_bytes("emoji_rtl_columns.csv"), "emoji.csv", target="label")
    frame, _ = datasets.load_dataset(emoji.sha256)
    assert list(frame.columns) == ["\U0001f600 smile", "\u05e9\u05dc\u05d5\u05dd", "label"]
    prepared = datasets.prepare(frame, "label", folds=3)
    assert prepared.task == "classification" and prepared.X.shape[1] == 2

    formulas = datasets.store_dataset(_upload_bytes("formula_cells.csv"), "formulas.csv", target="label")
    frame, _ = datasets.load_dataset(formulas.sha256)
    assert set(frame["cmd"]) == {"=1+1", "+SUM(A1)", "-2+3", "@cmd", "ok"}  # stored verbatim, never run

    mixed = datasets.store_dataset(_upload_bytes("mixed_encoding.csv"), "mixed.csv", target="label")
    assert mixed.n_rows == 42

    for name in ("r_write_csv.csv", "pandas_index.csv"):  # a row index under a blank header
        stored = datasets.store_dataset(_upload_bytes(name), name, target="label")
        frame, _ = datasets.load_dataset(stored.sha256)
        assert list(frame.columns) == ["a", "b", "label"] and len(frame) == 40
        profile = datasets.prepare(frame, "label", folds=3).profile
        assert profile.columns[0].reason.startswith("row index") and not profile.columns[0].in_frame

    huge = datasets.store_dataset(_upload_bytes("huge_cell.csv"), "huge.csv")
    frame, _ = datasets.load_dataset(huge.sha256)
    assert frame.shape == (21, 3) and len(str(frame["b"].iloc[0])) == 5 * 1024 * 1024


def test_formula_cells_are_neutralised_in_csv_export() -> None:
    import pandas as pd

    from hpdash.report import trials_csv

    frame = pd.DataFrame(
        {"param_cmd": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "ok"], "value": [1.0, -2.0, 3, 4, 5, 6]}
    )
    text = trials_csv(frame).decode()
    for cell in ("'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "ok"):
        assert cell in text
    assert ",-2.0" in text  # numbers, including negative ones, stay numbers
    assert "\r\n=1+1" not in text and ",=1+1" not in text


def _spec_text(raw: dict, extra: str) -> str:
    """``raw`` as YAML without the keys ``extra`` sets, followed by ``extra``."""
    import yaml

    keys = {line.split(":", 1)[0] for line in extra.splitlines() if line and line[0].isalpha()}
    return yaml.safe_dump({k: v for k, v in raw.items() if k not in keys}, sort_keys=False) + extra


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_is_rejected_before_anything_is_created(world, case) -> None:
    change, fragments = SPEC_CASES[case]
    name = f"corpus-{case.replace('_', '-')}"
    with pytest.raises(HpdashError) as info:
        if isinstance(change, str):  # YAML text: read as an uploaded spec file is
            runner.create_study(load_spec(_spec_text({**BASE, "name": name}, change)))
        else:
            runner.create_study(parse_spec({**BASE, "name": name, **change}))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert not runner.study_exists(name)


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_bad_spec_text_is_rejected(world, case) -> None:
    text, fragments = YAML_CASES[case]
    with pytest.raises(HpdashError) as info:
        load_spec(text)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_hostile_names_are_rejected_for_studies_and_experiments(world, case) -> None:
    name = NAME_CASES[case]
    with pytest.raises(HpdashError) as info:
        runner.create_study(parse_spec({**BASE, "name": name}))
    if name == "":
        assert str(info.value) == "The spec needs 'name'."
    else:
        assert "Invalid study name" in str(info.value) and "letters, digits" in str(info.value)
    with pytest.raises(HpdashError) as info:
        check_name(name, "experiment name")
    assert str(info.value).startswith("Invalid experiment name")
    # the message shows the name escaped (repr), never raw control characters or markup to render
    assert "\x00" not in str(info.value) and "\n" not in str(info.value) and "\x1b" not in str(info.value)


#: Strings a page may show: the rejected names (a study made by another Optuna tool can have
#: any of them, and so can a column or a query parameter), and a valid study name that GitHub
#: Markdown would turn into a link.
SHOWN_CASES = {**NAME_CASES, "valid_name_like_a_web_address": "www.phish.example"}


@pytest.mark.parametrize("case", sorted(SHOWN_CASES))
def test_hostile_names_are_shown_as_plain_text(case) -> None:
    """``markup.escape`` makes each of them plain text: no link, image, tag or formula."""
    from markdown_it import MarkdownIt

    from hpdash import markup

    name = SHOWN_CASES[case]
    md = MarkdownIt("gfm-like", {"linkify": _has_linkify()})
    if _has_linkify():
        # GitHub's autolinks need "www.", a scheme or an "@"; linkify-it would also link bare
        # domains (con<RTL>exe.sh), which Streamlit does not.
        md.linkify.set({"fuzzy_link": False})
    html = md.render(markup.escape(name))
    for tag in ("<a", "<img", "<script", "<h1", "<ul", "<ol", "<code"):
        assert tag not in html, (name, html)
    assert not re.search("(?i)www[.]|https?:|(?<!\u2060)@", re.sub(r"<[^>]+>", "", html)), html  # GFM's text pass
    shown = re.sub(r"<[^>]+>", "", html).replace("\u2060", "").strip()
    expected = name.translate({c: " " for c in range(32)}).strip()
    assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"') == expected


def _has_linkify() -> bool:
    try:
        import linkify_it  # noqa: F401
    except ImportError:
        return False
    return True
