"""The baseline of bench/tuning.py as its own process: ``GridSearchCV(n_jobs=1)`` the way a
script runs it (start Python, import scikit-learn, load the data, search, refit, save).

Run as ``python -m bench.gridsearch_job JOB OUT``: JOB is a joblib file with the training
data, the CV splits, the pipeline and the candidate estimators (made by bench/tuning.py with
hpdash's own code, so both sides fit exactly the same models); OUT gets the fitted model and a
JSON line with the search time alone and the mean CV score of every candidate. Imports only
scikit-learn, joblib and the standard library, as a GridSearchCV script would.
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main(job_path: str, out_path: str) -> None:
    import joblib
    from sklearn.model_selection import GridSearchCV

    job = joblib.load(job_path)
    search = GridSearchCV(
        job["pipeline"], {"model": job["candidates"]}, cv=job["splits"], scoring=job["metric"], n_jobs=1, refit=True
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(job["X"], job["y"])
    fit_seconds = time.perf_counter() - start
    joblib.dump(search.best_estimator_, out_path + ".joblib")
    with open(out_path, "w") as fh:
        json.dump({"fit_seconds": fit_seconds, "scores": [float(s) for s in search.cv_results_["mean_test_score"]]}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
