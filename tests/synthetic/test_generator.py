import numpy as np
import pandas as pd
import pytest

from synthetic import generator


def test_same_seed_same_data(tiny):
    again = generator.generate("tiny", seed=7)
    for name, frame in tiny.tables().items():
        pd.testing.assert_frame_equal(frame, again.tables()[name], obj=name)


def test_other_seed_other_data(tiny):
    other = generator.generate("tiny", seed=8)
    assert not other.orders["quantity"].equals(tiny.orders["quantity"])


def _daily_units(data, category):
    orders = data.orders.merge(data.products, on="product_id").merge(data.stores, on="store_id")
    orders = orders[orders["category"] == category]
    orders["date"] = orders["ordered_at"].dt.tz_localize(None).dt.normalize()
    units = orders.groupby(["region_id", "date"])["quantity"].sum().rename("units")
    days = data.weather_observed.set_index(["region_id", "date"])
    return days.join(units).fillna({"units": 0}).reset_index()


@pytest.mark.parametrize(
    "category,measure,threshold",
    [("umbrella", "precipitation_mm", 5.0), ("ice_cream", "temperature_c", 22.0)],
)
def test_weather_drives_sensitive_categories(tiny, category, measure, threshold):
    daily = _daily_units(tiny, category)
    high = daily.loc[daily[measure] >= threshold, "units"].mean()
    low = daily.loc[daily[measure] < threshold, "units"].mean()
    assert high > 1.5 * low, f"{category}: {high:.2f} vs {low:.2f} units a day"


def test_headphones_ignore_rain(tiny):
    daily = _daily_units(tiny, "headphones")
    wet = daily.loc[daily["precipitation_mm"] >= 5, "units"].mean()
    dry = daily.loc[daily["precipitation_mm"] < 5, "units"].mean()
    assert 0.6 < wet / dry < 1.5


def test_repeat_interval_recovers_true_lifespan(tiny):
    """Median days between a customer's purchases of a consumable ≈ its lifespan."""
    orders = tiny.orders.assign(day=tiny.orders["ordered_at"].dt.tz_localize(None).dt.normalize())
    visits = orders[["customer_id", "product_id", "day"]].drop_duplicates().sort_values("day")
    visits["gap"] = visits.groupby(["customer_id", "product_id"])["day"].diff().dt.days
    estimated = visits.groupby("product_id")["gap"].median()
    history_days = len(tiny.weather_observed["date"].unique())
    consumables = tiny.true_lifespan[tiny.true_lifespan < history_days / 3].dropna()
    assert len(consumables) >= 4
    for product_id, truth in consumables.items():
        assert abs(estimated[product_id] - truth) <= 0.15 * truth, (product_id, truth)


def test_forecast_error_grows_with_lead(tiny):
    fc = tiny.weather_forecast.assign(
        date=tiny.weather_forecast["valid_date"],
        lead=(
            tiny.weather_forecast["valid_date"]
            - tiny.weather_forecast["issued_at"].dt.tz_localize(None).dt.normalize()
        ).dt.days,
    )
    joined = fc.merge(tiny.weather_observed, on=["region_id", "date"], suffixes=("", "_obs"))
    error = (
        (joined["temperature_c"] - joined["temperature_c_obs"]).abs().groupby(joined["lead"]).mean()
    )
    assert error.loc[0] < error.loc[3] < error.loc[8]
    assert set(joined["lead"]) == set(range(generator.FORECAST_LEADS))


def test_forecasts_reach_past_the_history(tiny):
    last_day = tiny.weather_observed["date"].max()
    assert tiny.weather_forecast["valid_date"].max() == last_day + pd.Timedelta(days=9)


def test_promotions_lift_sales_and_cut_price(tiny):
    lines = tiny.orders.merge(tiny.products, on="product_id")
    promo = lines[lines["promo"]]
    assert len(promo) > 0
    assert np.allclose(promo["unit_price"], (promo["list_price"] * 0.8).round(2))


def test_appended_days_extend_the_same_retailer_and_change_nothing_before(tiny):
    later = generator.generate("tiny", seed=7, extra_days=3)
    assert later.orders["ordered_at"].max().normalize() == (
        tiny.orders["ordered_at"].max().normalize() + pd.Timedelta(days=3)
    )
    closed = tiny.orders["ordered_at"].max().normalize() + pd.Timedelta(days=1)
    cut = {
        "orders": later.orders[later.orders["ordered_at"] < closed],
        "weather_observed": later.weather_observed[
            later.weather_observed["date"] < closed.tz_localize(None)
        ],
        "weather_forecast": later.weather_forecast[later.weather_forecast["issued_at"] < closed],
    }
    for name, frame in tiny.tables().items():
        expected = cut.get(name, later.tables()[name]).reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_appending_past_the_simulated_reserve_is_refused():
    with pytest.raises(ValueError, match="extended by 0 to"):
        generator.generate("tiny", seed=7, extra_days=generator.APPEND_RESERVE_DAYS + 1)
