"""The target period's planned price against the pair's own prices (on-demand)."""

import pandas as pd
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from feature_views import (
    on_demand_outputs,
    planned_promotions,
    product_attributes,
    store_product_sales_weekly,
)


@on_demand_feature_view(
    sources=[store_product_sales_weekly, product_attributes, planned_promotions],
    **on_demand_outputs(
        {
            "planned_price_ratio": (
                Float64,
                "The target week's planned price (planned_price) divided by the "
                "pair's average price per unit over the 13 weeks through the origin week "
                "(avg_price_13): 0.8 is 20 % cheaper than lately. Null without a plan price or a "
                "recent price.",
            ),
            "planned_promo_depth": (
                Float64,
                "How far the planned price lies below the product's list price, 1 - "
                "planned_price / list_price, clipped to 0 to 1 (0.25: a quarter off, 0 at or "
                "above list). Null without a plan price or a list price.",
            ),
        }
    ),
    mode="pandas",
    description="The target week's planned price relative to the pair's average price over "
    "13 weeks (0.8: 20 % cheaper than lately), and its promotion depth below the product's "
    "list price (0.25: a quarter off, 0 at or above it). Null where no plan covers the week.",
)
def target_week_price(inputs: pd.DataFrame) -> pd.DataFrame:
    # a ratio, not the price: series of every price level share one scale, as the target's
    # own scaling shares volumes (docs/benchmarks.md, the target)
    import numpy as np
    import pandas as pd

    def number(name: str) -> np.ndarray:
        return pd.to_numeric(inputs[name], errors="coerce").to_numpy(dtype=np.float64)

    planned, recent, listed = number("planned_price"), number("avg_price_13"), number("list_price")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(recent > 0, planned / recent, np.nan)
        depth = np.where(listed > 0, np.clip(1 - planned / listed, 0, 1), np.nan)
    out = pd.DataFrame(index=inputs.index)
    out["planned_price_ratio"] = ratio
    out["planned_promo_depth"] = depth
    return out
