"""The retailer's master data and its weather: stores in climate regions, products per
category, observed weather per region and day, and the forecasts issued each morning.

Small tables at every scale (regions × days), drawn in order from the retailer's
main random stream.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthetic.generating.catalogue import CATEGORIES, Category

FORECAST_LEADS = 10  # forecasts cover the issue day and the nine days after it
FORECAST_ISSUE_HOUR = 6  # published at 06:00 UTC, before the stores open

#                  mean °C, seasonal amplitude, share of rainy days
CLIMATES = (
    ("coastal_rainy", 11.0, 6.0, 0.55),
    ("mediterranean", 19.0, 8.0, 0.12),
    ("continental", 10.0, 13.0, 0.30),
    ("northern", 5.0, 10.0, 0.42),
)


def stores(n_stores: int, n_regions: int, rng: np.random.Generator) -> pd.DataFrame:
    region_of_store = np.arange(n_stores) % n_regions
    return pd.DataFrame(
        {
            "store_id": [f"S{i:03d}" for i in range(n_stores)],
            "region_id": [f"R{r:02d}" for r in region_of_store],
            "latitude": np.round(40 + 3 * region_of_store + rng.normal(0, 0.5, n_stores), 4),
            "longitude": np.round(-100 + 8 * region_of_store + rng.normal(0, 0.5, n_stores), 4),
        }
    )


def products(per_category: int, rng: np.random.Generator) -> tuple[pd.DataFrame, list[Category]]:
    rows, cats = [], []
    for c_index, cat in enumerate(CATEGORIES):
        for k in range(per_category):
            # every third consumable has no declared lifespan: it must be estimated
            declared = cat.lifespan if cat.lifespan and (c_index + k) % 3 != 2 else np.nan
            rows.append(
                {
                    "product_id": f"P{c_index:02d}{k:02d}",
                    "category": cat.name,
                    "lifespan_days": declared,
                    "list_price": round(cat.price * float(rng.lognormal(0, 0.15)), 2),
                }
            )
            cats.append(cat)
    return pd.DataFrame(rows), cats


def weather(n_regions: int, days: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Daily weather per region, FORECAST_LEADS days past the history (forecasts need it)."""
    n = len(days) + FORECAST_LEADS
    all_days = pd.date_range(days[0], periods=n, freq="D")
    doy = all_days.dayofyear.to_numpy()
    season = -np.cos(2 * np.pi * (doy - 15) / 365.25)  # -1 mid-January, +1 mid-July
    daylight = 12 + 3.5 * season
    frames = []
    for r in range(n_regions):
        _, mean, amplitude, rain_share = CLIMATES[r % len(CLIMATES)]
        mean += rng.normal(0, 1.0)
        anomaly = np.zeros(n)
        shocks = rng.normal(0, 2.5, n)
        for t in range(1, n):  # AR(1): warm and cold spells last several days
            anomaly[t] = 0.7 * anomaly[t - 1] + shocks[t]
        temperature = mean + amplitude * season + anomaly
        wet = np.zeros(n, dtype=bool)
        u = rng.random(n)
        for t in range(1, n):  # rainy days cluster
            p = min(0.95, rain_share + 0.25) if wet[t - 1] else max(0.02, rain_share - 0.1)
            wet[t] = u[t] < p
        precipitation = np.where(wet, rng.gamma(0.9, 6.0, n), 0.0)
        cloud = rng.beta(2, 5, n)
        sunshine = np.clip(daylight * (0.85 - 0.55 * wet - 0.5 * cloud), 0, 16)
        frames.append(
            pd.DataFrame(
                {
                    "region_id": f"R{r:02d}",
                    "date": all_days,
                    "temperature_c": temperature.round(1),
                    "precipitation_mm": precipitation.round(1),
                    "sunshine_hours": sunshine.round(1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def forecasts(
    weather: pd.DataFrame, days: pd.DatetimeIndex, rng: np.random.Generator
) -> pd.DataFrame:
    """Each history day, at 06:00 UTC, a forecast for that day and the next nine."""
    issue = np.repeat(np.arange(len(days)), FORECAST_LEADS)
    lead = np.tile(np.arange(FORECAST_LEADS), len(days))
    frames = []
    for region_id, obs in weather.groupby("region_id", sort=True):
        truth = obs.reset_index(drop=True).iloc[issue + lead]
        m = len(truth)
        temp = truth["temperature_c"].to_numpy() + rng.normal(0, 0.7 + 0.45 * lead, m)
        rain = truth["precipitation_mm"].to_numpy() * np.exp(rng.normal(0, 0.15 * (lead + 1), m))
        flip = rng.random(m) < 0.03 * lead  # the further ahead, the more missed showers
        rain = np.where(flip, np.where(rain > 0, 0.0, rng.gamma(0.9, 4.0, m)), rain)
        sun = truth["sunshine_hours"].to_numpy() + rng.normal(0, 0.6 + 0.35 * lead, m)
        frames.append(
            pd.DataFrame(
                {
                    "region_id": region_id,
                    "issued_at": (
                        days[issue] + pd.Timedelta(hours=FORECAST_ISSUE_HOUR)
                    ).tz_localize("UTC"),
                    "valid_date": truth["date"].to_numpy(),
                    "temperature_c": temp.round(1),
                    "precipitation_mm": np.clip(rain, 0, None).round(1),
                    "sunshine_hours": np.clip(sun, 0, 16).round(1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
