"""`demand bento build`: a Bento holding the service, the served model and the feature repo config.

The model is imported from the registry into the Bento model store with
``bentoml.mlflow`` (labelled with its MLflow name and version, the feature
contract in its metadata), so the Bento needs no MLflow registry at run time:
only the online store, found through DEMAND_DATA_DIR on the machine it runs on.
BENTOML_HOME is the settings' ``bentoml_home`` (inside the data directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from demand.settings import REPO_ROOT, Settings
from serving import model_loader

BENTO_NAME = "demand_forecast_service"
SOURCES = [
    "serving/*.py",
    "demand/*.py",
    "feature_repo/*.py",
    "feature_repo/feature_store.yaml",
]


@dataclass(frozen=True)
class Built:
    bento: str
    model: str
    mlflow_name: str
    mlflow_version: str
    bentoml_home: str


def use_bentoml_home(settings: Settings) -> None:
    """Point BentoML at DATA_DIR/bentoml; before bentoml is imported, as it reads this once."""
    settings.bentoml_home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)


def build(settings: Settings, alias: str | None = None, version: str | None = None) -> Built:
    use_bentoml_home(settings)
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema  # build() wants this type

    found = model_loader.resolve_version(
        settings, None if version else alias or settings.serve_alias, version
    )
    # refuse to package a model the online store cannot serve, as the service would
    contract = model_loader.load(settings, alias=alias, version=str(found.version)).contract
    labels = {
        model_loader.LABEL_NAME: found.name,
        model_loader.LABEL_VERSION: str(found.version),
        "mlflow_run_id": found.run_id or "",
    }
    if alias and not version:
        labels["mlflow_alias"] = alias
    model = bentoml.mlflow.import_model(
        found.name,
        f"models:/{found.name}/{found.version}",
        labels=labels,
        metadata={model_loader.CONTRACT_METADATA: contract.to_json()},
    )
    bento = bentoml.bentos.build(
        "serving.service:DemandForecast",
        name=BENTO_NAME,
        labels=labels,
        include=SOURCES,  # paths relative to build_ctx, as BentoML requires
        models=[str(model.tag)],
        python={"requirements_txt": "requirements.lock", "lock_packages": False},
        envs=[BentoEnvSchema(name="DEMAND_SERVE_BENTO_MODEL", value=str(model.tag))],
        build_ctx=str(REPO_ROOT),
    )
    return Built(
        str(bento.tag), str(model.tag), found.name, str(found.version), str(settings.bentoml_home)
    )
