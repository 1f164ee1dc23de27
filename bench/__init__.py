"""hpdash benchmarks: ``python -m bench`` (or ``make bench``). See docs/PERFORMANCE.md."""
