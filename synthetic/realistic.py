"""A realistic retailer: a weekly aggregated export with the shape of real ones.

The generated retailer (``generator.py``) is tidy: ten stores, two years, daily orders.
Real retailers' exports are not. This one is modelled on a grocery chain's scanner data
of the early 1990s and written as the CSV files `demand import DIR` reads:

* weekly grain, every week starting on a Thursday, history from January 1992;
* 50+ stores (ids are the chain's store numbers, not contiguous) in price zones, each
  zone one weather region; heavy-tailed volumes: most store × product series sell a few
  units a week, a staple sells thousands in half the stores, and in the big-format
  stores (60× an average store's traffic) 10^5 a week, over 10^6 on promotion;
* prices in dollars (…9 endings), a regular price that steps up now and then, temporary
  price cuts (``promo`` false) and promotions (``promo`` true) that lift demand 2–5×:
  own-price elasticity (-1.5 to -3.2 per product) times a feature/display bump;
* intermittent slow movers (no row in a week nothing sold), products and store
  listings that end (delisted) or start late (new items, ramping up), and stock-outs
  (weeks whose sales are cut to what was on the shelf);
* daily temperature per region with missing days (scattered, and a station outage);
* a promotion plan (``promotions.csv``: the planned price cuts and promotions only, with
  ``planned_at``, reaching 8 weeks past the sales) including revisions: some events
  planned twice, the later row changing the depth or cancelling the event (the same
  store, product and week, a later ``planned_at``; today's import keeps one plan per
  key and quarantines both as ``conflicting_duplicate``, issue 21);
* a handful of deliberately broken rows (:data:`BROKEN`), each with the reason the
  import must quarantine it for.

:func:`realistic` returns the files as text frames, the broken rows' lines and the
truth behind the data; :func:`write` writes the files (``examples/realistic/`` holds
the ``example`` scale; ``bench`` is ~400k sales rows for benchmarks:
``python -m synthetic.realistic DIR --scale bench``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FIRST_WEEK = "1992-01-02"  # a Thursday
PLAN_AHEAD_WEEKS = 8  # the plan reaches this far past the last week of sales
FILES = ("products", "stores", "weather_observed", "sales", "promotions")


@dataclass(frozen=True)
class Scale:
    stores: int
    products: int
    weeks: int
    regions: int
    staples: int  # products most stores carry, at 10^3+ units a week
    warehouses: int  # big-format stores with 60× an average store's traffic
    carried: float  # share of the other products a store carries, on average


SCALES = {
    "example": Scale(
        stores=52, products=9, weeks=105, regions=4, staples=1, warehouses=2, carried=0.17
    ),
    "bench": Scale(
        stores=84, products=64, weeks=313, regions=8, staples=2, warehouses=3, carried=0.36
    ),
}

# category: (regular price low, high in $, units a week in an average store low, high,
#            effect of 10 °C warmer on log demand, weeks of the year with a holiday lift)
CATEGORIES = {
    "milk": (1.89, 2.69, 2e3, 4e3, 0.0, (47, 51)),
    "soft_drinks": (0.99, 2.49, 5.0, 60.0, 0.25, (5, 27, 35)),
    "beer": (3.99, 7.99, 2.0, 30.0, 0.2, (27, 51, 52)),
    "analgesics": (3.99, 8.99, 0.2, 2.0, 0.0, ()),
    "ice_cream": (2.49, 4.99, 1.0, 20.0, 0.5, (27,)),
    "soup": (0.59, 1.49, 3.0, 40.0, -0.35, ()),
    "batteries": (2.99, 6.99, 0.1, 1.0, 0.0, (51,)),
    "cereal": (2.49, 4.49, 2.0, 30.0, 0.0, ()),
    "cookies": (1.99, 3.49, 1.0, 20.0, -0.1, (47, 51, 52)),
    "cheese": (1.99, 4.99, 1.0, 15.0, 0.0, (47, 51)),
    "frozen_juice": (0.99, 1.99, 0.5, 10.0, 0.1, ()),
}
ORDINARY = [c for c in CATEGORIES if c != "milk"]

# Rows the import must quarantine, one per line of its file: (file, reason, column, what)
BROKEN = (
    ("sales", "negative_units", "units", "a week of returns exported as negative units"),
    ("sales", "unknown_store", "store_id", "a store missing from stores.csv"),
    ("sales", "unknown_product", "product_id", "an item missing from products.csv"),
    ("sales", "wrong_type", "units", "units written with a thousands separator"),
    ("sales", "null_key", "store_id", "the store number left empty"),
    ("sales", "future_date", "date", "the year mistyped (2093 for 1993)"),
    ("sales", "duplicate_row", None, "a line exported twice (the first copy is kept)"),
    ("weather_observed", "impossible_weather", "temperature_c", "the station's -99.9 code"),
    ("promotions", "negative_price", "price", "a planned price with a minus sign"),
    ("promotions", "unknown_product", "product_id", "a plan for an item not in products.csv"),
)


@dataclass(frozen=True)
class Realistic:
    files: dict[str, pd.DataFrame]  # file name (no extension) → its rows as written (text)
    broken: pd.DataFrame  # file, line, reason, column, what: the rows to quarantine
    truth: dict[str, pd.DataFrame]  # what made the data: pairs, weeks, revisions


def _dollars(x: np.ndarray) -> np.ndarray:
    """A shelf price: the nearest dime less a cent (2.49), never under 0.09."""
    return np.maximum(np.round(np.asarray(x, dtype=float) * 10) / 10 - 0.01, 0.09)


def _masters(scale: Scale, rng: np.random.Generator):
    n_r, n_s, n_p = scale.regions, scale.stores, scale.products
    regions = pd.DataFrame(
        {
            "region_id": [f"Z{r + 1}" for r in range(n_r)],
            "latitude": rng.uniform(38.5, 46.5, n_r),
            "longitude": rng.uniform(-93.0, -83.0, n_r),
        }
    )
    numbers = np.sort(rng.choice(np.arange(2, 40 + 3 * n_s), n_s, replace=False))
    store_region = rng.integers(0, n_r, n_s)
    store_region[:n_r] = np.arange(n_r)  # every zone has a store
    stores = pd.DataFrame(
        {
            "store_id": numbers.astype(str),
            "region_id": regions["region_id"].to_numpy()[store_region],
            "latitude": regions["latitude"].to_numpy()[store_region] + rng.normal(0, 0.2, n_s),
            "longitude": regions["longitude"].to_numpy()[store_region] + rng.normal(0, 0.2, n_s),
        }
    )
    size = rng.lognormal(0.0, 0.5, n_s)  # a store's traffic relative to an average store
    warehouses = rng.choice(n_s, scale.warehouses, replace=False)
    size[warehouses] = 60.0
    categories = ["milk"] * scale.staples + [
        ORDINARY[i % len(ORDINARY)] for i in range(n_p - scale.staples)
    ]
    spec = np.array([CATEGORIES[c][:5] for c in categories])
    codes = np.sort(rng.choice(np.arange(10_000, 99_999), n_p, replace=False))
    price = _dollars(rng.uniform(spec[:, 0], spec[:, 1]))
    products = pd.DataFrame(
        {
            "product_id": codes.astype(str),
            "category": categories,
            "list_price": price,
            "level": np.exp(rng.uniform(np.log(spec[:, 2]), np.log(spec[:, 3]))),
            "temp_effect": spec[:, 4],
            "elasticity": rng.uniform(-3.2, -1.5, n_p),
        }
    )
    return regions, stores, size, warehouses, store_region, products


def _weather(regions: pd.DataFrame, days: pd.DatetimeIndex, rng: np.random.Generator):
    """Daily mean temperature per region: a seasonal cycle and persistent weather."""
    n_r, n_d = len(regions), len(days)
    mean = 14.0 - 0.6 * (regions["latitude"].to_numpy() - 38.5)
    swing = rng.uniform(12.0, 15.0, n_r)
    season = -np.cos(2 * np.pi * (days.dayofyear.to_numpy() - 20) / 365.25)
    shocks = rng.normal(0, 3.5, (n_r, n_d))
    noise = np.zeros((n_r, n_d))
    for d in range(n_d):
        noise[:, d] = (0.7 * noise[:, d - 1] if d else 0) + shocks[:, d]
    return mean[:, None] + swing[:, None] * season[None, :] + noise


def _pairs(scale, stores, size, warehouses, store_region, products, rng):
    """Which store carries which product, from which week to which (exclusive)."""
    n_s, n_p, n_w = len(stores), len(products), scale.weeks
    share = np.where(
        np.arange(n_p) < scale.staples, 0.5, rng.uniform(0.3, 1.7, n_p) * scale.carried
    )
    carried = rng.random((n_s, n_p)) < np.minimum(share, 1.0)[None, :]
    carried[warehouses, : scale.staples] = True  # the 10^5 a week series
    for store in np.flatnonzero(carried.sum(axis=1) == 0):  # every store sells something
        carried[store, rng.integers(scale.staples, n_p)] = True
    s, p = np.nonzero(carried)
    # products launched late (new items) and products delisted chain-wide
    launch = np.zeros(n_p, dtype=int)
    delist = np.full(n_p, n_w)
    others = np.arange(scale.staples, n_p)
    new, gone = rng.choice(others, 2 * max(1, n_p // 8), replace=False).reshape(2, -1)
    launch[new] = rng.integers(n_w // 5, 3 * n_w // 4, len(new))
    delist[gone] = rng.integers(n_w // 3, n_w - 8, len(gone))
    first, end = launch[p].copy(), delist[p].copy()
    # a few listings of their own: a store adding an item late, or dropping it
    late = (rng.random(len(s)) < 0.05) & (p >= scale.staples)
    first[late] = np.maximum(first[late], rng.integers(8, n_w - 8, late.sum()))
    dropped = (rng.random(len(s)) < 0.05) & (p >= scale.staples) & ~late
    end[dropped] = np.minimum(end[dropped], rng.integers(first[dropped] + 8, n_w + 8))
    keep = first < end - 4  # a listing of a few weeks at least
    s, p, first, end = s[keep], p[keep], first[keep], end[keep]
    affinity = rng.lognormal(0.0, 0.8, len(s))
    affinity[np.isin(s, warehouses) & (p < scale.staples)] = 1.0  # the 10^5 a week series
    level = products["level"].to_numpy()[p] * size[s] * affinity
    status = np.where(end < n_w, "delisted", np.where(first > 0, "new", "regular"))
    return pd.DataFrame(
        {
            "store_id": stores["store_id"].to_numpy()[s],
            "product_id": products["product_id"].to_numpy()[p],
            "store": s,
            "product": p,
            "region": store_region[s],
            "first_week": first,
            "end_week": end,
            "status": status,
            "level": level,
        }
    )


def _prices(scale, products, n_weeks, rng):
    """Per region, product and week: regular price, shelf price, promo and lift; the events.

    Promotions (promo true, 15–40 % off, 1–2 weeks) and temporary price cuts (promo
    false, 5–15 % off, one week) come every 5–17 weeks per price zone and product. One
    event in forty is cancelled after it was planned: it is in the plan, not in the
    prices.
    """
    n_r, n_p = scale.regions, len(products)
    steps = rng.random((n_p, n_weeks)) < 1 / 60  # the regular price rises now and then
    rise = np.cumprod(np.where(steps, rng.uniform(1.03, 1.08, (n_p, n_weeks)), 1.0), axis=1)
    regular = _dollars(products["list_price"].to_numpy()[:, None] * rise + 0.01)
    regular = np.broadcast_to(regular, (n_r, n_p, n_weeks)).copy()
    depth = np.zeros((n_r, n_p, n_weeks))
    promo = np.zeros((n_r, n_p, n_weeks), dtype=bool)
    events = []
    for r in range(n_r):
        for p in range(n_p):
            w = int(rng.integers(0, 8))
            while w < n_weeks:
                is_promo = rng.random() < 0.55
                length = min(int(rng.integers(1, 3)) if is_promo else 1, n_weeks - w)
                cut = rng.uniform(0.15, 0.40) if is_promo else rng.uniform(0.05, 0.15)
                cancelled = rng.random() < 1 / 40
                events.append((r, p, w, length, is_promo, cut, cancelled))
                if not cancelled:
                    depth[r, p, w : w + length], promo[r, p, w : w + length] = cut, is_promo
                w += length + int(rng.integers(4, 17))
    shelf = np.where(depth > 0, _dollars(regular * (1 - depth)), regular)
    elasticity = products["elasticity"].to_numpy()[None, :, None]
    price_effect = (shelf / regular) ** elasticity
    # a promotion's feature and display add to the price cut: 2–5× in all (a deep cut of
    # an elastic product would give more; demand saturates at 5×)
    target = rng.uniform(2.0, 5.0, (n_r, n_p, n_weeks))
    bump = np.where(promo, np.clip(target / price_effect, 1.0, 3.0), 1.0)
    lift = np.where(promo, np.minimum(price_effect * bump, 5.0), price_effect)
    columns = ["region", "product", "start", "length", "promo", "cut", "cancelled"]
    return regular, shelf, promo, lift, pd.DataFrame(events, columns=columns)


def _demand(pairs, products, weeks, temperature, regular, lift, rng):
    """Expected demand per listing and week, its active weeks, stock-outs and units sold.

    Demand is the listing's level times the season, holiday weeks, the week's
    temperature (for the categories it moves), a slow random drift, a new item's
    eight-week ramp-up, the long-run effect of regular price rises (half the
    elasticity) and the week's price cut or promotion lift. Units sold are a
    gamma-Poisson draw around it, cut to what was on the shelf in a stock-out (1–3
    weeks without the item, or with part of the week's demand met).
    """
    n, n_w = len(pairs), len(weeks)
    p = pairs["product"].to_numpy()
    week_of_year = weeks.isocalendar().week.to_numpy().astype(int)
    season = 1 + 0.15 * np.cos(2 * np.pi * (week_of_year - 28) / 52.18)
    holiday = np.ones((len(products), n_w))
    for i, category in enumerate(products["category"]):
        holiday[i, np.isin(week_of_year, CATEGORIES[category][5])] = 1.5
    weekly_temp = temperature.reshape(len(temperature), n_w, 7).mean(axis=2)
    warmer = (weekly_temp[pairs["region"].to_numpy()] - 10) / 10
    temp = np.exp(products["temp_effect"].to_numpy()[p, None] * warmer)
    drift = np.cumsum(rng.normal(0, 0.03, (n, n_w)), axis=1)
    drift = np.exp(drift - drift.mean(axis=1, keepdims=True))
    first = pairs["first_week"].to_numpy()[:, None]
    since = np.arange(n_w)[None, :] - first
    ramp = np.where(first > 0, np.clip((since + 1) / 8, 0, 1), 1)
    long_run = (regular / regular[:, :1]) ** (products["elasticity"].to_numpy()[p, None] / 2)
    level = pairs["level"].to_numpy()[:, None]
    demand = level * season[None, :] * holiday[p] * temp * drift * ramp * long_run * lift
    active = (since >= 0) & (np.arange(n_w)[None, :] < pairs["end_week"].to_numpy()[:, None])
    starts = (rng.random((n, n_w)) < 0.006) & active
    out = np.zeros((n, n_w), dtype=bool)
    for lag, lasts in enumerate((1.0, 0.5, 0.3)):
        more = starts & (rng.random((n, n_w)) < lasts)
        out[:, lag:] |= more[:, : n_w - lag]
    out &= active
    partly = rng.random((n, n_w)) < 0.5
    on_shelf = np.where(out, np.where(partly, rng.uniform(0.1, 0.6, (n, n_w)), 0.0), 1.0)
    units = rng.poisson(demand * rng.gamma(20.0, 1 / 20.0, (n, n_w)) * on_shelf) * active
    return demand, active, out, units


def realistic(scale: str = "example", seed: int = 1992) -> Realistic:
    """The realistic retailer's files (as text), its broken rows and its truth."""
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r}: expected one of {', '.join(SCALES)}")
    sc = SCALES[scale]
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    weeks = pd.date_range(FIRST_WEEK, periods=sc.weeks, freq="7D")
    plan_weeks = sc.weeks + PLAN_AHEAD_WEEKS
    days = pd.date_range(weeks[0], periods=7 * sc.weeks, freq="D")
    regions, stores, size, warehouses, store_region, products = _masters(sc, rngs[0])
    temperature = _weather(regions, days, rngs[1])
    pairs = _pairs(sc, stores, size, warehouses, store_region, products, rngs[2])
    regular, shelf, promo, lift, events = _prices(sc, products, plan_weeks, rngs[3])

    n, n_w = len(pairs), sc.weeks
    r, p = pairs["region"].to_numpy(), pairs["product"].to_numpy()
    demand, active, out, units = _demand(
        pairs, products, weeks, temperature, regular[r, p, :n_w], lift[r, p, :n_w], rngs[4]
    )
    truth_weeks = pd.DataFrame(
        {
            "store_id": np.repeat(pairs["store_id"].to_numpy(), n_w),
            "product_id": np.repeat(pairs["product_id"].to_numpy(), n_w),
            "date": np.tile(weeks.to_numpy(), n),
            "active": active.ravel(),
            "demand": demand.ravel(),
            "units": units.ravel(),
            "regular_price": regular[r, p, :n_w].ravel(),
            "price": shelf[r, p, :n_w].ravel(),
            "promo": promo[r, p, :n_w].ravel(),
            "lift": lift[r, p, :n_w].ravel(),
            "stockout": out.ravel(),
        }
    )
    truth_weeks = truth_weeks[truth_weeks["active"]].drop(columns="active").reset_index(drop=True)
    sold = truth_weeks[truth_weeks["units"] > 0]
    sales = pd.DataFrame(
        {
            "store_id": sold["store_id"],
            "product_id": sold["product_id"],
            "date": sold["date"].dt.strftime("%Y-%m-%d"),
            "units": sold["units"].astype(str),
            "price": sold["price"].map("{:.2f}".format),
            "promo": np.where(sold["promo"], "1", "0"),
        }
    )
    plan, revisions = _plan(sc, pairs, events, regular, shelf, promo, weeks, rngs[5])
    files = {
        "products": pd.DataFrame(
            {
                "product_id": products["product_id"],
                "category": products["category"],
                "list_price": products["list_price"].map("{:.2f}".format),
            }
        ),
        "stores": pd.DataFrame(
            {
                "store_id": stores["store_id"],
                "region_id": stores["region_id"],
                "latitude": stores["latitude"].map("{:.3f}".format),
                "longitude": stores["longitude"].map("{:.3f}".format),
            }
        ),
        "weather_observed": _weather_rows(regions, days, temperature, rngs[6]),
        "sales": sales.reset_index(drop=True),
        "promotions": plan,
    }
    files, broken = _break(files, rngs[7])
    truth = {
        "pairs": pairs.drop(columns=["store", "product", "region"]),
        "weeks": truth_weeks,
        "revisions": revisions,
        "products": products,
    }
    return Realistic(files, broken, truth)


def _weather_rows(regions, days, temperature, rng) -> pd.DataFrame:
    """Temperature rows, with missing days: scattered ones and one station's outage."""
    n_r, n_d = temperature.shape
    present = rng.random((n_r, n_d)) >= 0.015
    outage = int(rng.integers(30, n_d - 30))
    present[int(rng.integers(0, n_r)), outage : outage + 12] = False
    r, d = np.nonzero(present)
    return pd.DataFrame(
        {
            "region_id": regions["region_id"].to_numpy()[r],
            "date": days[d].strftime("%Y-%m-%d"),
            "temperature_c": [f"{t:.1f}" for t in np.round(temperature[r, d], 1) + 0.0],
        }
    )


def _plan(sc, pairs, events, regular, shelf, promo, weeks, rng):
    """The planned price cuts and promotions of every listing, with revisions.

    An event is planned 3–8 weeks before it starts (at an hour of the working day).
    About one in eight was planned once before, 2–6 weeks earlier, at another depth;
    a cancelled event was planned as it was meant to be, and its revision says promo
    false at the regular price. Rows are ordered by store, product, date and
    planned_at (stores and products in the order of the sales file), so a revision
    comes after the row it revises.
    """
    n_w = sc.weeks + PLAN_AHEAD_WEEKS
    dates = pd.date_range(weeks[0], periods=n_w, freq="7D")
    n_e = len(events)
    events = events.assign(
        event=np.arange(n_e),
        lead=rng.integers(21, 57, n_e),
        hour=rng.integers(8, 18, n_e),
        revised=rng.random(n_e) < 1 / 8,
        earlier=rng.integers(14, 43, n_e),
        first_cut=rng.uniform(0.1, 0.35, n_e),
    )
    events["revised"] |= events["cancelled"]
    weekly = events.loc[events.index.repeat(events["length"])].copy()
    weekly["week"] = weekly["start"] + weekly.groupby("event").cumcount()
    listing = pairs.reset_index(names="pair")[
        ["pair", "store_id", "product_id", "region", "product", "first_week", "end_week"]
    ]
    plan = listing.merge(weekly, on=["region", "product"])
    # a listing's plan runs from its first week; a delisted one's ends with it
    end = np.where(plan["end_week"] >= sc.weeks, n_w, plan["end_week"])
    plan = plan[(plan["week"] >= plan["first_week"]) & (plan["week"] < end)]
    r, p, w = (plan[c].to_numpy() for c in ("region", "product", "week"))
    reg = regular[r, p, w]
    planned = (
        dates[plan["start"].to_numpy()]
        - pd.to_timedelta(plan["lead"].to_numpy(), unit="D")
        + pd.to_timedelta(plan["hour"].to_numpy(), unit="h")
    )
    cancelled = plan["cancelled"].to_numpy()
    final = pd.DataFrame(
        {
            "pair": plan["pair"].to_numpy(),
            "store_id": plan["store_id"].to_numpy(),
            "product_id": plan["product_id"].to_numpy(),
            "date": dates[w],
            "promo": np.where(cancelled, False, promo[r, p, w]),
            "price": np.where(cancelled, reg, shelf[r, p, w]),
            "planned_at": planned,
        }
    )
    first_price = np.where(
        cancelled,
        _dollars(reg * (1 - plan["cut"].to_numpy())),
        _dollars(reg * (1 - plan["first_cut"].to_numpy())),
    )
    # another depth is another price, if only by a dime
    same = ~cancelled & (np.round(first_price, 2) == np.round(final["price"].to_numpy(), 2))
    first_price = np.where(same, first_price + 0.10, first_price)
    first = final.assign(
        promo=plan["promo"].to_numpy(),
        price=first_price,
        planned_at=planned - pd.to_timedelta(plan["earlier"].to_numpy(), unit="D"),
        cancelled=cancelled,
    )[plan["revised"].to_numpy()]
    both = pd.concat([first.drop(columns="cancelled"), final], ignore_index=True)
    both = both.sort_values(["pair", "date", "planned_at"], kind="stable")  # as sales
    text = pd.DataFrame(
        {
            "store_id": both["store_id"],
            "product_id": both["product_id"],
            "date": both["date"].dt.strftime("%Y-%m-%d"),
            "promo": np.where(both["promo"], "1", "0"),
            "price": both["price"].map("{:.2f}".format),
            "planned_at": both["planned_at"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        }
    ).reset_index(drop=True)
    return text, first.drop(columns="pair").reset_index(drop=True)


def _break(files: dict[str, pd.DataFrame], rng: np.random.Generator):
    """Insert :data:`BROKEN`'s rows, each right after the row of its file it was made from."""
    sales = files["sales"]
    sold = set(zip(sales["store_id"], sales["product_id"], sales["date"], strict=True))
    inserts: dict[str, dict[int, tuple[dict, tuple]]] = {name: {} for name in files}
    for entry in BROKEN:
        name, reason = entry[0], entry[1]
        frame = files[name]
        while True:
            at = int(rng.integers(1, len(frame) - 1))
            row = frame.iloc[at].to_dict()
            if reason == "negative_units":  # the listing's next week, one without sales
                row["date"] = str((pd.Timestamp(row["date"]) + pd.Timedelta(days=7)).date())
                if (row["store_id"], row["product_id"], row["date"]) in sold:
                    continue
            if reason == "future_date" and row["date"].endswith("02-29"):
                continue  # no such day in 2093: it would be wrong_type
            if reason == "wrong_type" and int(row["units"]) < 1000:
                continue  # a separator needs thousands
            if at not in inserts[name]:
                break
        if reason == "negative_units":
            row["units"] = "-" + str(int(rng.integers(1, 6)))
        elif reason == "unknown_store":
            row["store_id"] = "999"
        elif reason == "unknown_product":
            row["product_id"] = "00000"
        elif reason == "wrong_type":
            row["units"] = f"{int(row['units']):,}"
        elif reason == "null_key":
            row["store_id"] = ""
        elif reason == "future_date":
            row["date"] = "2093" + row["date"][4:]
        elif reason == "impossible_weather":
            row["temperature_c"] = "-99.9"
        elif reason == "negative_price":
            row["price"] = "-" + row["price"]
        # duplicate_row: the row as it is, right after itself
        inserts[name][at] = (row, entry)
    out, broken = {}, []
    for name, frame in files.items():
        rows = frame.to_dict("records")
        for i, at in enumerate(sorted(inserts[name])):
            row, entry = inserts[name][at]
            rows.insert(at + 1 + i, row)
            # line 1 is the header, row ``at`` is on line at + 2, and i rows went in above
            broken.append((f"{name}.csv", at + 3 + i, *entry[1:]))
        out[name] = pd.DataFrame(rows, columns=frame.columns)
    table = pd.DataFrame(broken, columns=["file", "line", "reason", "column", "what"])
    return out, table.sort_values(["file", "line"]).reset_index(drop=True)


def write(folder: Path, scale: str = "example", seed: int = 1992) -> dict[str, int]:
    """The retailer's files in ``folder`` (``<table>.csv`` and ``BROKEN.md``); rows per file."""
    data = realistic(scale, seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in FILES:
        frame = data.files[name]
        frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
        rows[name] = len(frame)
    lines = [
        "# The deliberately broken rows",
        "",
        "`demand import` must quarantine exactly these rows (written by",
        f"`synthetic/realistic.py`, scale {scale!r}, seed {seed}); every other row is accepted.",
        "",
        "| file | line | reason | column | what |",
        "|---|---|---|---|---|",
    ]
    for b in data.broken.itertuples():
        lines.append(f"| {b.file} | {b.line} | {b.reason} | {b.column or ''} | {b.what} |")
    (folder / "BROKEN.md").write_text("\n".join(lines) + "\n")
    return rows


def digest(folder: Path) -> str:
    """sha256 over the files' own sha256 digests, as `sha256sum * | sha256sum` prints them."""
    listing = "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in sorted(folder.iterdir())
        if path.is_file()
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the realistic retailer's files.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--scale", choices=sorted(SCALES), default="example")
    parser.add_argument("--seed", type=int, default=1992)
    args = parser.parse_args(argv)
    rows = write(args.folder, args.scale, args.seed)
    print(f"{args.folder}: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    print(f"sha256 {digest(args.folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
