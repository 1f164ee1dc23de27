"""The Study page's advisor: a smaller search space for the next study, one click from New study.

The proposal itself is ``hpdash.advisor.propose`` (PED-ANOVA on the study's trials); this
module only shows it and hands its spec to the New study form. It is computed on request,
not on every rerun: PED-ANOVA reads every trial.
"""

from __future__ import annotations

import optuna
import streamlit as st

from hpdash import advisor
from hpdash.errors import HpdashError
from hpdash.spec import StudySpec
from hpdash.ui import common

#: Session key of the last proposal, per study: ``(study name, trial count) -> Proposal``.
PROPOSAL_KEY = "advisor_proposal"


def follow_up_name(name: str) -> str:
    """The follow-up study's name: the source's with ``-narrowed``, cut to a study name's length."""
    suffix = "-narrowed"
    return name[: 100 - len(suffix)] + suffix


def show_advisor(study: optuna.Study, spec: StudySpec | None, complete: int) -> None:
    """The advisor's expander: a button that proposes, the proposal in words, and a button
    that opens New study prefilled with it."""
    with st.expander("Advisor: a smaller space for the next study"):
        st.caption(
            "Keeps the hyperparameters that carry most of the importance (PED-ANOVA), narrows each "
            "to the range of the best trials, and fixes the others at the best trial's values."
        )
        if spec is None:
            st.info("This study has no stored spec to start a follow-up from.")
            return
        needed = advisor.needed_trials(advisor.TOP_QUANTILE)
        if complete < needed:
            st.info(f"The advisor needs at least {needed} complete trials; this study has {complete}.")
            return
        key = (study.study_name, complete)
        held = st.session_state.get(PROPOSAL_KEY)
        if st.button("Propose a smaller space", key="advisor_propose"):
            try:
                held = (key, advisor.propose(study))
            except HpdashError as exc:
                held = (key, str(exc))
            st.session_state[PROPOSAL_KEY] = held
        if held is None or held[0] != key:
            return
        proposal = held[1]
        if isinstance(proposal, str):
            st.warning(f"No proposal: {common.md(proposal)}")
            return
        st.markdown("\n".join(f"- {common.md(line)}" for line in proposal.lines()))
        try:
            follow_up = proposal.spec(spec, follow_up_name(study.study_name))
        except HpdashError as exc:
            st.warning(f"The proposal does not make a valid spec: {common.md(str(exc))}")
            return
        if st.button("Open New study with this space", key="advisor_open", type="primary"):
            common.prefill_new_study(follow_up.to_dict())
