"""MLflow: where runs go, what a training run records, and registering its model."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from demand import tracking
from demand.contract import ARTIFACT, TAG_PREFIX, FeatureContract
from demand.settings import Settings

EXPERIMENT = "demand_forecasting"


def connect(settings: Settings):
    """The MLflow client on the settings' tracking URI (fails fast when it does not answer)."""
    return tracking.connect(settings)


def version_trained_on(client, name: str, digest: str):
    """The newest registered version of ``name`` trained on the training set ``digest``."""
    from mlflow.exceptions import MlflowException

    tag = f"{TAG_PREFIX}training_set_hash"
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    matches = [v for v in found if v.tags.get(tag) == digest]
    return max(matches, key=lambda v: int(v.version), default=None)


def experiment_id(client, settings: Settings) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found:
        return found.experiment_id
    # keep artifacts in the data dir, not in ./mlruns of whatever the cwd is
    location = None
    if settings.tracking_uri.startswith("sqlite:///"):
        location = (settings.mlflow_dir / "artifacts").as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def log_dataset(frame: pd.DataFrame, contract: FeatureContract, name: str, source: Path) -> None:
    """Record the training set's lineage: schema, time range and content hash."""
    import mlflow

    columns = ["store_id", "product_id", "origin", "target", "horizon", "label"]
    # a local path matches two of MLflow's source resolvers (either is right), and the
    # integer `horizon` column draws MLflow's missing-value hint (it has no nulls)
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    dataset = mlflow.data.from_pandas(
        frame[columns],
        name=name,
        targets="label",
        source=str(source),  # the offline feature tables the Feast service read
        digest=contract.training_set_hash,
    )
    mlflow.log_input(
        dataset,
        context="training",
        tags={
            "train_start": contract.train_start,
            "train_end": contract.train_end,
            "feast.feature_service": contract.feature_service,
            "engine": contract.engine,  # where the rows were retrieved: duckdb or spark
        },
    )


def log_tables(tables: dict[str, pd.DataFrame]) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            path = Path(tmp) / f"{name}.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="backtest")


def log_trial(number: int, params: dict, metrics: dict) -> None:
    """One hyperparameter search trial as a nested run of the active training run."""
    import mlflow

    with mlflow.start_run(run_name=f"search-trial-{number}", nested=True):
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def log_plots(
    test: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    by_horizon: pd.DataFrame,
    importance: pd.Series,
    unit: str = "day",
) -> None:
    """Forecast vs actual for a few series, error by horizon, feature importance.

    Nothing here grows with the size of the sales: a series of 10^6 units a week is
    drawn on its own axis like one of 3 (and kilograms like units).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    frame = test.assign(**{f"pred_{k}": v for k, v in predictions.items()})
    # the grain's seasonal naive (``seasonal_naive_7d``, ``seasonal_naive_52w``)
    seasonal = next((k for k in predictions if k.startswith("seasonal_naive")), None)
    first = frame[frame["horizon"] == 1]
    top = first.groupby(["store_id", "product_id", "category"])["label"].sum()
    picks = top.groupby(level="category").idxmax().sort_values().head(4)
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.6 * len(picks)), squeeze=False)
    for ax, (store_id, product_id, category) in zip(axes[:, 0], picks, strict=True):
        s = first[(first["store_id"] == store_id) & (first["product_id"] == product_id)]
        ax.plot(s["target"], s["label"], "k.-", label="actual")
        ax.plot(s["target"], s["pred_model"], "C0-", label="model")
        if seasonal:
            ax.plot(s["target"], s[f"pred_{seasonal}"], "C1:", label=seasonal)
        ax.set_title(f"{store_id} × {product_id} ({category}), 1 {unit} ahead", fontsize=9)
        ax.set_ylabel("units")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/forecast_vs_actual.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for predictor, group in by_horizon.groupby("predictor"):
        ax.plot(group["horizon"], group["wape"], marker="o", label=predictor)
    ax.set_xlabel(f"horizon ({unit}s ahead)")
    ax.set_ylabel("WAPE")
    ax.set_title("Backtest error by horizon")
    ax.legend()
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/error_by_horizon.png")
    plt.close(fig)

    top_features = importance.sort_values().tail(25)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(top_features.index, top_features.to_numpy())
    ax.set_title("Feature importance (CatBoost, top 25)")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)


def log_model(model, example: pd.DataFrame, contract: FeatureContract, backtest_model=None):
    """The CatBoostRegressor with signature, input example and its contract; the ModelInfo.

    ``backtest_model`` (the model fitted before the backtest window, when ``model`` is
    the refit on all history) is saved inside the model's own directory, at the path
    the contract names, so it travels with every copy of the version.
    """
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(example))
    requirements = [f"catboost=={_version('catboost')}", f"pandas=={_version('pandas')}"]
    info = mlflow.catboost.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
    )
    if backtest_model is not None:
        path = contract.extra["backtest_model"]
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.catboost.save_model(
                backtest_model,
                str(Path(tmp) / path),
                signature=infer_signature(example, backtest_model.predict(example)),
                pip_requirements=requirements,
            )
            mlflow.MlflowClient().log_model_artifacts(
                info.model_id, str(Path(tmp) / path), artifact_path=path
            )
    mlflow.log_text(contract.to_json(), ARTIFACT)
    return info


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def register(
    client,
    settings: Settings,
    model,
    run_id: str,
    contract: FeatureContract,
    description: str,
):
    """A new version of the registered model ``model`` (a ModelInfo), tagged with its contract."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(settings.model_name)
    except MlflowException:
        client.create_registered_model(
            settings.model_name,
            description="Daily units per store and product, from entity keys via Feast.",
        )
    version = client.create_model_version(
        settings.model_name,
        model.model_uri,
        run_id=run_id,
        # a tracking server refuses a `models:/m-…` source unless the model id comes with it
        model_id=model.model_id,
        tags=contract.to_tags(),
        description=description,
    )
    return version
