"""Team mode in the library: HPDASH_READ_ONLY=1 refuses every write; the password check."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from hpdash import access, datasets, runner
from hpdash.errors import AccessDeniedError, HpdashError, ReadOnlyError
from hpdash.spec import parse_spec
from hpdash.store import Catalogue

SPEC = {
    "name": "ro-study",
    "dataset": "sklearn:iris",
    "target": "target",
    "model": "k_nearest_neighbors",
    "strategy": "random",
    "n_trials": 3,
    "cv": {"folds": 3},
}


def _fingerprint(data_dir):
    with sqlite3.connect(f"file:{data_dir / 'hpdash.db'}?mode=ro", uri=True) as conn:
        dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("hpdash.db")
    }
    return dump, files


@pytest.fixture
def shared(data_dir):
    """A study (run to the end), a stored dataset and a note, made before read-only mode."""
    spec = parse_spec(SPEC)
    runner.create_study(spec)
    assert runner.wait_for(runner.launch_workers(spec.name, None, 1)) == [0]
    stored = datasets.store_dataset(datasets.load_sample("wine").to_csv(index=False).encode(), "wine.csv")
    Catalogue().set_note(spec.name, "reviewed")
    return stored


WRITES = {
    "create a study": lambda s: runner.create_study(parse_spec({**SPEC, "name": "another"})),
    "launch workers": lambda s: runner.launch_workers("ro-study", None, 1),
    "stop a study": lambda s: runner.stop_study("ro-study"),
    "resume a study": lambda s: runner.resume_study("ro-study"),
    "delete a study": lambda s: runner.delete_study("ro-study"),
    "refit a model": lambda s: runner.refit("ro-study"),
    "upload a dataset": lambda s: datasets.store_dataset(b"a,b\n1,2\n3,4\n", "x.csv"),
    "delete a dataset": lambda s: datasets.delete_stored(s.sha256),
    "change the catalogue": lambda s: Catalogue().set_note("ro-study", "overwritten"),
    "change the catalogue ": lambda s: Catalogue().delete_note("ro-study"),
    "change the catalogue  ": lambda s: Catalogue().add_experiment(
        {"name": "e", "spec_json": "{}", "strategies": "", "repeats": 1}, []
    ),
    # computations a page would run on a viewer's request, and a download's file
    "load a spec file into the form": lambda s: _study_form().read_browser_spec(
        parse_spec(SPEC).to_yaml().encode(), {"sklearn:iris": "Iris"}
    ),
    "run the smoke fit": lambda s: _common().runtime_estimate(parse_spec(SPEC).to_yaml(), "sklearn:iris"),
    "estimate the selection bias": lambda s: _winners_curse().on_request(runner.load_study("ro-study")),
    "write the model's skops copy": lambda s: _export_model().ensure_skops("ro-study"),
}


def _study_form():
    from hpdash.ui import study_form

    return study_form


def _common():
    from hpdash.ui import common

    return common


def _winners_curse():
    from hpdash import winners_curse

    return winners_curse


def _export_model():
    from hpdash import export_model

    return export_model


@pytest.mark.slow
@pytest.mark.parametrize("action", sorted(WRITES))
def test_read_only_refuses_every_write_and_changes_nothing(shared, data_dir, monkeypatch, action) -> None:
    before = _fingerprint(data_dir)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError) as info:
        WRITES[action](shared)
    assert isinstance(info.value, HpdashError)
    assert f"read-only (HPDASH_READ_ONLY is set), so you cannot {action.strip()}" in str(info.value)
    assert _fingerprint(data_dir) == before
    # reading still works
    study = runner.load_study("ro-study")
    assert runner.study_status(study).state == "finished"
    assert Catalogue().get_note("ro-study") == "reviewed"
    assert datasets.load_dataset(shared.sha256)[1] == shared.sha256


@pytest.mark.slow
def test_a_viewer_still_downloads_the_model_and_nothing_is_written(shared, data_dir, monkeypatch) -> None:
    """Both model downloads work for a viewer (the .skops one made in memory), and the data
    directory and the database stay byte for byte as they were."""
    import skops.io as sio

    from hpdash import export_model

    before = _fingerprint(data_dir)
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    downloads = {item["format"]: item for item in export_model.model_downloads("ro-study", {"sha256": None})}
    assert set(downloads) == {"skops", "joblib"} and not downloads["skops"]["ready"]
    skops = export_model.skops_bytes("ro-study")
    model = sio.loads(skops, trusted=sio.get_untrusted_types(data=skops))
    assert model.predict(datasets.load_sample("iris").drop(columns="target").head(3)).shape == (3,)
    assert export_model.joblib_bytes("ro-study") == export_model.model_files("ro-study").joblib.read_bytes()
    assert _fingerprint(data_dir) == before


def test_read_only_flag_values(monkeypatch) -> None:
    for value, expected in [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("0", False),
        ("", False),
        ("off", False),
        ("ture", True),
    ]:  # a typo fails closed
        monkeypatch.setenv("HPDASH_READ_ONLY", value)
        assert access.read_only() is expected, value
    monkeypatch.delenv("HPDASH_READ_ONLY")
    assert access.read_only() is False
    access.require_writable("anything")  # no error


def test_password_from_env_or_secrets(monkeypatch) -> None:
    monkeypatch.delenv("HPDASH_PASSWORD", raising=False)
    assert access.configured_password() is None
    assert access.configured_password({"HPDASH_PASSWORD": "from-secrets"}) == "from-secrets"
    assert access.configured_password({"HPDASH_PASSWORD": ""}) is None

    class NoSecretsFile:
        def get(self, key):
            raise FileNotFoundError("No secrets found")

    assert access.configured_password(NoSecretsFile()) is None
    monkeypatch.setenv("HPDASH_PASSWORD", "from-env")
    assert access.configured_password({"HPDASH_PASSWORD": "from-secrets"}) == "from-env"


def test_check_password() -> None:
    access.check_password(None, None)  # no password configured: open
    access.check_password("s3cr\u00e9t", "s3cr\u00e9t")
    for wrong in (None, "", "s3cret", "s3cr\u00e9t ", "S3CR\u00c9T"):
        with pytest.raises(AccessDeniedError, match="Wrong password"):
            access.check_password(wrong, "s3cr\u00e9t")
    assert access.password_matches("abc", "abc") and not access.password_matches("abd", "abc")


def test_password_comparison_is_constant_time() -> None:
    """The comparison goes through hmac.compare_digest (checked by replacing it)."""
    import hmac

    calls = []
    original = hmac.compare_digest
    try:
        hmac.compare_digest = lambda a, b: calls.append((a, b)) or original(a, b)
        assert access.password_matches("x", "y") is False
    finally:
        hmac.compare_digest = original
    assert calls == [(b"x", b"y")]


# ------------------------------------------------------------------------------ throttle
def test_throttle_limits_each_kind_of_key_in_its_window() -> None:
    now = [1000.0]
    throttle = access.AttemptThrottle({"session": (3, 60.0), "address": (5, 300.0)}, clock=lambda: now[0])
    a = {"session": "s1", "address": "10.0.0.1"}
    for _ in range(3):
        assert throttle.wait(a) == 0
        throttle.failed(a)
    assert throttle.wait(a) == pytest.approx(60.0)  # the session is at its limit
    b = {"session": "s2", "address": "10.0.0.1"}  # a new session from the same address
    assert throttle.wait(b) == 0
    throttle.failed(b)
    throttle.failed(b)
    assert throttle.wait({"session": "s3", "address": "10.0.0.1"}) == pytest.approx(300.0)
    assert throttle.wait({"session": "s3", "address": "10.0.0.2"}) == 0  # another address
    now[0] += 61
    assert throttle.wait({"session": "s1"}) == 0  # its failures left the window
    assert 0 < throttle.wait(a) <= 240  # the address is still limited
    throttle.succeeded([("address", "10.0.0.1")])
    assert throttle.wait(a) == 0


def test_the_server_throttle_allows_five_guesses_a_minute_per_session() -> None:
    assert access.PASSWORD_THROTTLE._limits == {"session": (5, 60.0), "address": (20, 300.0)}
    assert access.wait_text(42.2) == "43 s" and access.wait_text(299) == "5 min"


def test_sign_ins_need_a_live_session_and_its_browser_cookie() -> None:
    sign_ins = access.SignIns()
    live = {"s1", "s2"}
    sign_ins.add("s1", "tok-1")
    assert sign_ins.session_signed_in("s1") and not sign_ins.session_signed_in("s2")
    assert sign_ins.client_allowed("tok-1", live.__contains__)
    assert sign_ins.client_allowed("tok-1", live.__contains__, session_id="s1")
    assert not sign_ins.client_allowed("tok-1", live.__contains__, session_id="s2")
    for token in (None, "", "tok-2", "tök-1"):
        assert not sign_ins.client_allowed(token, live.__contains__), token
    live.discard("s1")  # the session closed
    assert not sign_ins.client_allowed("tok-1", live.__contains__)
    assert not sign_ins.session_signed_in("s1")


# ------------------------------------------------------------------------------ roles (OIDC)
def test_role_for_reads_the_editor_list_its_domains_and_the_role_claim(monkeypatch) -> None:
    monkeypatch.setenv("HPDASH_EDITORS", "Alice@Example.com, @team.org")
    monkeypatch.delenv("HPDASH_ROLE_CLAIM", raising=False)
    monkeypatch.delenv("HPDASH_EDITOR_ROLE", raising=False)
    assert access.role_for("alice@example.com", {}) == "editor"
    assert access.role_for("bob@team.org", {"email_verified": True}) == "editor"
    assert access.role_for("bob@team.org.evil.com", {}) == "viewer"
    assert access.role_for("eve@example.com", {}) == "viewer"
    # An address the provider has not verified does not count, whatever it says.
    assert access.role_for("alice@example.com", {"email_verified": False}) == "viewer"
    assert access.role_for(None, {"roles": ["reader", "editor"]}) == "editor"
    assert access.role_for(None, {"roles": "editor"}) == "editor"
    assert access.role_for(None, {"roles": "editors"}) == "viewer"
    monkeypatch.setenv("HPDASH_ROLE_CLAIM", "groups")
    monkeypatch.setenv("HPDASH_EDITOR_ROLE", "ml-leads")
    assert access.role_for(None, {"groups": ["ml-leads"], "roles": ["viewer"]}) == "editor"
    assert access.role_for(None, {"roles": ["editor"]}) == "viewer"


def test_a_viewers_calls_are_refused_in_the_library_and_an_editors_are_not(monkeypatch) -> None:
    monkeypatch.delenv("HPDASH_READ_ONLY", raising=False)
    current: dict[str, access.Actor | None] = {"actor": None}
    monkeypatch.setitem(access._actor_provider, "current", lambda: current["actor"])
    assert access.current_actor().via == "local" and not access.read_only()
    current["actor"] = access.Actor("bob@example.com", "viewer", "oidc")
    assert access.read_only()
    with pytest.raises(ReadOnlyError, match=r"signed in as bob@example.com, a viewer, so you cannot stop a study"):
        access.require_writable("stop a study")
    current["actor"] = access.Actor("alice@example.com", "editor", "oidc")
    assert not access.read_only()
    access.require_writable("stop a study")
    # A read-only dashboard stays read-only for editors too.
    monkeypatch.setenv("HPDASH_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="HPDASH_READ_ONLY"):
        access.require_writable("stop a study")


def test_oidc_needs_an_auth_table_with_its_redirect_and_cookie_secret() -> None:
    assert not access.oidc_configured(None)
    assert not access.oidc_configured({})
    assert not access.oidc_configured({"auth": {"redirect_uri": "http://x/oauth2callback"}})
    assert access.oidc_configured({"auth": {"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s"}})

    class NoSecretsFile(dict):
        def get(self, *args):
            raise FileNotFoundError("no secrets.toml")

    assert not access.oidc_configured(NoSecretsFile())


def test_a_viewer_session_may_download_but_not_upload() -> None:
    sign_ins = access.SignIns()
    sign_ins.add("s-editor", "token-e")
    sign_ins.add("s-viewer", "token-v", viewer=True)
    assert sign_ins.session_may_write("s-editor") and not sign_ins.session_may_write("s-viewer")
    assert sign_ins.client_allowed("token-v", lambda sid: True)
    assert not sign_ins.session_may_write("s-unknown")
