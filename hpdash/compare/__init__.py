"""Comparison statistics for an experiment (or a hand-picked set of comparable studies).

Everything is computed from one tidy **experiment frame**: the ``hpdash.results.trials_frame``
of every study stacked, with three more columns ``study``, ``strategy`` and ``seed``. The
functions below are plain pandas/scipy on that frame, so they are tested with hand-made frames
whose right answers are known (tests/test_compare.py).

Definitions (what the page, the CLI and the report show):

- **Trial axis.** ``trial`` is the 1-based position of a finished trial (COMPLETE, PRUNED or
  FAIL) in trial-number order: the part of the budget spent so far. ``best`` is the running
  best over COMPLETE values; it is NaN until the first COMPLETE trial.
- **Time axis.** ``elapsed_s`` is seconds from the study's first trial start to this trial's
  completion (``trials_frame``). On the time axis the running best is taken in completion
  order, because parallel workers finish out of number order.
- **Bands.** Curves are put on a common x grid (every trial count 1..max; for time 101 evenly
  spaced points from 0 to the longest run) as step functions: at x a run's value is its best
  at the last point <= x, and a run that ended stays at its final best (a grid smaller than
  the budget, or a shorter run, keeps its best). A run with no COMPLETE trial yet at x is left
  out at x, so ``n`` can be smaller than the number of runs early on. The band is a
  two-sided Student-t confidence interval of the mean across runs:
  ``mean ± t(1 - (1 - level) / 2, n - 1) · sd / √n`` with the sample sd (ddof = 1); with a
  single run there is no interval (``lo``/``hi`` are NaN). Or (``method="bootstrap"``) the
  percentile bootstrap interval of the mean (``BOOTSTRAP_RESAMPLES`` resamples of the runs,
  seeded). Either band is clipped to the metric's range (``metric_range``: accuracy, F1,
  ROC AUC ... in [0, 1], R² at most 1, ``neg_*`` at most 0), and every figure and table that
  shows one names it: "95% t-interval of the mean over 5 seeds" (``plots.band_name``).
- **Target.** Default: "within 1% of the best score seen in the experiment":
  ``best - 0.01·|best|`` when maximizing (``best + 0.01·|best|`` when minimizing). For a
  positive score such as accuracy 0.97 that is 99% of it (0.9603); for a negative score such
  as ``neg_root_mean_squared_error`` = -50 it is -50.5, i.e. an RMSE within 1% of the best
  RMSE (plain 99% of -50 would be -49.5, *better* than the best, so nobody would reach it).
  With a best of exactly 0 the target is 0.
- **Time to target.** Per run: the trials (``trial`` as above) and seconds (``elapsed_s``)
  until the first COMPLETE value at or beyond the target. A run that never gets there is
  "not reached" (NaN trials and seconds). The per-strategy mean and std are over the runs
  that reached it, shown with the share that did.
- **Comparable.** Studies are compared only when they differ in nothing but strategy and seed
  (``differences``: dataset SHA-256, target, task, metric and its direction, search space,
  CV folds and repeats, test size, budget, pruner, positive class, kept columns, trial time
  limit). Otherwise the figures still draw, under a "Not comparable: ..." banner, and there is
  no test, no rank and no "X found better": the verdict says what differs.
- **Design.** Each run's split seed (``split_seed``, else ``seed``, of its spec) fixes its
  holdout and CV folds, so runs with the same split seed form a block. The design is
  **paired** when every strategy has exactly one run per split seed and all strategies have
  the same split seeds (complete blocks); an experiment with a new split per repeat is. Runs
  are **ranked** within a seed only when every seed holds one run of every strategy.
- **Summary.** Per strategy: mean ± std of each run's best CV score, mean holdout score of the
  refit final models, mean rank and wins. Ranks are taken within each seed (the seed is the
  block; 1 = best; tied runs share the average rank) and averaged; a win is a rank-1 finish in
  a seed, and tied-best runs each get the win. Without complete blocks there are no ranks.
- **Tests.** Pairwise two-sided tests on (1) each run's best CV score and (2) trials to
  target, where a run that never reached the target counts as worse than every run that did
  (its value is the longest run + 1). Paired design: the exact Wilcoxon signed-rank test on
  the per-block differences (``scipy.stats.wilcoxon(method="exact")``; zero differences are
  dropped, and said so in the test's name; with tied differences scipy's exact p is
  conservative). Otherwise (and for a bare frame, which does not say which runs share a
  split): Mann-Whitney U across seeds, exact (the full permutation distribution, ties
  included) whenever there are at most 20,000 arrangements (up to 8 vs 8 seeds), else the
  normal approximation; if all values of both groups are equal, p = 1. The p-values are
  Holm-adjusted within each of the two families of pairs, and the test's name is printed
  beside every p. The smallest p possible is ``2 / C(2n, n)`` for Mann-Whitney (0.10 for 3
  seeds, 0.029 for 4) and ``2 / 2^n`` for Wilcoxon with n non-zero differences (0.25 for 3,
  0.0625 for 5, 0.031 for 6), so a few seeds can never show a difference; the verdict says so.
- **Verdict.** Only pairs with a Holm-adjusted p below ``alpha`` (0.05) are stated as a
  difference; otherwise the verdict says there is no significant difference with that many
  seeds.
- **Random search as the yardstick** (``baseline``). Every COMPLETE value of the ``random``
  studies pooled (N draws); random search's expected best at budget n is the expected best of n
  draws without replacement from that pool (``statistics.expected_best_of_random``, Bayesmark),
  for n up to the longest run; "at twice the budget" is the same at 2n, while 2n <= N. Without a
  random strategy (or when not comparable) there is none, and ``Baseline.reason`` says so.
- **Normalised score** (Bayesmark, ``statistics.normalised_score``): per run, 0 = the best value
  seen in the experiment, 1 = random search's expected best at the run's own budget (its finished
  trials); per strategy the mean ± std over its runs; over budget, of the mean best-so-far.
- **Across repeats** (``repeats``; comparable studies in complete blocks only, else
  ``Repeats.reason``): the average rank over budget (ranks within each seed at each trial count,
  averaged), the Friedman test with the Nemenyi critical difference and its groups on the final
  bests (``statistics.friedman_nemenyi``, ``cd_groups``; Demšar 2006; ranks only for two
  strategies), and the ECDF of runtime to target (``statistics.ecdf_of_runtime_to_target``, COCO).
- **Document** (``document``): every number above as plain JSON data, NaN as None
  (``results_document``, ``json_safe``); ``hpdash export --format json``."""

from hpdash.compare.analysis import (
    PER_RUN_KEYS,
    Analysis,
    analyse,
    analyse_comparison,
    comparison_figures,
    design_rows,
    design_text,
    display_table,
    friedman_subtitle,
    importance_by_strategy,
    log_params_of,
    pairs_table,
    repeats_figures,
    seeds_text,
    shown_spec,
    target_text,
    ttt_table,
)
from hpdash.compare.baseline import (
    EXPECTED_BEST_METHOD,
    NORMALISED_DEFINITION,
    NORMALISED_METHOD,
    RANDOM,
    TWICE_LABEL,
    Baseline,
    baseline_label,
    expected_best_data,
    experiment_best,
    normalised_curve,
    normalised_runs,
    normalised_summary,
    random_baseline,
    random_pool,
)
from hpdash.compare.curves import (
    bands,
    bootstrap_interval,
    curves,
    default_target,
    step_values,
    t_interval,
    time_to_target,
    time_to_target_summary,
)
from hpdash.compare.design import (
    COMPARED_FIELDS,
    Design,
    FrameDesign,
    design_of,
    design_record,
    differences,
    split_design,
    split_seed_of,
)
from hpdash.compare.document import json_safe, results_document
from hpdash.compare.loading import (
    Comparison,
    experiment_frame,
    load_experiment_comparison,
    load_studies_comparison,
    study_states,
)
from hpdash.compare.repeats import (
    AVERAGE_RANK_NAME,
    ECDF_NAME,
    FRIEDMAN_NAME,
    CriticalDifference,
    Repeats,
    across_repeats,
    average_rank_data,
    critical_difference,
    final_matrix,
    repeats_reason,
    runtime_ecdf_data,
)
from hpdash.compare.significance import (
    PAIR_COLUMNS,
    complete_blocks,
    final_runs,
    holm,
    incomplete_block,
    mann_whitney,
    mann_whitney_name,
    min_p_value,
    min_p_value_paired,
    no_tests,
    pairwise_tests,
    ranks,
    seeds_needed,
    seeds_needed_paired,
    summary_table,
    wilcoxon_signed_rank,
)
from hpdash.compare.verdict import Claim, Verdict, not_comparable_text, verdict
from hpdash.compare.words import (
    ALPHA,
    AT_MOST_ONE,
    BAND_METHODS,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_FRACTION,
    EXACT_LIMIT,
    FINISHED,
    FRAME_DESIGN,
    LEVEL,
    MANN_WHITNEY,
    METRIC_BEST,
    METRIC_TTT,
    SPLIT_NEW,
    SPLIT_SAME,
    SPLIT_UNKNOWN,
    STRATEGY_LABELS,
    TIME_POINTS,
    UNIT_METRICS,
    UNIT_PREFIXES,
    WILCOXON,
    clip_to_range,
    label,
    metric_range,
)

__all__ = [
    "ALPHA",
    "AT_MOST_ONE",
    "AVERAGE_RANK_NAME",
    "Analysis",
    "BAND_METHODS",
    "BOOTSTRAP_RESAMPLES",
    "Baseline",
    "COMPARED_FIELDS",
    "Claim",
    "Comparison",
    "CriticalDifference",
    "DEFAULT_FRACTION",
    "Design",
    "ECDF_NAME",
    "EXACT_LIMIT",
    "EXPECTED_BEST_METHOD",
    "FINISHED",
    "FRAME_DESIGN",
    "FRIEDMAN_NAME",
    "FrameDesign",
    "LEVEL",
    "MANN_WHITNEY",
    "METRIC_BEST",
    "METRIC_TTT",
    "NORMALISED_DEFINITION",
    "NORMALISED_METHOD",
    "PAIR_COLUMNS",
    "PER_RUN_KEYS",
    "RANDOM",
    "Repeats",
    "SPLIT_NEW",
    "SPLIT_SAME",
    "SPLIT_UNKNOWN",
    "STRATEGY_LABELS",
    "TIME_POINTS",
    "TWICE_LABEL",
    "UNIT_METRICS",
    "UNIT_PREFIXES",
    "Verdict",
    "WILCOXON",
    "across_repeats",
    "analyse",
    "analyse_comparison",
    "average_rank_data",
    "bands",
    "baseline_label",
    "bootstrap_interval",
    "clip_to_range",
    "comparison_figures",
    "complete_blocks",
    "critical_difference",
    "curves",
    "default_target",
    "design_of",
    "design_record",
    "design_rows",
    "design_text",
    "differences",
    "display_table",
    "expected_best_data",
    "experiment_best",
    "experiment_frame",
    "final_matrix",
    "final_runs",
    "friedman_subtitle",
    "holm",
    "importance_by_strategy",
    "incomplete_block",
    "json_safe",
    "label",
    "load_experiment_comparison",
    "load_studies_comparison",
    "log_params_of",
    "mann_whitney",
    "mann_whitney_name",
    "metric_range",
    "min_p_value",
    "min_p_value_paired",
    "no_tests",
    "normalised_curve",
    "normalised_runs",
    "normalised_summary",
    "not_comparable_text",
    "pairs_table",
    "pairwise_tests",
    "random_baseline",
    "random_pool",
    "ranks",
    "repeats_figures",
    "repeats_reason",
    "results_document",
    "runtime_ecdf_data",
    "seeds_needed",
    "seeds_needed_paired",
    "seeds_text",
    "shown_spec",
    "split_design",
    "split_seed_of",
    "step_values",
    "study_states",
    "summary_table",
    "t_interval",
    "target_text",
    "time_to_target",
    "time_to_target_summary",
    "ttt_table",
    "verdict",
    "wilcoxon_signed_rank",
]
