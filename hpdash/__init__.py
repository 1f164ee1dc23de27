"""hpdash: hyperparameter tuning with Optuna, stored in SQLite, shown in Streamlit.

This package is a plain library: only ``hpdash.ui`` may import Streamlit.
"""

__version__ = "0.1.0"
