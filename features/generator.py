"""A seeded synthetic retailer whose sales carry the signals the features look for.

What drives the generated demand, so that a model has something to find:

* stores sit in weather regions with different climates;
* categories react to weather (umbrellas to rain, sunglasses and ice cream to sun
  and heat, soup to cold) and have lifespans (ink, coffee and pet food are
  re-bought on a cycle, headphones are not);
* consumables are mostly sold to customers who come back when their last unit
  runs out (median interval = the product's lifespan, with noise); promotions
  recruit new such customers, so every promotion echoes one lifespan later;
* baskets: some products pull a partner into the same order;
* weekly and yearly seasonality, public holidays, promotions with a price cut;
* weather forecasts issued every morning for the next ten days, with an error
  that grows with the lead time.

Everything is vectorised with numpy; the ``large`` scale (millions of order lines)
takes about a minute. The same seed gives the same tables, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import holidays
import numpy as np
import pandas as pd

from demand.settings import Scale

HISTORY_START = pd.Timestamp("2023-01-01")
FORECAST_LEADS = 10  # forecasts cover the issue day and the nine days after it
FORECAST_ISSUE_HOUR = 6  # published at 06:00 UTC, before the stores open
HOLIDAY_COUNTRY = "US"
# Days simulated past every scale's history, so that `demand generate --append-days N`
# can release later days of the same retailer without changing any earlier row.
APPEND_RESERVE_DAYS = 120


@dataclass(frozen=True)
class ScaleSpec:
    regions: int
    stores: int
    products_per_category: int
    days: int
    stock_share: float  # share of (store, product) pairs a store carries


SCALES: dict[Scale, ScaleSpec] = {
    Scale.tiny: ScaleSpec(regions=2, stores=4, products_per_category=1, days=210, stock_share=1.0),
    Scale.default: ScaleSpec(
        regions=4, stores=10, products_per_category=2, days=730, stock_share=0.95
    ),
    Scale.large: ScaleSpec(
        regions=8, stores=20, products_per_category=7, days=1095, stock_share=0.9
    ),
}


@dataclass(frozen=True)
class Category:
    """How a category sells. Weather coefficients act on log-demand."""

    name: str
    base: float  # units per store and day at an average store, before effects
    price: float
    lifespan: float | None = None  # days until a customer re-buys; None: not re-bought
    rain: float = 0.0
    heat: float = 0.0
    sun: float = 0.0
    cold: float = 0.0
    partner: str | None = None  # category pulled into the same basket
    partner_share: float = 0.0


CATEGORIES: tuple[Category, ...] = (
    Category("umbrella", base=0.5, price=18.0, rain=0.9),
    Category("raincoat", base=0.25, price=60.0, rain=0.6, partner="umbrella", partner_share=0.3),
    Category("sunglasses", base=0.4, price=35.0, sun=0.9, heat=0.3),
    Category(
        "sunscreen",
        base=0.6,
        price=12.0,
        lifespan=45,
        sun=0.7,
        heat=0.4,
        partner="sunglasses",
        partner_share=0.15,
    ),
    Category("ice_cream", base=2.5, price=4.5, heat=0.6, sun=0.3),
    Category("soup", base=1.8, price=3.0, cold=0.45, rain=0.15),
    Category("printer_ink", base=0.8, price=30.0, lifespan=60),
    Category("coffee_beans", base=2.0, price=11.0, lifespan=21, cold=0.1),
    Category("razor_blades", base=1.0, price=15.0, lifespan=35),
    Category("pet_food", base=1.5, price=25.0, lifespan=30),
    Category("running_shoes", base=0.25, price=110.0, lifespan=240, sun=0.2),
    Category("headphones", base=0.3, price=80.0),
)

#                  mean °C, seasonal amplitude, share of rainy days
CLIMATES = (
    ("coastal_rainy", 11.0, 6.0, 0.55),
    ("mediterranean", 19.0, 8.0, 0.12),
    ("continental", 10.0, 13.0, 0.30),
    ("northern", 5.0, 10.0, 0.42),
)

WEEKDAY_EFFECT = np.array([0.90, 0.85, 0.90, 1.00, 1.15, 1.30, 1.00])  # Mon..Sun
CYCLE_SHARE = 0.85  # share of a consumable's demand that comes from re-buying customers
CHURN = 0.08  # chance a re-buying customer does not come back next time
INTERVAL_NOISE = 0.08  # sd of log(interval / lifespan)
PROMO_START_RATE = 1 / 45  # promotions start on about one day in 45
PROMO_DISCOUNT = 0.2
PROMO_LIFT = 1.8  # walk-in demand while on promotion
# Most re-buying customers are recruited by promotions, so they come back together:
# each promotion echoes one lifespan later, then two, as a wave the model can foresee
# from "customers due" but a moving average cannot.
PROMO_RECRUIT = 15.0  # recruitment rate while on promotion, relative to other days
# Units per store and day of an average product: high enough that the drivers
# above, not Poisson noise, decide most of a day's sales.
VOLUME = 4.0


@dataclass
class RetailData:
    """The five raw tables of the contract, plus the truth the tests check against."""

    orders: pd.DataFrame
    products: pd.DataFrame
    stores: pd.DataFrame
    weather_observed: pd.DataFrame
    weather_forecast: pd.DataFrame
    true_lifespan: pd.Series = field(repr=False)  # product_id → days (NaN: not re-bought)
    # the promotion calendar the orders were drawn from: (store_id, product_id, date) of
    # every promotion day of a stocked pair; a retailer knows its plan, the order lines
    # show it only on the days something sold (features/aggregate.py plans from it)
    promotion_days: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "orders": self.orders,
            "products": self.products,
            "stores": self.stores,
            "weather_observed": self.weather_observed,
            "weather_forecast": self.weather_forecast,
        }


def generate(
    scale: Scale | str = Scale.default, seed: int = 7, extra_days: int = 0, days: int | None = None
) -> RetailData:
    """Generate a retailer at ``scale``; the same ``(scale, seed)`` gives the same data.

    ``extra_days`` releases that many more days of the same retailer, the way new
    nights of data arrive: the generator always simulates APPEND_RESERVE_DAYS past
    the history and releases only what was known by the end of the last day, so
    the days before are identical, row for row, whatever ``extra_days`` is.
    ``days`` replaces the scale's history length (tests that need two years of weeks
    from the tiny retailer); other days give another retailer.
    """
    spec = SCALES[Scale(scale)]
    if days is not None:
        spec = replace(spec, days=days)
    if not 0 <= extra_days <= APPEND_RESERVE_DAYS:
        raise ValueError(
            f"{extra_days} extra days: the generated retailer can be extended by 0 to "
            f"{APPEND_RESERVE_DAYS} days; regenerate (`demand generate`) to start over"
        )
    rng = np.random.default_rng(seed)
    days = pd.date_range(HISTORY_START, periods=spec.days + APPEND_RESERVE_DAYS, freq="D")

    stores = _stores(spec, rng)
    products, categories = _products(spec, rng)
    weather = _weather(spec, days, rng)  # runs FORECAST_LEADS days past the history
    forecast = _forecasts(weather, days, rng)
    orders, promo = _orders(spec, days, stores, products, categories, weather, rng)
    true_lifespan = pd.Series(
        [c.lifespan if c.lifespan else np.nan for c in categories],
        index=products["product_id"],
        name="true_lifespan_days",
    )
    last_day = days[spec.days + extra_days - 1]
    closed = (last_day + pd.Timedelta(days=1)).tz_localize("UTC")  # the end of the last day
    return RetailData(
        orders[orders["ordered_at"] < closed].reset_index(drop=True),
        products,
        stores,
        weather[weather["date"] <= last_day].reset_index(drop=True),
        forecast[forecast["issued_at"] < closed].reset_index(drop=True),
        true_lifespan,
        # the whole calendar, the reserve days too: a retailer plans its promotions ahead
        _promotion_days(promo, stores, products, days),
    )


def _promotion_days(
    promo: np.ndarray, stores: pd.DataFrame, products: pd.DataFrame, days: pd.DatetimeIndex
) -> pd.DataFrame:
    s, p, d = np.nonzero(promo[:, :, : len(days)])
    return pd.DataFrame(
        {
            "store_id": stores["store_id"].to_numpy()[s],
            "product_id": products["product_id"].to_numpy()[p],
            "date": days[d],
        }
    )


def _stores(spec: ScaleSpec, rng: np.random.Generator) -> pd.DataFrame:
    region_of_store = np.arange(spec.stores) % spec.regions
    return pd.DataFrame(
        {
            "store_id": [f"S{i:03d}" for i in range(spec.stores)],
            "region_id": [f"R{r:02d}" for r in region_of_store],
            "latitude": np.round(40 + 3 * region_of_store + rng.normal(0, 0.5, spec.stores), 4),
            "longitude": np.round(-100 + 8 * region_of_store + rng.normal(0, 0.5, spec.stores), 4),
        }
    )


def _products(spec: ScaleSpec, rng: np.random.Generator) -> tuple[pd.DataFrame, list[Category]]:
    rows, cats = [], []
    for c_index, cat in enumerate(CATEGORIES):
        for k in range(spec.products_per_category):
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


def _weather(spec: ScaleSpec, days: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Daily weather per region, FORECAST_LEADS days past the history (forecasts need it)."""
    n = len(days) + FORECAST_LEADS
    all_days = pd.date_range(days[0], periods=n, freq="D")
    doy = all_days.dayofyear.to_numpy()
    season = -np.cos(2 * np.pi * (doy - 15) / 365.25)  # -1 mid-January, +1 mid-July
    daylight = 12 + 3.5 * season
    frames = []
    for r in range(spec.regions):
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


def _forecasts(
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


def holiday_dates(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    years = range(start.year, end.year + 2)
    return pd.DatetimeIndex(sorted(holidays.country_holidays(HOLIDAY_COUNTRY, years=years)))


def _orders(
    spec: ScaleSpec,
    days: pd.DatetimeIndex,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    categories: list[Category],
    weather: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The order lines, and the promotion calendar (store, product, day) they were drawn from."""
    n_s, n_p, n_d = len(stores), len(products), len(days)

    # (store, day) weather drivers, scaled to about 0..2
    region = stores["region_id"].to_numpy()
    wx = weather.set_index(["region_id", "date"]).sort_index()
    pick = pd.MultiIndex.from_product([region, days])
    temp = wx["temperature_c"].reindex(pick).to_numpy().reshape(n_s, n_d)
    rain = np.clip(wx["precipitation_mm"].reindex(pick).to_numpy().reshape(n_s, n_d) / 5, 0, 3)
    sun = wx["sunshine_hours"].reindex(pick).to_numpy().reshape(n_s, n_d) / 6
    heat = np.clip(temp - 18, 0, None) / 6
    cold = np.clip(12 - temp, 0, None) / 6

    coef = {
        k: np.array([getattr(c, k) for c in categories]) for k in ("rain", "heat", "sun", "cold")
    }
    log_weather = (
        coef["rain"][None, :, None] * rain[:, None, :]
        + coef["heat"][None, :, None] * heat[:, None, :]
        + coef["sun"][None, :, None] * (sun[:, None, :] - 1)
        + coef["cold"][None, :, None] * cold[:, None, :]
    )

    # calendar: weekday, a mild yearly wave, holidays and the days before them
    holiday_set = holiday_dates(days[0], days[-1])
    is_holiday = days.isin(holiday_set)
    pre_holiday = np.zeros(n_d, dtype=bool)
    for lag in (1, 2, 3):
        pre_holiday |= days.isin(holiday_set - pd.Timedelta(days=lag))
    calendar = (
        WEEKDAY_EFFECT[days.dayofweek]
        * (1 + 0.1 * np.sin(2 * np.pi * days.dayofyear.to_numpy() / 365.25))
        * np.where(is_holiday, 1.5, np.where(pre_holiday, 1.2, 1.0))
    )
    december_gifts = np.where(days.month == 12, 1.6, 1.0)

    store_size = rng.lognormal(0, 0.35, n_s)
    popularity = rng.lognormal(0, 0.3, n_p)
    base = np.array([c.base for c in categories])
    stocked = rng.random((n_s, n_p)) < spec.stock_share
    promo = _promotions(n_s, n_p, n_d, rng) & stocked[:, :, None]

    rebuy = np.array([c.lifespan is not None for c in categories])
    walk_in_share = np.where(rebuy, 1 - CYCLE_SHARE, 1.0)
    scale_sp = VOLUME * store_size[:, None] * popularity[None, :] * base[None, :]  # (s, p)
    gifts = np.array([c.name == "headphones" for c in categories])
    lam = (
        scale_sp[:, :, None]
        * walk_in_share[None, :, None]
        * calendar[None, None, :]
        * np.where(gifts[None, :, None], december_gifts[None, None, :], 1.0)
        * np.exp(log_weather)
        * np.where(promo, PROMO_LIFT, 1.0)
        * stocked[:, :, None]
    )
    customers_per_store = np.maximum(200, (scale_sp.sum(axis=1) * 400).astype(int))

    walk_in = _walk_in_lines(lam, customers_per_store, rng)
    cycles = _cycle_lines(
        scale_sp, rebuy, stocked, promo, calendar, categories, customers_per_store, n_d, rng
    )
    partners = _partner_lines(walk_in, categories, spec.products_per_category, stocked, rng)
    lines = pd.concat([walk_in, cycles, partners], ignore_index=True)

    lines["promo"] = promo[lines["s"], lines["p"], lines["d"]]
    list_price = products["list_price"].to_numpy()
    lines["unit_price"] = np.round(
        list_price[lines["p"]] * np.where(lines["promo"], 1 - PROMO_DISCOUNT, 1.0), 2
    )
    seconds = rng.integers(8 * 3600, 21 * 3600, len(lines))
    # lines of one basket share the basket's time
    seconds = pd.Series(seconds).groupby(lines["basket"].to_numpy()).transform("first").to_numpy()
    lines["ordered_at"] = (
        days[lines["d"].to_numpy()] + pd.to_timedelta(seconds, unit="s")
    ).tz_localize("UTC")
    lines = lines.sort_values(["ordered_at", "basket", "p"], kind="stable").reset_index(drop=True)
    basket_codes, _ = pd.factorize(lines["basket"])
    orders = pd.DataFrame(
        {
            "order_id": _ids("O", basket_codes, 8),
            "customer_id": _ids("C", lines["customer"].to_numpy(), 7),
            "store_id": stores["store_id"].to_numpy()[lines["s"]],
            "ordered_at": lines["ordered_at"],
            "product_id": products["product_id"].to_numpy()[lines["p"]],
            "quantity": lines["quantity"].to_numpy().astype("int64"),
            "unit_price": lines["unit_price"].to_numpy(),
            "promo": lines["promo"].to_numpy(),
        }
    )
    return orders, promo


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def _promotions(n_s: int, n_p: int, n_d: int, rng: np.random.Generator) -> np.ndarray:
    """Promotion days per (store, product): runs of 3 to 7 days."""
    starts = rng.random((n_s, n_p, n_d)) < PROMO_START_RATE
    length = rng.integers(3, 8, (n_s, n_p, n_d))
    promo = np.zeros((n_s, n_p, n_d), dtype=bool)
    for offset in range(7):
        active = starts & (length > offset)
        promo[:, :, offset:] |= active[:, :, : n_d - offset]
    return promo


def _walk_in_lines(
    lam: np.ndarray, customers_per_store: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """One basket per walk-in purchase; quantity 1, sometimes more."""
    mean_quantity = 1.2
    events = rng.poisson(lam / mean_quantity)
    cells = np.repeat(np.arange(events.size), events.ravel())
    s, p, d = np.unravel_index(cells, lam.shape)
    n = len(cells)
    return pd.DataFrame(
        {
            "s": s,
            "p": p,
            "d": d,
            "quantity": 1 + rng.poisson(mean_quantity - 1, n),
            "customer": _customer(s, customers_per_store, rng),
            "basket": np.arange(n, dtype=np.int64),
        }
    )


def _customer(s: np.ndarray, customers_per_store: np.ndarray, rng: np.random.Generator):
    """Customers are numbered per store so that every store has its own clientele."""
    offset = np.concatenate([[0], np.cumsum(customers_per_store)[:-1]])
    return offset[s] + (rng.random(len(s)) * customers_per_store[s]).astype(np.int64)


def _cycle_lines(
    scale_sp: np.ndarray,
    rebuy: np.ndarray,
    stocked: np.ndarray,
    promo: np.ndarray,
    calendar: np.ndarray,
    categories: list[Category],
    customers_per_store: np.ndarray,
    n_d: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Re-buying customers: a first purchase, then one every lifespan (± noise) until churn.

    Some customers are already mid-cycle when the history starts; the rest are
    recruited day by day, most of them by promotions.
    """
    frames = []
    for p in np.flatnonzero(rebuy):
        lifespan = float(categories[p].lifespan)
        boost = np.where(promo[:, p, :], PROMO_RECRUIT, 1.0)
        # recruits per day such that re-buying demand is CYCLE_SHARE of the product's at
        # steady state (each recruit buys 1 / CHURN times on average)
        rate = CYCLE_SHARE * scale_sp[:, p] * CHURN / boost.mean(axis=1)
        recruit = rng.poisson(rate[:, None] * calendar[None, :] * boost) * stocked[:, p, None]
        s_new, d_new = np.nonzero(recruit)
        s_new = np.repeat(s_new, recruit[s_new, d_new])
        d_new = np.repeat(d_new, recruit[recruit > 0]).astype(float)
        # the installed base at the start: steady state of recruits and churn
        installed = rng.poisson(CYCLE_SHARE * scale_sp[:, p] * lifespan) * stocked[:, p]
        s_old = np.repeat(np.arange(len(installed)), installed)
        d_old = rng.random(len(s_old)) * lifespan
        s_chain = np.concatenate([s_new, s_old])
        first = np.concatenate([d_new, d_old])
        max_k = int(np.ceil(n_d / (lifespan * 0.6))) + 1
        intervals = lifespan * np.exp(rng.normal(0, INTERVAL_NOISE, (len(first), max_k)))
        intervals[:, 0] = 0.0
        when = first[:, None] + np.cumsum(intervals, axis=1)
        purchases = rng.geometric(CHURN, len(first))  # how many times the customer buys
        alive = np.arange(max_k)[None, :] < purchases[:, None]
        keep = alive & (when < n_d)
        chain, k = np.nonzero(keep)
        customer = _customer(s_chain, customers_per_store, rng)
        frames.append(
            pd.DataFrame(
                {
                    "s": s_chain[chain],
                    "p": p,
                    "d": when[chain, k].astype(np.int64),
                    "quantity": 1,
                    "customer": customer[chain],
                }
            )
        )
    lines = pd.concat(frames, ignore_index=True)
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
    lines = lines[stocked[lines["s"], lines["p"]]]
    lines["quantity"] = 1
    return lines
