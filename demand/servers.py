"""The team profile's servers: is each one there, and where does it live.

Pure checks with short timeouts, so a missing server is one clear line within
seconds rather than minutes of a client library's retries. Addresses are always
shown through :func:`redact`: a password in a URL never reaches a log.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from demand.console import UserError

TIMEOUT = 3.0  # seconds: a server on the team's network answers far sooner


class ServerUnavailable(UserError):
    """A server the profile needs does not answer; the message says which and what to run."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (SQLAlchemy URLs, host:port,password=…)."""
    if "://" in url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:  # not SQLAlchemy's syntax (http://user:pw@host): do it by hand
            scheme, rest = url.split("://", 1)
            auth, at, host = rest.rpartition("@")
            if at and ":" in auth:
                return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"
            return url
    # Feast's Redis connection string: host:port[,password=…][,ssl=true]
    parts = url.split(",")
    return ",".join(
        f"{p.split('=', 1)[0]}=***" if p.split("=", 1)[0].strip() == "password" else p
        for p in parts
    )


# -- PostgreSQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database named by a SQLAlchemy URL (``postgresql+psycopg://…/name``)."""

    url: str

    @property
    def name(self) -> str:
        return self._url().database or ""

    def _url(self):
        from sqlalchemy.engine import make_url

        return make_url(self.url)

    def conninfo(self, database: str | None = None) -> str:
        """libpq keywords (psycopg) for this server and ``database`` (default: this one)."""
        url = self._url()
        parts = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "user": url.username,
            "password": url.password,
            "dbname": database or url.database,
            "connect_timeout": int(TIMEOUT),
        }
        return " ".join(f"{k}={_quote(str(v))}" for k, v in parts.items() if v is not None)

    def exists(self) -> bool:
        """Whether the database is there (raises :class:`ServerUnavailable` if the server isn't)."""
        with self._admin() as admin:
            return self._exists(admin)

    def ensure(self) -> bool:
        """Create the database when it is missing; True if it was created."""
        import psycopg

        if not self.name:
            raise ServerUnavailable(f"{redact(self.url)} names no database")
        with self._admin() as admin:
            if self._exists(admin):
                return False
            try:
                admin.execute(f'CREATE DATABASE "{self.name}"')
            except psycopg.errors.DuplicateDatabase:  # another process created it meanwhile
                return False
            return True

    def _exists(self, admin) -> bool:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,))
        return found.fetchone() is not None

    def _admin(self):
        """A connection to the server's maintenance database, which always exists.

        Autocommit, because CREATE DATABASE cannot run inside a transaction.
        """
        import psycopg

        try:
            return psycopg.connect(self.conninfo("postgres"), autocommit=True)
        except psycopg.OperationalError as error:
            raise ServerUnavailable(
                f"PostgreSQL at {redact(self.url)} does not answer "
                f"({_first_line(error)}); start it, or point the DEMAND_* URL at yours"
            ) from None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- Redis -----------------------------------------------------------------------------------


def redis_ping(connection_string: str) -> None:
    """Raise :class:`ServerUnavailable` unless Redis at Feast's ``host:port[,k=v…]`` answers."""
    import redis

    host_port, *options = connection_string.split(",")
    host, _, port = host_port.strip().rpartition(":")
    kwargs = dict(o.split("=", 1) for o in options if "=" in o)
    try:
        client = redis.Redis(
            host=host or "127.0.0.1",
            port=int(port or 6379),
            password=kwargs.get("password"),
            ssl=kwargs.get("ssl", "").lower() == "true",
            socket_connect_timeout=TIMEOUT,
            socket_timeout=TIMEOUT,
        )
        client.ping()
    except (redis.RedisError, ValueError) as error:
        raise ServerUnavailable(
            f"Redis at {redact(connection_string)} does not answer ({_first_line(error)}); "
            "start it, or set DEMAND_REDIS_URL"
        ) from None


# -- the MLflow tracking server --------------------------------------------------------------


def tracking_server_answers(url: str, timeout: float = TIMEOUT) -> bool:
    """True when an MLflow tracking server answers at ``url`` (its /health and its REST API)."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            if response.status != 200:
                return False
        search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        with urllib.request.urlopen(search, timeout=timeout) as response:
            json.loads(response.read())
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
        return False


def require_tracking(uri: str) -> None:
    """Raise :class:`ServerUnavailable` when ``uri`` is a tracking server that does not answer.

    Local stores (``sqlite:///…``) need no server and pass.
    """
    if uri.startswith(("http://", "https://")) and not tracking_server_answers(uri):
        raise ServerUnavailable(
            f"the MLflow tracking server at {redact(uri)} does not answer; start it with "
            "`make team-up` (or set DEMAND_MLFLOW_TRACKING_URI to your team's server)"
        )
