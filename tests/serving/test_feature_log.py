"""The served-feature log: every answered item, as served, in Feast's logging schema."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demand.featurestore import open_store
from feastext.feature_logs import Status, logging_schema
from serving import feature_log
from serving.service import DemandForecast, Item


def _as_parquet_keeps(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind) and kind.unit == "s":
        return pa.timestamp("ms", tz=kind.tz)
    return kind


@pytest.fixture
def logged_service(service_environ, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMAND_SERVE_FEATURE_LOG_DIR", str(tmp_path / "logs"))
    service = DemandForecast.inner()
    yield service
    service._shutdown()


def test_every_answered_item_is_logged_as_served(logged_service, known_keys, serving_env):
    keys, origin = known_keys
    service = logged_service
    items = [
        Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=2)) for s, p in keys[:3]
    ]
    items.append(Item(store_id="S_NOPE", product_id="P0000", date=origin + dt.timedelta(days=1)))
    answer = service.forecast(items)
    service.feature_log.flush()

    loaded = service.loaded
    folder = service.settings.feature_log_dir / loaded.contract.feature_service
    files = list(folder.glob("*.parquet"))
    assert len(files) == 1 and not list(folder.glob(".*"))  # no temporary file left
    schema = pq.read_schema(files[0])
    feast = logging_schema(open_store(serving_env), loaded.contract.feature_service)
    # Feast's columns first, in Feast's order and types: feast's readers take the file
    # (parquet has no second unit: Feast's timestamp[s] is stored, and read back, as ms)
    wanted = [(f.name, _as_parquet_keeps(f.type)) for f in feast]
    assert list(zip(schema.names, schema.types, strict=True))[: len(feast)] == wanted
    rows = feature_log.read(service.settings.feature_log_dir, loaded.contract.feature_service)
    assert len(rows) == len(items)
    assert rows["__request_id"].nunique() == 1
    assert (rows["model_version"] == loaded.version).all()
    assert rows["store_id"].tolist() == [i.store_id for i in items]
    assert rows["forecast_date"].tolist()[:3] == [str(origin + dt.timedelta(days=2))] * 3
    units = [f.units for f in answer.forecasts]
    assert rows["prediction"].tolist()[:3] == pytest.approx(units[:3])
    assert rows["prediction"].isna().iloc[3] and rows["forecast_status"].iloc[3] == (
        "missing_features"
    )

    # the values and event times the lookup read, with Feast's statuses
    vectors = loaded.lookup.fetch(
        [i.store_id for i in items], [i.product_id for i in items], [i.date for i in items]
    )
    column = "store_product_sales__units_mean_28"
    assert rows[column].tolist()[:3] == pytest.approx(vectors.columns["units_mean_28"][:3])
    stamps = rows[f"{column}__timestamp"].dt.tz_convert("UTC").dt.to_pydatetime().tolist()
    expected = [s.replace(tzinfo=dt.UTC) for s in vectors.event_time["store_product_sales"][:3]]
    assert stamps[:3] == expected
    assert rows[f"{column}__status"].tolist() == [Status.PRESENT] * 3 + [Status.NOT_FOUND]
    assert rows["as_of"].iloc[0] == dt.datetime.combine(
        origin + dt.timedelta(days=1), dt.time(), dt.UTC
    )


def test_a_full_log_drops_and_counts_and_the_request_is_answered(
    service_environ, tmp_path, monkeypatch, known_keys
):
    keys, origin = known_keys
    monkeypatch.setenv("DEMAND_SERVE_FEATURE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("DEMAND_SERVE_FEATURE_LOG_MAX_ROWS", "2")
    service = DemandForecast.inner()
    try:
        before = service.feature_log.dropped
        items = [
            Item(store_id=s, product_id=p, date=origin + dt.timedelta(days=1)) for s, p in keys[:3]
        ]
        answer = service.forecast(items)  # three rows: more than the log may hold
        assert [f.status for f in answer.forecasts] == ["ok"] * 3
        assert service.feature_log.dropped == before + 3
    finally:
        service._shutdown()


def test_the_drop_counter_is_in_metrics(client, known_keys):
    text = client.get("/metrics").text
    assert "demand_feature_log_dropped_rows_total" in text


class _Broken:
    """A bundle whose schema cannot be read: every write fails."""

    name, version = "m", "1"

    @property
    def contract(self):
        raise RuntimeError("registry gone")


def test_a_failed_write_is_counted_and_never_raises(tmp_path):
    drops = []
    log = feature_log.FeatureLog(
        tmp_path, capacity=10, on_drop=lambda r, n: drops.append((r, n)), flush_seconds=3600
    )
    try:
        served = feature_log.Served("r", dt.datetime.now(dt.UTC), _Broken(), [1, 2], None, [1, 2])
        assert log.submit(served)
        log.flush()
        assert drops == [("error", 2)] and log.dropped == 2
        assert log.submit(served)  # the rows it held are freed
    finally:
        log.close()


def test_logging_off_writes_nothing(service_environ, tmp_path, monkeypatch, known_keys):
    keys, origin = known_keys
    monkeypatch.setenv("DEMAND_SERVE_FEATURE_LOG", "false")
    monkeypatch.setenv("DEMAND_SERVE_FEATURE_LOG_DIR", str(tmp_path / "logs"))
    service = DemandForecast.inner()
    assert service.feature_log is None
    service.forecast(
        [Item(store_id=keys[0][0], product_id=keys[0][1], date=origin + dt.timedelta(days=1))]
    )
    assert not (tmp_path / "logs").exists()
