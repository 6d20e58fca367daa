"""Benchmarks: run on purpose (`make bench-…`), never as timed tests."""
