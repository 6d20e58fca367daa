"""The MLflow client every part uses: pointed at the settings' tracking URI, checked first.

A tracking server that does not answer is one clear error within seconds (MLflow's
own client would retry for minutes before failing).
"""

from __future__ import annotations

import os
from pathlib import Path

from demand.servers import require_tracking
from demand.settings import Settings


def connect(settings: Settings):
    """Point MLflow at the settings' tracking URI, check it answers; an MlflowClient on it."""
    import mlflow
    from mlflow import MlflowClient

    # per-file progress bars of artifact downloads would drown the commands' own progress
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    require_tracking(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
