"""hpdash web app: `streamlit run app.py` (or `make run`).

`streamlit run` finds the ``st.App`` below and serves it: the Streamlit script
(``hpdash/ui/main.py``: navigation over ``pages/``, the sign-in gate, the sidebar) behind
hpdash's HTTP guard and start-up hook (``hpdash/ui/server.py``).
"""

import streamlit as st

from hpdash.ui import server

app = st.App(server.SCRIPT, middleware=server.middleware(), lifespan=server.lifespan)
