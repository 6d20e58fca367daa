"""One registry move at a time per registered model, across processes and hosts.

A promotion reads the registry (who is in production?), decides (gates), then
writes several things (aliases, legacy stages, tags). MLflow has no transaction
spanning those calls, so two promotions interleaving could both archive the
same champion and leave two histories that disagree. Every move therefore runs
under a lock that every client of the same registry takes:

- a shared registry (an MLflow tracking server over http(s), or a PostgreSQL
  tracking URI): a session-level **PostgreSQL advisory lock**, keyed by the model
  name alone (:func:`lock_key`), in one database of the team's PostgreSQL
  (:func:`lock_url`). Clients open a plain connection for the lock and nothing
  else; MLflow's tables are never read. Advisory locks are scoped to a database,
  so every client must resolve the same one: the defaults do (a PostgreSQL
  tracking URI's own database is the tracking server's, MLFLOW_BACKEND_STORE_URI),
  and DEMAND_REGISTRY_LOCK_URL names another. Whatever address a client reaches
  the server by (``localhost``, ``127.0.0.1``, a load balancer), the key is the
  same. PostgreSQL frees the lock when the holder's session ends, so a crashed
  client never leaves it held.
- an embedded SQLite registry: ``flock`` on a file beside the database (one host
  by construction; the kernel frees it when the holder exits).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demand.console import UserError
from demand.servers import Database, redact
from demand.settings import Profile, Settings
from registry.audit import who

POLL_S = 0.2


class LockTimeout(UserError, RuntimeError):
    """Another move of the same model held the lock for longer than the timeout."""


class LockUnavailable(UserError):
    """The lock cannot be taken at all (no lock database configured, or it does not answer)."""


def lock_key(model_name: str) -> int:
    """The advisory lock key of ``model_name``: a signed 64-bit integer, stable everywhere.

    The first 8 bytes of SHA-256 of ``"demand.registry:" + model_name``, big-endian
    and signed (PostgreSQL's ``bigint``). Only the model name goes in: two clients
    of one registry compute the same key whatever URL they use for it. (Python's
    ``hash()`` would not do: it is salted per process.)
    """
    digest = hashlib.sha256(f"demand.registry:{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_url(settings: Settings) -> str | None:
    """The PostgreSQL database holding the advisory lock, or None for a local SQLite registry."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        return None
    if settings.registry_lock_url:
        return settings.registry_lock_url
    if uri.startswith(("postgresql:", "postgresql+")):
        return uri
    if settings.profile is Profile.team:
        default = settings.mlflow_backend_store_uri
        if _loopback(_host(default)) and not _loopback(_host(uri)):
            # 127.0.0.1 is each machine's own PostgreSQL: no lock shared across hosts
            raise LockUnavailable(
                f"the tracking server {redact(uri)} is on another host but the registry lock "
                f"would be in this machine's PostgreSQL ({redact(default)}); set "
                "DEMAND_REGISTRY_LOCK_URL (or DEMAND_MLFLOW_BACKEND_STORE_URI) to the team's "
                "PostgreSQL"
            )
        return default
    raise LockUnavailable(
        f"the registry at {redact(uri)} is shared, so moves must be serialised across "
        "machines: set DEMAND_REGISTRY_LOCK_URL to a PostgreSQL database every client "
        "reaches (e.g. the tracking server's), or use DEMAND_PROFILE=team"
    )


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "127.0.0.1"


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


@contextmanager
def registry_lock(settings: Settings, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock of ``settings.model_name``'s registry for the ``with`` block."""
    timeout_s = settings.registry_lock_timeout_s if timeout_s is None else timeout_s
    url = lock_url(settings)
    if url is not None:
        with _advisory_lock(url, settings.model_name, timeout_s, _holder_name(settings)):
            yield
        return
    path = Path(settings.tracking_uri.removeprefix("sqlite:///") + ".promotion.lock")
    with _file_lock(path, settings.model_name, timeout_s):
        yield


def check_reachable(settings: Settings) -> None:
    """Raise :class:`LockUnavailable` now if the lock could not be taken later (fail fast)."""
    url = lock_url(settings)
    if url is not None:
        _connect(url, _holder_name(settings)).close()


def _holder_name(settings: Settings) -> str:
    # shown to whoever waits for the lock (pg_stat_activity.application_name: 63 bytes)
    return f"demand {who(settings)}@{socket.gethostname()} pid {os.getpid()}"[:63]


@contextmanager
def _file_lock(path: Path, model_name: str, timeout_s: float) -> Iterator[None]:
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
                        f"another registry move of {model_name} (a `demand` process on this "
                        f"machine) has held {path} for over {timeout_s:g}s; wait for it to "
                        "finish and run the command again, or raise "
                        "DEMAND_REGISTRY_LOCK_TIMEOUT_S"
                    ) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connect(url: str, application_name: str):
    import psycopg

    try:
        return psycopg.connect(
            Database(url).conninfo(), autocommit=True, application_name=application_name
        )
    except psycopg.OperationalError as error:
        raise LockUnavailable(_unreachable(url, error)) from None


def _unreachable(url: str, error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return (
        f"the registry lock database at {redact(url)} does not answer ({first}); nothing in "
        "the registry was changed. Start PostgreSQL (`make team-up`), or point "
        "DEMAND_REGISTRY_LOCK_URL at the team's database"
    )


@contextmanager
def _advisory_lock(url: str, model_name: str, timeout_s: float, me: str) -> Iterator[None]:
    import psycopg

    key = lock_key(model_name)
    connection = _connect(url, me)
    try:
        deadline = time.monotonic() + timeout_s
        try:
            while not connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise LockTimeout(_held_by(connection, model_name, key, timeout_s))
                time.sleep(POLL_S)
        except psycopg.OperationalError as error:
            raise LockUnavailable(_unreachable(url, error)) from None
        try:
            yield
        finally:
            # if the session is gone, PostgreSQL freed the lock with it
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        connection.close()


def _held_by(connection, model_name: str, key: int, timeout_s: float) -> str:
    """Who holds ``key`` and since when, as far as pg_stat_activity lets us see."""
    # a bigint key is stored as two oids: the high and the low 32 bits
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = connection.execute(
        """
        SELECT l.pid, a.application_name, host(a.client_addr),
               extract(epoch FROM now() - a.state_change)
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """,
        (high, low),
    ).fetchone()
    if row is None:  # released just now
        holder = "another registry move"
    else:
        pid, name, address, seconds = row
        holder = (
            f"{name or 'another client'}"
            + (f" from {address}" if address else "")
            + f" (PostgreSQL backend pid {pid}"
            + (f", holding it for {float(seconds):.0f}s)" if seconds is not None else ")")
        )
    return (
        f"the registry lock of {model_name} is held by {holder}; it did not finish within "
        f"{timeout_s:g}s. Wait for that move to finish and run the command again, or raise "
        "DEMAND_REGISTRY_LOCK_TIMEOUT_S. A holder that crashed frees the lock when its "
        "session ends"
    )
