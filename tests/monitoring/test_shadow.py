"""Live evidence: shadow against production forecasts of the same targets, with actuals."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import psycopg
import pytest

from demand.servers import Database
from demand.settings import Settings, get_settings
from monitoring import shadow
from registry.gates import NO_WORSE_LIVE, no_worse_than_champion_live
from serving import batch
from tests.servers import drop_database, require_servers


def _forecasts(nights: int, series: int, error: float, version: str, seed: int):
    """Forecasts of every series for the day after each origin, ``error`` × noise off."""
    rng = np.random.default_rng(seed)
    origins = pd.date_range("2024-03-01", periods=nights, freq="D")
    rows = [
        (f"S{s:02d}", f"P{s:02d}", o, o + pd.Timedelta(days=1))
        for o in origins
        for s in range(series)
    ]
    frame = pd.DataFrame(rows, columns=shadow.KEY)
    actual = _actual(frame)
    frame["units"] = actual + error * rng.normal(size=len(frame))
    frame["model_version"] = version
    return frame


def _actual(frame):
    return 10.0 + frame["store_id"].str[1:].astype(int) % 5


def _sold(frame):
    return pd.DataFrame(
        {
            "store_id": frame["store_id"],
            "product_id": frame["product_id"],
            "target_date": frame["target_date"],
            "actual": _actual(frame),
        }
    ).drop_duplicates()


def test_only_targets_both_forecast_from_one_origin_with_an_actual_count():
    champion = _forecasts(2, 3, 1.0, "1", 0)
    challenger = _forecasts(2, 3, 1.0, "2", 1)
    sold = _sold(champion)
    extra = challenger.iloc[[0]].assign(product_id="P99")  # no champion forecast for it
    moved = champion.iloc[[1]].assign(
        origin_date=champion["origin_date"].iloc[1] - pd.Timedelta(days=1)
    )
    unknown = sold.iloc[[2]]  # its actual is not known yet
    rows = shadow.paired_rows(
        pd.concat([champion.drop(index=1), moved]),
        pd.concat([challenger, extra]),
        sold.drop(index=unknown.index),
    )
    assert len(rows) == 6 - 2  # the moved origin and the target without an actual are out
    assert set(rows["product_id"]) <= {"P00", "P01", "P02"}


def test_evidence_waits_for_enough_nights():
    champion, challenger = _forecasts(3, 20, 1.0, "1", 0), _forecasts(3, 20, 1.0, "2", 1)
    rows = shadow.paired_rows(champion, challenger, _sold(champion))
    found = shadow.evidence(rows, "2", "1", needed=4)
    assert (found.nights, found.rows, found.sufficient, found.paired) == (3, 60, False, None)
    check = no_worse_than_champion_live(found, Settings(gate_margin=0.0))
    assert not check.passed and "3 of 4 nights" in check.detail


@pytest.mark.parametrize(
    ("champion_error", "challenger_error", "margin", "passes"),
    [
        (3.0, 1.0, 0.0, True),  # clearly better
        (1.0, 1.0, 0.02, True),  # the same quality: within the default margin
        (1.0, 3.0, 0.0, False),  # credibly worse
        (1.0, 3.0, 0.5, True),  # worse, within a (large) margin
    ],
)
def test_the_live_gate_on_the_paired_interval(champion_error, challenger_error, margin, passes):
    champion = _forecasts(7, 40, champion_error, "1", 0)
    challenger = _forecasts(7, 40, challenger_error, "2", 1)
    rows = shadow.paired_rows(champion, challenger, _sold(champion))
    found = shadow.evidence(rows, "2", "1", needed=7)
    assert found.sufficient and found.nights == 7 and found.rows == 280
    check = no_worse_than_champion_live(found, Settings(gate_margin=margin))
    assert check.name == NO_WORSE_LIVE
    assert check.passed is passes, check.detail
    assert "interval" in check.detail and "7 of 7 nights" in check.detail


@pytest.mark.slow
def test_actuals_are_the_purchase_tables_sales(serving_env):
    sold = shadow.actuals(serving_env)
    daily = pd.read_parquet(
        serving_env.feature_dir / "store_product_daily.parquet",
    )
    counted = daily
    for status, kept in (("active", 1), ("censored", 0)):  # left out of the actuals
        if status in daily:
            counted = counted[counted[status].fillna(kept) == kept]
    row = counted.iloc[len(counted) // 2]
    day = row["event_timestamp"].tz_convert(None).normalize() - pd.Timedelta(days=1)
    found = sold[
        (sold["store_id"] == row["store_id"])
        & (sold["product_id"] == row["product_id"])
        & (sold["target_date"] == day)
    ]
    assert found["actual"].tolist() == [row["units_lag_1"]]
    # the live evidence reads only its targets' periods: the same rows as the whole table's
    targets = (day - pd.Timedelta(days=3), day)
    windowed = shadow.actuals(serving_env, targets)
    inside = sold[sold["target_date"].between(*targets)]
    assert len(windowed) == len(inside) > 0
    pd.testing.assert_frame_equal(
        windowed.sort_values(["store_id", "product_id", "target_date"]).reset_index(drop=True),
        inside.sort_values(["store_id", "product_id", "target_date"]).reset_index(drop=True),
    )


def _shadow(version: str, origin: str, stores: int, units: float) -> pd.DataFrame:
    start = pd.Timestamp(origin)
    return pd.DataFrame(
        [
            {
                "model_name": "demand_forecast",
                "model_version": version,
                "store_id": f"S{s}",
                "product_id": "P1",
                "origin_date": start.date(),
                "target_date": (start + pd.Timedelta(days=h)).date(),
                "horizon": h,
                "units": units,
            }
            for s in range(stores)
            for h in (1, 2)
        ],
        columns=batch.COLUMNS,
    )


def test_the_shadow_table_in_postgresql_is_kept_by_version_and_origin(tmp_path):
    """The team profile's `demand_forecasts_shadow`: an origin published again replaces
    that version's rows of it, and only those; production's table is left alone."""
    require_servers(redis=False)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{uuid.uuid4().hex[:10]}"
    settings = get_settings(data_dir=tmp_path / "data", forecast_db_url=url)
    try:
        for frame in (
            _shadow("5", "2024-03-01", stores=3, units=1.0),
            _shadow("5", "2024-03-02", stores=3, units=2.0),
            _shadow("6", "2024-03-01", stores=3, units=3.0),  # another staging version
            _shadow("5", "2024-03-01", stores=2, units=4.0),  # v5's first night again
        ):
            places = batch.publish(settings, frame, lambda _: None, shadow=True)
            assert places[-1].endswith(f"table {batch.SHADOW_TABLE}")
        with psycopg.connect(Database(url).conninfo()) as conn:
            rows = conn.execute(
                f"SELECT model_version, origin_date::text, count(*), min(units), max(units) "
                f"FROM {batch.SHADOW_TABLE} GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
            production = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (batch.TABLE,)
            ).fetchone()[0]
        assert rows == [
            ("5", "2024-03-01", 4, 4.0, 4.0),  # replaced whole: 2 stores × 2 horizons
            ("5", "2024-03-02", 6, 2.0, 2.0),
            ("6", "2024-03-01", 6, 3.0, 3.0),
        ]
        assert not production  # a shadow never reaches where planners read
        # the parquet beside it, which the live evidence reads, says the same
        parquet = shadow.shadow_forecasts(settings, "5")
        assert parquet.groupby(parquet["origin_date"].dt.strftime("%Y-%m-%d")).size().to_dict() == {
            "2024-03-01": 4,
            "2024-03-02": 6,
        }
    finally:
        drop_database(url)
