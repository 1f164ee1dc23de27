"""Streamlit-aware helpers shared by app.py and pages/ (the only hpdash code that imports streamlit)."""
