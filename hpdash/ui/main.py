"""The Streamlit script that app.py serves: navigation, the sign-in gate, the shared sidebar.

It lives here, not beside the top-level ``pages/`` folder, so that Streamlit never runs in its
legacy multipage mode (see ``hpdash/ui/server.py``). Pages are thin and call hpdash.
"""

import streamlit as st

from hpdash.ui import common

st.set_page_config(page_title="hpdash: hyperparameter tuning", page_icon=":material/tune:", layout="wide")

pages = [
    st.Page(common.PAGE_HOME, title="Home", icon=":material/home:", default=True, url_path="home"),
    st.Page(common.PAGE_DATASETS, title="Datasets", icon=":material/table_view:", url_path="datasets"),
    st.Page(common.PAGE_NEW, title="New study", icon=":material/rocket_launch:", url_path="new_study"),
    st.Page(common.PAGE_STUDIES, title="Studies", icon=":material/list_alt:", url_path="studies"),
    st.Page(common.PAGE_STUDY, title="Study", icon=":material/monitoring:", url_path="study"),
    st.Page(common.PAGE_COMPARE, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
]
# Navigation first, so a shared link (/study?study=NAME) still opens that page after sign-in;
# the menu stays hidden until the password (HPDASH_PASSWORD) is given.
page = st.navigation(pages, position="hidden" if common.password_pending() else "sidebar")
common.require_password()  # nothing below runs until the password is given
common.sidebar()
page.run()
