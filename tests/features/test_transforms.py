"""Feature transforms against values worked out by hand on a tiny frame.

One store, products P1 (declared lifespan 10 days) and P2, eleven days:

    day  0: A buys 2×P1 and 1×P2 in one basket
    day  2: B buys 1×P1
    day  5: A buys 3×P1
    day 10: C buys 1×P2

so P1's daily units over days 0..10 are 2 0 1 0 0 3 0 0 0 0 0 (zeros are real).
"""

import math

import pandas as pd
import pytest

from features.build_duckdb import compute
from features.transforms import Windows

DAY0 = pd.Timestamp("2024-01-01")


def _at(day: int, hour: int = 12) -> pd.Timestamp:
    return (DAY0 + pd.Timedelta(days=day, hours=hour)).tz_localize("UTC")


@pytest.fixture(scope="module")
def tables():
    orders = pd.DataFrame(
        [
            ("o1", "A", "S1", _at(0), "P1", 2, 10.0, False),
            ("o1", "A", "S1", _at(0), "P2", 1, 4.0, False),
            ("o2", "B", "S1", _at(2), "P1", 1, 10.0, False),
            ("o3", "A", "S1", _at(5), "P1", 3, 8.0, True),
            ("o4", "C", "S1", _at(10), "P2", 1, 4.0, False),
        ],
        columns=[
            "order_id",
            "customer_id",
            "store_id",
            "ordered_at",
            "product_id",
            "quantity",
            "unit_price",
            "promo",
        ],
    )
    products = pd.DataFrame(
        {
            "product_id": ["P1", "P2"],
            "category": ["ink", "paper"],
            "lifespan_days": [10.0, None],
            "list_price": [10.0, 4.0],
        }
    )
    stores = pd.DataFrame({"store_id": ["S1"], "region_id": ["R1"]})
    days = pd.date_range(DAY0, periods=11)
    observed = pd.DataFrame(
        {
            "region_id": "R1",
            "date": days,
            "temperature_c": 10.0,
            "precipitation_mm": [0, 2, 0, 0, 5, 0, 0, 0, 1, 0, 0],
            "sunshine_hours": 5.0,
        }
    )
    forecast = pd.DataFrame(
        {
            "region_id": "R1",
            "issued_at": [_at(0, 6), _at(0, 6), _at(1, 6)],
            "valid_date": [
                DAY0 + pd.Timedelta(days=1),
                DAY0 + pd.Timedelta(days=2),
                DAY0 + pd.Timedelta(days=2),
            ],
            "temperature_c": [9.0, 8.0, 8.5],
            "precipitation_mm": 0.0,
            "sunshine_hours": 4.0,
        }
    )
    frames = {
        "orders": orders,
        "products": products,
        "stores": stores,
        "weather_observed": observed,
        "weather_forecast": forecast,
    }
    out = compute(frames, Windows(copurchase_min_orders=1))
    return {name: _by_day(frame) for name, frame in out.items()}


def _by_day(frame: pd.DataFrame) -> pd.DataFrame:
    # a row as of day d is known at the end of d, 00:00 of d + 1
    day = (frame["event_timestamp"].dt.tz_convert(None) - DAY0).dt.days - 1
    return frame.assign(day=day)


def _series(tables, table, column, product="P1"):
    frame = tables[table]
    frame = frame[frame["product_id"] == product].sort_values("day")
    return dict(zip(frame["day"], frame[column], strict=True))


def test_every_day_of_the_pair_is_a_row(tables):
    assert sorted(_series(tables, "store_product_daily", "units_lag_1")) == list(range(11))
    assert list(_series(tables, "store_product_daily", "units_lag_1").values()) == [
        2,
        0,
        1,
        0,
        0,
        3,
        0,
        0,
        0,
        0,
        0,
    ]


def test_lags_count_back_from_the_next_day(tables):
    lag7 = _series(tables, "store_product_daily", "units_lag_7")
    assert math.isnan(lag7[5])  # day -1: before the series
    assert lag7[6] == 2  # day 0, the same weekday as day 7
    assert lag7[8] == 1  # day 2


def test_rolling_windows_count_days_without_sales(tables):
    mean7 = _series(tables, "store_product_daily", "units_mean_7")
    assert mean7[5] == pytest.approx(6 / 6)  # days 0..5: a short window at the start
    assert mean7[6] == pytest.approx(6 / 7)  # days 0..6
    assert mean7[10] == pytest.approx(3 / 7)  # days 4..10
    mean28 = _series(tables, "store_product_daily", "units_mean_28")
    assert mean28[10] == pytest.approx(6 / 11)
    trend = _series(tables, "store_product_daily", "units_trend")
    assert trend[10] == pytest.approx(3 / 7 - 6 / 11)


def test_recency_price_and_promotion(tables):
    since = _series(tables, "store_product_daily", "days_since_last_sale")
    assert (since[5], since[7], since[10]) == (0, 2, 5)
    price = _series(tables, "store_product_daily", "avg_price_28")
    assert price[5] == pytest.approx((2 * 10 + 1 * 10 + 3 * 8) / 6)
    promo = _series(tables, "store_product_daily", "promo_days_7")
    assert (promo[4], promo[5], promo[11 - 1]) == (0, 1, 1)


def test_distinct_customers_in_the_window(tables):
    customers = _series(tables, "store_product_daily", "customers_7")
    # A (days 0, 5) and B (day 2) on day 5; B drops out after day 8
    assert (customers[0], customers[2], customers[5], customers[8], customers[9]) == (1, 2, 2, 2, 1)


def test_copurchase_partner_and_its_sales(tables):
    partner = _series(tables, "store_product_daily", "copurchase_partner_id")
    assert set(partner.values()) == {"P2"}
    partner_units = _series(tables, "store_product_daily", "partner_units_lag_1")
    assert (partner_units[0], partner_units[10]) == (1, 1)


@pytest.fixture(scope="module")
def pairing():
    """Baskets of P1 with P2 or P3, one unit each, re-paired weekly from the last week:

    day  0: {P1, P2}            snapshot 0 (days ..0):   P1→P2, P2→P1
    day  3: {P1, P3}
    day  4: {P1, P3}            snapshot 7 (days 1..7):  P1→P3 (2 baskets), P3→P1, P2 none
    day 10: {P1, P2}
    day 12: {P1, P3}            snapshot 14 (days 8..14): P1→P2 or P3, one each: P2
    day 14: P1 alone
    """
    baskets = {0: ["P1", "P2"], 3: ["P1", "P3"], 4: ["P1", "P3"], 10: ["P1", "P2"]}
    baskets |= {12: ["P1", "P3"], 14: ["P1"]}
    orders = pd.DataFrame(
        [
            (f"o{day}", f"C{day}", "S1", _at(day), product, 1, 1.0)
            for day, products in baskets.items()
            for product in products
        ],
        columns=[
            "order_id",
            "customer_id",
            "store_id",
            "ordered_at",
            "product_id",
            "quantity",
            "unit_price",
        ],
    )
    frames = {
        "orders": orders,
        "products": pd.DataFrame({"product_id": ["P1", "P2", "P3"], "category": "x"}),
        "stores": pd.DataFrame({"store_id": ["S1"], "region_id": ["R1"]}),
        "weather_observed": pd.DataFrame(
            {"region_id": ["R1"], "date": [DAY0], "temperature_c": 10.0}
            | {"precipitation_mm": 0.0, "sunshine_hours": 5.0}
        ),
        "weather_forecast": pd.DataFrame(
            {"region_id": ["R1"], "issued_at": [_at(0, 6)], "valid_date": [DAY0]}
            | {"temperature_c": 9.0, "precipitation_mm": 0.0, "sunshine_hours": 4.0}
        ),
    }
    windows = Windows(copurchase_every=7, copurchase_lookback=7, copurchase_min_orders=1)
    return _by_day(compute(frames, windows)["store_product_daily"])


def test_copurchase_partner_is_the_newest_snapshots(pairing):
    """The P3 baskets of days 3 and 4 re-pair P1 only from the snapshot of day 7 on."""
    frame = pairing[pairing["product_id"] == "P1"].sort_values("day")
    partner = dict(zip(frame["day"], frame["copurchase_partner_id"], strict=True))
    assert [partner[d] for d in range(15)] == ["P2"] * 7 + ["P3"] * 7 + ["P2"]


def test_copurchase_partner_drops_out_with_its_baskets(pairing):
    """P2's only basket in days 1..7 is none: no partner from day 7 until day 14."""
    frame = pairing[pairing["product_id"] == "P2"].sort_values("day")
    partner = dict(zip(frame["day"], frame["copurchase_partner_id"], strict=True))
    assert [partner[d] for d in range(15)] == ["P1"] * 7 + [None] * 7 + ["P1"]


def test_partner_sales_are_those_of_the_snapshots_partner(pairing):
    frame = pairing[pairing["product_id"] == "P1"].set_index("day")
    # day 4: partner P2 (snapshot 0), which sold nothing that day; day 12: P3, one unit
    assert (frame.loc[4, "partner_units_lag_1"], frame.loc[12, "partner_units_lag_1"]) == (0, 1)


def test_copurchase_window_is_whole_schedule_periods():
    with pytest.raises(ValueError, match="multiple of"):
        Windows(copurchase_every=7, copurchase_lookback=30)


def test_replacements_due_within_seven_days(tables):
    """Lifespan 10 (declared): A@0 is due day 10 but re-buys on day 5; B@2 is due day 12;
    A@5 is due day 15. Due within 7 days of d: due in (d, d+7] and not re-bought."""
    due = _series(tables, "store_product_replenishment", "replacements_due_7d")
    assert [due[d] for d in range(11)] == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]


def test_installed_base_counts_recent_buyers_once(tables):
    base = _series(tables, "store_product_replenishment", "installed_base_customers")
    assert [base[d] for d in range(11)] == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]


def test_lifespan_falls_back_to_the_declared_value(tables):
    lifespan = tables["product_lifespan"].set_index("product_id")
    assert lifespan.loc["P1", "replacement_interval_days"] == 10
    assert math.isnan(lifespan.loc["P2", "replacement_interval_days"])
    assert lifespan.loc["P1", "repeat_pairs"] == 0  # day 0 snapshot: nothing repeated yet


def test_weather_windows(tables):
    weather = tables["region_weather_daily"].set_index("day")
    assert weather.loc[6, "precipitation_sum_7d"] == 7
    assert weather.loc[6, "rainy_days_7d"] == 2


def test_forecasts_keep_their_issue_time(tables):
    fc = tables["region_weather_forecast"]
    day2 = fc[fc["target_date"] == "2024-01-03"].sort_values("event_timestamp")
    assert list(day2["forecast_lead_days"]) == [2, 1]
    assert list(day2["event_timestamp"]) == [_at(0, 6), _at(1, 6)]
