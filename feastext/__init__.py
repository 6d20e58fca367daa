"""Feast extensions: the platform's offline stores, materialization engine and online store writers.

Every use of a library's private or internal API (Feast, ibis, redis-py, BentoML, DuckDB, MLflow,
PySpark) lives in this package, and each module says what it relies on and which versions it
was checked against. The versions are pinned in ``pyproject.toml``.
"""
