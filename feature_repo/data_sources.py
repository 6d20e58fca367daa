"""Offline feature tables written by `demand build-features`, one parquet file each.

Every table has ``event_timestamp``: the instant its row became known (the end
of the day it describes, or the moment a weather forecast was issued).
"""

import os
from pathlib import Path

from feast import FileSource

# The data directory is configuration: `demand` sets DEMAND_DATA_DIR from its settings
# while it parses this repo; the fallback matches the settings' default.
DATA_DIR = Path(os.environ.get("DEMAND_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))
FEATURE_DIR = DATA_DIR / "features"


def _table(name: str, description: str) -> FileSource:
    return FileSource(
        name=name,
        path=str(FEATURE_DIR / f"{name}.parquet"),
        timestamp_field="event_timestamp",
        description=description,
    )


store_product_daily = _table(
    "store_product_daily", "Purchases per store, product and day, with co-purchase signals."
)
store_product_replenishment = _table(
    "store_product_replenishment", "Customers due to replace a product, per store and day."
)
product_lifespan = _table(
    "product_lifespan", "Replacement intervals estimated from repeat purchases, every 28 days."
)
region_weather_daily = _table("region_weather_daily", "Observed weather per region and day.")
region_weather_forecast = _table(
    "region_weather_forecast", "Weather forecasts per region and target day, as issued."
)
store_attributes = _table("store_attributes", "Where each store is.")
product_attributes = _table("product_attributes", "What each product is.")

# Aggregated sales at the weekly grain, and planned promotions (any grain): written only
# when the raw data set has them; `demand apply` registers only views whose table exists.
store_product_weekly = _table(
    "store_product_weekly", "Units per store, product and week, from aggregated sales."
)
region_weather_weekly = _table(
    "region_weather_weekly", "Observed weather per region and week (mean temperature, sums)."
)
planned_promotions = _table(
    "planned_promotions", "Planned price and promotion per store, product and target period."
)
region_weather_forecast_weekly = _table(
    "region_weather_forecast_weekly",
    "Weather forecasts per region and whole target week, as issued.",
)
region_weather_climate = _table(
    "region_weather_climate",
    "The mean weather of a target period in the years before it, per region.",
)
