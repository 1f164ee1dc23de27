"""Shared widgets, caching and session helpers for the pages.

Pages call these; they never touch SQL or Optuna internals. Studies run in worker processes
(``hpdash.runner.launch_workers``) and the UI only polls them; the one thread started here
computes importance in the background (``plots.importance_data_async``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import optuna
import pandas as pd
import streamlit as st

from hpdash import access, config, datasets, markup, models, objective, plots, results, storage, views
from hpdash import attrs as study_attrs
from hpdash.errors import AccessDeniedError, HpdashError, StudyNotFoundError

_PAGES = Path(__file__).resolve().parents[2] / "pages"
PAGE_HOME = str(_PAGES / "home.py")
PAGE_DATASETS = str(_PAGES / "datasets.py")
PAGE_NEW = str(_PAGES / "new_study.py")
PAGE_STUDIES = str(_PAGES / "studies.py")
PAGE_STUDY = str(_PAGES / "study.py")
PAGE_COMPARE = str(_PAGES / "compare.py")

#: Session key the Datasets page (or an uploaded spec) uses to prefill the New study form.
PREFILL_KEY = "new_study_prefill"


# ------------------------------------------------------------------------------ caching
@st.cache_data(show_spinner=False, max_entries=16)
def load_frame(ref: str) -> tuple[pd.DataFrame, str | None]:
    """A dataset by reference (sample, stored SHA-256 or path), cached per reference."""
    return datasets.load_dataset(ref)


@st.cache_data(show_spinner=False, max_entries=32)
def profile(ref: str, target: str | None, task: str, keep: tuple[str, ...] = ()) -> datasets.DatasetProfile:
    """The profile of a dataset for a target and task, with the columns in ``keep`` kept as
    features although hpdash would drop them (the spec's ``keep_columns``)."""
    frame, _ = load_frame(ref)
    if keep:
        return datasets.profile_table(frame, target, task, keep_columns=list(keep))
    return datasets.profile_table(frame, target, task)


@st.cache_resource(show_spinner=False)
def model_options(task: str) -> dict[str, str]:
    """Registry keys usable for ``task`` -> label (the registry never changes at run time)."""
    return {key: models.REGISTRY[key].label for key in models.models_for_task(task)}


@st.cache_resource(show_spinner=False)
def metric_options(task: str) -> tuple[str, ...]:
    return objective.metrics_for_task(task)


@st.cache_data(show_spinner=False, max_entries=64)
def runtime_estimate(spec_yaml: str, ref: str) -> views.RuntimeEstimate:
    """The pre-launch smoke fit of a spec, scaled to its budget (cached per spec, so editing
    other fields is instant). Raises the ``SpecError`` of a model that fails it: show it as
    an error, and do not offer the launch.

    The smoke fit fits every chosen model on this server, so a read-only dashboard refuses it
    (``ReadOnlyError``): a viewer must not make the server compute (a spec with a forest of
    thousands of trees costs seconds of CPU per fit)."""
    access.require_writable("run the smoke fit (the run-time estimate fits the models on this server)")
    from hpdash import runner
    from hpdash.spec import load_spec

    spec = load_spec(spec_yaml)
    plan = runner.plan_study(spec, data=load_frame(ref))
    return views.estimate_runtime(plan)


@st.cache_data(show_spinner=False, max_entries=32, ttl=600)
def reproduce_snippet(name: str, best_number: int) -> str:
    """The reproduce snippet of a study's best trial (cached per best trial)."""
    from hpdash import runner

    return views.reproduce_for_best(runner.load_study(name))


# ------------------------------------------------------------------------------ live study data
#: Session key of the per-study live data (``LiveStudy``), by (storage URL, study name).
LIVE_STUDIES_KEY = "hpdash_live_studies"
#: A session keeps the live data of this many studies (the most recently opened ones).
MAX_LIVE_STUDIES = 4
#: Between two importance requests for a study whose completed-trial count keeps moving, wait
#: at least this long (then twice as long, ...): each request is a background computation.
IMPORTANCE_RETRY_SECONDS = 2.0
IMPORTANCE_RETRY_MAX_SECONDS = 120.0
#: Figures and tables a ``LiveStudy`` keeps per state of the trials (one per widget choice).
MAX_MEMO_ENTRIES = 32

T = TypeVar("T")
_clock = time.monotonic  # (tests replace it)


class Importance(NamedTuple):
    """What the Importance tab shows."""

    data: pd.DataFrame | None  # the newest importances computed (None: none yet)
    current: bool  # ``data`` is for the study's current completed trials
    error: str | None  # the computation failed (for the current completed trials)


@dataclass
class _ImportanceRequest:
    data: pd.DataFrame | None = None
    count: int | None = None  # completed-trial count ``data`` was computed for
    error: tuple[int | None, str] | None = None  # (count, message) of a failed computation
    pending: int | None = None  # count of the computation asked for and not seen finished
    since: float = 0.0  # when it was asked for
    wait: float = IMPORTANCE_RETRY_SECONDS


@dataclass
class LiveStudy:
    """One study's trials and derived data, kept in the session so reruns and polls re-read
    only what changed (``results.TrialsCache``)."""

    identity: tuple[Any, ...]
    cache: results.TrialsCache
    generation: int = 0  # bumped by every refresh that read a changed trial
    _log_params: tuple[int, frozenset[str]] | None = None
    _importance: dict[tuple[str, int], _ImportanceRequest] = field(default_factory=dict)
    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    _memo_generation: int = -1

    def refresh(self) -> pd.DataFrame:
        """The study's ``results.trials_frame``, re-reading only new or unfinished trials."""
        frame = self.cache.refresh()
        if self.cache.last_changed:
            self.generation += 1
        return frame

    def memo(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        """``make()`` once per ``key`` until a refresh sees a changed trial (for figures and
        tables built from the frame: the frame only changes then)."""
        if self._memo_generation != self.generation:
            self._memo.clear()
            self._memo_generation = self.generation
        if key not in self._memo:
            if len(self._memo) >= MAX_MEMO_ENTRIES:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = make()
        return self._memo[key]

    def log_params(self) -> set[str]:
        """The params on a log scale (``results.log_params``), from the distributions the
        cache's reads fetched; worked out again only after a refresh saw a change."""
        if self._log_params is None or self._log_params[0] != self.generation:
            self._log_params = (self.generation, frozenset(self.cache.log_params()))
        return set(self._log_params[1])

    def importance(self, study: optuna.Study, method: str, seed: int) -> Importance:
        """Importances from ``plots.importance_data_async``, never blocking the page.

        Remembers the newest result (shown while a newer one is computed) and a failure (not
        retried until more trials complete). While a running study's completed count keeps
        moving, a new computation is asked for only every ``wait`` seconds (doubling), so
        computations do not queue up faster than they finish.
        """
        req = self._importance.setdefault((method, seed), _ImportanceRequest())
        key = plots.importance_cache_key(study, method, seed, self.cache)
        count = key[-1] if key is not None else None
        if req.error is not None and req.error[0] == count:
            return Importance(req.data, False, req.error[1])
        if key is not None and req.data is not None and req.count == count:
            return Importance(req.data, True, None)
        now = _clock()
        if req.pending is not None and req.pending != count and now - req.since < req.wait:
            return Importance(req.data, False, None)  # an older request is still computing
        try:
            data = plots.importance_data_async(study, method=method, seed=seed, source=self.cache)
        except Exception as exc:  # importance can fail on odd spaces: a message, not a traceback
            req.pending = None
            req.error = (count, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            return Importance(req.data, False, req.error[1])
        if data is None:
            if req.pending is not None and req.pending != count:
                req.wait = min(2 * req.wait, IMPORTANCE_RETRY_MAX_SECONDS)
            if req.pending != count:
                req.pending, req.since = count, now
            return Importance(req.data, False, None)
        if req.pending == count:  # seen finishing: wait about that long before asking again
            req.wait = min(max(IMPORTANCE_RETRY_SECONDS, 2 * (now - req.since)), IMPORTANCE_RETRY_MAX_SECONDS)
        req.data, req.count, req.pending, req.error = data, count, None, None
        return Importance(data, True, None)


def _identity(study: optuna.Study) -> tuple[Any, ...]:
    """What tells a study from one deleted and re-created under the same name: its id (which
    SQLite may give again to a new newest study), creation time and spec."""
    try:
        attrs = study.user_attrs
    except KeyError as exc:  # Optuna: no study with this id any more
        raise StudyNotFoundError(f"The study {study.study_name!r} was deleted.") from exc
    return (storage.study_id(study), attrs.get(study_attrs.CREATED_AT), repr(attrs.get(study_attrs.SPEC)))


def live_study(study: optuna.Study) -> LiveStudy:
    """This session's ``LiveStudy`` of ``study`` (made on first use, or again when the study was
    deleted and re-created under the same name). Raises ``StudyNotFoundError`` if it was deleted.
    """
    studies: dict[tuple[str, str], LiveStudy] = st.session_state.setdefault(LIVE_STUDIES_KEY, {})
    name = (config.storage_url(), study.study_name)
    identity = _identity(study)
    live = studies.pop(name, None)
    if live is None or live.identity != identity:
        live = LiveStudy(identity, results.TrialsCache(study))
    studies[name] = live  # most recently used last
    while len(studies) > MAX_LIVE_STUDIES:
        studies.pop(next(iter(studies)))
    return live


def trials_cache(study: optuna.Study) -> results.TrialsCache:
    """This session's ``results.TrialsCache`` of ``study`` (see ``live_study``)."""
    return live_study(study).cache


# ------------------------------------------------------------------------------ access
AUTH_KEY = "hpdash_authenticated"
#: Seconds a wrong password costs the session that typed it (on top of the throttle).
WRONG_PASSWORD_DELAY = 0.5


#: Session key of the session's ``access.Actor`` (who is signed in, with which role).
ACTOR_KEY = "hpdash_actor"


def oidc_configured() -> bool:
    """Whether sign-in goes through an identity provider (``[auth]`` in the secrets)."""
    return access.oidc_configured(st.secrets)


def password_pending() -> bool:
    """Whether this session must still sign in: with OIDC (``st.login``) when ``[auth]`` is
    configured, else with ``HPDASH_PASSWORD`` when one is set."""
    if oidc_configured():
        return not st.user.is_logged_in
    return access.configured_password(st.secrets) is not None and not st.session_state.get(AUTH_KEY)


def _session_actor() -> access.Actor | None:
    """Who this script run's session is (``access.set_actor_provider``); None outside a
    session's run (the server's own threads). With OIDC, a session not signed in is a viewer;
    without, a session is an editor named by its address (the password, if any, is shared)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx() is None:
        return None
    actor = st.session_state.get(ACTOR_KEY)
    if isinstance(actor, access.Actor):
        return actor
    if oidc_configured():
        return access.Actor("a visitor who has not signed in", "viewer", "oidc")
    via = "password" if access.configured_password(st.secrets) is not None else "open"
    return access.Actor(f"a {via} session from {st.context.ip_address or 'this machine'}", "editor", via)


access.set_actor_provider(_session_actor)


def _oidc_providers() -> list[str]:
    """The named providers of ``[auth]`` (its sub-tables); empty: the one default provider."""
    auth = st.secrets.get("auth", {})
    return [name for name, value in auth.items() if isinstance(value, Mapping)]


def _require_oidc_sign_in() -> None:
    """Sign-in with the identity provider: until then a sign-in button and nothing else;
    after it, the session's actor (editor or viewer, ``access.role_for``) is recorded."""
    if not st.user.is_logged_in:
        st.session_state.pop(ACTOR_KEY, None)
        st.title("hpdash")
        st.caption("Sign in with your organisation's account to open this dashboard.")
        providers: list[str | None] = list(_oidc_providers()) or [None]
        for provider in providers:
            label = f"Sign in with {provider}" if provider else "Sign in"
            if st.button(label, type="primary", key=f"oidc_login_{provider or 'default'}"):
                st.login(provider)
        st.stop()
    claims = st.user.to_dict()
    email = claims.get("email")
    name = str(email or claims.get("preferred_username") or claims.get("sub") or "someone")
    actor = access.Actor(name, access.role_for(str(email) if email else None, claims), "oidc")
    st.session_state[ACTOR_KEY] = actor
    access.SIGN_INS.add(_session_id(), st.context.cookies.get(access.CLIENT_COOKIE), viewer=actor.is_viewer)


def _under_app_test() -> bool:
    return "streamlit.testing.v1.local_script_runner" in sys.modules


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def _throttle_keys() -> dict[str, str]:
    """This session and the address it connects from (None for loopback: "local")."""
    return {"session": _session_id(), "address": st.context.ip_address or "local"}


def require_password() -> None:
    """Ask for ``HPDASH_PASSWORD`` (env or Streamlit secrets) once per session; stop until given.

    Every page calls it first (``guard_page``) and the navigation script calls it before any
    page runs. The comparison is constant-time (``access.check_password``); wrong guesses are
    throttled per session and per client address (``access.PASSWORD_THROTTLE``); a session that
    signs in is recorded in ``access.SIGN_INS`` with its client cookie, which is what lets the
    server accept its uploads and serve its downloads. No password configured: no-op.
    """
    if oidc_configured():
        _require_oidc_sign_in()
        return
    if not password_pending():
        return
    st.title("hpdash")
    if not access.guarded() and not _under_app_test():
        st.error(
            "This dashboard is password-protected but was started without hpdash's "
            "server guard. Start it with `streamlit run app.py` (or `make run`).",
            icon=":material/lock:",
        )
        st.stop()
    expected = access.configured_password(st.secrets)
    st.caption("This dashboard is password-protected.")
    with st.form("login"):
        typed = st.text_input("Password", type="password", key="login_password", max_chars=access.MAX_PASSWORD_LENGTH)
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        keys = _throttle_keys()
        wait = access.PASSWORD_THROTTLE.wait(keys)
        if wait > 0:
            st.error(
                f"Too many wrong passwords from this browser or address. Try again in {access.wait_text(wait)}.",
                icon=":material/lock_clock:",
            )
            st.stop()
        try:
            if typed is not None and len(typed) > access.MAX_PASSWORD_LENGTH:
                raise AccessDeniedError("Wrong password. Ask whoever runs this dashboard for the team password.")
            access.check_password(typed, expected)
        except AccessDeniedError as exc:
            access.PASSWORD_THROTTLE.failed(keys)
            time.sleep(WRONG_PASSWORD_DELAY)
            st.error(str(exc), icon=":material/lock:")
        else:
            st.session_state[AUTH_KEY] = True
            access.SIGN_INS.add(keys["session"], st.context.cookies.get(access.CLIENT_COOKIE))
            access.PASSWORD_THROTTLE.succeeded([("session", keys["session"])])
            st.rerun()
    st.stop()


def guard_page() -> None:
    """The first call of every page: the sign-in gate (a no-op once signed in)."""
    require_password()


def read_only() -> bool:
    """Whether write and compute controls should be disabled (the library refuses them
    anyway): a review-only dashboard, or a viewer signed in with OIDC."""
    return access.read_only()


#: The tooltip of a control a read-only dashboard switches off.
READ_ONLY_HELP = "This dashboard is read-only: it changes nothing and runs no computation on request."
VIEWER_HELP = "You are signed in as a viewer: ask for the editor role to change anything."


def _locked_help() -> str:
    return READ_ONLY_HELP if access.dashboard_read_only() else VIEWER_HELP


# ------------------------------------------------------------------------------ widgets
def sidebar() -> None:
    """The shared sidebar: which storage and data directory are in use."""
    with st.sidebar:
        actor = st.session_state.get(ACTOR_KEY)
        if isinstance(actor, access.Actor) and actor.via == "oidc":
            st.caption(f"Signed in as {md(actor.name)} ({actor.role})")
            st.button("Sign out", key="oidc_logout", on_click=st.logout)
        if read_only() and not access.dashboard_read_only():
            st.info(
                "You are signed in as a viewer: you can look at everything, and launching, "
                "stopping, deleting, editing and uploading are for editors. Ask whoever runs "
                f"this dashboard to add you to {config.EDITORS_ENV}.",
                icon=":material/visibility:",
            )
        elif read_only():
            st.info(
                "Review-only dashboard: launching, stopping, deleting, editing and uploading are "
                "switched off, and so is anything that computes on request (smoke fit, refit, "
                "selection bias).",
                icon=":material/visibility:",
            )
        st.caption("Storage in use")
        st.code(views.storage_label(), language=None, wrap_lines=True)
        st.caption(f"Data directory: {markup.code(config.data_dir())}")


def md(text: Any) -> str:
    """User text (names, values, reasons, query parameters, error messages quoting them) as
    plain text in Streamlit's Markdown, cut to ``markup.MAX_SHOWN_CHARS`` first."""
    return markup.escape(markup.clip(text))


def code(text: Any) -> str:
    """User text as Markdown inline code, cut to ``markup.MAX_SHOWN_CHARS`` first."""
    return markup.code(markup.clip(text))


def labels_of(labels: Mapping[str, str]) -> Callable[[Any], str]:
    """A widget's ``format_func`` showing each option, a key of ``labels``, by its label.

    It is ``labels.get`` itself: a stale session value that is no longer a key formats as
    None, which matches no option's label, so Streamlit treats it as not an option. The cast
    is for Streamlit's stub, which wants a ``str`` for every value it formats.
    """
    return cast(Callable[[Any], str], labels.get)


def dataset_picker(key: str, container: Any = None, label: str = "Dataset") -> tuple[str, pd.DataFrame, str | None]:
    """The dataset selectbox every page uses: bundled samples and stored uploads, a stale
    choice (a dataset deleted since) dropped, the chosen table loaded (cached). Returns
    (reference, frame, SHA-256 or None for a sample); a table that cannot be loaded is shown
    as an error and the page stops there."""
    choices = views.dataset_choices()
    if st.session_state.get(key) not in choices:
        st.session_state.pop(key, None)
    ref = (container or st).selectbox(label, list(choices), format_func=labels_of(choices), key=key)
    try:
        frame, sha = load_frame(ref)
    except HpdashError as exc:
        show_error(exc)
        st.stop()
    return ref, frame, sha


def write_button(label: str, key: str, *, disabled: bool = False, container: Any = None, **kwargs: Any) -> bool:
    """A button that writes or starts work on the server (a launch, a refit, a computation on
    request): switched off, with the reason as its tooltip, on a read-only dashboard (the
    library refuses the action anyway, with ``ReadOnlyError``)."""
    locked = read_only()
    help_text = _locked_help() if locked else kwargs.pop("help", None)
    kwargs.pop("help", None)
    return bool((container or st).button(label, key=key, disabled=disabled or locked, help=help_text, **kwargs))


def show_error(exc: Exception, prefix: str = "") -> None:
    """A user-facing error: the message of an ``HpdashError``; anything else briefly. Shown as
    plain text, since messages quote user input (column names, file names, values)."""
    if isinstance(exc, HpdashError):
        st.error(md(f"{prefix}{exc}"), icon=":material/warning:")
    else:
        st.error(md(f"{prefix}Unexpected error: {type(exc).__name__}: {exc}"), icon=":material/warning:")


def study_link(name: str, label: str | None = None, icon: str | None = None) -> None:
    """A link to a study page with the shareable ``?study=NAME`` query; ``label`` (default:
    the name) is shown as plain text."""
    st.page_link(PAGE_STUDY, label=md(label or name), icon=icon, query_params={"study": name})


def open_study(name: str) -> None:
    """Switch to the study page of ``name`` (stops the current script run)."""
    st.switch_page(PAGE_STUDY, query_params={"study": name})


def prefill_new_study(values: dict[str, Any]) -> None:
    """Remember values for the New study form and open it."""
    st.session_state[PREFILL_KEY] = values
    st.switch_page(PAGE_NEW)
