"""The shared servers tests use (PostgreSQL, Redis): reach them, or say what to start.

On a developer's machine without them, a test that needs one skips with the
command to start it. Under ``CI=true`` the servers are part of the machine, so
an unreachable one fails the test: a CI run never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


def require_program(name: str, install: str) -> str:
    """The path of the program ``name``; skip (fail under CI=true) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        _unreachable(f"`{name}` is not installed; {install}")
    return path  # type: ignore[return-value]


@contextmanager
def team_feast_project(settings, redis_url: str = REDIS, materialize: bool = True) -> Iterator:
    """``settings`` on the team profile, with a Feast project and registry database of their own.

    The project is applied (and materialized) into Redis at ``redis_url`` and the
    registry database on the shared PostgreSQL; afterwards the project's Redis keys
    (``store.teardown()``) and the database are removed, and the DEMAND_* variables
    ``open_store`` exports are put back, so later tests see the environment they had.
    """
    from demand.featurestore import open_store
    from demand.settings import Profile
    from features import publish

    require_servers(redis=redis_url == REDIS)
    suffix = uuid.uuid4().hex[:10]
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{suffix}"
    exported = (
        "DEMAND_DATA_DIR",
        "DEMAND_FEAST_PROJECT",
        "DEMAND_REDIS_URL",
        "DEMAND_FEAST_REGISTRY_URL",
    )
    saved = {name: os.environ.get(name) for name in exported}
    Database(url).ensure()
    team = settings.model_copy(
        update={
            "profile": Profile.team,
            "feast_project": f"demand_test_{suffix}",
            "feast_registry_url": url,
            "redis_url": redis_url,
        }
    )
    try:
        publish.apply(team)
        if materialize:
            publish.materialize(team)
        yield team
    finally:
        try:
            open_store(team).teardown()
        finally:
            drop_database(url)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
