"""Demo mode in the browser: step through a study, look inside its strategy, replay strategies.

The Study page's "Step through" tab (``step_through``) and the Compare page's replay
(``replayed_comparison``, ``placement_animation``) and Home's one-click demo (``demo_button``)
are Streamlit widgets around ``hpdash.explain`` (the data and figures) and
``hpdash.views.demo`` (the demo's study and the replay links).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

import optuna
import pandas as pd
import streamlit as st

from hpdash import access, plots
from hpdash.compare import Comparison
from hpdash.errors import HpdashError
from hpdash.explain import animation, coverage, replay, steps, surrogate, tpe
from hpdash.explain.record import load_recorded
from hpdash.ui import common
from hpdash.views import demo

#: Seconds between two steps while the slider plays.
PLAY_SECONDS = 0.8
#: A played study advances by enough trials per step to reach its end in about this many steps.
PLAY_STEPS = 100
BAYESIAN = ("gp", "gp_torch")


# ---------------------------------------------------------------------------- step through
def _stride(numbers: list[int]) -> int:
    return max(1, math.ceil(len(numbers) / PLAY_STEPS))


def _next_number(numbers: list[int], k: int, stride: int) -> int | None:
    later = [n for n in numbers if n > k]
    return later[min(stride, len(later)) - 1] if later else None


def step_through(
    study: optuna.Study,
    frame: pd.DataFrame,
    direction: str,
    metric: str | None,
    log_params: Collection[str],
    strategy: str | None,
) -> None:
    """A trial slider and a play button; the figures as they were after trial k, with the next
    trial highlighted, then what the strategy itself saw at that step. ``strategy``: the
    spec's, else read from the study (``surrogate.study_strategy``)."""
    state = st.session_state
    strategy = strategy or surrogate.study_strategy(study)
    numbers = steps.step_numbers(frame)
    if not numbers:
        st.info("No trials yet: the slider appears with the first trial.", icon=":material/hourglass_top:")
        return
    first, last = numbers[0], numbers[-1]
    if not isinstance(state.get("step_k"), int) or not first <= state["step_k"] <= last:
        state["step_k"] = last
    playing = bool(state.get("step_playing"))
    stride = _stride(numbers)
    left, right = st.columns([1, 4], vertical_alignment="bottom")
    if left.button("Pause" if playing else "Play", icon=":material/pause:" if playing else ":material/play_arrow:"):
        if not playing and state["step_k"] >= last:
            state["step_k"] = first
        state["step_playing"] = not playing
        state["step_hold"] = not playing  # the first frame of a play shows where it starts
        st.rerun()
    right.caption(
        "Drag the slider, or press Play to watch the study trial by trial"
        + (f" ({stride} trials per step)." if stride > 1 else ".")
    )

    @st.fragment(run_every=PLAY_SECONDS if playing else None)
    def panel() -> None:
        if state.get("step_playing") and not state.pop("step_hold", False):
            following = _next_number(numbers, int(state["step_k"]), stride)
            if following is None:
                state["step_playing"] = False
                st.rerun()  # the whole page, so the timer stops
            else:
                state["step_k"] = following
        k = st.slider("After trial", first, last, key="step_k", disabled=first == last)
        view = steps.step_view(frame, k, direction)
        st.plotly_chart(steps.convergence_at_figure(view, metric, direction), key="step_convergence")
        pair = plots.default_placement_params(frame)
        if len(pair) == 2:
            st.plotly_chart(steps.placement_at_figure(view, pair[0], pair[1], log_params, metric), key="step_placement")
        inside_strategy(study, frame, view, strategy, log_params)

    panel()


def inside_strategy(
    study: optuna.Study, frame: pd.DataFrame, view: steps.StepView, strategy: str | None, log_params: Collection[str]
) -> None:
    """What the strategy saw when it chose the next trial: the GP's surrogate and expected
    improvement, TPE's good/bad split and densities, the grid's order, or random's coverage."""
    following = int(view.next_trial["number"]) if view.next_trial is not None else view.k + 1
    if strategy in BAYESIAN:
        st.markdown(f"**Inside the Gaussian process** before trial {following}")
        _inside_gp(study, following)
    elif strategy == "tpe":
        st.markdown(f"**Inside TPE** before trial {following}")
        _inside_tpe(study, following)
    elif strategy == "grid":
        st.markdown("**The grid and the order it ran in**")
        _inside_grid(study, frame, log_params)
    elif strategy in ("random", "qmc"):
        st.markdown("**Coverage of the space**")
        _coverage(study, frame, strategy)
    else:
        st.caption(f"hpdash has no inside view for {common.md(strategy or 'this strategy')} yet.")


def _inside_gp(study: optuna.Study, k: int) -> None:
    try:
        view = surrogate.surrogate_at(study, k)
    except HpdashError as exc:
        st.info(common.md(str(exc)), icon=":material/info:")
        return
    st.caption(common.md(f"{view.label}. Slice: {view.scope}."))
    names = surrogate.slice_params(view)
    if not names:
        st.info("The Gaussian process has no hyperparameter to draw.", icon=":material/info:")
        return
    param = st.selectbox("Hyperparameter", names, key="gp_slice_param")
    st.plotly_chart(surrogate.slice_figure(view, param), key="gp_slice")
    if len(names) >= 2:
        other = [n for n in names if n != param]
        second = st.selectbox("Second hyperparameter (map)", other, key="gp_map_param")
        st.plotly_chart(surrogate.map_figure(view, param, second), key="gp_map")


def _inside_tpe(study: optuna.Study, k: int) -> None:
    try:
        data = tpe.tpe_study(study)
        split = tpe.tpe_split(data.trials, k, data.direction, n_startup_trials=data.n_startup_trials)
    except HpdashError as exc:
        st.info(common.md(str(exc)), icon=":material/info:")
        return
    st.caption(common.md(f"{split.rule}. {tpe.RECONSTRUCTION_LABEL}."))
    st.plotly_chart(tpe.split_figure(split), key="tpe_split")
    names = sorted({name for t in data.trials if t.number < k for name in t.distributions})
    if not names:
        st.caption("No hyperparameter was sampled before this trial.")
        return
    param = st.selectbox("Hyperparameter", names, key="tpe_param")
    try:
        dens = tpe.densities(data.trials, k, param, data.direction, n_startup_trials=data.n_startup_trials)
    except HpdashError as exc:
        st.info(common.md(str(exc)), icon=":material/info:")
        return
    st.plotly_chart(tpe.density_figure(dens), key="tpe_density")


def _inside_grid(study: optuna.Study, frame: pd.DataFrame, log_params: Collection[str]) -> None:
    try:
        order = coverage.grid_order_data(study, frame)
    except (ValueError, HpdashError) as exc:
        st.info(common.md(str(exc)), icon=":material/info:")
        return
    st.caption(common.md(order.note))
    pair = plots.default_placement_params(frame)
    if len(pair) == 2:
        st.plotly_chart(coverage.grid_order_figure(order, pair[0], pair[1], log_params), key="grid_order")


def _own_against_other(
    study: optuna.Study, frame: pd.DataFrame, spaces: Any, strategy: str, n: int
) -> list[coverage.CoverageSet]:
    """The study's first ``n`` completed trials (random or QMC) beside ``n`` points of the
    other strategy drawn for illustration, over every hyperparameter of the space."""
    flat = coverage.flat_space(spaces)
    other = "qmc" if strategy == "random" else "random"
    own = frame.loc[frame["state"] == "COMPLETE"].head(n).assign(study=study.study_name, strategy=strategy, seed=0)
    drawn = coverage.draw_samples(spaces, n, other, seed=0)
    sets = coverage.coverage_sets(pd.concat([own, drawn], ignore_index=True), list(flat), flat, (strategy, other))
    return [
        dataclasses.replace(s, label=f"{s.label} (drawn, no fit)", illustrative=True)
        if s.strategy == other
        else dataclasses.replace(s, label=f"{s.label} (this study)")
        for s in sets
    ]


def _coverage(study: optuna.Study, frame: pd.DataFrame, strategy: str) -> None:
    try:
        spaces = coverage.study_spaces(study)
    except HpdashError as exc:
        st.info(common.md(str(exc)), icon=":material/info:")
        return
    flat = coverage.flat_space(spaces)
    pair = [p for p in plots.default_placement_params(frame) if p in flat]
    if len(pair) != 2:
        st.caption("Coverage needs two hyperparameters.")
        return
    n = int((frame["state"] == "COMPLETE").sum())
    if n < 2:
        st.caption("Coverage appears after two completed trials.")
        return
    sets = _own_against_other(study, frame, spaces, strategy, min(n, coverage.MAX_ILLUSTRATION_POINTS))
    st.caption(
        "The study's own samples against the other way of spreading points, drawn for illustration "
        "with the same number of points (no model fitted): a lower discrepancy means the points cover "
        "the space more evenly. QMC's Sobol points are built to be even; random ones clump and leave gaps."
    )
    st.plotly_chart(coverage.coverage_figure(sets, pair[0], pair[1], flat), key="coverage")


# ------------------------------------------------------------------------------ replay
@st.cache_resource(max_entries=4, ttl=3600, show_spinner=False)
def _replay(settings: demo.ReplaySettings, recorded_count: int, _progress: Any = None) -> Comparison:
    """The replay of ``settings`` (kept per server; ``recorded_count`` changes when the source
    study gained trials, so a growing study is replayed again; ``_progress(done, total)`` is
    called as runs end, and is not part of the cache key)."""
    recorded = load_recorded(settings.source)
    return replay.replay(
        recorded, settings.strategies, settings.seeds, settings.n_trials, workers=settings.workers, progress=_progress
    )


def replayed_comparison(query: Mapping[str, Any]) -> tuple[demo.ReplaySettings, Comparison]:
    """The comparison a replay link asks for: checked, bounded, computed once per server. A
    replay is computation on the server: refused in read-only mode (``ReadOnlyError``)."""
    settings = demo.replay_settings(query)
    access.require_writable("replay strategies on recorded results")
    recorded = load_recorded(settings.source)
    what = f"Replaying {demo.strategy_names(settings.strategies)} with {settings.seeds} seeds on {len(recorded)} recorded results"
    bar = st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(1, total), text=f"{what}: {done} of {total} runs")

    with st.spinner(f"{what}…"):
        comparison = _replay(settings, len(recorded), progress)
    bar.empty()
    return settings, comparison


def replay_header(settings: demo.ReplaySettings, comparison: Comparison) -> None:
    """The banner of a replayed comparison (what it was replayed on, and that nothing was
    fitted or stored), then the guide's first words when guided."""
    info = replay.replay_info(comparison) or {}
    st.warning(
        f"**Replayed on recorded results** of study {common.md(settings.source)}: each suggestion was "
        f"answered by the {common.md(info.get('oracle', 'recorded results'))}; no model was fitted and "
        "nothing was stored.",
        icon=":material/replay:",
    )
    guide("intro", settings.guided)
    guide("replay", settings.guided)


def guide(section: str, guided: bool) -> None:
    """The guided view's words for a section, when the page is guided."""
    if guided:
        st.info(demo.guide_text(section), icon=":material/school:")


def placement_animation(comparison: Comparison, x_param: str, y_param: str, log_params: Collection[str]) -> None:
    """Sample placement animated over trials, the strategies side by side."""
    st.plotly_chart(
        animation.placement_animation_figure(
            comparison.frame,
            x_param,
            y_param,
            log_params,
            comparison.strategies,
            metric=comparison.metric,
            direction=comparison.direction,
        ),
        key="placement_animation",
    )


# ------------------------------------------------------------------------------ home demo
def demo_button() -> None:
    """Home's one-click demo: builds (or reuses) the demo's dense study, then opens the guided
    replay of every strategy on the Compare page."""
    current = demo.demo_state()
    finished = current is not None and current.state == "finished"
    if finished and st.session_state.pop("demo_ready", False):
        _open_replay(demo.demo_replay_settings())
    label = "Watch the strategies think (demo)" if finished else "Build the demo study and watch the strategies think"
    if common.write_button(label, key="demo", width="stretch", icon=":material/school:"):
        try:
            current = demo.start_demo()
        except HpdashError as exc:
            common.show_error(exc, "Could not start the demo: ")
            return
        if current is not None and current.state == "finished":
            _open_replay(demo.demo_replay_settings())
        st.session_state["demo_building"] = True
        st.rerun()
    if st.session_state.get("demo_building") and not finished:
        _demo_progress()
    st.caption(
        f"Scores all {demo.DEMO_GRID_SIZE} settings of an SVM's C and gamma on a bundled table once (about "
        "20 seconds), then replays grid, random, QMC, TPE and the Gaussian process with 30 seeds each on "
        "those scores, and explains every figure."
    )


@st.fragment(run_every=1.0)
def _demo_progress() -> None:
    current = demo.demo_state()
    if current is None:
        st.progress(0.0, text="Creating the demo study…")
        return
    st.progress(current.fraction, text=f"Demo study: {current.done} of {current.budget or '?'} settings scored")
    if current.state == "finished":
        st.session_state["demo_building"] = False
        st.session_state["demo_ready"] = True
        st.rerun()  # the whole page: demo_button opens the replay
    elif current.state in ("failed", "worker lost", "stopped"):
        st.session_state["demo_building"] = False
        st.error(
            common.md(f"The demo study is {current.state}: {current.error or 'its workers ended early'}."),
            icon=":material/error:",
        )


def _open_replay(settings: demo.ReplaySettings) -> None:
    st.switch_page(common.PAGE_COMPARE, query_params=settings.query())
