"""Copying a version into another registered model or another tracking server.

Teams keep one registry per environment (dev → prod) or one model name per
market; a version is copied there, keeping its tags (the feature contract
above all), and then goes through that registry's own gates. Lifecycle tags
(stage, audit trail) are not copied: the copy starts as a candidate with a
history of its own, which begins by naming where it came from.
"""

from __future__ import annotations

import tempfile

from demand.settings import Settings
from registry import audit
from registry.gates import Stage
from registry.state import STAGE_TAG, connect, model_version

COPIED_FROM = "demand.copied_from"
EXPERIMENT = "demand_forecasting"


def _lifecycle_tag(key: str) -> bool:
    return key == STAGE_TAG or key.startswith((audit.MOVED, audit.HISTORY))


def copy_version(
    settings: Settings, version: str, to_model: str | None, to_tracking_uri: str | None
) -> tuple[Settings, str]:
    """Copy ``version``; the settings that address the copy's registry, and its version."""
    name = settings.model_name
    target = settings.model_copy(
        update={
            "model_name": to_model or name,
            "mlflow_tracking_uri": to_tracking_uri or settings.mlflow_tracking_uri,
        }
    )
    source_client = connect(settings)
    source = model_version(source_client, name, version)
    origin = f"{settings.tracking_uri}#models:/{name}/{source.version!s}"
    if target.tracking_uri == settings.tracking_uri:
        if target.model_name == name:
            raise ValueError("--to-model or --to-tracking-uri must name another registry")
        copied = source_client.copy_model_version(f"models:/{name}/{source.version!s}", to_model)
        client = source_client
    else:
        client, copied = _copy_across_servers(source_client, source, target)
    for key in list(copied.tags):
        if _lifecycle_tag(key):
            client.delete_model_version_tag(target.model_name, str(copied.version), key)
    client.set_model_version_tag(target.model_name, str(copied.version), COPIED_FROM, origin)
    move = audit.new_move(
        target, str(copied.version), "", Stage.candidate, f"copied from {origin}", forced=False
    )
    audit.record(client, target.model_name, move, {})
    client.set_model_version_tag(target.model_name, str(copied.version), STAGE_TAG, Stage.candidate)
    return target, str(copied.version)


def _copy_across_servers(source_client, source, target: Settings):
    """Artifacts, metrics and params into a run on the other server, then a version of it."""
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    run = source_client.get_run(source.run_id)
    uri = source_client.get_model_version_download_uri(source.name, str(source.version))
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        client = connect(target)
        found = client.get_experiment_by_name(EXPERIMENT)
        if found:
            experiment = found.experiment_id
        else:
            # a database-backed registry would otherwise put artifacts in ./mlruns of the cwd
            remote = target.tracking_uri.startswith(("http:", "https:", "databricks"))
            location = None if remote else (target.mlflow_dir / "artifacts").as_uri()
            experiment = client.create_experiment(EXPERIMENT, artifact_location=location)
        copy_run = client.create_run(
            experiment,
            run_name=f"copy of {source.name} v{source.version!s}",
            tags={COPIED_FROM: f"{source.name}/{source.version!s} run {source.run_id}"},
        )
        run_id = copy_run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in run.data.metrics.items()],
            params=[Param(k, v) for k, v in run.data.params.items()],
        )
        client.log_artifacts(run_id, local, artifact_path="model")
        client.set_terminated(run_id)
    try:
        client.get_registered_model(target.model_name)
    except MlflowException:
        client.create_registered_model(target.model_name)
    copied = client.create_model_version(
        target.model_name,
        f"{copy_run.info.artifact_uri}/model",
        run_id=run_id,
        tags={k: v for k, v in source.tags.items() if not _lifecycle_tag(k)},
        description=source.description,
    )
    return client, copied
