"""The shared servers tests use (PostgreSQL, Redis): reach them, or say what to start.

On a developer's machine without them, a test that needs one skips with the
command to start it. Under ``CI=true`` the servers are part of the machine, so
an unreachable one fails the test: a CI run never passes by skipping.
"""

from __future__ import annotations

import os

import pytest

from demand.servers import Database, ServerUnavailable, redis_ping

REDIS = "127.0.0.1:6379"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _unreachable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the server must be running)")
    pytest.skip(message)


def require_servers(redis: bool = True, postgres: bool = True) -> None:
    """Skip (fail under CI=true) unless the shared Redis and PostgreSQL answer."""
    try:
        if redis:
            redis_ping(REDIS)
        if postgres:
            Database(POSTGRES).exists()
    except ServerUnavailable as error:
        _unreachable(f"{error}; start it (e.g. `redis-server`, `pg_ctlcluster 15 main start`)")


def drop_database(url: str) -> None:
    """Drop the database ``url`` names, closing other sessions on it first."""
    import psycopg

    database = Database(url)
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
