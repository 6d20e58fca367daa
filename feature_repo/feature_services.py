"""Feature services: the contracts models are trained and served with.

A changed model input is a new service (``demand_forecast_v2``), never an edit
of one a registered model already uses.
"""

from feast import FeatureService

from calendar_features import target_day_calendar, target_day_replenishment
from feature_views import (
    product_attributes,
    product_lifespan,
    region_weather_forecast,
    region_weather_observed,
    store_attributes,
    store_product_replenishment,
    store_product_sales,
)

demand_forecast_v1 = FeatureService(
    name="demand_forecast_v1",
    description="Daily units per store and product, 1 to 7 days ahead.",
    features=[
        store_product_sales,
        store_product_replenishment,
        product_lifespan,
        region_weather_observed,
        region_weather_forecast,
        store_attributes,
        product_attributes,
        target_day_calendar,
        target_day_replenishment,
    ],
    tags={"model": "daily_units", "horizon_days": "7"},
)
