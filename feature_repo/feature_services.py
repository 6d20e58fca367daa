"""Feature services: the contracts models are trained and served with.

A changed model input is a new service (``demand_forecast_v2``), never an edit
of one a registered model already uses.

A service lists every view it may use. `demand apply` registers only the views whose
feature tables the data set has (aggregated sales have no replenishment table, a data
set without forecasts no forecast table) and drops the others from each service, so a
service never requires a view whose features are absent; a service whose first view
(its sales) is absent is not registered. The model's feature contract says which
features a model has.
"""

from feast import FeatureService

from calendar_features import target_day_calendar, target_day_replenishment, target_week_calendar
from feature_views import (
    planned_promotions,
    product_attributes,
    product_lifespan,
    region_weather_climate,
    region_weather_forecast,
    region_weather_forecast_weekly,
    region_weather_observed,
    region_weather_observed_weekly,
    store_attributes,
    store_product_replenishment,
    store_product_sales,
    store_product_sales_weekly,
)
from price_features import target_week_price

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

# v1 and the planned price and promotion of the target day, which a /forecast item's
# price/promo replace; order lines or aggregated daily sales
demand_forecast_v2 = FeatureService(
    name="demand_forecast_v2",
    description="Daily units per store and product with planned prices and promotions.",
    features=[
        store_product_sales,
        store_product_replenishment,
        product_lifespan,
        region_weather_observed,
        region_weather_forecast,
        region_weather_climate,
        store_attributes,
        product_attributes,
        planned_promotions,
        target_day_calendar,
        target_day_replenishment,
    ],
    tags={"model": "daily_units", "grain": "day", "request_inputs": "price,promo"},
)

# aggregated weekly sales: the first weekly service
demand_forecast_weekly_v1 = FeatureService(
    name="demand_forecast_weekly_v1",
    description="Weekly units per store and product with planned prices and promotions.",
    features=[
        store_product_sales_weekly,
        product_lifespan,
        region_weather_observed_weekly,
        region_weather_forecast_weekly,
        region_weather_climate,
        store_attributes,
        product_attributes,
        planned_promotions,
        target_week_calendar,
    ],
    tags={"model": "weekly_units", "grain": "week", "request_inputs": "price,promo"},
)

# weekly v1 and the target week's planned price relative to the pair's recent price and its
# promotion depth (price_features.py): a changed model input, so a new version
demand_forecast_weekly_v2 = FeatureService(
    name="demand_forecast_weekly_v2",
    description="Weekly units per store and product with planned prices and promotions, "
    "the planned price relative to the pair's recent price, and the promotion depth.",
    features=[
        store_product_sales_weekly,
        product_attributes,
        planned_promotions,
        product_lifespan,
        region_weather_observed_weekly,
        region_weather_forecast_weekly,
        region_weather_climate,
        store_attributes,
        target_week_calendar,
        target_week_price,
    ],
    tags={"model": "weekly_units", "grain": "week", "request_inputs": "price,promo"},
)
