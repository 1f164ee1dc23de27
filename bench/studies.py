"""Large synthetic studies written fast: Optuna creates the schema and the study, then the
trials go in by bulk INSERTs through Optuna's own table definitions (so every column type,
enum and datetime is stored exactly as Optuna stores it).

The trials look like an hpdash random-forest study: 7 hyperparameters of every distribution
type (log int, int, step int, float, log float, categorical with None and bools), about 85%
COMPLETE, 10% PRUNED, 5% FAIL, hpdash's trial user attrs and one intermediate value per fold.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.storages import RDBStorage
from optuna.storages._rdb import models

FOLDS = 5
DISTRIBUTIONS = {
    "n_estimators": IntDistribution(10, 500, log=True),
    "max_depth": IntDistribution(2, 32),
    "min_samples_leaf": IntDistribution(1, 41, step=5),
    "max_features": FloatDistribution(0.1, 1.0),
    "ccp_alpha": FloatDistribution(1e-6, 1e-1, log=True),
    "criterion": CategoricalDistribution(["gini", "entropy", "log_loss"]),
    "class_weight": CategoricalDistribution([None, "balanced"]),
    "bootstrap": CategoricalDistribution([True, False]),
}


def _sample(rng: np.random.Generator) -> dict[str, float]:
    """Internal (stored) representation of one random point."""
    return {
        "n_estimators": float(round(np.exp(rng.uniform(np.log(10), np.log(500))))),
        "max_depth": float(rng.integers(2, 33)),
        "min_samples_leaf": float(1 + 5 * rng.integers(0, 9)),
        "max_features": float(rng.uniform(0.1, 1.0)),
        "ccp_alpha": float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-1)))),
        "criterion": float(rng.integers(0, 3)),
        "class_weight": float(rng.integers(0, 2)),
        "bootstrap": float(rng.integers(0, 2)),
    }


def _score(p: dict[str, float], rng: np.random.Generator) -> float:
    return float(
        0.9
        - 0.1 * abs(p["max_depth"] - 12) / 20
        - 0.05 * abs(p["max_features"] - 0.4)
        - 0.02 * (p["criterion"] == 0)
        - 0.01 * np.log10(p["ccp_alpha"] * 1e6) / 5
        + rng.normal(0, 0.01)
    )


def make_study(path: Path, n_trials: int, seed: int = 0, name: str = "bench") -> str:
    """Create ``n_trials`` finished trials in a fresh SQLite file; returns its storage URL."""
    path = Path(path)
    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    storage = RDBStorage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("hpdash.spec", {"name": name, "metric": "accuracy"})
    study_id = study._study_id
    rng = np.random.default_rng(seed)
    dist_json = {k: distribution_to_json(d) for k, d in DISTRIBUTIONS.items()}
    t0 = dt.datetime(2024, 1, 1)
    trials, values, params, attrs, inter = [], [], [], [], []
    for number in range(n_trials):
        trial_id = number + 1
        u = rng.uniform()
        state = "COMPLETE" if u < 0.85 else ("PRUNED" if u < 0.95 else "FAIL")
        start = t0 + dt.timedelta(seconds=2 * number)
        trials.append(
            {
                "trial_id": trial_id,
                "number": number,
                "study_id": study_id,
                "state": optuna.trial.TrialState[state],
                "datetime_start": start,
                "datetime_complete": start + dt.timedelta(seconds=float(rng.uniform(1, 3))),
            }
        )
        p = _sample(rng)
        for k, v in p.items():
            if k == "class_weight" and p["max_depth"] > 28:
                continue  # a conditional-looking gap: some trials lack a param
            params.append({"trial_id": trial_id, "param_name": k, "param_value": v, "distribution_json": dist_json[k]})
        score = _score(p, rng)
        folds = [score + float(rng.normal(0, 0.02)) for _ in range(FOLDS)]
        if state == "COMPLETE":
            values.append(
                {
                    "trial_id": trial_id,
                    "objective": 0,
                    "value": float(np.mean(folds)),
                    "value_type": models.TrialValueModel.TrialValueType.FINITE,
                }
            )
            user = {
                "fold_scores": folds,
                "cv_mean": float(np.mean(folds)),
                "cv_std": float(np.std(folds)),
                "fit_time": float(rng.uniform(0.1, 2)),
                "score_time": float(rng.uniform(0.01, 0.1)),
            }
            reported = folds
        elif state == "PRUNED":
            user = {"pruned_at_fold": 1}
            reported = folds[:2]
        else:
            user = {"fail_reason": "ValueError: bad combination"}
            reported = []
        for k, value in user.items():
            attrs.append({"trial_id": trial_id, "key": k, "value_json": json.dumps(value)})
        for step, v in enumerate(reported):
            inter.append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "intermediate_value": v,
                    "intermediate_value_type": models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE,
                }
            )
    with storage.engine.begin() as conn:
        conn.execute(models.TrialModel.__table__.insert(), trials)
        conn.execute(models.TrialValueModel.__table__.insert(), values)
        conn.execute(models.TrialParamModel.__table__.insert(), params)
        conn.execute(models.TrialUserAttributeModel.__table__.insert(), attrs)
        conn.execute(models.TrialIntermediateValueModel.__table__.insert(), inter)
    storage.engine.dispose()
    return url
