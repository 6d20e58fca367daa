"""The forecast ledger on the tiny retailer's sales: what it joins, what it leaves out and
counts, and that a night run again, or a corrected actual, rewrites only what changed."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from monitoring import accuracy, alerts, ledger

HORIZON = 7
ORIGINS = 5
LEFT_OUT = 0  # index of the pair never forecast


def _sales(settings) -> pd.DataFrame:
    sales = pd.read_parquet(settings.feature_dir / "store_product_daily.parquet")
    sales["target_date"] = (
        sales["event_timestamp"].dt.tz_convert(None) - pd.Timedelta(days=1)
    ).dt.date
    sales["store_id"] = sales["store_id"].astype(str)
    sales["product_id"] = sales["product_id"].astype(str)
    return sales


def _publish(settings, pairs: pd.DataFrame, origins: list, **extra) -> None:
    """Forecast files as serving.batch writes them: units = 2 per key and day."""
    settings.forecast_dir.mkdir(parents=True, exist_ok=True)
    for origin in origins:
        rows = pd.concat(
            pairs.assign(origin_date=origin, target_date=origin + pd.Timedelta(days=h), horizon=h)
            for h in range(1, HORIZON + 1)
        )
        rows = rows.assign(
            model_name=settings.model_name,
            model_version="1",
            origin_date=rows["origin_date"].dt.date,
            target_date=rows["target_date"].dt.date,
            units=2.0,
            published_at=pd.Timestamp("2024-01-01", tz="UTC"),
            **extra,
        )
        rows.to_parquet(settings.forecast_dir / f"origin={origin:%Y-%m-%d}.parquet", index=False)


@pytest.fixture
def night(feature_env, tmp_path):
    """A data dir of its own (the tiny retailer's feature tables, copied) with forecasts of
    five origins, the last two with targets beyond the last closed day."""
    settings = feature_env.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(feature_env.feature_dir, settings.feature_dir)
    sales = _sales(settings)
    last = pd.Timestamp(max(sales["target_date"]))
    pairs = (
        sales[["store_id", "product_id"]].drop_duplicates().sort_values(["store_id", "product_id"])
    )
    left_out = pairs.iloc[LEFT_OUT]
    pairs = pairs.iloc[LEFT_OUT + 1 :]
    origins = [last - pd.Timedelta(days=d) for d in range(ORIGINS + 3, 3, -1)]
    _publish(settings, pairs, origins)
    return settings, sales, pairs, origins, last, left_out


def _rewrite_sales(settings, change) -> None:
    path = settings.feature_dir / "store_product_daily.parquet"
    table = pq.read_table(path)
    frame = change(table.to_pandas())
    # the lineage metadata the feature build wrote stays with the table
    out = (
        type(table)
        .from_pandas(frame, preserve_index=False)
        .replace_schema_metadata(table.schema.metadata)
    )
    pq.write_table(out, path)


def test_first_night_joins_every_closed_target(night):
    settings, sales, pairs, origins, last, left_out = night
    update = ledger.update(settings, progress=lambda _: None)
    rows = ledger.read(settings)
    assert update.last_closed == last.date()
    # every (origin, horizon) whose target is closed, for every forecast pair
    closed = sum(
        1 for o in origins for h in range(1, HORIZON + 1) if o + pd.Timedelta(days=h) <= last
    )
    assert len(rows) == closed * len(pairs)
    assert update.rows_written == len(rows) == update.rows_changed
    assert max(rows["target_date"]) == last
    # the actual is the sales table's units of the target day (0 where the pair has no row)
    key = pairs.iloc[3]
    day = (origins[0] + pd.Timedelta(days=2)).date()
    sold = sales[
        (sales["store_id"] == key["store_id"])
        & (sales["product_id"] == key["product_id"])
        & (sales["target_date"] == day)
    ]["units_lag_1"].sum()
    row = rows[
        (rows["store_id"] == key["store_id"])
        & (rows["product_id"] == key["product_id"])
        & (rows["target_date"] == pd.Timestamp(day))
        & (rows["horizon"] == 2)
    ].iloc[0]
    assert (row["forecast"], row["actual"], row["error"]) == (2.0, sold, 2.0 - sold)
    assert row["model_version"] == "1" and row["category"] != "?"
    # the pair never forecast: its non-zero actuals of the scored days, ignored and counted
    theirs = sales[
        (sales["store_id"] == left_out["store_id"])
        & (sales["product_id"] == left_out["product_id"])
        & (sales["target_date"] >= (origins[0] + pd.Timedelta(days=1)).date())
        & (sales["units_lag_1"] != 0)
    ]
    assert update.unforecast_actuals == len(theirs) > 0


def test_a_night_run_again_writes_nothing(night):
    settings = night[0]
    ledger.update(settings, progress=lambda _: None)
    stamps = {p.name: p.stat().st_mtime_ns for p in ledger.partitions(settings)}
    again = ledger.update(settings, progress=lambda _: None)
    assert not again.changed and again.rows_written == 0
    assert {p.name: p.stat().st_mtime_ns for p in ledger.partitions(settings)} == stamps


def test_a_corrected_actual_rescores_its_rows_only(night):
    settings, _, pairs, _, last, _ = night
    ledger.update(settings, progress=lambda _: None)
    before = ledger.read(settings)
    stamps = {p.name: p.stat().st_mtime_ns for p in ledger.partitions(settings)}
    key, day = pairs.iloc[5], (last - pd.Timedelta(days=1)).date()

    def correct(frame):
        stamp = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
        hit = (
            (frame["store_id"].astype(str) == key["store_id"])
            & (frame["product_id"].astype(str) == key["product_id"])
            & (frame["event_timestamp"] == stamp)
        )
        assert hit.sum() == 1
        frame.loc[hit, "units_lag_1"] = frame.loc[hit, "units_lag_1"] + 40
        return frame

    _rewrite_sales(settings, correct)
    update = ledger.update(settings, progress=lambda _: None)
    assert update.periods_rescored == [day.isoformat()] and not update.periods_new
    forecasts_of_it = before[
        (before["store_id"] == key["store_id"])
        & (before["product_id"] == key["product_id"])
        & (before["target_date"] == pd.Timestamp(day))
    ]
    assert update.rows_changed == len(forecasts_of_it) > 0
    after = {p.name: p.stat().st_mtime_ns for p in ledger.partitions(settings)}
    assert [n for n in after if after[n] != stamps[n]] == [f"target={day.isoformat()}.parquet"]
    rows = ledger.read(settings)
    changed = rows[
        (rows["store_id"] == key["store_id"])
        & (rows["product_id"] == key["product_id"])
        & (rows["target_date"] == pd.Timestamp(day))
    ]
    assert (changed["actual"].to_numpy() == forecasts_of_it["actual"].to_numpy() + 40).all()


def test_censored_and_inactive_targets_are_left_out_and_counted(night):
    settings, _, pairs, _, last, _ = night
    day = (last - pd.Timedelta(days=2)).date()
    stamp = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    censored, inactive = pairs.iloc[1], pairs.iloc[2]

    def mark(frame):
        at = frame["event_timestamp"] == stamp
        for key, column, value in ((censored, "censored", 1), (inactive, "active", 0)):
            hit = (
                at
                & (frame["store_id"].astype(str) == key["store_id"])
                & (frame["product_id"].astype(str) == key["product_id"])
            )
            frame.loc[hit, column] = value
        return frame

    _rewrite_sales(settings, mark)
    ledger.update(settings, progress=lambda _: None)
    rows = ledger.read(settings)
    on_day = rows[rows["target_date"] == pd.Timestamp(day)]
    per_key = on_day.groupby(["store_id", "product_id"], observed=True)["excluded"].first()
    assert per_key[(censored["store_id"], censored["product_id"])] == "censored"
    assert per_key[(inactive["store_id"], inactive["product_id"])] == "inactive"
    forecasts_per_key = len(on_day) // len(pairs)
    measured = accuracy.measure(settings, last.date(), {"1": {"wape": 0.5}})
    assert measured.excluded == {"censored": forecasts_per_key, "inactive": forecasts_per_key}
    assert measured.rows == len(rows) - 2 * forecasts_per_key


def test_live_accuracy_uses_the_backtest_metric_code(night):
    settings, sales, pairs, origins, last, _ = night
    ledger.update(settings, progress=lambda _: None)
    backtests = {"1": {"wape": 0.5, **{f"wape_h{h}": 0.4 + h / 100 for h in range(1, 8)}}}
    measured = accuracy.measure(settings, last.date(), backtests)
    # worked out from the sales table alone: every forecast is 2 units
    scored = pairs.merge(sales, on=["store_id", "product_id"])
    expected_rows = []
    for origin in origins:
        for h in range(1, HORIZON + 1):
            day = (origin + pd.Timedelta(days=h)).date()
            if day <= last.date():
                units = scored[scored["target_date"] == day].set_index(["store_id", "product_id"])
                actual = units["units_lag_1"].reindex(pd.MultiIndex.from_frame(pairs)).fillna(0.0)
                expected_rows.append(pd.DataFrame({"h": h, "actual": actual.to_numpy()}))
    expected = pd.concat(expected_rows)
    wape = (expected["actual"] - 2).abs().sum() / expected["actual"].abs().sum()
    assert measured.overall["wape"] == pytest.approx(wape)
    assert measured.rows == len(expected)
    h1 = expected[expected["h"] == 1]
    by_h = measured.by["horizon"].set_index("horizon")
    assert by_h.loc[1, "wape"] == pytest.approx((h1["actual"] - 2).abs().sum() / h1["actual"].sum())
    assert by_h.loc[1, "mae"] == pytest.approx((h1["actual"] - 2).abs().mean())
    headline = measured.headline
    assert headline["backtest_wape"] == 0.5
    assert headline["ratio"] == pytest.approx(wape / 0.5)
    versus = measured.versus.set_index("horizon")
    assert versus.loc[3, "backtest_wape"] == pytest.approx(0.43)
    assert set(measured.by) == {"horizon", "category", "store_id", "model_version", "week"}


def test_an_older_forecast_file_is_migrated_or_refused(night):
    settings = night[0]
    # an older platform wrote no horizon and no model name: both derived
    for path in settings.forecast_dir.glob("*.parquet"):
        frame = pd.read_parquet(path).drop(columns=["horizon", "model_name"])
        frame.to_parquet(path, index=False)
    update = ledger.update(settings, progress=lambda _: None)
    rows = ledger.read(settings)
    assert len(update.migrated) == ORIGINS
    assert (
        (pd.to_datetime(rows["target_date"]) - pd.to_datetime(rows["origin_date"])).dt.days
        == rows["horizon"]
    ).all()
    assert set(rows["model_name"]) == {settings.model_name}
    # one without the version cannot be set beside a backtest: refused, saying which file
    path = sorted(settings.forecast_dir.glob("*.parquet"))[0]
    pd.read_parquet(path).drop(columns=["model_version"]).to_parquet(path, index=False)
    with pytest.raises(ledger.ForecastTableError, match=f"{path.name} lacks model_version"):
        ledger.update(settings, progress=lambda _: None)


def _history(ratios: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "night": pd.date_range("2024-03-01", periods=len(ratios)).date,
            "model_version": "4",
            "horizon": 0,
            "live_wape": [0.5 * r for r in ratios],
            "backtest_wape": 0.5,
            "ratio": ratios,
        }
    )


@pytest.mark.parametrize(
    ("ratios", "fires"),
    [
        ([1.3, 1.25, 1.21], True),  # three nights above 1.2 ×
        ([1.3, 1.1, 1.3], False),  # one night within the margin breaks the run
        ([1.0, 1.3, 1.3], False),  # two of three
        ([1.3, 1.3], False),  # fewer nights than asked for
        ([1.1, 1.3, 1.3, 1.3], True),  # the last three count
    ],
)
def test_the_accuracy_alert_needs_n_nights_in_a_row(feature_env, ratios, fires):
    settings = feature_env.model_copy(update={"monitor_wape_margin": 0.2, "monitor_wape_nights": 3})
    fired = alerts.accuracy_alerts(_history(ratios), "4", settings)
    assert bool(fired) is fires
    if fires:
        assert fired[0].kind == "accuracy" and fired[0].figures["limit"] == 1.2


@pytest.mark.postgres
def test_the_team_profile_ledger_is_a_postgresql_table_too(night):
    import uuid

    import psycopg

    from demand.servers import Database
    from tests.servers import drop_database, require_servers

    require_servers(redis=False)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{uuid.uuid4().hex[:10]}"
    settings = night[0].model_copy(update={"forecast_db_url": url})
    try:
        ledger.update(settings, progress=lambda _: None)
        ledger.update(settings, progress=lambda _: None)  # again: nothing rewritten
        with psycopg.connect(Database(url).conninfo()) as conn:
            table = conn.execute(
                "SELECT store_id, product_id, origin_date, target_date, forecast, actual, "
                "excluded FROM forecast_accuracy"
            ).fetchall()
        rows = ledger.read(settings)
        assert len(table) == len(rows) > 0
        assert sum(r[5] for r in table) == pytest.approx(rows["actual"].sum())
    finally:
        drop_database(url)
