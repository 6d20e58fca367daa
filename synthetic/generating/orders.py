"""Order lines of one store: walk-in baskets, re-buying customers, basket partners.

Each store draws from its own random stream (seeded by the retailer's seed and the
store's number), so a store's lines are the same whichever stores are generated
with it: the writer can generate and write a few stores at a time and hold only
those in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.generating.catalogue import Category, weather_coefficients
from synthetic.generating.drivers import PROMO_DISCOUNT, PROMO_LIFT, Drivers, promotions

CYCLE_SHARE = 0.85  # share of a consumable's demand that comes from re-buying customers
CHURN = 0.08  # chance a re-buying customer does not come back next time
INTERVAL_NOISE = 0.08  # sd of log(interval / lifespan)
# Most re-buying customers are recruited by promotions, so they come back together:
# each promotion echoes one lifespan later, then two, as a wave the model can foresee
# from "customers due" but a moving average cannot.
PROMO_RECRUIT = 15.0  # recruitment rate while on promotion, relative to other days
ORDER_STREAM = 1  # tags the per-store random streams of order lines


@dataclass(frozen=True)
class OrderModel:
    """What every store's lines are drawn from (retailer-wide, small)."""

    seed: int
    stock_share: float
    per_category: int
    categories: list[Category]
    drivers: Drivers
    scale_sp: np.ndarray  # (store, product) units a day of an average day
    customers_per_store: np.ndarray
    list_price: np.ndarray  # per product

    @property
    def customer_offset(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.customers_per_store)[:-1]])


@dataclass(frozen=True)
class StoreLines:
    lines: pd.DataFrame  # p, d, quantity, customer, basket, promo, unit_price, seconds
    promo: np.ndarray  # (product, day): the promotion calendar the lines were drawn from


def store_lines(model: OrderModel, store: int, n_d: int) -> StoreLines:
    """All order lines of ``store`` over ``n_d`` days, unsorted."""
    rng = np.random.default_rng((model.seed, ORDER_STREAM, store))
    categories = model.categories
    n_p = len(categories)
    stocked = rng.random(n_p) < model.stock_share
    promo = promotions((n_p,), n_d, rng) & stocked[:, None]

    rebuy = np.array([c.lifespan is not None for c in categories])
    gifts = np.array([c.name == "headphones" for c in categories])
    walk_in_share = np.where(rebuy, 1 - CYCLE_SHARE, 1.0)
    scale_p = model.scale_sp[store]
    drivers = model.drivers
    days = slice(0, n_d)
    lam = (
        scale_p[:, None]
        * walk_in_share[:, None]
        * drivers.calendar[None, days]
        * np.where(gifts[:, None] & drivers.december[None, days], 1.6, 1.0)
        * np.exp(drivers.log_weather(weather_coefficients(categories), store, days))
        * np.where(promo, PROMO_LIFT, 1.0)
        * stocked[:, None]
    )
    customers = (model.customer_offset[store], model.customers_per_store[store])
    walk_in = _walk_in_lines(lam, customers, rng)
    cycles = _cycle_lines(
        scale_p, rebuy, stocked, promo, drivers.calendar[days], categories, customers, rng
    )
    partners = _partner_lines(walk_in, categories, model.per_category, stocked, rng)
    lines = pd.concat([walk_in, cycles, partners], ignore_index=True)
    lines["promo"] = promo[lines["p"], lines["d"]]
    lines["unit_price"] = np.round(
        model.list_price[lines["p"]] * np.where(lines["promo"], 1 - PROMO_DISCOUNT, 1.0), 2
    )
    seconds = rng.integers(8 * 3600, 21 * 3600, len(lines))
    # lines of one basket share the basket's time
    lines["seconds"] = (
        pd.Series(seconds).groupby(lines["basket"].to_numpy()).transform("first").to_numpy()
    )
    return StoreLines(lines, promo)


def _customers(n: int, customers: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Customers are numbered per store so that every store has its own clientele."""
    offset, count = customers
    return offset + (rng.random(n) * count).astype(np.int64)


def _walk_in_lines(
    lam: np.ndarray, customers: tuple[int, int], rng: np.random.Generator
) -> pd.DataFrame:
    """One basket per walk-in purchase; quantity 1, sometimes more."""
    mean_quantity = 1.2
    events = rng.poisson(lam / mean_quantity)
    cells = np.repeat(np.arange(events.size), events.ravel())
    p, d = np.unravel_index(cells, lam.shape)
    n = len(cells)
    return pd.DataFrame(
        {
            "p": p,
            "d": d,
            "quantity": 1 + rng.poisson(mean_quantity - 1, n),
            "customer": _customers(n, customers, rng),
            "basket": np.arange(n, dtype=np.int64),
        }
    )


def _cycle_lines(
    scale_p: np.ndarray,
    rebuy: np.ndarray,
    stocked: np.ndarray,
    promo: np.ndarray,
    calendar: np.ndarray,
    categories: list[Category],
    customers: tuple[int, int],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Re-buying customers: a first purchase, then one every lifespan (± noise) until churn.

    Some customers are already mid-cycle when the history starts; the rest are
    recruited day by day, most of them by promotions.
    """
    n_d = len(calendar)
    frames = []
    for p in np.flatnonzero(rebuy & stocked):
        lifespan = float(categories[p].lifespan)
        boost = np.where(promo[p], PROMO_RECRUIT, 1.0)
        # recruits per day such that re-buying demand is CYCLE_SHARE of the product's at
        # steady state (each recruit buys 1 / CHURN times on average)
        rate = CYCLE_SHARE * scale_p[p] * CHURN / boost.mean()
        recruit = rng.poisson(rate * calendar * boost)
        d_new = np.repeat(np.arange(n_d), recruit).astype(float)
        # the installed base at the start: steady state of recruits and churn
        installed = rng.poisson(CYCLE_SHARE * scale_p[p] * lifespan)
        d_old = rng.random(installed) * lifespan
        first = np.concatenate([d_new, d_old])
        max_k = int(np.ceil(n_d / (lifespan * 0.6))) + 1
        intervals = lifespan * np.exp(rng.normal(0, INTERVAL_NOISE, (len(first), max_k)))
        intervals[:, 0] = 0.0
        when = first[:, None] + np.cumsum(intervals, axis=1)
        purchases = rng.geometric(CHURN, len(first))  # how many times the customer buys
        alive = np.arange(max_k)[None, :] < purchases[:, None]
        chain, k = np.nonzero(alive & (when < n_d))
        customer = _customers(len(first), customers, rng)
        frames.append(
            pd.DataFrame(
                {
                    "p": p,
                    "d": when[chain, k].astype(np.int64),
                    "quantity": 1,
                    "customer": customer[chain],
                }
            )
        )
    columns = {"p": [], "d": [], "quantity": [], "customer": []}
    lines = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns, dtype="int64")
    lines["basket"] = -1 - np.arange(len(lines), dtype=np.int64)  # baskets of their own
    return lines


def _partner_lines(
    walk_in: pd.DataFrame,
    categories: list[Category],
    per_category: int,
    stocked: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Add the partner product to a share of the baskets that hold its lead product."""
    names = [c.name for c in categories]
    share = np.array([c.partner_share for c in categories])
    partner = np.array(
        [
            names.index(c.partner) + i % per_category if c.partner else -1
            for i, c in enumerate(categories)
        ]
    )
    take = (partner[walk_in["p"]] >= 0) & (rng.random(len(walk_in)) < share[walk_in["p"]])
    lines = walk_in.loc[take].copy()
    lines["p"] = partner[lines["p"]]
    lines = lines[stocked[lines["p"]]]
    lines["quantity"] = 1
    return lines
