"""`demand feast …` and `demand ui`: Feast's CLI and the two UIs on the profile's registries.

Both run Feast as a child with the environment :func:`open_store` exports and the
profile's ``feature_store*.yaml``, so the CLI and the UI see the same registry and
stores as the rest of the platform, in either profile. The UIs run in the
foreground until SIGTERM or Ctrl-C, which stops both (see :mod:`ops.processes`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from demand.console import UserError
from demand.featurestore import feast_environ
from demand.servers import redact
from demand.settings import Profile, Settings
from ops.processes import Children, Terminated, exit_code

START_TIMEOUT = 180.0  # seconds; the Feast UI imports for ~10 s, more on a busy machine
PROGRESS_EVERY = 10.0


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def feast_command(settings: Settings, args: list[str]) -> list[str]:
    """The feast CLI on the profile's feature repo and feature_store*.yaml."""
    return [
        _tool("feast"),
        "--chdir",
        str(settings.feature_repo),
        "--feature-store-yaml",
        str(settings.feature_store_yaml),
        *args,
    ]


def _feast_env(settings: Settings) -> dict[str, str]:
    if not settings.feature_store_yaml.exists():
        raise UserError(f"{settings.feature_store_yaml} does not exist; check DEMAND_PROFILE")
    return {**os.environ, **feast_environ(settings)}


def run_feast(settings: Settings, args: list[str]) -> int:
    """Run ``feast ARGS…`` as a child in the foreground; its exit code."""
    env = _feast_env(settings)
    with Children() as children:
        process = children.start(feast_command(settings, args), env=env)
        process.wait()
    return exit_code(process)


@dataclass
class Ui:
    name: str
    url: str  # as shown: never with credentials
    what: str
    process: subprocess.Popen | None = None  # None: a server the platform did not start here
    log: Path | None = None


def mlflow_ui_command(host: str, port: int) -> list[str]:
    return [_tool("mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1"]


def _mlflow_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        # the backend store goes through the environment, not argv, where `ps` would show it
        "MLFLOW_BACKEND_STORE_URI": settings.tracking_uri,
        # experiments made in the UI keep their files in the data dir, as training's do
        "MLFLOW_DEFAULT_ARTIFACT_ROOT": (settings.mlflow_dir / "artifacts").as_uri(),
        # a browsing UI runs no background jobs (they cost a dozen processes)
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def run_ui(
    settings: Settings,
    host: str = "127.0.0.1",
    mlflow_port: int = 5000,
    feast_port: int = 8888,
    progress: Callable[[str], None] = print,
    timeout: float = START_TIMEOUT,
) -> None:
    """Start the MLflow UI and the Feast UI, wait until both answer, run until a signal."""
    env = _feast_env(settings)
    registry = _feast_registry(settings)
    tracking = settings.tracking_uri
    server = tracking.startswith(("http://", "https://"))
    if server and not _answers(tracking):
        raise UserError(
            f"the MLflow tracking server at {redact(tracking)} does not answer; "
            "run `make team-up` (or set DEMAND_MLFLOW_TRACKING_URI to your team's server)"
        )
    if not server:
        _require_free(host, mlflow_port, "--mlflow-port")
    _require_free(host, feast_port, "--feast-port")
    logs = settings.data_dir / "ui"
    logs.mkdir(parents=True, exist_ok=True)
    what = f"runs and model versions in {redact(tracking)}"
    if server:  # the team's tracking server is its UI
        mlflow = Ui("MLflow UI", redact(tracking), what)
    else:
        mlflow = Ui("MLflow UI", f"http://{host}:{mlflow_port}", what, log=logs / "mlflow-ui.log")
    feast = Ui(
        "Feast UI",
        f"http://{host}:{feast_port}",
        f"project {settings.feast_project}, registry {registry}",
        log=logs / "feast-ui.log",
    )
    with Children() as children:
        try:
            if mlflow.log is not None:
                settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
                progress(f"starting the MLflow UI on {mlflow.url} (log: {mlflow.log})")
                mlflow.process = _start(
                    children,
                    mlflow_ui_command(host, mlflow_port),
                    mlflow.log,
                    _mlflow_env(settings),
                )
            progress(f"starting the Feast UI on {feast.url} (log: {feast.log})")
            feast.process = _start(
                children,
                feast_command(settings, ["ui", "--host", host, "--port", str(feast_port)]),
                feast.log,
                env,
            )
            _wait_ready([mlflow, feast], progress, timeout)
            for ui in (mlflow, feast):
                progress(f"{ui.name:<10} {ui.url}  ({ui.what})")
            started = " and ".join(ui.name for ui in (mlflow, feast) if ui.process)
            progress(f"ready; Ctrl-C stops the {started}")
            _watch([mlflow, feast])
        except Terminated:
            progress("stopping the UIs")
            raise


def _feast_registry(settings: Settings) -> str:
    if settings.profile is Profile.team:
        return redact(settings.feast_registry_url)
    registry = settings.feast_dir / "registry.db"
    if not registry.exists():
        raise UserError(f"no Feast registry at {registry}; run `make features` first")
    return str(registry)


def _require_free(host: str, port: int, option: str) -> None:
    with socket.socket() as sock:
        # as the servers bind: a port left in TIME_WAIT by a stopped server is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise UserError(
                f"port {port} on {host} is busy ({error.strerror}); stop what holds it "
                f"or choose another with {option}"
            ) from None


def _start(children: Children, command: list[str], log: Path, env: dict[str, str]):
    with open(log, "ab") as out:
        return children.start(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _answers(url: str, timeout: float = 3.0) -> bool:
    """True when ``url``'s index page answers HTTP 200."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _wait_ready(uis: list[Ui], progress: Callable[[str], None], timeout: float) -> None:
    start = time.monotonic()
    last_said = start
    waiting = list(uis)
    while waiting:
        for ui in list(waiting):
            _check_running(ui)
            if _answers(ui.url, timeout=2):
                progress(f"{ui.name} answers ({time.monotonic() - start:.0f}s)")
                waiting.remove(ui)
        now = time.monotonic()
        if waiting and now - start > timeout:
            names = " and ".join(ui.name for ui in waiting)
            raise UserError(f"the {names} did not answer within {timeout:.0f}s; see its log")
        if waiting and now - last_said >= PROGRESS_EVERY:
            progress(f"waiting for the {' and '.join(ui.name for ui in waiting)}…")
            last_said = now
        if waiting:
            time.sleep(0.5)


def _watch(uis: list[Ui]) -> None:
    """Until a signal (raised as :class:`Terminated`), or until one of the UIs stops."""
    while True:
        for ui in uis:
            _check_running(ui)
        time.sleep(0.5)


def _check_running(ui: Ui) -> None:
    if ui.process is not None and ui.process.poll() is not None:
        tail = ui.log.read_text(errors="replace").strip().splitlines()[-1:] if ui.log else []
        last = f": {tail[0]}" if tail else ""
        raise UserError(
            f"the {ui.name} exited with code {ui.process.returncode}{last} (log: {ui.log})"
        )
