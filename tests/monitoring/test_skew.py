"""Served-vs-offline skew: logged vectors recomputed offline through the feature service."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from demand.settings import get_settings
from feastext.feature_logs import LOG_TIMESTAMP, REQUEST_ID
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
    # the whole log (91 rows, under the sample's size): the planted row among them
    [found] = skew.check(settings, store=feast_store, progress=lambda _: None)
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


def _log_days(folder, days: int, per_day: int):
    """A feature service's log: one file a day, ``per_day`` rows each, every tenth row of
    an item that had no origin (not scored)."""
    service = folder / "demand_service"
    service.mkdir(parents=True)
    for day in range(days):
        logged = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=day, hours=9)
        origin = (logged - pd.Timedelta(days=1)).date()
        scored = np.arange(per_day) % 10 != 0
        pd.DataFrame(
            {
                "store_id": [f"S{i % 4}" for i in range(per_day)],
                LOG_TIMESTAMP: [logged + pd.Timedelta(seconds=i) for i in range(per_day)],
                REQUEST_ID: [f"r{day}-{i // 10}" for i in range(per_day)],
                "origin_date": [origin if s else None for s in scored],
                "as_of": [logged.normalize() if s else pd.NaT for s in scored],
            }
        ).to_parquet(service / f"2024-03-{day + 1:02d}T09-a.parquet", index=False)
    return service.name


def test_the_sample_is_seeded_and_spans_the_logged_period(tmp_path):
    settings = get_settings(data_dir=tmp_path / "data", serve_feature_log_dir=tmp_path / "logs")
    service = _log_days(tmp_path / "logs", days=10, per_day=100)
    drawn = skew.sample(settings, service, 60)
    assert len(drawn) == 60 and drawn["origin_date"].notna().all()
    # drawn over the whole log, not its newest day (which alone holds 90 scored rows)
    days = drawn[LOG_TIMESTAMP].dt.normalize()
    assert days.nunique() >= 8, days.value_counts()
    assert days.min() == pd.Timestamp("2024-03-01", tz="UTC")
    assert drawn[LOG_TIMESTAMP].is_monotonic_increasing  # oldest first, as logged
    # seeded: the same log, the same rows; another seed, others
    again = skew.sample(settings, service, 60)
    pd.testing.assert_frame_equal(drawn, again)
    other = skew.sample(settings, service, 60, seed=settings.skew_sample_seed + 1)
    assert set(other[LOG_TIMESTAMP]) != set(drawn[LOG_TIMESTAMP])
    # a sample as large as the log is every scored row
    assert len(skew.sample(settings, service, 5000)) == 900
