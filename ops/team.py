"""`demand team up|down|status`: what the team profile needs, checked, created and started.

PostgreSQL and Redis are the team's own servers: the platform checks that they
answer and creates the databases it needs in PostgreSQL (the Feast registry's and
the tracking server's) when they are missing. The MLflow tracking server is the
platform's own: ``up`` starts it in the background (its own process group, a pid
file and a log under DATA_DIR/team) and waits until it answers; ``down`` stops it.
Both are idempotent. Clients only ever talk to the tracking server over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from demand.console import UserError
from demand.servers import Database, ServerUnavailable, redact, redis_ping, tracking_server_answers
from demand.settings import Profile, Settings
from ops import processes

START_TIMEOUT = 120.0  # the first start migrates an empty database: ~20 s measured here


@dataclass(frozen=True)
class Place:
    what: str
    where: str


def places(settings: Settings) -> list[Place]:
    """Where each part of the profile lives (credentials hidden)."""
    found = [
        Place("data (raw, feature tables)", str(settings.data_dir)),
        Place("Feast project", settings.feast_project),
    ]
    if settings.profile is Profile.team:
        found += [
            Place("Feast registry", redact(settings.feast_registry_url)),
            Place("Feast online store", f"redis {redact(settings.redis_url)}"),
            Place("MLflow tracking server", redact(settings.tracking_uri)),
        ]
        if settings.tracking_uri == settings.tracking_server_url:  # the one we start
            found += [
                Place("MLflow backend store", redact(settings.mlflow_backend_store_uri)),
                Place("MLflow artifacts", redact(settings.artifacts_destination)),
            ]
    else:
        found += [
            Place("Feast registry", str(settings.feast_dir / "registry.db")),
            Place("Feast online store", str(settings.feast_dir / "online_store.db")),
            Place("MLflow tracking", settings.tracking_uri),
        ]
    return found


def _require_team(settings: Settings) -> None:
    if settings.profile is not Profile.team:
        raise UserError(
            "the team servers belong to the team profile; set DEMAND_PROFILE=team "
            "(the embedded profile needs no servers)"
        )


def _pid_file(settings: Settings) -> Path:
    return settings.team_dir / "mlflow-server.pid"


def _running_pid(settings: Settings) -> int | None:
    """The pid of the tracking server this data dir started, if it is still alive."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def up(settings: Settings, progress: Callable[[str], None] = print) -> list[Place]:
    """Check PostgreSQL and Redis, create the databases, start the tracking server."""
    _require_team(settings)
    redis_ping(settings.redis_url)
    progress(f"Redis answers at {redact(settings.redis_url)}")
    databases = [Database(settings.feast_registry_url)]
    own_server = settings.tracking_uri == settings.tracking_server_url
    if own_server:
        databases.append(Database(settings.mlflow_backend_store_uri))
    for database in databases:
        created = database.ensure()
        progress(f"PostgreSQL database {database.name} {'created' if created else 'exists'}")
    if not own_server:
        # the team runs its own tracking server elsewhere: only check that it answers
        from demand.servers import require_tracking

        require_tracking(settings.tracking_uri)
        progress(f"MLflow tracking server answers at {redact(settings.tracking_uri)}")
    elif tracking_server_answers(settings.tracking_server_url):
        progress(f"MLflow tracking server already answers at {settings.tracking_server_url}")
    else:
        _start_tracking_server(settings, progress)
    return places(settings)


def _start_tracking_server(settings: Settings, progress: Callable[[str], None]) -> None:
    settings.team_dir.mkdir(parents=True, exist_ok=True)
    artifacts = settings.artifacts_destination
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    log = settings.team_dir / "mlflow-server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        settings.mlflow_server_host,
        "--port",
        str(settings.mlflow_server_port),
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts,
        "--workers",
        "1",
    ]
    env = {
        **os.environ,
        # the backend URI goes through the environment, not argv: `ps` would show a password
        "MLFLOW_BACKEND_STORE_URI": settings.mlflow_backend_store_uri,
        # MLflow 3's job runner (GenAI evaluation jobs) forks ~8 idle workers the platform
        # never uses; on a 2-core machine they cost seconds of every start
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    progress(f"starting the MLflow tracking server at {settings.tracking_server_url} (log: {log})")
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _pid_file(settings).write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not tracking_server_answers(settings.tracking_server_url, timeout=2):
            if process.poll() is not None:
                raise ServerUnavailable(
                    f"the MLflow tracking server exited with code {process.returncode} "
                    f"before answering; see {log}"
                )
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"the MLflow tracking server did not answer within {START_TIMEOUT:.0f}s; "
                    f"see {log}"
                )
            time.sleep(0.5)
    except BaseException:  # a failed or interrupted start leaves nothing running
        processes.stop_group(process)
        _pid_file(settings).unlink(missing_ok=True)
        raise
    progress(f"MLflow tracking server ready (pid {process.pid})")


def down(settings: Settings, progress: Callable[[str], None] = print) -> bool:
    """Stop the tracking server this data dir started; False when none was running."""
    _require_team(settings)
    pid = _running_pid(settings)
    if pid is None:
        _pid_file(settings).unlink(missing_ok=True)
        progress("no MLflow tracking server started from this data dir is running")
        return False
    processes.stop_pgid(pid)
    _pid_file(settings).unlink(missing_ok=True)
    progress(f"MLflow tracking server stopped (pid {pid})")
    return True


def status(settings: Settings) -> dict[str, str]:
    """Each server of the profile and what it says now; nothing is created or started."""
    _require_team(settings)
    result = {}
    try:
        redis_ping(settings.redis_url)
        result["Redis"] = "answers"
    except ServerUnavailable as error:
        result["Redis"] = str(error)
    for label, url in (
        ("Feast registry database", settings.feast_registry_url),
        ("MLflow backend database", settings.mlflow_backend_store_uri),
    ):
        try:
            found = Database(url).exists()
            result[label] = "exists" if found else "missing: run `make team-up`"
        except ServerUnavailable as error:
            result[label] = str(error)
    answers = tracking_server_answers(settings.tracking_uri)
    result["MLflow tracking server"] = "answers" if answers else "down: run `make team-up`"
    return result
