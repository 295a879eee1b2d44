"""Benchmarks of issue 6: ``python -m bench.run --help`` (results and method in BENCHMARKS.md)."""
