"""Onyx benchmarks: ``scripts/bench`` (or ``python -m bench``). Every figure is a ratio against a
baseline measured in the same run, on real data or data the benchmark makes."""
