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
from feast.types import Float64, Int64, String, UnixTimestamp

import data_sources as sources
from entities import product, region, store, target_day


def _floats(*names: str) -> list[Field]:
    return [Field(name=name, dtype=Float64) for name in names]


store_product_sales = FeatureView(
    name="store_product_sales",
    description="Recent sales of a product in a store: level, spread, trend, recency, "
    "price, promotion, customers, and the sales of its basket partner.",
    entities=[store, product],
    # Built nightly. One missed night still serves yesterday's row; two are stale.
    ttl=timedelta(days=2),
    schema=[
        *_floats(
            "units_lag_1",
            "units_lag_7",
            "units_lag_14",
            "units_lag_28",
            "units_mean_7",
            "units_mean_28",
            "units_std_7",
            "units_std_28",
            "units_trend",
            "days_since_last_sale",
            "avg_price_28",
            "promo_days_7",
            "promo_today",
            "customers_7",
            "customers_28",
            "partner_units_lag_1",
            "partner_units_mean_7",
        ),
        Field(name="copurchase_partner_id", dtype=String),
        # the period's status (1/0), not model inputs: serving's status, training's labels
        *_floats("active", "censored"),
        # the pair's age (0 in its first sale's period): the short-history rule's, no input
        *_floats("days_since_first_sale"),
        Field(name="sales_known_at", dtype=UnixTimestamp),
    ],
    source=sources.store_product_daily,
    tags={"domain": "purchases"},
)

store_product_replenishment = FeatureView(
    name="store_product_replenishment",
    description="Customers of a store whose replacement of a product falls due soon.",
    entities=[store, product],
    ttl=timedelta(days=2),
    schema=[
        *_floats("replacements_due_7d", "installed_base_customers"),
        # due exactly k days after the as-of day; `target_day_replenishment` picks the horizon's
        *_floats(*(f"replacements_due_in_{k}d" for k in range(1, 8))),
        Field(name="replenishment_known_at", dtype=UnixTimestamp),
    ],
    source=sources.store_product_replenishment,
    tags={"domain": "product_lifespan"},
)

product_lifespan = FeatureView(
    name="product_lifespan",
    description="How long a product lasts before its buyers replace it.",
    entities=[product],
    # Re-estimated every 28 days; a row twice that old means the refresh stopped.
    ttl=timedelta(days=56),
    schema=[
        *_floats(
            "replacement_interval_days",
            "replacement_interval_iqr_days",
            "repeat_pairs",
            "repeat_buyer_share",
            "declared_lifespan_days",
        ),
        Field(name="lifespan_known_at", dtype=UnixTimestamp),
    ],
    source=sources.product_lifespan,
    tags={"domain": "product_lifespan"},
)

region_weather_observed = FeatureView(
    name="region_weather_observed",
    description="The weather a region had on the last complete day, and over the last week.",
    entities=[region],
    ttl=timedelta(days=2),
    schema=[
        *_floats(
            "temperature_c",
            "precipitation_mm",
            "sunshine_hours",
            "temperature_mean_7d",
            "precipitation_sum_7d",
            "rainy_days_7d",
        ),
        Field(name="weather_known_at", dtype=UnixTimestamp),
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
        Field(name="forecast_lead_days", dtype=Int64),
        *_floats("forecast_temperature_c", "forecast_precipitation_mm", "forecast_sunshine_hours"),
        Field(name="forecast_issued_at", dtype=UnixTimestamp),
    ],
    source=sources.region_weather_forecast,
    tags={"domain": "weather"},
)

store_attributes = FeatureView(
    name="store_attributes",
    description="Where a store is; its region keys the weather views.",
    entities=[store],
    ttl=timedelta(0),  # attributes do not expire
    schema=[
        Field(name="store_region_id", dtype=String),
        *_floats("latitude", "longitude"),
    ],
    source=sources.store_attributes,
    tags={"domain": "master_data"},
)

product_attributes = FeatureView(
    name="product_attributes",
    description="What a product is.",
    entities=[product],
    ttl=timedelta(0),
    schema=[Field(name="category", dtype=String), *_floats("list_price")],
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
    "week last year), level, spread, trend, recency, price and promotion.",
    entities=[store, product],
    # One missed weekly load still serves last week's row; two are stale.
    ttl=timedelta(days=14),
    schema=[
        *_floats(
            "units_lag_1",
            "units_lag_2",
            "units_lag_4",
            "units_lag_52",
            "units_mean_4",
            "units_mean_13",
            "units_std_4",
            "units_std_13",
            "units_trend",
            "weeks_since_last_sale",
            "avg_price_13",
            "promo_weeks_4",
            "promo_this_week",
        ),
        *_floats("active", "censored"),  # the week's status: not model inputs
        *_floats("weeks_since_first_sale"),  # the pair's age: the short-history rule's
        Field(name="sales_known_at", dtype=UnixTimestamp),
    ],
    source=sources.store_product_weekly,
    tags={"domain": "purchases", "grain": "week"},
)

region_weather_observed_weekly = FeatureView(
    name="region_weather_observed_weekly",
    description="The weather a region had in the last complete week, and over four weeks. "
    "Measures the data set lacks are null and left out of models.",
    entities=[region],
    ttl=timedelta(days=14),
    schema=[
        *_floats(
            "temperature_c",
            "precipitation_mm",
            "sunshine_hours",
            "temperature_mean_4w",
            "precipitation_sum_4w",
            "rainy_days_4w",
        ),
        Field(name="weather_known_at", dtype=UnixTimestamp),
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
        *_floats("planned_promo", "planned_price"),
        Field(name="plan_known_at", dtype=UnixTimestamp),
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
        Field(name="forecast_lead_days", dtype=Int64),
        *_floats("forecast_temperature_c", "forecast_precipitation_mm", "forecast_sunshine_hours"),
        Field(name="forecast_issued_at", dtype=UnixTimestamp),
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
        *_floats(
            "climate_temperature_c",
            "climate_precipitation_mm",
            "climate_sunshine_hours",
            "climate_years",
        ),
        Field(name="climate_known_at", dtype=UnixTimestamp),
    ],
    source=sources.region_weather_climate,
    tags={"domain": "weather"},
)
