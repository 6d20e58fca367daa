"""One promotion at a time per registry, across processes.

A promotion reads the registry (who is in production?), decides (gates), then
writes several things (aliases, legacy stages, tags). MLflow has no transaction
spanning those calls, so two promotions interleaving could both archive the
same champion and leave two histories that disagree. Every move therefore runs
under a lock that all processes using the same registry share:

- SQLite: ``flock`` on a file beside the database (same host by construction);
- PostgreSQL: a session-level advisory lock in that database (any host);
- anything else (an MLflow server): ``flock`` on a file in DATA_DIR/mlflow,
  which serialises promotions from this machine only.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demand.console import UserError
from demand.settings import Settings


class LockTimeout(UserError, RuntimeError):
    pass


@contextmanager
def registry_lock(settings: Settings, timeout_s: float = 300.0) -> Iterator[None]:
    uri = settings.tracking_uri
    if uri.startswith(("postgresql:", "postgresql+")):
        with _advisory_lock(uri, timeout_s):
            yield
        return
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///") + ".promotion.lock")
    else:
        path = settings.mlflow_dir / "promotion.lock"
    with _file_lock(path, timeout_s):
        yield


@contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"another promotion holds {path} for over {timeout_s:.0f}s"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(uri: str) -> int:
    # advisory locks are keyed by a signed 64-bit integer; derive a stable one
    digest = hashlib.sha256(f"demand-registry:{uri}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _advisory_lock(uri: str, timeout_s: float) -> Iterator[None]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    key = _lock_key(uri)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'"))
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()
    finally:
        engine.dispose()
