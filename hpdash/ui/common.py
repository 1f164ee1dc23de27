"""Shared widgets, caching and session helpers for the pages.

Pages call these; they never touch SQL or Optuna internals. Nothing here starts a thread:
studies run in worker processes (``hpdash.runner.launch_workers``) and the UI only polls.
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import streamlit as st

from hpdash import access, config, datasets, models, objective, views
from hpdash.errors import AccessDeniedError, HpdashError

PAGE_HOME = "pages/home.py"
PAGE_DATASETS = "pages/datasets.py"
PAGE_NEW = "pages/new_study.py"
PAGE_STUDIES = "pages/studies.py"
PAGE_STUDY = "pages/study.py"
PAGE_COMPARE = "pages/compare.py"

#: Session key the Datasets page (or an uploaded spec) uses to prefill the New study form.
PREFILL_KEY = "new_study_prefill"


# ------------------------------------------------------------------------------ routing
def ensure_navigation() -> None:
    """Leave Streamlit's legacy ``pages/``-folder mode on the first run of a fresh server.

    Streamlit decides per process, before any script runs, that an app next to a ``pages/``
    folder is a v1 multipage app, and only drops that once ``st.navigation`` has been called.
    So the very first run after start-up executes ``pages/<name>.py`` on its own, without
    app.py's navigation and sidebar. Every page calls this first: it switches the flag off and
    reruns, and the rerun goes through app.py's ``st.navigation``. The page ``url_path``s equal
    the file names, so the legacy run finds the same page and shows no "Page not found".
    (Private Streamlit attribute; renaming ``pages/`` would remove the need for it.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    if "streamlit.testing.v1.local_script_runner" in sys.modules:
        return  # AppTest resets the flag before every run and routes pages itself
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


# ------------------------------------------------------------------------------ caching
@st.cache_data(show_spinner=False, max_entries=16)
def load_frame(ref: str) -> tuple[pd.DataFrame, str | None]:
    """A dataset by reference (sample, stored SHA-256 or path), cached per reference."""
    return datasets.load_dataset(ref)


@st.cache_data(show_spinner=False, max_entries=8)
def read_upload(data: bytes, filename: str) -> pd.DataFrame:
    """An uploaded file read and validated (``DatasetError`` when rejected)."""
    return datasets.read_table(data, filename, max_bytes=config.max_upload_bytes())


@st.cache_data(show_spinner=False, max_entries=32)
def profile(ref: str, target: str | None, task: str) -> datasets.DatasetProfile:
    frame, _ = load_frame(ref)
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
    """The timed first fit of a spec (cached per spec, so editing other fields is instant)."""
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


# ------------------------------------------------------------------------------ access
AUTH_KEY = "hpdash_authenticated"


def password_pending() -> bool:
    """Whether a password is configured and this session has not given it yet."""
    return access.configured_password(st.secrets) is not None and not st.session_state.get(AUTH_KEY)


def require_password() -> None:
    """Ask for ``HPDASH_PASSWORD`` (env or Streamlit secrets) once per session; stop until given.

    The comparison is constant-time (``access.check_password``). No password configured: no-op.
    """
    if not password_pending():
        return
    expected = access.configured_password(st.secrets)
    st.title("hpdash")
    st.caption("This dashboard is password-protected.")
    with st.form("login"):
        typed = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            access.check_password(typed, expected)
        except AccessDeniedError as exc:
            st.error(str(exc), icon=":material/lock:")
        else:
            st.session_state[AUTH_KEY] = True
            st.rerun()
    st.stop()


def read_only() -> bool:
    """Whether write controls should be disabled (the library refuses writes anyway)."""
    return access.read_only()


# ------------------------------------------------------------------------------ widgets
def sidebar() -> None:
    """The shared sidebar: which storage and data directory are in use."""
    with st.sidebar:
        if read_only():
            st.info("Review-only dashboard: launching, stopping, deleting and editing are "
                    "switched off.", icon=":material/visibility:")
        st.caption("Storage in use")
        st.code(views.storage_label(), language=None, wrap_lines=True)
        st.caption(f"Data directory: `{config.data_dir()}`")


def show_error(exc: Exception, prefix: str = "") -> None:
    """A user-facing error: the message of an ``HpdashError``; anything else briefly."""
    if isinstance(exc, HpdashError):
        st.error(f"{prefix}{exc}", icon=":material/warning:")
    else:
        st.error(f"{prefix}Unexpected error: {type(exc).__name__}: {exc}", icon=":material/warning:")


def study_link(name: str, label: str | None = None, icon: str | None = None) -> None:
    """A link to a study page with the shareable ``?study=NAME`` query."""
    st.page_link(PAGE_STUDY, label=label or name, icon=icon, query_params={"study": name})


def open_study(name: str) -> None:
    """Switch to the study page of ``name`` (stops the current script run)."""
    st.switch_page(PAGE_STUDY, query_params={"study": name})


def state_badge(state: str) -> str:
    return state


def prefill_new_study(values: dict[str, Any]) -> None:
    """Remember values for the New study form and open it."""
    st.session_state[PREFILL_KEY] = values
    st.switch_page(PAGE_NEW)
