"""The feature build at the weekly grain, checked against sums worked out from the raw rows."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import build_duckdb, plan
from synthetic import aggregate, generator


@pytest.fixture(scope="module")
def export():
    data = generator.generate("tiny", seed=7, days=120)
    # weeks starting on Thursday, as some retail calendars do
    return aggregate.aggregate(
        data, "week", "thursday", measures=("temperature_c", "precipitation_mm"), forecasts=True
    )


@pytest.fixture(scope="module")
def tables(export):
    return build_duckdb.compute(export.tables, description=export.description)


def test_weekly_sales_rows_are_the_weeks_units_known_when_the_week_closes(export, tables):
    sales = export.tables["sales"]
    weekly = tables["store_product_weekly"]
    row = weekly.sort_values("event_timestamp").iloc[len(weekly) // 2]
    week = (row["event_timestamp"] - pd.Timedelta(days=7)).tz_convert(None)
    assert week.dayofweek == 3  # a Thursday: the week it describes starts on one
    raw = sales[
        (sales["store_id"] == row["store_id"])
        & (sales["product_id"] == row["product_id"])
        & (sales["date"] == week)
    ]
    assert row["units_lag_1"] == (raw["units"].sum() if len(raw) else 0.0)
    before = sales[
        (sales["store_id"] == row["store_id"])
        & (sales["product_id"] == row["product_id"])
        & (sales["date"] == week - pd.Timedelta(days=7))
    ]
    assert row["units_lag_2"] == (before["units"].sum() if len(before) else 0.0)


def test_weekly_weather_is_the_weeks_mean_temperature_and_summed_rain(export, tables):
    observed = export.tables["weather_observed"]
    weekly = tables["region_weather_weekly"]
    row = weekly.iloc[5]
    start = (row["event_timestamp"] - pd.Timedelta(days=7)).tz_convert(None)
    days = observed[
        (observed["region_id"] == row["region_id"])
        & (observed["date"] >= start)
        & (observed["date"] < start + pd.Timedelta(days=7))
    ]
    assert len(days) == 7
    assert row["temperature_c"] == pytest.approx(days["temperature_c"].mean())
    assert row["precipitation_mm"] == pytest.approx(days["precipitation_mm"].sum())
    assert row["rainy_days_4w"] <= 28
    assert weekly["sunshine_hours"].isna().all()  # not given: absent, not zero


def test_a_weekly_forecast_is_one_issues_whole_week(export, tables):
    raw = export.tables["weather_forecast"]
    weekly = tables["region_weather_forecast_weekly"]
    row = weekly.iloc[10]
    start = pd.Timestamp(row["target_date"])
    issue = raw[
        (raw["region_id"] == row["region_id"]) & (raw["issued_at"] == row["event_timestamp"])
    ]
    days = issue[
        (issue["valid_date"] >= start) & (issue["valid_date"] < start + pd.Timedelta(days=7))
    ]
    assert len(days) == 7
    assert row["forecast_temperature_c"] == pytest.approx(days["temperature_c"].mean())
    assert row["forecast_precipitation_mm"] == pytest.approx(days["precipitation_mm"].sum())
    issue_day = row["event_timestamp"].tz_convert(None).normalize()
    assert row["forecast_lead_days"] == (start - issue_day).days
    # ten-day forecasts cover a whole week from up to three days ahead
    assert set(weekly["forecast_lead_days"]) <= {0, 1, 2, 3}


def test_the_grain_and_absent_features_are_in_each_tables_metadata(export, tmp_path):
    aggregate.write(export, tmp_path / "raw")
    build_duckdb.build(tmp_path / "raw", tmp_path / "features")
    built = plan.lineage(tmp_path / "features")
    assert (built.grain, built.calendar.week_start) == ("week", "thursday")
    assert {"sunshine_hours", "forecast_sunshine_hours", "repeat_pairs"} <= built.absent
    meta = pq.read_schema(tmp_path / "features" / "store_product_weekly.parquet").metadata
    assert meta[b"demand.grain"] == b"week"
    # no daily tables: the weekly set is a set of its own
    assert not (tmp_path / "features" / "store_product_daily.parquet").exists()


def test_the_climate_of_a_week_is_known_a_year_ahead_from_past_years_only(export, tables):
    observed = export.tables["weather_observed"]
    climate = tables["region_weather_climate"]
    row = climate.iloc[3]
    target = pd.Timestamp(row["target_date"])
    year_before = target - pd.Timedelta(days=364)
    days = observed[
        (observed["region_id"] == row["region_id"])
        & (observed["date"] >= year_before)
        & (observed["date"] < year_before + pd.Timedelta(days=7))
    ]
    # the feed has less than a year: the climate is the one week a year earlier
    assert row["climate_years"] == 1
    assert row["climate_temperature_c"] == pytest.approx(days["temperature_c"].mean())
    # known when that week closed, 51 weeks before the target starts
    assert row["event_timestamp"].tz_convert(None) == year_before + pd.Timedelta(days=7)
    assert climate["climate_sunshine_hours"].isna().all()


def test_climate_rows_known_at_t_ignore_the_weather_after_t():
    """Two years of weeks, the weather after T warmed by 10 °C: no climate row known at T
    changes (the prefix rule of tests/features/test_prefix.py, over several years)."""
    data = generator.generate("tiny", seed=7, days=735)
    export = aggregate.aggregate(data, "week", "sunday", measures=("temperature_c",))
    close = pd.Timestamp("2024-06-02", tz="UTC")  # a Sunday: a week's close
    observed = export.tables["weather_observed"]
    warmer = observed.assign(
        temperature_c=observed["temperature_c"].where(
            observed["date"] < close.tz_convert(None), observed["temperature_c"] + 10
        )
    )

    def known(weather):
        tables = {**export.tables, "weather_observed": weather}
        climate = build_duckdb.compute(tables, description=export.description)[
            "region_weather_climate"
        ]
        rows = climate[climate["event_timestamp"] <= close]
        return rows.sort_values(["region_id", "target_date"]).reset_index(drop=True)

    full = known(observed)
    assert (full["climate_years"] == 2).any()  # rows over two years: the rule has teeth
    pd.testing.assert_frame_equal(full, known(warmer))
