"""Aggregated daily sales of a large retailer (the M5 scale), one run of days at a time.

Units per stocked store × product and day, every day including the days nothing
sold (the way the M5 competition's data comes): a gamma-Poisson (negative
binomial) draw around the same intensity the order lines are drawn from (weather,
calendar, December gifts, promotions with a price cut), without customers or
baskets. Most series sell less than a unit a day, so many days are zeros.

Each day draws from its own random stream (the retailer's seed and the day's
number), so any run of days can be generated alone: appending a day costs one
day's rows, and a chunk's rows do not depend on the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from synthetic.generating.catalogue import Category, weather_coefficients
from synthetic.generating.drivers import PROMO_DISCOUNT, PROMO_LIFT, Drivers, promotions

SALES_STREAM = 2  # tags the per-day random streams of units
PROMO_STREAM = 3  # tags the per-store random streams of stocking and promotions
DISPERSION = 1.5  # gamma shape of the day-to-day noise: smaller, more zero days and spikes

SALES_SCHEMA = pa.schema(
    [
        ("store_id", pa.string()),
        ("product_id", pa.string()),
        ("date", pa.timestamp("ns")),
        ("units", pa.float64()),
        ("price", pa.float64()),
        ("promo", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class SalesModel:
    """Everything a day's units are drawn from; (store, product, day) arrays are bools."""

    seed: int
    days: pd.DatetimeIndex  # every simulated day, the append reserve too
    store_ids: pa.Array
    product_ids: pa.Array
    drivers: Drivers
    coef: dict[str, np.ndarray]
    gifts: np.ndarray  # per product: sells more in December
    mean: np.ndarray  # (store, product) units a day of an average day; 0 where not stocked
    promo: np.ndarray  # (store, product, day)
    list_price: np.ndarray

    @property
    def series(self) -> int:
        return int((self.mean > 0).sum())


def sales_model(
    seed: int,
    days: pd.DatetimeIndex,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    categories: list[Category],
    drivers: Drivers,
    mean: np.ndarray,
    stock_share: float,
) -> SalesModel:
    n_s, n_p = mean.shape
    stocked = np.zeros((n_s, n_p), dtype=bool)
    promo = np.zeros((n_s, n_p, len(days)), dtype=bool)
    for s in range(n_s):  # one store at a time: the random draws stay one store's size
        rng = np.random.default_rng((seed, PROMO_STREAM, s))
        stocked[s] = rng.random(n_p) < stock_share
        promo[s] = promotions((n_p,), len(days), rng) & stocked[s, :, None]
    return SalesModel(
        seed=seed,
        days=days,
        store_ids=pa.array(stores["store_id"], pa.string()),
        product_ids=pa.array(products["product_id"], pa.string()),
        drivers=drivers,
        coef=weather_coefficients(categories),
        gifts=np.array([c.name == "headphones" for c in categories]),
        mean=np.where(stocked, mean, 0.0),
        promo=promo,
        list_price=products["list_price"].to_numpy(),
    )


def day_rows(model: SalesModel, first: int, stop: int) -> pa.Table:
    """The sales rows of days ``first`` to ``stop - 1``, ordered by day, store, product."""
    store, product = np.nonzero(model.mean > 0)
    days = slice(first, stop)
    drivers = model.drivers
    log_weather = np.stack(
        [drivers.log_weather(model.coef, s, days) for s in range(model.mean.shape[0])]
    )  # (store, product, day)
    intensity = (
        model.mean[:, :, None]
        * drivers.calendar[None, None, days]
        * np.where(model.gifts[None, :, None] & drivers.december[None, None, days], 1.6, 1.0)
        * np.exp(log_weather)
        * np.where(model.promo[:, :, days], PROMO_LIFT, 1.0)
    )[store, product]  # (series, day)
    units = np.empty(intensity.shape)
    for k, day in enumerate(range(first, stop)):
        rng = np.random.default_rng((model.seed, SALES_STREAM, day))
        noise = rng.gamma(DISPERSION, 1 / DISPERSION, len(store))
        units[:, k] = rng.poisson(intensity[:, k] * noise)
    promo = model.promo[store, product, days]
    price = np.round(model.list_price[product][:, None] * np.where(promo, 1 - PROMO_DISCOUNT, 1), 2)
    n_days = stop - first
    store_idx = pa.array(np.tile(store, n_days).astype(np.int32))
    product_idx = pa.array(np.tile(product, n_days).astype(np.int32))
    dates = np.repeat(model.days[days].to_numpy().astype("datetime64[ns]"), len(store))
    return pa.table(
        [
            model.store_ids.take(store_idx),
            model.product_ids.take(product_idx),
            pa.array(dates, pa.timestamp("ns")),
            pa.array(units.T.ravel()),
            pa.array(price.T.ravel()),
            pa.array(promo.T.ravel()),
        ],
        schema=SALES_SCHEMA,
    )
