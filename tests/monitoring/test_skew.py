"""Served-vs-offline skew: logged vectors recomputed offline through the feature service."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from monitoring import skew
from serving.service import DemandForecast, Item
from tests.serving_fixtures import service_environment

SALES = "store_product_sales"
PLANTED = "units_mean_28"


@pytest.fixture(scope="module")
def logging_service(service_settings, tmp_path_factory):
    """The service, logging to a folder of this module's, and settings that read it."""
    folder = tmp_path_factory.mktemp("feature_logs")
    with service_environment(service_settings, DEMAND_SERVE_FEATURE_LOG_DIR=str(folder)):
        service = DemandForecast.inner()
    settings = service_settings.model_copy(update={"serve_feature_log_dir": folder})
    yield service, settings
    service._shutdown()


def _serve(service, keys, origin, horizons) -> None:
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=h))
        for s, p in keys
        for h in horizons
    ]
    for start in range(0, len(items), 50):
        service.forecast(items[start : start + 50])
    service.feature_log.flush()


@pytest.mark.slow
def test_the_tiny_retailer_serves_what_training_reads(logging_service, known_keys, feast_store):
    service, settings = logging_service
    keys, origin = known_keys
    _serve(service, keys[:30], origin, (1, 4, 7))
    [found] = skew.check(settings, store=feast_store, progress=lambda _: None)
    assert found.rows == 90, found.summary()
    assert found.clean, (found.summary(), found.examples)
    assert found.feature_service == service.loaded.contract.feature_service


@pytest.mark.slow
def test_a_wrong_online_value_is_caught_and_named(logging_service, known_keys, feast_store):
    service, settings = logging_service
    keys, origin = known_keys
    store_id, product_id = keys[3]
    table = pd.read_parquet(settings.feature_dir / "store_product_daily.parquet")
    rows = table[(table["store_id"] == store_id) & (table["product_id"] == product_id)]
    original = rows[rows["event_timestamp"] == rows["event_timestamp"].max()].reset_index(drop=True)
    wrong = original.copy()
    wrong[PLANTED] = wrong[PLANTED] * 10 + 1  # a bad load: the newest row, one wrong value
    feast_store.write_to_online_store(SALES, wrong)
    try:
        _serve(service, [(store_id, product_id)], origin, (2,))
    finally:
        feast_store.write_to_online_store(SALES, original)
    [found] = skew.check(settings, store=feast_store, rows=1, progress=lambda _: None)
    column = f"{SALES}__{PLANTED}"
    assert not found.clean
    assert set(found.mismatches) >= {column}, found.summary()
    # only the planted feature of the view, and on-demand outputs (which read it), differ
    assert {c for c in found.mismatches if c.startswith(f"{SALES}__")} == {column}
    [example] = found.examples[column]
    assert (example["store_id"], example["product_id"]) == (store_id, product_id)
    assert example["served"] == pytest.approx(float(wrong[PLANTED].iloc[0]), rel=1e-6)
    assert example["offline"] == pytest.approx(float(original[PLANTED].iloc[0]), rel=1e-6)
    assert column in found.summary()


def test_no_logs_is_said_not_failed(service_environ, tmp_path):
    settings = service_environ.model_copy(update={"serve_feature_log_dir": tmp_path})
    [found] = skew.check(settings, store=object(), progress=lambda _: None)
    assert found.clean and "no served features logged" in found.summary()
