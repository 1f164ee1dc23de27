"""hpdash's Gaussian-process strategy (``gp``): an Optuna sampler on scikit-learn's
``GaussianProcessRegressor``, so Bayesian optimisation with a GP needs no PyTorch.

Why this module exists:

- Optuna's own ``GPSampler`` needs PyTorch, a multi-GB download. It stays available as the
  ``gp_torch`` strategy for users who have it (``hpdash.strategies``).
- ``bayesian-optimization`` (3.4.0 on PyPI, built on scikit-learn's GP) was considered and not
  wrapped. It has float, int and categorical parameters (``(low, high, int)`` bounds and
  sequences of choices, since 2.0), but no log scale, and no conditional spaces: its target
  space has one fixed set of keys and refuses a point that lacks any of them. hpdash's spaces
  need both (``C``, ``gamma`` and learning rates on a log scale; algorithm selection, where
  each model has its own hyperparameters). It is also a sequential optimiser that owns its
  observations (duplicate points are refused by default), not an Optuna sampler, so a wrapper
  would rebuild it from the study on every trial and still need the log and conditional
  encodings written here.

So only what those lack is written here: the encoding of an Optuna search space into the unit
cube, the search for the maximum of the expected improvement, and a record of every fit so the
surrogate can be inspected later. The Gaussian process itself (a Matérn 5/2 kernel with one
length scale per dimension, its hyperparameters fitted by maximum marginal likelihood) is
scikit-learn's, and the local refinement is scipy's L-BFGS-B.

How a trial is chosen:

1. Start-up: until ``n_startup_trials`` trials are COMPLETE every hyperparameter is drawn by a
   ``RandomSampler`` with the same seed, so those trials are exactly random search's. The GP
   needs one finished trial to fit, so the first trial is random whatever the setting.
2. Search space: the union of the distributions of the completed trials; a name whose
   distribution differs between trials, or that has a single value, is left to the random
   sampler. Under algorithm selection (a categorical ``model`` and ``<model>__<hp>`` names, see
   ``hpdash.space``) ONE GP models the whole conditional space: ``model`` is one-hot, every
   model's hyperparameters have their own dimensions, and a trial's inactive dimensions (the
   hyperparameters of the models it did not use) hold a fixed value (0.5 for a number, no
   category for a categorical). Why not Optuna's intersection of the trials' spaces: under
   algorithm selection it holds only ``model``, so every hyperparameter would be random. Why
   not one GP per model: each would see only that model's few trials and estimate its own
   amplitude and noise, and their expected improvements would not be comparable. One GP shares
   the scale and noise estimates, learns from the ``model`` dimensions' length scales how much
   the models' scores have in common, and ranks every candidate of every model by one EI. A
   hyperparameter of a model no completed trial has used yet is drawn at random once the GP
   picks that model.
3. Encoding: a float maps linearly onto [0, 1], a log-scaled one after taking its log (the GP
   fits in log space); an int maps [low - 1/2, high + 1/2] onto [0, 1], so every value has the
   same width, and is rounded back (likewise a float with a step); a categorical is one-hot.
4. Objective values are turned into a maximisation and standardised (mean 0, std 1 over the
   fitted trials).
5. Kernel ``C * Matern(nu=2.5, one length scale per dimension) + White`` (CV scores are noisy),
   length scales within ``LENGTH_SCALE_BOUNDS``, fitted with one restart of the optimiser from
   a fixed ``random_state``, so the fit depends on the data alone and can be rebuilt exactly.
6. Expected improvement (with no exploration margin, ``XI``) of the latent function (the
   fitted noise removed from the predictive variance) over the best posterior mean at the
   fitted trials, which a lucky noisy score does not inflate.
7. Its maximum: ``N_RANDOM`` random candidates of the conditional space plus ``N_LOCAL``
   perturbations of the best trials, snapped to valid values; the ``N_REFINE`` best refined by
   L-BFGS-B over their active numeric dimensions and snapped again. The candidates' random
   generator is seeded with (seed, trial number): the same seed gives the same trials, and a
   fit can be replayed. On a finite space given as candidates (``GPSampler.set_candidates``,
   e.g. a recorded grid that ``hpdash.explain.replay`` answers from) the maximum is the EI's
   argmax over the candidates instead: there it is exact, and the search above is not needed.
8. Parallel workers: a RUNNING trial of another worker whose hyperparameters are all chosen
   enters the fit at the worst observed value (a "constant liar", as in Optuna's TPE), so
   workers do not all propose the same point.
9. Record: each trial the GP chose carries the system attr ``hpdash_gp`` (``GP_ATTR``): the
   trial numbers it was fitted on, the pending ones, the seed, and its mean, std and EI at the
   proposal. ``GPSampler.surrogate(study, up_to=k)`` rebuilds that GP from them.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import optuna
import scipy.linalg
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from threadpoolctl import ThreadpoolController

from hpdash import storage
from hpdash.space import MODEL_PARAM, SEPARATOR

#: Trial system attr that records what the GP was fitted on when it chose that trial.
GP_ATTR = "hpdash_gp"
#: Exploration margin of the expected improvement (standardised units). Zero: the EI's own
#: uncertainty term explores enough, and a margin drew proposals to the edges of the space.
XI = 0.0
N_RANDOM = 1000  # random candidates per proposal
N_LOCAL = 250  # perturbations of the best trials per proposal
N_REFINE = 5  # candidates refined by L-BFGS-B (and best trials perturbed)
LOCAL_SCALE = 0.1  # std of a perturbation, in the unit cube
REFINE_ITERATIONS = 30
FD_STEP = 1e-6  # finite-difference step of the EI gradient, in the unit cube
#: A GP fit costs O(n^3) per step of its optimiser: beyond this many completed trials the fit
#: takes the best third of them and the most recent rest.
MAX_FIT_TRIALS = 300
INACTIVE = 0.5  # the value of a numeric dimension its trial does not use
#: Length scales, in units of a hyperparameter's (log-)range: from a tenth of it (finer detail
#: cannot be learnt from the few dozen trials of a study, and shorter scales make every
#: unexplored corner look promising) to ten ranges (a hyperparameter that barely matters).
LENGTH_SCALE_BOUNDS = (0.1, 10.0)
FIT_RESTARTS = 1  # restarts of the kernel fit from random hyperparameters, beyond the first
FIT_RANDOM_STATE = 0  # restarts of the kernel fit: fixed, so a fit depends on the data alone
MIN_VARIANCE = 1e-12  # floor of the latent variance (standardised units)


# ------------------------------------------------------------------------------ encoding
def _numeric_bounds(dist: FloatDistribution | IntDistribution) -> tuple[float, float, bool]:
    """``(lo, hi, log)``: the interval of a numeric distribution that maps onto [0, 1], in
    log units when ``log``. Ints and stepped floats are padded by half a step each side, so
    every allowed value covers the same width of the unit interval."""
    step = getattr(dist, "step", None)
    if isinstance(dist, IntDistribution) or step is not None:
        pad = float(step or 1) / 2
        lo, hi = float(dist.low) - pad, float(dist.high) + pad
    else:
        lo, hi = float(dist.low), float(dist.high)
    if dist.log:
        return math.log(lo), math.log(hi), True
    return lo, hi, False


def _to_unit(dist: FloatDistribution | IntDistribution, values: np.ndarray) -> np.ndarray:
    lo, hi, log = _numeric_bounds(dist)
    t = np.log(values) if log else values
    return (t - lo) / (hi - lo)


def _to_value(dist: FloatDistribution | IntDistribution, unit: np.ndarray) -> np.ndarray:
    """Unit-interval coordinates -> allowed values (rounded to the step, within the bounds)."""
    lo, hi, log = _numeric_bounds(dist)
    t = lo + np.clip(unit, 0.0, 1.0) * (hi - lo)
    values = np.exp(t) if log else t
    step = getattr(dist, "step", None)
    if isinstance(dist, IntDistribution) or step is not None:
        step = float(step or 1)
        values = dist.low + np.round((values - dist.low) / step) * step
    return np.clip(values, dist.low, dist.high)


@dataclass(frozen=True)
class _Column:
    """One hyperparameter's dimensions: one for a number, one per choice for a categorical."""

    name: str
    dist: BaseDistribution
    start: int
    owner: str | None  # the ``model`` choice that uses it; None: every trial uses it

    @property
    def categorical(self) -> bool:
        return isinstance(self.dist, CategoricalDistribution)

    @property
    def numeric(self) -> FloatDistribution | IntDistribution:
        """The distribution of a number (every distribution but a categorical one)."""
        assert isinstance(self.dist, (FloatDistribution, IntDistribution)), self.dist
        return self.dist

    @property
    def width(self) -> int:
        return len(self.dist.choices) if isinstance(self.dist, CategoricalDistribution) else 1


class _Encoder:
    """An Optuna search space as coordinates in the unit cube, with the conditional structure
    of algorithm selection: a hyperparameter ``<m>__<hp>`` is active only when ``model`` is m."""

    def __init__(self, search_space: Mapping[str, BaseDistribution]) -> None:
        names = sorted(search_space)  # sorted: the same space gives the same dimensions
        model = search_space.get(MODEL_PARAM)
        self.model_choices: tuple[Any, ...] | None = (
            tuple(model.choices) if isinstance(model, CategoricalDistribution) else None
        )
        owners = {c for c in self.model_choices or () if isinstance(c, str)}
        self.columns: list[_Column] = []
        start = 0
        for name in names:
            owner = None
            if name != MODEL_PARAM and SEPARATOR in name and name.split(SEPARATOR, 1)[0] in owners:
                owner = name.split(SEPARATOR, 1)[0]
            column = _Column(name, search_space[name], start, owner)
            self.columns.append(column)
            start += column.width
        self.dims = start
        self.space = dict(search_space)
        self._model_column = (
            next((c for c in self.columns if c.name == MODEL_PARAM), None) if self.model_choices is not None else None
        )
        self.blank = np.zeros(self.dims)
        for c in self.columns:
            if not c.categorical:
                self.blank[c.start] = INACTIVE

    # -- which dimensions a row uses
    def row_models(self, X: np.ndarray) -> np.ndarray | None:
        """The index of each row's ``model`` choice (None without algorithm selection)."""
        c = self._model_column
        if c is None:
            return None
        return np.argmax(X[:, c.start : c.start + c.width], axis=1)

    def _active_rows(self, column: _Column, models: np.ndarray | None, n: int) -> np.ndarray:
        if column.owner is None or models is None:
            return np.ones(n, dtype=bool)
        assert self.model_choices is not None
        return np.array([self.model_choices[m] == column.owner for m in models], dtype=bool)

    def numeric_active(self, X: np.ndarray) -> np.ndarray:
        """Boolean mask of X: the numeric dimensions each row uses."""
        mask = np.zeros(X.shape, dtype=bool)
        models = self.row_models(X)
        for c in self.columns:
            if not c.categorical:
                mask[:, c.start] = self._active_rows(c, models, len(X))
        return mask

    def is_complete(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` holds every hyperparameter of the space its configuration uses."""
        model = params.get(MODEL_PARAM) if self.model_choices is not None else None
        return all(c.name in params for c in self.columns if c.owner is None or c.owner == model)

    # -- params <-> coordinates
    def encode(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows of coordinates; a hyperparameter a configuration does not use (or holds a value
        outside the space) gets the inactive value."""
        X = np.tile(self.blank, (len(params_list), 1))
        for i, params in enumerate(params_list):
            for c in self.columns:
                if c.name not in params:
                    continue
                value = params[c.name]
                if c.categorical:
                    try:
                        index = int(c.dist.to_internal_repr(value))
                    except ValueError:  # not one of the choices: treated as unused
                        continue
                    X[i, c.start + index] = 1.0
                elif (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and c.numeric.low <= value <= c.numeric.high
                ):
                    X[i, c.start] = _to_unit(c.numeric, np.array([float(value)]))[0]
        return X

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """One row -> the params of the configuration it describes (active ones only)."""
        models = self.row_models(x[None, :])
        model = None if models is None else self.model_choices[int(models[0])]  # type: ignore[index]
        params: dict[str, Any] = {}
        for c in self.columns:
            if c.owner is not None and c.owner != model:
                continue
            if c.categorical:
                params[c.name] = c.dist.to_external_repr(int(np.argmax(x[c.start : c.start + c.width])))
            else:
                value = float(_to_value(c.numeric, np.array([x[c.start]]))[0])
                params[c.name] = int(round(value)) if isinstance(c.dist, IntDistribution) else value
        return params

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Move each active numeric coordinate onto an allowed value (ints, steps); inactive
        coordinates keep the inactive value."""
        X = X.copy()
        mask = self.numeric_active(X)
        for c in self.columns:
            if c.categorical:
                continue
            j = c.start
            rows = mask[:, j]
            X[~rows, j] = INACTIVE
            if rows.any():
                X[rows, j] = _to_unit(c.numeric, _to_value(c.numeric, X[rows, j]))
        return X

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniformly random configurations (model first, then its hyperparameters)."""
        X = np.tile(self.blank, (n, 1))
        models = None
        if self._model_column is not None:
            models = rng.integers(self._model_column.width, size=n)
            X[np.arange(n), self._model_column.start + models] = 1.0
        for c in self.columns:
            if c is self._model_column:
                continue
            rows = np.flatnonzero(self._active_rows(c, models, n))
            if c.categorical:
                X[rows, c.start + rng.integers(c.width, size=rows.size)] = 1.0
            else:
                X[rows, c.start] = rng.random(rows.size)
        return self.snap(X)


# ------------------------------------------------------------------------------ the surrogate
#: scikit-learn's default jitter on the kernel's diagonal (``GaussianProcessRegressor(alpha=)``).
GP_ALPHA = 1e-10
_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2.0 * math.pi)
_potrf, _potrs, _potri = (getattr(scipy.linalg.lapack, name) for name in ("dpotrf", "dpotrs", "dpotri"))


class _NegativeLogLikelihood:
    """The negative log marginal likelihood of ``C * Matern(nu=2.5, one length scale per
    dimension) + White`` on (X, y), and its gradient, in scikit-learn's log-hyperparameters
    ``theta = [log C, log l_1 .. log l_d, log noise]``.

    It is the very function ``GaussianProcessRegressor`` minimises for this kernel (the same
    formulas, ``tests/test_gp_sampler.py`` checks them equal to 1e-9), without scikit-learn's
    per-evaluation kernel objects: at the few hundred points of a study, cloning and
    validating kernels took about 90% of each fit. The squared distances per dimension do not
    depend on theta and are computed once per fit.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        # (n * n, d): the products with one weight per dimension below are matrix-vector ones.
        self.sq = ((X[:, None, :] - X[None, :, :]) ** 2).reshape(len(X) * len(X), X.shape[1])
        self.y = np.asarray(y, dtype=float)
        self.n = len(y)
        self.diagonal = np.diag_indices(self.n)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        scale, noise = math.exp(theta[0]), math.exp(theta[-1])
        inverse_squares = np.exp(-2.0 * theta[1:-1])  # 1 / l_k^2
        root = _SQRT5 * np.sqrt(self.sq @ inverse_squares).reshape(self.n, self.n)
        decay = np.exp(-root)
        matern = (1.0 + root + root**2 / 3.0) * decay
        K = scale * matern
        K[self.diagonal] += noise + GP_ALPHA
        # LAPACK's Cholesky, solve and inverse called directly (what scipy.linalg.cholesky and
        # cho_solve wrap): their argument checks cost more than the factorisation at this size.
        L, info = _potrf(K, lower=1, clean=1)
        if info != 0:  # not positive definite at these hyperparameters, as scikit-learn says
            return math.inf, np.zeros_like(theta)
        weights, _ = _potrs(L, self.y, lower=1)
        # dpotri leaves the inverse in the lower triangle; the upper one is zero (clean=1).
        inverse, _ = _potri(L, lower=1)
        inverse += inverse.T
        inverse[self.diagonal] *= 0.5
        log_likelihood = -0.5 * float(self.y @ weights) - float(np.log(L[self.diagonal]).sum()) - self.n / 2 * _LOG_2PI
        inner = np.outer(weights, weights) - inverse
        gradient = np.empty_like(theta)
        gradient[0] = 0.5 * float(np.sum(inner * matern)) * scale
        length_term = (scale * 5.0 / 3.0) * (1.0 + root) * decay * inner
        gradient[1:-1] = 0.5 * (length_term.ravel() @ self.sq) * inverse_squares
        gradient[-1] = 0.5 * float(np.trace(inner)) * noise
        return -log_likelihood, -gradient


def _likelihood_optimizer(nll: _NegativeLogLikelihood) -> Any:
    """A ``GaussianProcessRegressor(optimizer=)`` that runs scikit-learn's own default search
    (scipy's L-BFGS-B from each start, within the kernel's bounds) on :class:`_NegativeLogLikelihood`."""

    def optimize(_obj_func: Any, initial_theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
        result = minimize(nll, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds)
        return result.x, float(result.fun)

    return optimize


def _kernel(dims: int) -> Any:
    return ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=np.full(dims, 0.5), length_scale_bounds=LENGTH_SCALE_BOUNDS, nu=2.5
    ) + WhiteKernel(1e-2, (1e-6, 1.0))


def _fit_gp(X: np.ndarray, y: np.ndarray, *, theta: np.ndarray | None = None) -> GaussianProcessRegressor:
    """The GP on (X, y): its kernel hyperparameters fitted from the default start and
    ``FIT_RESTARTS`` random ones, or exactly ``theta`` (a recorded fit rebuilt)."""
    kernel = _kernel(X.shape[1])
    if theta is not None:
        kernel = kernel.clone_with_theta(np.asarray(theta, dtype=float))
    gp = GaussianProcessRegressor(
        kernel=kernel,
        alpha=GP_ALPHA,
        optimizer=None if theta is not None else _likelihood_optimizer(_NegativeLogLikelihood(X, y)),
        normalize_y=False,
        n_restarts_optimizer=FIT_RESTARTS,
        random_state=FIT_RANDOM_STATE,
    )
    with warnings.catch_warnings():
        # A kernel hyperparameter at its bound (the length scale of a dimension that does not
        # matter at 100, the noise of an exact objective at 1e-6) is a fitted value, not a
        # fault; scikit-learn warns about it on every such fit.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X, y)
    return gp


@dataclass
class Surrogate:
    """The GP that chose one trial (or would choose the next), and what it predicts.

    ``predict`` and ``expected_improvement`` take Optuna param dicts (``model`` and
    ``<model>__<hp>`` under algorithm selection) and answer in the objective's units;
    ``next_params`` is the point where the expected improvement is largest: the params the
    sampler proposed for ``trial_number``.
    """

    search_space: dict[str, BaseDistribution]
    gp: GaussianProcessRegressor  # fitted on standardised, maximised values
    fitted_on: list[int]  # trial numbers of the completed trials in the fit
    pending: list[int]  # running trials in the fit at the worst observed value
    seed: int
    trial_number: int
    direction: StudyDirection
    y_mean: float
    y_std: float
    incumbent: float = 0.0  # best posterior mean at the fitted trials, standardised
    next_params: dict[str, Any] = field(default_factory=dict)
    next_expected_improvement: float = 0.0
    _encoder: _Encoder | None = None

    @property
    def encoder(self) -> _Encoder:
        if self._encoder is None:
            self._encoder = _Encoder(self.search_space)
        return self._encoder

    @property
    def _sign(self) -> float:
        return 1.0 if self.direction == StudyDirection.MAXIMIZE else -1.0

    def _latent(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised posterior mean and std of the objective itself (noise removed)."""
        mean, std = self.gp.predict(X, return_std=True)
        noise = float(self.gp.kernel_.k2.noise_level)
        return mean, np.sqrt(np.maximum(std**2 - noise, MIN_VARIANCE))

    def _ei(self, X: np.ndarray) -> np.ndarray:
        mean, std = self._latent(X)
        gain = mean - self.incumbent - XI
        z = gain / std
        return gain * norm.cdf(z) + std * norm.pdf(z)

    def predict(self, params_list: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the objective at each configuration."""
        mean, std = self._latent(self.encoder.encode(params_list))
        return self._sign * (mean * self.y_std + self.y_mean), std * self.y_std

    def expected_improvement(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Expected improvement over the incumbent at each configuration, in objective units."""
        return self._ei(self.encoder.encode(params_list)) * self.y_std

    def _maximise_over(self, candidates: _Candidates) -> None:
        """``next_params``: the candidate of largest EI (the first of equal ones), its params
        as given (only those of the space), so a float is not rounded through the encoding."""
        enc = self.encoder
        ei = self._ei(candidates.X)
        best = int(np.argmax(ei))
        self.next_params = {name: value for name, value in candidates.params[best].items() if name in enc.space}
        self.next_expected_improvement = float(ei[best]) * self.y_std

    def _maximise(self, X_obs: np.ndarray, y_obs: np.ndarray) -> None:
        """Find the configuration of largest EI (``next_params``), see the module docstring."""
        enc = self.encoder
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.trial_number]))
        best = X_obs[np.argsort(-y_obs, kind="stable")[:N_REFINE]]
        local = np.repeat(best, max(1, N_LOCAL // len(best)), axis=0)
        moved = np.clip(local + rng.normal(0.0, LOCAL_SCALE, local.shape), 0.0, 1.0)
        local = enc.snap(np.where(enc.numeric_active(local), moved, local))
        candidates = np.vstack([enc.random(N_RANDOM, rng), local])
        ei = self._ei(candidates)
        top = np.argsort(-ei, kind="stable")[:N_REFINE]
        best_x, best_ei = candidates[top[0]], float(ei[top[0]])
        for i in top:
            start = candidates[i]
            dims = np.flatnonzero(enc.numeric_active(start[None, :])[0])
            if dims.size == 0:
                continue

            def negative_ei(
                z: np.ndarray, start: np.ndarray = start, dims: np.ndarray = dims
            ) -> tuple[float, np.ndarray]:
                # -EI and its forward-difference gradient from one prediction of d + 1 points:
                # scipy's own finite differences would predict one point at a time.
                X = np.tile(start, (dims.size + 1, 1))
                X[:, dims] = z
                steps = np.where(z + FD_STEP <= 1.0, FD_STEP, -FD_STEP)
                X[np.arange(1, dims.size + 1), dims] += steps
                values = -self._ei(X)
                return float(values[0]), (values[1:] - values[0]) / steps

            result = minimize(
                negative_ei,
                start[dims],
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * dims.size,
                options={"maxiter": REFINE_ITERATIONS},
            )
            x = start.copy()
            x[dims] = result.x
            x = enc.snap(x[None, :])[0]
            value = float(self._ei(x[None, :])[0])
            if value > best_ei:
                best_x, best_ei = x, value
        self.next_params = enc.decode(best_x)
        self.next_expected_improvement = best_ei * self.y_std


@dataclass(frozen=True)
class _Candidates:
    """The finite set a trial is chosen from (``GPSampler.set_candidates``): the param dicts
    complete for a search space, and their coordinates in it (encoded once per space)."""

    params: list[dict[str, Any]]
    X: np.ndarray

    @classmethod
    def of(cls, encoder: _Encoder, candidates: Sequence[Mapping[str, Any]]) -> _Candidates | None:
        usable = [dict(c) for c in candidates if encoder.is_complete(c)]
        return cls(usable, encoder.encode(usable)) if usable else None


def _space_key(space: Mapping[str, BaseDistribution]) -> tuple[tuple[str, str], ...]:
    return tuple((name, repr(space[name])) for name in sorted(space))


# ------------------------------------------------------------------------------ the sampler
def _completed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]


def _union_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every distribution the trials used, except names whose distribution changed between
    trials and single-valued ones (both left to the random sampler)."""
    found: dict[str, BaseDistribution] = {}
    conflicting: set[str] = set()
    for t in trials:
        for name, dist in t.distributions.items():
            if name in conflicting:
                continue
            if name not in found:
                found[name] = dist
            elif found[name] != dist:
                conflicting.add(name)
                del found[name]
    return {name: dist for name, dist in found.items() if not dist.single()}


def _fit_selection(trials: list[FrozenTrial], direction: StudyDirection) -> list[FrozenTrial]:
    """At most ``MAX_FIT_TRIALS`` of the completed trials: the best third and the most recent
    rest, in trial order."""
    if len(trials) <= MAX_FIT_TRIALS:
        return sorted(trials, key=lambda t: t.number)
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    # The trials come from ``_completed``: each has a finite value.
    by_value = sorted(trials, key=lambda t: (-sign * cast(float, t.value), t.number))
    chosen = {t.number: t for t in by_value[: MAX_FIT_TRIALS // 3]}
    for t in sorted(trials, key=lambda t: -t.number):
        if len(chosen) >= MAX_FIT_TRIALS:
            break
        chosen.setdefault(t.number, t)
    return sorted(chosen.values(), key=lambda t: t.number)


def _seed_now() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0])


class GPSampler(optuna.samplers.BaseSampler):
    """Bayesian optimisation with a Gaussian process on scikit-learn, as an Optuna sampler.

    ``seed`` makes it deterministic (the start-up trials are those of
    ``RandomSampler(seed)``); ``n_startup_trials`` completed trials come first at random.
    See the module docstring for the model and why it is written here.
    """

    def __init__(self, *, seed: int | None = None, n_startup_trials: int = 10) -> None:
        self._seed = _seed_now() if seed is None else int(seed)
        self._n_startup_trials = int(n_startup_trials)
        self._random = optuna.samplers.RandomSampler(seed=self._seed)
        #: The surrogate of the last trial this sampler chose, in this process.
        self.last_surrogate: Surrogate | None = None
        self._candidates: list[dict[str, Any]] | None = None
        self._encoded_candidates: dict[tuple[tuple[str, str], ...], _Candidates | None] = {}

    def set_candidates(self, candidates: Sequence[Mapping[str, Any]] | None) -> None:
        """Choose every trial among ``candidates`` (Optuna param dicts), by the EI's argmax
        over those complete for the search space; None: the search of the whole space again.
        For a finite space such as a recorded grid, where that argmax is the exact maximum."""
        self._candidates = None if candidates is None else [dict(c) for c in candidates]
        self._encoded_candidates = {}

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def n_startup_trials(self) -> int:
        return self._n_startup_trials

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._seed = _seed_now()

    def _in_startup(self, completed: Sequence[FrozenTrial]) -> bool:
        return len(completed) < max(1, self._n_startup_trials)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        completed = _completed(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if self._in_startup(completed):
            return {}
        return _union_space(completed)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        self._raise_error_if_multi_objective(study)
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        completed = _completed(trials)
        if self._in_startup(completed):
            return {}
        encoder = _Encoder(search_space)
        pending = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and t.number != trial.number and encoder.is_complete(t.params)
        ]
        surrogate = _build(
            search_space,
            _fit_selection(completed, study.direction),
            pending,
            study.direction,
            self._seed,
            trial.number,
            self._usable_candidates(encoder),
        )
        theta = surrogate.gp.kernel_.theta
        mean, std = surrogate.predict([surrogate.next_params])
        record: dict[str, Any] = {
            "fitted_on": surrogate.fitted_on,
            "pending": surrogate.pending,
            "seed": self._seed,
            "space": sorted(search_space),
            "theta": [float(v) for v in theta],
            "mean": float(mean[0]),
            "std": float(std[0]),
            "expected_improvement": surrogate.next_expected_improvement,
        }
        if self._candidates is not None:
            record["candidates"] = len(self._candidates)
        storage.write_sampler_attr(study, trial, GP_ATTR, record, system=True)
        self.last_surrogate = surrogate
        return surrogate.next_params

    def _usable_candidates(self, encoder: _Encoder) -> _Candidates | None:
        """The candidates the EI is maximised over (None: the whole space): those complete
        for the search space; None too when there are none."""
        if self._candidates is None:
            return None
        key = _space_key(encoder.space)
        if key not in self._encoded_candidates:
            self._encoded_candidates[key] = _Candidates.of(encoder, self._candidates)
        return self._encoded_candidates[key]

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def surrogate(self, study: optuna.Study, up_to: int | None = None) -> Surrogate | None:
        """The GP for trial number ``up_to`` (default: the next trial).

        For a trial this sampler chose, the very GP it used (rebuilt from the trial's
        ``GP_ATTR`` record: same trials, same pending points, same seed, same kernel
        hyperparameters), whose ``next_params`` are that trial's params. Otherwise the GP fitted on the completed trials numbered below
        ``up_to``. None when there is none to fit on.
        """
        trials = study.get_trials(deepcopy=False)
        by_number = {t.number: t for t in trials}
        k = len(trials) if up_to is None else int(up_to)
        target = by_number.get(k)
        record = target.system_attrs.get(GP_ATTR) if target is not None else None
        if record:
            fitted = [by_number[n] for n in record["fitted_on"]]
            pending = [by_number[n] for n in record["pending"]]
            earlier = [t for t in trials if t.number < k]
            space: dict[str, BaseDistribution] = {}
            for name in record["space"]:
                space[name] = next(
                    t.distributions[name] for t in [*fitted, *pending, *earlier] if name in t.distributions
                )
            usable = self._usable_candidates(_Encoder(space))
            # Records written before the kernel's hyperparameters were kept are refitted cold,
            # as they were fitted then.
            theta = np.array(record["theta"], dtype=float) if "theta" in record else None
            return _build(space, fitted, pending, study.direction, int(record["seed"]), k, usable, theta=theta)
        completed = _completed([t for t in trials if t.number < k])
        if not completed:
            return None
        space = _union_space(completed)
        if not space:
            return None
        usable = self._usable_candidates(_Encoder(space))
        return _build(space, _fit_selection(completed, study.direction), [], study.direction, self._seed, k, usable)


def _build(
    space: dict[str, BaseDistribution],
    fitted: list[FrozenTrial],
    pending: list[FrozenTrial],
    direction: StudyDirection,
    seed: int,
    trial_number: int,
    candidates: _Candidates | Sequence[Mapping[str, Any]] | None = None,
    *,
    theta: np.ndarray | None = None,
) -> Surrogate:
    """Fit the GP on ``fitted`` (and ``pending`` at the worst value) and find its EI maximum
    (over ``candidates`` when given); ``theta`` as in ``_fit_gp``."""
    # The GP's matrices are small (at most MAX_FIT_TRIALS rows): several BLAS threads only
    # contend with each other and with the other processes' fits, so the GP uses one.
    with _blas().limit(limits=1, user_api="blas"):
        return _build_unlimited(space, fitted, pending, direction, seed, trial_number, candidates, theta)


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's thread pools, found once: ``threadpool_limits`` looks for them again on
    every call (reading the process's loaded libraries), which cost more than a small fit."""
    return ThreadpoolController()


def _build_unlimited(
    space: dict[str, BaseDistribution],
    fitted: list[FrozenTrial],
    pending: list[FrozenTrial],
    direction: StudyDirection,
    seed: int,
    trial_number: int,
    candidates: _Candidates | Sequence[Mapping[str, Any]] | None,
    theta: np.ndarray | None,
) -> Surrogate:
    encoder = _Encoder(space)
    if candidates is not None and not isinstance(candidates, _Candidates):
        candidates = _Candidates.of(encoder, candidates)
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    y = sign * np.array([t.value for t in fitted], dtype=float)
    y_mean = float(y.mean())
    y_std = float(y.std())
    if not y_std > 0:  # one trial, or all scored the same: nothing to scale by
        y_std = 1.0
    y_obs = (y - y_mean) / y_std
    X_obs = encoder.encode([t.params for t in fitted])
    X = np.vstack([X_obs, encoder.encode([t.params for t in pending])])
    y_fit = np.concatenate([y_obs, np.full(len(pending), y_obs.min())])
    surrogate = Surrogate(
        space,
        _fit_gp(X, y_fit, theta=theta),
        [t.number for t in fitted],
        [t.number for t in pending],
        seed,
        trial_number,
        direction,
        y_mean,
        y_std,
        _encoder=encoder,
    )
    surrogate.incumbent = float(surrogate._latent(X_obs)[0].max())
    if candidates:
        surrogate._maximise_over(candidates)
    else:
        surrogate._maximise(X_obs, y_obs)
    return surrogate
