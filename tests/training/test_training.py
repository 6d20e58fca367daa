"""Training end to end on the tiny retailer: real Feast, real CatBoost, a temporary MLflow."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from demand.contract import FeatureContract
from demand.featurestore import open_store
from demand.servers import ServerUnavailable
from tests.leakage import KNOWN_AT
from training import dataset, train


@pytest.fixture(scope="module")
def settings(feature_env, tmp_path_factory):
    mlflow_dir = tmp_path_factory.mktemp("mlflow")
    return feature_env.model_copy(
        update={
            "iterations": 40,
            "mlflow_tracking_uri": f"sqlite:///{mlflow_dir}/mlflow.db",
            "origin_every_days": 3,
        }
    )


@pytest.fixture(scope="module")
def training_set(settings):
    return dataset.build(open_store(settings), settings, progress=lambda _: None)


@pytest.fixture(scope="module")
def trained(settings):
    return train.run(settings, device="auto", progress=lambda _: None)


def test_no_feature_is_newer_than_the_origin(training_set):
    """Features are joined as of the close of the origin day, not later (the target day).

    That each feature row only reads data known by its own stamp is the prefix test's
    job (tests/features/test_prefix.py); this checks the instant training joins at.
    """
    frame = training_set.frame
    close = (frame["origin"] + pd.Timedelta(days=1)).dt.tz_localize("UTC")
    for column in KNOWN_AT:
        late = pd.to_datetime(frame[column], utc=True) > close
        assert not late.any(), f"{column} after the origin's close in {late.sum()} rows"
    assert frame["forecast_issued_at"].notna().mean() > 0.95
    # the forecast used was issued on or before the origin day, for the target day
    issued = pd.to_datetime(frame["forecast_issued_at"], utc=True).dt.tz_convert(None)
    assert (issued.dt.normalize() <= frame["origin"]).all()


def test_zero_labels_where_nothing_sold(training_set, settings):
    frame = training_set.frame
    assert (frame["label"] == 0).mean() > 0.05
    history = dataset.sales_history(settings).set_index(["store_id", "product_id", "date"])
    sample = frame.sample(200, random_state=0)
    expected = (
        history["units"]
        .reindex(pd.MultiIndex.from_frame(sample[["store_id", "product_id", "target"]]))
        .to_numpy()
    )
    assert np.allclose(sample["label"], expected)


def test_horizons_line_up_with_target_days(training_set, settings):
    frame = training_set.frame
    assert (frame["target"] - frame["origin"] == pd.to_timedelta(frame["horizon"], "D")).all()
    assert set(frame["horizon"]) == set(range(1, settings.horizon + 1))
    assert (frame["target_date"] == frame["target"].dt.strftime("%Y-%m-%d")).all()
    assert (frame["target_day_of_week"] == frame["target"].dt.dayofweek).all()


def test_time_split_never_overlaps(training_set, settings):
    frame = training_set.frame
    split = train.time_split(frame, settings)
    assert frame.loc[split.train, "target"].max() < frame.loc[split.valid, "origin"].min()
    assert frame.loc[split.valid, "target"].max() < frame.loc[split.test, "origin"].min()


def test_a_window_built_alone_is_the_whole_sets_rows_in_it(settings):
    """What the production gate rebuilds: a window's rows built alone (its origins, the
    labels from its own periods of the history, one retrieval of its rows) are the rows
    of the whole set that fall in it, value for value, sampled as the whole set is."""
    sampled = settings.model_copy(update={"train_sample_fraction": 0.4})
    whole = dataset.build(open_store(sampled), sampled, progress=lambda _: None)
    last = whole.frame["target"].max()
    window = dataset.Window(last - pd.Timedelta(days=20), last - pd.Timedelta(days=3))
    alone = dataset.build(open_store(sampled), sampled, lambda _: None, window)

    frame = whole.frame
    keep = (frame["origin"] >= window.first_origin) & (frame["target"] <= window.last_target)
    inside = frame[keep].reset_index(drop=True)
    assert 0 < len(inside) < (frame["origin"] >= window.first_origin).sum()
    assert whole.sampling.fraction == alone.sampling.fraction == 0.4
    pd.testing.assert_frame_equal(alone.frame.drop(columns="row_id"), inside.drop(columns="row_id"))
    assert dataset.digest(alone.frame, alone.features) == dataset.digest(inside, whole.features)
    # only the window's periods of the history were read
    assert alone.history["date"].min() >= window.first_origin
    assert alone.history["date"].max() <= window.last_target < whole.history["date"].max()


def test_registered_version_carries_the_contract(trained, settings):
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    version = client.get_model_version(settings.model_name, trained.version)
    contract = FeatureContract.from_tags(version.tags)
    assert contract.problems() == []
    assert contract.feature_service == "demand_forecast_v1"
    assert contract.feast_project == "demand_forecasting"
    assert contract.device == "CPU"
    assert contract.horizon == settings.horizon
    assert {"store_id", "product_id", "category"} <= set(contract.categorical)
    assert "replacements_due_on_target" in contract.features
    assert not any(f.endswith("_known_at") for f in contract.features)
    assert set(contract.feature_views) >= {"store_product_sales", "region_weather_forecast"}
    run = client.get_run(trained.run_id)
    for key in (
        "wape",
        "seasonal_naive_7d_wape",
        "moving_average_28d_wape",
        "naive_1d_wape",
        "wape_h1",
        "mae",
        "rmse",
        "bias",
    ):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert "plots/forecast_vs_actual.png" in artifacts
    assert run.inputs.dataset_inputs[0].dataset.digest == trained.digest


def _contract(settings, version) -> FeatureContract:
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    return FeatureContract.from_tags(client.get_model_version(settings.model_name, version).tags)


def test_the_served_model_is_refit_through_the_last_closed_day(trained, settings, training_set):
    """The registered model learns every closed day; the backtest model stops before its window."""
    contract = _contract(settings, trained.version)
    last_day = dataset.sales_history(settings)["date"].max()
    assert contract.train_end == f"{last_day:%Y-%m-%d}"
    backtest_start = pd.Timestamp(contract.extra["backtest_start"])
    backtest_model_end = pd.Timestamp(contract.extra["backtest_model_train_end"])
    # before the validation window, which comes before the backtest window
    assert backtest_model_end < backtest_start - pd.Timedelta(days=settings.validation_days)
    assert contract.train_start == contract.extra["backtest_model_train_start"]

    mlflow.set_tracking_uri(settings.tracking_uri)
    uri = f"models:/{settings.model_name}/{trained.version}"
    assert contract.backtest_model_uri(settings.model_name, trained.version) == (
        f"{uri}/backtest_model"
    )
    served = mlflow.catboost.load_model(uri)
    backtested = mlflow.catboost.load_model(f"{uri}/backtest_model")
    assert served.tree_count_ == backtested.tree_count_  # the backtest chose the trees
    params = (
        MlflowClient(settings.tracking_uri, settings.tracking_uri)
        .get_run(trained.run_id)
        .data.params
    )
    assert int(params["refit_rows"]) == len(training_set.frame) > int(params["training_rows"])
    assert trained.seconds["refit"] > 0
    # the quantile model's CatBoost fits, inside its step's seconds (bench-quality's peer)
    quantile_fits = trained.seconds["quantile fit"] + trained.seconds["quantile refit"]
    assert 0 < quantile_fits <= trained.seconds["quantiles"]

    # the backtest metrics are the backtest model's: it never saw those rows, the refit did
    split = train.time_split(training_set.frame, settings)
    test = training_set.frame[split.test]
    label = test["label"].to_numpy()

    def wape(model) -> float:
        return float(np.abs(label - contract.predict(model, test)).sum() / label.sum())

    assert wape(backtested) == pytest.approx(trained.summary.loc["model", "wape"], abs=1e-9)
    assert wape(served) < wape(backtested) - 0.02


def test_the_refit_forecasts_the_next_day_from_what_it_learned_since(trained, settings):
    """The next day's forecast (origin = the last closed day, through Feast as serving's
    features are): the refit learned from the last 98 days and forecasts otherwise."""
    contract = _contract(settings, trained.version)
    history = dataset.sales_history(settings)
    last_day = history["date"].max()
    pairs = history[["store_id", "product_id"]].drop_duplicates()
    rows = pairs.assign(origin=last_day, horizon=1, target=last_day + pd.Timedelta(days=1))
    store = open_store(settings)
    frame = store.get_historical_features(
        entity_df=dataset.entity_frame(rows, settings),
        features=store.get_feature_service(contract.feature_service),
    ).to_df()
    x = contract.model_frame(frame)
    mlflow.set_tracking_uri(settings.tracking_uri)
    uri = f"models:/{settings.model_name}/{trained.version}"
    served = mlflow.catboost.load_model(uri).predict(x)
    backtested = mlflow.catboost.load_model(f"{uri}/backtest_model").predict(x)
    moved = np.abs(served - backtested) > 0.05 * np.maximum(served, backtested)
    assert len(x) == len(pairs)
    # a model on the scaled target reads each pair's level from its recent mean, which both
    # models share: what the refit learned moves the rest, fewer pairs by 5 % (0.19 here
    # against 0.25+ on raw units); the same model twice moves none
    assert moved.mean() > 0.1, moved.mean()


def test_pyfunc_predicts_units(trained, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    uri = f"models:/{settings.model_name}/{trained.version}"
    model = mlflow.pyfunc.load_model(uri)
    example = model.input_example
    predictions = np.asarray(model.predict(example))
    native = mlflow.catboost.load_model(uri).predict(example)
    assert np.allclose(predictions, native)
    assert (predictions > 0).all()  # Tweedie's log link would give negatives at low volume
    # the model learns units over each pair's recent mean: the contract multiplies back
    contract = _contract(settings, trained.version)
    assert contract.target_scale == "units_mean_28"
    units = contract.units(predictions, example[contract.target_scale])
    assert units.mean() > 0.5  # units, not log-units of a store's daily sales


def test_feast_resolves_the_feature_service_from_the_version(trained, settings):
    from feast.mlflow_integration.model_resolver import FeastMlflowModelResolver

    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    resolver = FeastMlflowModelResolver(open_store(settings), mlflow, client)
    uri = f"models:/{settings.model_name}/{trained.version}"
    assert resolver.resolve(uri) == "demand_forecast_v1"


def test_same_data_same_seed_same_result(trained, settings):
    again = train.run(settings, device="cpu", register=False, progress=lambda _: None)
    assert again.digest == trained.digest
    pd.testing.assert_frame_equal(again.summary, trained.summary)


def test_failed_run_is_marked_failed_and_registers_nothing(settings, trained, monkeypatch):
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    versions = len(client.search_model_versions(f"name='{settings.model_name}'"))

    def broken_fit(*args, **kwargs):
        raise RuntimeError("fit exploded")

    monkeypatch.setattr(train.demand_model, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="fit exploded"):
        train.run(settings, progress=lambda _: None)
    runs = client.search_runs(
        [client.get_experiment_by_name("demand_forecasting").experiment_id],
        order_by=["attributes.start_time DESC"],
    )
    assert runs[0].info.status == "FAILED"
    assert len(client.search_model_versions(f"name='{settings.model_name}'")) == versions


def test_empty_training_window_fails_before_training(settings):
    short = settings.model_copy(update={"warmup_days": 10_000})
    # 10,000 + 1 + 42 + 56 + 7 days, and the date the history would have to start on
    with pytest.raises(dataset.TrainingDataError, match=r"needs at least 10106: .* data from"):
        train.run(short, progress=lambda _: None)


def test_missing_feature_service_says_what_to_run(settings):
    other = settings.model_copy(update={"feature_service": "demand_forecast_v9"})
    with pytest.raises(dataset.TrainingDataError, match="demand features"):
        train.run(other, progress=lambda _: None)


def test_unreachable_tracking_server_fails_fast(settings):
    down = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    with pytest.raises(ServerUnavailable, match="does not answer"):
        train.run(down, progress=lambda _: None)
