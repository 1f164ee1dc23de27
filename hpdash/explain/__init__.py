"""Demo mode: how each strategy thinks, and replays of many seeds on recorded results.

Each module computes tidy data first (a frame or a typed record), then draws it:

- ``steps``: a study as it was after trial k (the samples so far, the best so far, the next
  trial), for the Study page's trial slider;
- ``surrogate``: inside the Gaussian process at step k (mean and uncertainty over one or two
  hyperparameters, expected improvement, where its maximum put trial k+1);
- ``tpe``: inside TPE at step k (the good/bad split at gamma, l(x), g(x) and their ratio);
- ``coverage``: grid order, random samples against the space's volume, QMC's discrepancy;
- ``record``: a dense study's recorded results (``Recorded``) and the oracle that answers a
  suggestion from them (the nearest recorded configuration, or a surrogate of them);
- ``replay``: strategies replayed against those recorded results, as an ordinary comparison
  labelled "replayed on recorded results";
- ``animation``: the sample-placement figure animated over trials, strategies side by side.
"""
