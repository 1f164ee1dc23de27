"""Studies: every study in the storage, with filters, links, stop, resume and delete."""

import streamlit as st

from hpdash import runner, views
from hpdash.errors import HpdashError
from hpdash.ui import common

common.guard_page()

st.title("Studies")

try:
    frame = views.studies_frame()
except HpdashError as exc:
    common.show_error(exc, "Cannot read the studies: ")
    st.stop()

if frame.empty:
    st.info(
        "No studies yet. Start one from the Home page's quick starts, or configure one on the New study page.",
        icon=":material/info:",
    )
    st.page_link(common.PAGE_NEW, label="New study", icon=":material/rocket_launch:")
    st.stop()

c1, c2, c3 = st.columns([2, 1, 1])
search = c1.text_input("Search", placeholder="name, dataset or model", key="st_search")
states = c2.multiselect("State", sorted(frame["state"].unique()), key="st_states")
strategies = c3.multiselect("Strategy", sorted(frame["strategy"].unique()), key="st_strategies")
shown = views.filter_studies(frame, search, states, strategies)
st.caption(f"{len(shown)} of {len(frame)} studies. Click a name to open its page.")

table = shown
# What matters first, so it is on screen at 1400 px: the study, its state and progress, its
# best score and metric; what it ran on after.
st.dataframe(
    table[views.STUDIES_TABLE_COLUMNS],
    hide_index=True,
    width="stretch",
    column_config={
        "link": st.column_config.LinkColumn("study", display_text=r"/study\?study=(.*)", width="medium"),
        "state": st.column_config.TextColumn("state", width=90),
        "progress": st.column_config.TextColumn("done / budget", width=110),
        "best": st.column_config.NumberColumn("best CV score", format="%.4f", width=115),
        "metric": st.column_config.TextColumn("metric", width=140),
        "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
    },
)

st.subheader("Manage a study")
names = list(shown["name"]) or list(frame["name"])
c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 1], vertical_alignment="bottom")
name = c1.selectbox("Study", names, key="st_pick")
row = frame[frame["name"] == name].iloc[0]
running = row["state"] == "running"
with c2:
    common.study_link(name, label="Open", icon=":material/monitoring:")
if common.write_button(
    "Stop", key="st_stop", disabled=not running, container=c3, help="Running trials end at their next fold."
):
    try:
        runner.stop_study(name)
    except HpdashError as exc:
        common.show_error(exc)
    else:
        st.toast(f"Asked {common.md(name)} to stop.")
        st.rerun()
if common.write_button(
    "Resume",
    key="st_resume",
    disabled=row["state"] not in ("stopped", "worker lost", "created"),
    container=c4,
    help="Start workers again on the remaining budget.",
):
    try:
        runner.resume_study(name)
    except HpdashError as exc:
        common.show_error(exc)
    else:
        common.open_study(name)
if common.write_button("Delete…", key="st_delete", container=c5):
    st.session_state["st_pending_delete"] = name

pending = st.session_state.get("st_pending_delete")
if pending and pending in set(frame["name"]):
    with st.container(border=True):
        st.warning(
            f"Delete study **{common.md(pending)}**, its trials, its note and its refit model? This cannot be undone.",
            icon=":material/delete:",
        )
        y, n = st.columns(2)
        if common.write_button(f"Yes, delete {common.md(pending)}", key="st_delete_yes", container=y, type="primary"):
            try:
                runner.delete_study(pending)
            except HpdashError as exc:
                common.show_error(exc)
            else:
                st.session_state.pop("st_pending_delete", None)
                st.toast(f"Deleted {common.md(pending)}")
                st.rerun()
        if n.button("Cancel", key="st_delete_no"):
            st.session_state.pop("st_pending_delete", None)
            st.rerun()
