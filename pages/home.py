"""Home: what hpdash does, quick starts, recent studies, and the storage in use."""

import streamlit as st

from hpdash import views
from hpdash.strategies import STRATEGY_LABELS
from hpdash.ui import common, strategy_views

common.guard_page()

st.title("hpdash")
st.markdown(
    "Tune the **hyperparameters** of a scikit-learn model with grid, random or Bayesian "
    "search, watch every trial land in the database, and come back to the results later."
)

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Parameters vs hyperparameters")
    st.markdown(
        "- **Parameters** are what the model *learns* from the data: coefficients, tree splits.\n"
        "- **Hyperparameters** are what *you* set before training. Some shape the model "
        "(number of trees, k neighbours, kernel); others control the learning process "
        "(learning rate, regularisation). Even the algorithm itself can be one.\n"
        "- A **study** tries many hyperparameter settings (*trials*), scores each with "
        "cross-validation, and keeps the best. The best setting is then refit and scored once "
        "on a **holdout** part the search never saw."
    )
    st.subheader("Search strategies")
    st.markdown(
        "- **Grid search** tries every combination of a few values per hyperparameter: "
        "exhaustive, but the number of trials multiplies quickly.\n"
        "- **Random search** draws settings at random: a strong, simple baseline.\n"
        "- **Bayesian optimisation** (TPE or a Gaussian process) learns from earlier trials "
        "where good settings are likely, and samples there more often."
    )
    with st.expander("All strategies hpdash offers"):
        for key, label in STRATEGY_LABELS.items():
            st.markdown(f"- `{key}`: {label}")

with right:
    st.subheader("Quick start")
    st.caption("One click creates a small study on a bundled sample dataset, starts it, and opens its live page.")
    for key, (label, _) in views.QUICK_STARTS.items():
        if common.write_button(label, key=f"quick_{key}", width="stretch"):
            try:
                spec = views.quick_start_spec(key)
                with st.spinner("Creating the study and starting its worker…"):
                    views.start_study(spec)
            except Exception as exc:  # shown to the user, never a traceback
                common.show_error(exc, "Could not start the study: ")
            else:
                common.open_study(spec.name)
    st.subheader("Demo: how the strategies think")
    strategy_views.demo_button()
    st.page_link(common.PAGE_DATASETS, label="Upload your own table", icon=":material/table_view:")
    st.page_link(common.PAGE_NEW, label="Configure a study yourself", icon=":material/rocket_launch:")

    st.subheader("Recent studies")
    try:
        studies = views.studies_frame()
    except Exception as exc:
        common.show_error(exc, "Cannot read the studies: ")
        studies = None
    if studies is not None and studies.empty:
        st.info("No studies yet. Use a quick start above, or upload a dataset to begin.")
    elif studies is not None:
        for row in studies.head(5).to_dict("records"):
            common.study_link(
                row["name"],
                label=f"{row['name']} · {row['state']} · {row['progress']} "
                f"trials · best {views.format_score(row['best'])}",
            )
        st.page_link(common.PAGE_STUDIES, label="All studies", icon=":material/list_alt:")

st.divider()
st.caption(
    f"Storage in use: {common.code(views.storage_label())}. Other Optuna tools (optuna-dashboard, "
    "`optuna.load_study`) can open it as is."
)
