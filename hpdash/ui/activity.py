"""The audit trail on the Study page: who did what to the study, and when (``hpdash.audit``)."""

from __future__ import annotations

import streamlit as st

from hpdash import audit
from hpdash.errors import HpdashError
from hpdash.ui import common

#: Rows shown on the page (the newest); the table keeps every row.
SHOWN = 50


def study_activity(name: str) -> None:
    """The study's trail, newest first, as a table of plain values (never Markdown)."""
    st.subheader("Activity")
    try:
        rows = audit.events(name, limit=SHOWN)
    except HpdashError as exc:
        common.show_error(exc)
        return
    if rows.empty:
        st.caption(
            "Nothing recorded yet: launches, stops, resumes, refits and notes are recorded here with who did them."
        )
        return
    st.dataframe(
        rows.drop(columns=["study"]),
        hide_index=True,
        width="stretch",
        column_config={
            "at": st.column_config.TextColumn("When (UTC)"),
            "actor": st.column_config.TextColumn("Who"),
            "role": st.column_config.TextColumn("Role"),
            "via": st.column_config.TextColumn("Signed in with"),
            "action": st.column_config.TextColumn("What"),
            "detail": st.column_config.TextColumn("Detail"),
        },
    )
