"""The baseline of bench/cli_run.py: the plain scikit-learn script a data scientist would write
instead of ``hpdash run`` for the same study.

Run as ``python bench/gridsearch_script.py DATA.csv OUT``: read the table, hold out 20%
(stratified, seed 0), ``GridSearchCV(n_jobs=1, refit=True)`` over the same 6 random-forest
points with the same preprocessing pipeline (DESIGN.md, "Evaluation protocol") and the same
``StratifiedKFold(5, shuffle=True, random_state=0)`` on the training part, score the holdout,
save the model. OUT gets the model (``OUT.joblib``) and a JSON line with every point's mean CV
score and the holdout score, which bench/cli_run.py compares with hpdash's trials.

Imports only pandas, scikit-learn, joblib and the standard library, and uses nothing of
hpdash: it is what the whole ``hpdash run`` process is measured against.
"""

from __future__ import annotations

import json
import sys
import warnings

#: The grid both sides search (hpdash: ``bench/cli_run.py::SPEC``).
GRID = {"model__n_estimators": [60, 120], "model__max_depth": [4, 8, None]}
TARGET = "label"


def main(data_path: str, out_path: str) -> None:
    import joblib
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(data_path)
    y = frame[TARGET]
    X = frame.drop(columns=[TARGET])
    categorical = [c for c in X.columns if X[c].dtype == object or str(X[c].dtype) == "str"]
    numeric = [c for c in X.columns if c not in categorical]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
        ]
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", RandomForestClassifier(random_state=0))])
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    search = GridSearchCV(pipeline, GRID, cv=cv, scoring="accuracy", n_jobs=1, refit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X_train, y_train)
    holdout = float(search.score(X_test, y_test))
    joblib.dump(search.best_estimator_, out_path + ".joblib")
    points = [
        {"n_estimators": p["model__n_estimators"], "max_depth": p["model__max_depth"]}
        for p in search.cv_results_["params"]
    ]
    with open(out_path, "w") as fh:
        json.dump(
            {"points": points, "scores": [float(s) for s in search.cv_results_["mean_test_score"]], "holdout": holdout},
            fh,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
