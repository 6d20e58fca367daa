"""Feature views: what is known about a key at a point in time.

TTLs say how old a row may be and still describe the key at an entity's
timestamp: older rows come back as nulls in training sets rather than as stale
values. Feast's online reads ignore TTLs, so serving applies the same rule itself
(serving/lookup.py): for each request item it uses a view's row only when the
offline join at the item's origin would, i.e. the row's event timestamp (when it
became known) is at or before the origin's close and, with a TTL, not older than
that close minus the TTL; otherwise the view's features are null and the item
names the view stale. The TTLs it applies are read from these definitions in the
registry. Every view also carries a ``*_known_at`` field, a copy of the row's
event timestamp, so lineage checks can see it; models do not use them as inputs.
"""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import FeastType, Float64, Int64, String, UnixTimestamp

import data_sources as sources
from entities import product, region, store, target_day

# What every description here means by the origin: the last closed period (day or week)
# a forecast is made from; a view's row is the one the point-in-time join reads there
# (its event timestamp at or before the origin's close). The target is the period forecast.
# Descriptions are documentation only: Feast registers them, the feature catalogue
# (docs/reference/features.md) prints them, and no model contract compares them.


def _float(name: str, description: str) -> Field:
    return Field(name=name, dtype=Float64, description=description)


# Feast cannot apply an on-demand view whose output fields carry a description: its
# inference at apply compares the declared fields, description included, with the ones it
# infers, which have none (SpecifiedFeaturesNotPresentError; feast-dev/feast#3617, closed
# "wontfix"). So an on-demand output's meaning is a tag of its view instead, registered
# with it all the same; the feature catalogue reads it from there.
OUTPUT_DESCRIPTION_TAG = "description:"


def on_demand_outputs(outputs: dict[str, tuple[FeastType, str]]) -> dict:
    """``schema=`` and ``tags=`` of an on-demand view whose outputs are
    ``{name: (dtype, description)}``, in order."""
    return {
        "schema": [Field(name=name, dtype=dtype) for name, (dtype, _) in outputs.items()],
        "tags": {OUTPUT_DESCRIPTION_TAG + name: text for name, (_, text) in outputs.items()},
    }


store_product_sales = FeatureView(
    name="store_product_sales",
    description="Recent sales of a product in a store: level, spread, trend, recency, "
    "price, promotion, customers, and the sales of its basket partner. One row per store, "
    "product and day from the pair's first sale on (a day with no sale counts 0 units); "
    "the row read at an origin describes the origin day and the days before it.",
    entities=[store, product],
    # Built nightly. One missed night still serves yesterday's row; two are stale.
    ttl=timedelta(days=2),
    schema=[
        _float("units_lag_1", "Units of the product sold in the store on the origin day."),
        _float(
            "units_lag_7",
            "Units sold 6 days before the origin day: a week before the day after the "
            "origin, so the same weekday as the first target day. Null when the pair's first "
            "sale is less than 6 days before the origin day.",
        ),
        _float(
            "units_lag_14",
            "Units sold 13 days before the origin day (two weeks before the day after the "
            "origin). Null when the pair's first sale is less than 13 days before.",
        ),
        _float(
            "units_lag_28",
            "Units sold 27 days before the origin day (four weeks before the day after the "
            "origin). Null when the pair's first sale is less than 27 days before.",
        ),
        _float(
            "units_mean_7",
            "Mean units sold per day over the 7 days through the origin day (days with no "
            "sale count 0; a pair younger than 7 days averages the days it has).",
        ),
        _float(
            "units_mean_28",
            "Mean units sold per day over the 28 days through the origin day (days with no "
            "sale count 0; a younger pair averages the days it has).",
        ),
        _float(
            "units_std_7",
            "Sample standard deviation of the daily units over the 7 days through the "
            "origin day, in units; null with fewer than 2 days.",
        ),
        _float(
            "units_std_28",
            "Sample standard deviation of the daily units over the 28 days through the "
            "origin day, in units; null with fewer than 2 days.",
        ),
        _float(
            "units_trend",
            "units_mean_7 minus units_mean_28, in units per day: above 0 the pair sold "
            "faster in the last week than over the last four.",
        ),
        _float(
            "days_since_last_sale",
            "Days from the pair's last day with units sold, up to the origin day, to the "
            "origin day (0: it sold on the origin day).",
        ),
        _float(
            "avg_price_28",
            "Average price paid per unit over the 28 days through the origin day: revenue "
            "divided by the units sold with a price, in the data's currency. Null when "
            "nothing priced sold in those days.",
        ),
        _float(
            "promo_days_7",
            "Days among the 7 through the origin day on which the product sold on promotion "
            "in the store (order lines: a line on promotion that day; aggregated sales: the "
            "row's promo flag), 0 to 7.",
        ),
        _float(
            "promo_today",
            "1 when the product sold on promotion in the store on the origin day (the last "
            "closed day, not the target day), else 0.",
        ),
        _float(
            "customers_7",
            "Distinct customers who bought the product in the store in the 7 days through "
            "the origin day. Null for aggregated sales (no customer ids).",
        ),
        _float(
            "customers_28",
            "Distinct customers who bought the product in the store in the 28 days through "
            "the origin day. Null for aggregated sales (no customer ids).",
        ),
        _float(
            "partner_units_lag_1",
            "Units of the basket partner (copurchase_partner_id) sold in the same store on "
            "the origin day. Null without a partner.",
        ),
        _float(
            "partner_units_mean_7",
            "Mean units per day of the basket partner in the same store over the 7 days "
            "through the origin day. Null without a partner.",
        ),
        Field(
            name="copurchase_partner_id",
            dtype=String,
            description="The product most often in the same order as this one, over all "
            "stores, in the 364 days up to the newest weekly estimate at or before the "
            "origin day; at least 20 shared orders, ties to the lowest id. Null when no "
            "product reaches 20, and for aggregated sales. Categorical.",
        ),
        # the period's status (1/0), not model inputs: serving's status, training's labels
        _float(
            "active",
            "1 when the store carried the product on the origin day, 0 when not: a day with "
            "units sold is active; else the sales row's active flag or the assortment table "
            "decide; else inactive after 28 days without a sale and 4 times the pair's mean "
            "gap between sales. Not a model input: inactive days give no training label and "
            "no batch forecast.",
        ),
        _float(
            "censored",
            "1 when the origin day ran out of stock (stockout, or on_hand 0 at its end), so "
            "its units understate demand; else 0 (also when the data does not say). Not a "
            "model input: a censored day gives no training label.",
        ),
        # the pair's age (0 in its first sale's period): the short-history rule's, no input
        _float(
            "days_since_first_sale",
            "Days from the pair's first day with units sold to the origin day (0: the first "
            "sale was on the origin day). Not a model input: the short-history rule of a "
            "model's contract compares it with its minimum.",
        ),
        Field(
            name="sales_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: 00:00 UTC after the day it describes "
            "(its event timestamp). Lineage only, not a model input.",
        ),
    ],
    source=sources.store_product_daily,
    tags={"domain": "purchases"},
)

store_product_replenishment = FeatureView(
    name="store_product_replenishment",
    description="Customers of a store whose replacement of a product falls due soon. A "
    "buyer falls due at their purchase day plus the product's replacement interval "
    "(product_lifespan, the estimate current at the purchase) and stops counting once "
    "they buy the product again. Order lines only (aggregated sales have no customers).",
    entities=[store, product],
    ttl=timedelta(days=2),
    schema=[
        _float(
            "replacements_due_7d",
            "Customers of the store whose replacement of the product falls due in the 7 days "
            "after the origin day and who have not bought it again by the origin day. The "
            "sum of replacements_due_in_1d … _7d.",
        ),
        _float(
            "installed_base_customers",
            "Customers whose latest purchase of the product in the store, up to the origin "
            "day, lies less than two replacement intervals before it: buyers who may still "
            "come back for it.",
        ),
        # due exactly k days after the as-of day; `target_day_replenishment` picks the horizon's
        *(
            _float(
                f"replacements_due_in_{k}d",
                f"Customers of the store whose replacement of the product falls due exactly "
                f"{k} day{'s' if k > 1 else ''} after the origin day and who have not bought "
                "it again by the origin day.",
            )
            for k in range(1, 8)
        ),
        Field(
            name="replenishment_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: 00:00 UTC after the day it describes. "
            "Lineage only, not a model input.",
        ),
    ],
    source=sources.store_product_replenishment,
    tags={"domain": "product_lifespan"},
)

product_lifespan = FeatureView(
    name="product_lifespan",
    description="How long a product lasts before its buyers replace it, over all stores. "
    "From order lines, re-estimated every 28 days from the repeat purchases of the 365 days "
    "before; aggregated sales carry the declared lifespan, re-stamped every 28 days (4 "
    "weeks). The row read at an origin is the newest made at or before it.",
    entities=[product],
    # Re-estimated every 28 days; a row twice that old means the refresh stopped.
    ttl=timedelta(days=56),
    schema=[
        _float(
            "replacement_interval_days",
            "Days a customer typically waits before buying the product again: the median "
            "gap between a customer's consecutive purchase days (any store) in the 365 days "
            "up to the estimate, when at least 30 such repeat pairs and at least 10 % repeat "
            "buyers back it; otherwise the declared lifespan (always for aggregated sales).",
        ),
        _float(
            "replacement_interval_iqr_days",
            "Spread of those gaps: their 75th minus 25th percentile, in days. Null when the "
            "declared lifespan stands, and for aggregated sales.",
        ),
        _float(
            "repeat_pairs",
            "Repeat purchases behind the estimate: consecutive purchase days of one "
            "customer, in the 365 days up to it. Null for aggregated sales.",
        ),
        _float(
            "repeat_buyer_share",
            "Share (0 to 1) of the product's buyers in the 365 days up to the estimate who "
            "bought it on at least two days. Null for aggregated sales.",
        ),
        _float(
            "declared_lifespan_days",
            "The lifespan the product master declares (products.lifespan_days), in days: the "
            "fallback of replacement_interval_days. Null when the master gives none.",
        ),
        Field(
            name="lifespan_known_at",
            dtype=UnixTimestamp,
            description="When the estimate became known: 00:00 UTC after the day it was "
            "made on. Lineage only, not a model input.",
        ),
    ],
    source=sources.product_lifespan,
    tags={"domain": "product_lifespan"},
)

region_weather_observed = FeatureView(
    name="region_weather_observed",
    description="The weather a region had on the last complete day, and over the last week. "
    "The row read at an origin is the newest observed day known then (the origin day while "
    "the feed is current). Measures the data set lacks are null and left out of models.",
    entities=[region],
    ttl=timedelta(days=2),
    schema=[
        _float(
            "temperature_c",
            "Mean air temperature in the region on the last observed day at the origin "
            "(the origin day while the feed is current), °C.",
        ),
        _float("precipitation_mm", "Precipitation on the last observed day at the origin, mm."),
        _float("sunshine_hours", "Hours of sunshine on the last observed day at the origin."),
        _float(
            "temperature_mean_7d",
            "Mean of the daily mean temperatures over the 7 days through the last observed "
            "day at the origin, °C.",
        ),
        _float(
            "precipitation_sum_7d",
            "Precipitation over the 7 days through the last observed day at the origin, mm.",
        ),
        _float(
            "rainy_days_7d",
            "Days with at least 1 mm of precipitation among the 7 through the last observed "
            "day at the origin.",
        ),
        Field(
            name="weather_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: 00:00 UTC after the day observed. "
            "Lineage only, not a model input.",
        ),
    ],
    source=sources.region_weather_daily,
    tags={"domain": "weather"},
)

region_weather_forecast = FeatureView(
    name="region_weather_forecast",
    description="The latest weather forecast for a region and target day, as known then. "
    "Training sees the forecast issued before the origin, never the observed weather.",
    entities=[region, target_day],
    # Forecasts reach ten days ahead: an older one cannot be for this target day.
    ttl=timedelta(days=10),
    schema=[
        Field(
            name="forecast_lead_days",
            dtype=Int64,
            description="Days from the day the forecast was issued to the target day "
            "(0: issued on the target day).",
        ),
        _float(
            "forecast_temperature_c",
            "Forecast mean air temperature of the target day, °C, from the newest forecast "
            "issued at or before the origin's close (at most 10 days before).",
        ),
        _float(
            "forecast_precipitation_mm",
            "Forecast precipitation of the target day, mm, from the same forecast.",
        ),
        _float(
            "forecast_sunshine_hours",
            "Forecast hours of sunshine of the target day, from the same forecast.",
        ),
        Field(
            name="forecast_issued_at",
            dtype=UnixTimestamp,
            description="When the forecast read was issued (its event timestamp). Lineage "
            "only, not a model input.",
        ),
    ],
    source=sources.region_weather_forecast,
    tags={"domain": "weather"},
)

store_attributes = FeatureView(
    name="store_attributes",
    description="Where a store is; its region keys the weather views. Valid from the first "
    "day of the history on.",
    entities=[store],
    ttl=timedelta(0),  # attributes do not expire
    schema=[
        Field(
            name="store_region_id",
            dtype=String,
            description="The weather region the store lies in (stores.region_id): the key "
            "the weather views are read with. Categorical.",
        ),
        _float("latitude", "The store's latitude, degrees north. Null when not given."),
        _float("longitude", "The store's longitude, degrees east. Null when not given."),
    ],
    source=sources.store_attributes,
    tags={"domain": "master_data"},
)

product_attributes = FeatureView(
    name="product_attributes",
    description="What a product is, from the product master. Valid from the first day of "
    "the history on.",
    entities=[product],
    ttl=timedelta(0),
    schema=[
        Field(
            name="category",
            dtype=String,
            description="The product's category (products.category). Categorical.",
        ),
        _float(
            "list_price",
            "The product's catalogue price per unit (products.list_price), in the data's "
            "currency. Null when the master gives none.",
        ),
    ],
    source=sources.product_attributes,
    tags={"domain": "master_data"},
)


# -- aggregated sales at the weekly grain, and planned promotions ---------------------------
# A weekly row describes a whole week and is known when the week closes (00:00 UTC of the
# next week's first day). Lags and windows count weeks: last week, the two before, four
# weeks, the same week last year; level and spread over 4 and 13 weeks.

store_product_sales_weekly = FeatureView(
    name="store_product_sales_weekly",
    description="Recent weekly sales of a product in a store: lags in weeks (52: the same "
    "week last year), level, spread, trend, recency, price and promotion. One row per store, "
    "product and week from the pair's first sale on (a week with no sale counts 0 units); "
    "the row read at an origin describes the origin week and the weeks before it.",
    entities=[store, product],
    # One missed weekly load still serves last week's row; two are stale.
    ttl=timedelta(days=14),
    schema=[
        _float("units_lag_1", "Units of the product sold in the store in the origin week."),
        _float(
            "units_lag_2",
            "Units sold in the week before the origin week. Null in the pair's first week.",
        ),
        _float(
            "units_lag_4",
            "Units sold 3 weeks before the origin week (four weeks before the week after the "
            "origin). Null when the pair's first sale is less than 3 weeks before.",
        ),
        _float(
            "units_lag_52",
            "Units sold 51 weeks before the origin week: the same week a year (52 weeks) "
            "before the first target week. Null until the pair has that much history.",
        ),
        _float(
            "units_mean_4",
            "Mean units sold per week over the 4 weeks through the origin week (weeks with no "
            "sale count 0; a younger pair averages the weeks it has).",
        ),
        _float(
            "units_mean_13",
            "Mean units sold per week over the 13 weeks through the origin week (weeks with "
            "no sale count 0; a younger pair averages the weeks it has).",
        ),
        _float(
            "units_std_4",
            "Sample standard deviation of the weekly units over the 4 weeks through the "
            "origin week, in units; null with fewer than 2 weeks.",
        ),
        _float(
            "units_std_13",
            "Sample standard deviation of the weekly units over the 13 weeks through the "
            "origin week, in units; null with fewer than 2 weeks.",
        ),
        _float(
            "units_trend",
            "units_mean_4 minus units_mean_13, in units per week: above 0 the pair sold "
            "faster in the last 4 weeks than over the last 13.",
        ),
        _float(
            "weeks_since_last_sale",
            "Weeks from the pair's last week with units sold, up to the origin week, to the "
            "origin week (0: it sold in the origin week).",
        ),
        _float(
            "avg_price_13",
            "Average price paid per unit over the 13 weeks through the origin week: revenue "
            "divided by the units sold with a price, in the data's currency. Null when "
            "nothing priced sold in those weeks.",
        ),
        _float(
            "promo_weeks_4",
            "Weeks among the 4 through the origin week in which the product sold on "
            "promotion in the store (the sales row's promo flag), 0 to 4.",
        ),
        _float(
            "promo_this_week",
            "1 when the product sold on promotion in the store in the origin week (the last "
            "closed week, not the target week), else 0.",
        ),
        _float(
            "active",
            "1 when the store carried the product in the origin week, 0 when not: a week "
            "with units sold is active; else the sales row's active flag or the assortment "
            "table decide; else inactive after 8 weeks without a sale and 4 times the pair's "
            "mean gap between sales. Not a model input: inactive weeks give no training label "
            "and no batch forecast.",
        ),
        _float(
            "censored",
            "1 when the origin week ran out of stock (stockout, or on_hand 0 at its end), so "
            "its units understate demand; else 0 (also when the data does not say). Not a "
            "model input: a censored week gives no training label.",
        ),
        _float(
            "weeks_since_first_sale",
            "Weeks from the pair's first week with units sold to the origin week (0: the "
            "first sale was in the origin week). Not a model input: the short-history rule "
            "of a model's contract compares it with its minimum.",
        ),
        Field(
            name="sales_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: 00:00 UTC of the first day of the week "
            "after the one it describes (its event timestamp). Lineage only, not a model "
            "input.",
        ),
    ],
    source=sources.store_product_weekly,
    tags={"domain": "purchases", "grain": "week"},
)

region_weather_observed_weekly = FeatureView(
    name="region_weather_observed_weekly",
    description="The weather a region had in the last complete week, and over four weeks. "
    "Only weeks the feed covers on every day have a row. Measures the data set lacks are "
    "null and left out of models.",
    entities=[region],
    ttl=timedelta(days=14),
    schema=[
        _float(
            "temperature_c",
            "Mean of the daily mean air temperatures in the region over the last observed "
            "week at the origin (the origin week while the feed is current), °C.",
        ),
        _float("precipitation_mm", "Precipitation over the last observed week at the origin, mm."),
        _float("sunshine_hours", "Hours of sunshine over the last observed week at the origin."),
        _float(
            "temperature_mean_4w",
            "Mean of the weekly mean temperatures over the 4 weeks through the last observed "
            "week at the origin, °C.",
        ),
        _float(
            "precipitation_sum_4w",
            "Precipitation over the 4 weeks through the last observed week at the origin, mm.",
        ),
        _float(
            "rainy_days_4w",
            "Days with at least 1 mm of precipitation in the 4 weeks through the last "
            "observed week at the origin.",
        ),
        Field(
            name="weather_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: 00:00 UTC of the first day of the next "
            "week. Lineage only, not a model input.",
        ),
    ],
    source=sources.region_weather_weekly,
    tags={"domain": "weather", "grain": "week"},
)

planned_promotions = FeatureView(
    name="planned_promotions",
    description="The price and promotion planned for a store, product and target period, "
    "as the newest plan known at the origin (a plan counts from its planned_at). "
    "A client's price/promo for the target replaces it at serving time.",
    entities=[store, product, target_day],
    # Plans are made weeks ahead and stay valid until revised: they do not expire.
    ttl=timedelta(0),
    schema=[
        _float(
            "planned_promo",
            "1 when the newest plan known at the origin puts the product on promotion in "
            "the store in the target period, 0 when it plans none, null when the plan does "
            "not say.",
        ),
        _float(
            "planned_price",
            "The price per unit that plan sets for the target period, in the data's "
            "currency; null when it gives none.",
        ),
        Field(
            name="plan_known_at",
            dtype=UnixTimestamp,
            description="When the plan read became known (its planned_at). Lineage only, "
            "not a model input.",
        ),
    ],
    source=sources.planned_promotions,
    tags={"domain": "promotions"},
)

region_weather_forecast_weekly = FeatureView(
    name="region_weather_forecast_weekly",
    description="The latest forecast of a whole target week (mean temperature, summed rain "
    "and sun) issued before the origin. Ten-day forecasts cover the next week only.",
    entities=[region, target_day],
    ttl=timedelta(days=10),
    schema=[
        Field(
            name="forecast_lead_days",
            dtype=Int64,
            description="Days from the day the forecast was issued to the first day of the "
            "target week.",
        ),
        _float(
            "forecast_temperature_c",
            "Mean of the forecast daily temperatures over the 7 days of the target week, "
            "°C, from the newest forecast issued at or before the origin's close (at most 10 "
            "days before) that covers every day of the week.",
        ),
        _float(
            "forecast_precipitation_mm",
            "Forecast precipitation over the target week, mm, from the same forecast.",
        ),
        _float(
            "forecast_sunshine_hours",
            "Forecast hours of sunshine over the target week, from the same forecast.",
        ),
        Field(
            name="forecast_issued_at",
            dtype=UnixTimestamp,
            description="When the forecast read was issued (its event timestamp). Lineage "
            "only, not a model input.",
        ),
    ],
    source=sources.region_weather_forecast_weekly,
    tags={"domain": "weather", "grain": "week"},
)

region_weather_climate = FeatureView(
    name="region_weather_climate",
    description="The climate of the target period: the mean of the same period (52 weeks "
    "apart) in every past year of the feed. Known a year ahead, so usable where only observed "
    "weather exists; never the observed weather of the target period itself.",
    entities=[region, target_day],
    # a target's row is known 52 weeks before it; an origin reads it up to then
    ttl=timedelta(days=400),
    schema=[
        _float(
            "climate_temperature_c",
            "Mean temperature of the same period (day, or week) in past years, °C: the "
            "average over the periods 52 weeks, 104 weeks, … before the target that the "
            "feed covers.",
        ),
        _float(
            "climate_precipitation_mm",
            "Mean precipitation of the same period in past years, mm (per day at the daily "
            "grain, per week at the weekly grain).",
        ),
        _float(
            "climate_sunshine_hours",
            "Mean hours of sunshine of the same period in past years (per day, or per week).",
        ),
        _float(
            "climate_years",
            "How many past years the means average over (1: only the period 52 weeks before "
            "the target).",
        ),
        Field(
            name="climate_known_at",
            dtype=UnixTimestamp,
            description="When the row became known: the close of the period 52 weeks before "
            "the target. Lineage only, not a model input.",
        ),
    ],
    source=sources.region_weather_climate,
    tags={"domain": "weather"},
)
