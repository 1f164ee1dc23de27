"""Datasets: upload or pick a sample, preview and profile it, pick the target, manage uploads."""

import streamlit as st

from hpdash import datasets, views
from hpdash.errors import HpdashError
from hpdash.ui import common

common.guard_page()

st.title("Datasets")
st.caption(
    "Upload a CSV or Parquet table, or explore a bundled sample. hpdash stores each "
    "upload once, named by the SHA-256 of its bytes, so studies can find it again."
)

# ------------------------------------------------------------------------------ upload
with st.container(border=True):
    st.subheader("Add a dataset")
    uploaded = st.file_uploader(
        "Upload a CSV or Parquet file",
        type=["csv", "tsv", "txt", "parquet", "pq"],
        key="ds_upload",
        help="Comma, semicolon, tab or pipe separated; first row is the header.",
        disabled=common.read_only(),
    )
    if uploaded is not None and st.session_state.get("ds_upload_id") != uploaded.file_id:
        # Store each uploaded file once (reruns keep the file in the widget).
        st.session_state["ds_upload_id"] = uploaded.file_id
        st.session_state.pop("ds_upload_result", None)
        try:
            stored = datasets.store_dataset(uploaded.getvalue(), uploaded.name)
        except HpdashError as exc:
            st.session_state["ds_upload_result"] = ("error", str(exc))
        else:
            st.session_state["ds_pick"] = stored.sha256
            common.load_frame.clear()
            st.session_state["ds_upload_result"] = (
                "ok",
                f"Stored **{common.md(stored.name)}**: {stored.n_rows:,} rows × {stored.n_cols} "
                f"columns (SHA-256 `{stored.sha256[:12]}…`). Explore it below.",
            )
    result = st.session_state.get("ds_upload_result") if uploaded is not None else None
    if result and result[0] == "error":
        st.error(common.md(result[1]), icon=":material/block:")
    elif result:
        st.success(result[1], icon=":material/check_circle:")

# ------------------------------------------------------------------------------ explore
stored_rows = views.datasets_frame()
if stored_rows.empty:
    st.info(
        "No uploaded datasets yet. Upload a table above, or explore one of the bundled samples below.",
        icon=":material/info:",
    )

st.subheader("Explore a dataset")
ref, frame, _ = common.dataset_picker("ds_pick")

columns = [str(c) for c in frame.columns]
c1, c2 = st.columns(2)
guess = views.default_target(columns)
target = c1.selectbox(
    "Target column (what the model predicts)",
    columns,
    index=columns.index(guess) if guess in columns else 0,
    key=f"ds_target_{ref}",
)
task = c2.radio(
    "Task",
    ["auto", "classification", "regression"],
    horizontal=True,
    key=f"ds_task_{ref}",
    help="auto: a text target or a few whole-number values is classification, anything else regression.",
)

try:
    base = common.profile(ref, target, task)
except HpdashError as exc:
    common.show_error(exc, "This target cannot be used: ")
    base = common.profile(ref, None, "auto")

# Columns hpdash drops by default but the user may keep (the spec's keep_columns).
keepable = views.keepable_columns(base)
keep: list[str] = []
if keepable:
    keep = st.multiselect(
        "Keep as features although hpdash would drop them",
        list(keepable),
        key=f"ds_keep_{ref}",
        format_func=lambda c: f"{c}: {keepable[c]}",
        help="ID-like and text columns with many distinct values are dropped by default: one-hot "
        "encoding them makes a column per value. Keep one when it does carry signal.",
    )
prof = base
if keep and base.target is not None:
    try:
        prof = common.profile(ref, target, task, tuple(keep))
    except HpdashError as exc:
        common.show_error(exc)
        keep = []

m1, m2, m3, m4 = st.columns(4)
m1.metric("Rows", f"{prof.n_rows:,}")
m2.metric("Columns", prof.n_cols)
m3.metric("Task", prof.task or "–")
m4.metric("Dropped columns", len(prof.dropped()))
missing_note = views.target_missing_note(prof)
if missing_note:
    st.info(common.md(missing_note), icon=":material/filter_alt:")

ready = prof.task is not None
if ready:
    try:
        datasets.prepare(frame, target, task=task, folds=2, keep_columns=keep or None)
    except HpdashError as exc:
        common.show_error(exc)
        ready = False
if st.button("New study with this dataset →", type="primary", disabled=not ready, key="ds_new_study"):
    common.prefill_new_study({"dataset": ref, "target": target, "task": task, "keep_columns": keep or None})

tab_preview, tab_columns, tab_target = st.tabs(["Preview", "Columns and roles", "Target distribution"])
with tab_preview:
    st.dataframe(frame.head(100), width="stretch", height=320)
    st.caption(f"First {min(100, len(frame))} of {len(frame):,} rows.")
with tab_columns:
    # Name, role and examples first; "why dropped" last, and only when a column is dropped.
    st.dataframe(
        views.columns_table(prof),
        width="stretch",
        hide_index=True,
        column_config={
            "name": st.column_config.TextColumn("name", width="medium"),
            "role": st.column_config.TextColumn("role", width="small"),
            "examples": st.column_config.TextColumn("examples", width="medium"),
            "missing_share": st.column_config.ProgressColumn(
                "missing", format="percent", min_value=0.0, max_value=1.0, width="small"
            ),
            "n_unique": st.column_config.NumberColumn("distinct values", width="small"),
            "dtype": st.column_config.TextColumn("dtype", width="small"),
            "reason": st.column_config.TextColumn("why dropped", width="large"),
        },
    )
    dropped = prof.dropped()
    if dropped:
        st.markdown("**Not used as features:**")
        for col in dropped:
            st.markdown(f"- {common.code(col.name)}: {common.md(col.reason)}")
    else:
        st.caption(
            "Every column is used (numbers are imputed and scaled, categories one-hot encoded, dates split into parts)."
        )
with tab_target:
    dist = prof.target_distribution
    if dist.empty:
        st.info("Pick a usable target to see its distribution.")
    elif "class" in dist.columns:
        st.bar_chart(dist, x="class", y="count")
    else:
        shown = dist.assign(bin=[f"{a:.3g}–{b:.3g}" for a, b in zip(dist["bin_left"], dist["bin_right"])])
        st.bar_chart(shown, x="bin", y="count", sort=False)
    if missing_note:
        st.caption(common.md(missing_note))

# ------------------------------------------------------------------------------ manage
st.subheader("Your uploaded datasets")
if stored_rows.empty:
    st.caption("Nothing uploaded yet.")
else:
    st.dataframe(
        stored_rows.drop(columns=["sha256"]),
        width="stretch",
        hide_index=True,
        column_config={"file_present": st.column_config.CheckboxColumn("file present")},
    )
    names = dict(zip(stored_rows["sha256"], stored_rows["name"]))
    col_pick, col_btn = st.columns([3, 1], vertical_alignment="bottom")
    victim = col_pick.selectbox(
        "Delete a dataset", list(names), format_func=lambda s: f"{names[s]} ({s[:8]})", key="ds_delete_pick"
    )
    users = views.studies_using_dataset(victim)
    if users:
        col_btn.button("Delete", disabled=True, key="ds_delete_disabled")
        st.caption(f"Used by {len(users)} studies ({common.md(', '.join(users[:5]))}); delete those studies first.")
    else:
        confirm = st.checkbox(
            f"Yes, delete {common.md(names[victim])} and its file", key="ds_delete_confirm", disabled=common.read_only()
        )
        if common.write_button("Delete", key="ds_delete", disabled=not confirm, container=col_btn):
            try:
                datasets.delete_stored(victim)
            except HpdashError as exc:
                common.show_error(exc)
            else:
                common.load_frame.clear()
                st.session_state.pop("ds_pick", None)
                st.session_state.pop("ds_delete_confirm", None)
                st.toast(f"Deleted {common.md(names[victim])}")
                st.rerun()
