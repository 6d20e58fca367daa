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

Two kinds of retailer: the order-line scales (tiny, default, large) sell order
lines with customers and baskets (synthetic/generating/orders.py); the ``m5`` scale
sells 30,000+ store × product series as aggregated daily units
(synthetic/generating/daily_sales.py). Either way the sales table is produced in
chunks (a few stores, or a run of days) that :func:`stream` hands to the writer one
at a time, so no scale holds its whole sales table; :func:`generate` gathers the
chunks in memory for the small scales (tests, examples). The same seed gives the
same tables, bit for bit, whatever the chunk size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from demand.calendar import SalesTable
from demand.settings import Scale
from rawdata.raw import Chunk, Stream
from synthetic.generating import daily_sales
from synthetic.generating.catalogue import CATEGORIES, Category
from synthetic.generating.drivers import PROMO_DISCOUNT, drivers, holiday_dates
from synthetic.generating.master import FORECAST_LEADS, forecasts, products, stores, weather
from synthetic.generating.orders import OrderModel, store_lines

__all__ = [
    "CATEGORIES",
    "FORECAST_LEADS",
    "PROMO_DISCOUNT",
    "Category",
    "holiday_dates",
]

HISTORY_START = pd.Timestamp("2023-01-01")
# Days simulated past every scale's history, so that `demand generate --append-days N`
# can release later days of the same retailer without changing any earlier row.
APPEND_RESERVE_DAYS = 120
# Units per store and day of an average product: high enough that the drivers
# above, not Poisson noise, decide most of a day's sales.
VOLUME = 4.0


@dataclass(frozen=True)
class ScaleSpec:
    regions: int
    stores: int
    products_per_category: int
    days: int
    stock_share: float  # share of (store, product) pairs a store carries
    sales_table: SalesTable = SalesTable.orders
    volume: float = VOLUME
    popularity_sd: float = 0.3  # spread of products' popularity (log scale)
    chunk_stores: int = 4  # order lines: stores generated and written together
    chunk_days: int = 28  # daily sales: days generated and written together


SCALES: dict[Scale, ScaleSpec] = {
    Scale.tiny: ScaleSpec(regions=2, stores=4, products_per_category=1, days=210, stock_share=1.0),
    Scale.default: ScaleSpec(
        regions=4, stores=10, products_per_category=2, days=730, stock_share=0.95
    ),
    Scale.large: ScaleSpec(
        regions=8, stores=20, products_per_category=7, days=1095, stock_share=0.9
    ),
    # The M5 competition's size: 50 stores × 624 products, 98% stocked = ~30,600 series,
    # three years of days = ~33.6 M rows. Volume and popularity make most series sell
    # less than a unit a day (intermittent, as M5 is).
    Scale.m5: ScaleSpec(
        regions=10,
        stores=50,
        products_per_category=52,
        days=1100,
        stock_share=0.98,
        sales_table=SalesTable.sales,
        volume=0.6,
        popularity_sd=0.8,
    ),
}


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
    # show it only on the days something sold (synthetic/aggregate.py plans from it)
    promotion_days: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "orders": self.orders,
            "products": self.products,
            "stores": self.stores,
            "weather_observed": self.weather_observed,
            "weather_forecast": self.weather_forecast,
        }


def stream(
    scale: Scale | str = Scale.default,
    seed: int = 7,
    extra_days: int = 0,
    days: int | None = None,
    chunk: int | None = None,
) -> Stream:
    """The retailer at ``scale``; the same ``(scale, seed)`` gives the same data.

    ``extra_days`` releases that many more days of the same retailer, the way new
    nights of data arrive: the generator always simulates APPEND_RESERVE_DAYS past
    the history and releases only what was known by the end of the last day, so
    the days before are identical, row for row, whatever ``extra_days`` is.
    ``days`` replaces the scale's history length (tests that need two years of weeks
    from the tiny retailer); other days give another retailer. ``chunk`` replaces
    the scale's chunk size (stores, or days of daily sales); it changes no row.
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
    all_days = pd.date_range(HISTORY_START, periods=spec.days + APPEND_RESERVE_DAYS, freq="D")
    store_table = stores(spec.stores, spec.regions, rng)
    product_table, categories = products(spec.products_per_category, rng)
    observed = weather(spec.regions, all_days, rng)  # runs FORECAST_LEADS days past the history
    forecast = forecasts(observed, all_days, rng)
    store_size = rng.lognormal(0, 0.35, spec.stores)
    popularity = rng.lognormal(0, spec.popularity_sd, len(categories))
    base = np.array([c.base for c in categories])
    mean = spec.volume * store_size[:, None] * popularity[None, :] * base[None, :]  # (s, p)
    moved = drivers(store_table, observed, all_days)

    n_history = spec.days + extra_days
    last_day = all_days[n_history - 1]
    closed = (last_day + pd.Timedelta(days=1)).tz_localize("UTC")  # the end of the last day
    tables = {
        "products": product_table,
        "stores": store_table,
        "weather_observed": observed[observed["date"] <= last_day].reset_index(drop=True),
        "weather_forecast": forecast[forecast["issued_at"] < closed].reset_index(drop=True),
    }
    true_lifespan = pd.Series(
        [c.lifespan if c.lifespan else np.nan for c in categories],
        index=product_table["product_id"],
        name="true_lifespan_days",
    )
    if spec.sales_table is SalesTable.sales:
        model = daily_sales.sales_model(
            seed, all_days, store_table, product_table, categories, moved, mean, spec.stock_share
        )
        size = chunk or spec.chunk_days
        starts = range(0, n_history, size)
        chunks = _day_chunks(model, starts, size, n_history)
    else:
        model = OrderModel(
            seed=seed,
            stock_share=spec.stock_share,
            per_category=spec.products_per_category,
            categories=categories,
            drivers=moved,
            scale_sp=mean,
            customers_per_store=np.maximum(200, (mean.sum(axis=1) * 400).astype(int)),
            list_price=product_table["list_price"].to_numpy(),
        )
        size = chunk or spec.chunk_stores
        starts = range(0, spec.stores, size)
        chunks = _store_chunks(model, store_table, product_table, all_days, starts, size, closed)
    return Stream(spec.sales_table, tables, chunks, len(starts), true_lifespan)


def _day_chunks(
    model: daily_sales.SalesModel, starts: range, size: int, n_history: int
) -> Iterator[Chunk]:
    for first in starts:
        stop = min(first + size, n_history)
        label = f"days {model.days[first]:%Y-%m-%d} to {model.days[stop - 1]:%Y-%m-%d}"
        yield Chunk(label, daily_sales.day_rows(model, first, stop))


def _store_chunks(
    model: OrderModel,
    store_table: pd.DataFrame,
    product_table: pd.DataFrame,
    days: pd.DatetimeIndex,
    starts: range,
    size: int,
    closed: pd.Timestamp,
) -> Iterator[Chunk]:
    store_ids = store_table["store_id"].to_numpy()
    product_ids = product_table["product_id"].to_numpy()
    baskets = 0  # order ids run on across stores and chunks
    for first in starts:
        frames, promos = [], []
        for s in range(first, min(first + size, len(store_table))):
            drawn = store_lines(model, s, len(days))
            orders, baskets = _orders(drawn.lines, store_ids[s], product_ids, days, baskets)
            frames.append(orders[orders["ordered_at"] < closed])
            p, d = np.nonzero(drawn.promo)
            # the whole calendar, the reserve days too: a retailer plans its promotions ahead
            promos.append(
                pd.DataFrame(
                    {"store_id": store_ids[s], "product_id": product_ids[p], "date": days[d]}
                )
            )
        label = f"stores {store_ids[first]} to {store_ids[s]}"
        yield Chunk(
            label, pd.concat(frames, ignore_index=True), pd.concat(promos, ignore_index=True)
        )


def _orders(
    lines: pd.DataFrame,
    store_id: str,
    product_ids: np.ndarray,
    days: pd.DatetimeIndex,
    baskets: int,
) -> tuple[pd.DataFrame, int]:
    """One store's lines as order-table rows, in time order; and the baskets numbered so far."""
    ordered_at = (
        days[lines["d"].to_numpy()] + pd.to_timedelta(lines["seconds"].to_numpy(), unit="s")
    ).tz_localize("UTC")
    lines = lines.assign(ordered_at=ordered_at)
    lines = lines.sort_values(["ordered_at", "basket", "p"], kind="stable").reset_index(drop=True)
    codes, uniques = pd.factorize(lines["basket"])
    orders = pd.DataFrame(
        {
            "order_id": _ids("O", baskets + codes, 8),
            "customer_id": _ids("C", lines["customer"].to_numpy(), 7),
            "store_id": store_id,
            "ordered_at": lines["ordered_at"],
            "product_id": product_ids[lines["p"].to_numpy()],
            "quantity": lines["quantity"].to_numpy().astype("int64"),
            "unit_price": lines["unit_price"].to_numpy(),
            "promo": lines["promo"].to_numpy(),
        }
    )
    return orders, baskets + len(uniques)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def generate(
    scale: Scale | str = Scale.default,
    seed: int = 7,
    extra_days: int = 0,
    days: int | None = None,
    chunk: int | None = None,
) -> RetailData:
    """The order-line retailer at ``scale``, whole in memory (see :func:`stream`).

    For the small scales (tests, examples); the writer streams every scale.
    """
    if SCALES[Scale(scale)].sales_table is not SalesTable.orders:
        raise ValueError(
            f"the {Scale(scale).value} scale sells aggregated daily sales, too many rows to "
            "hold in memory: write it with `demand generate`"
        )
    generated = stream(scale, seed, extra_days, days, chunk)
    chunks = list(generated.chunks)
    return RetailData(
        pd.concat([c.rows for c in chunks], ignore_index=True),
        true_lifespan=generated.true_lifespan,
        promotion_days=pd.concat([c.promotion_days for c in chunks], ignore_index=True),
        **generated.tables,
    )


def table_digests(scale: Scale | str = Scale.default, seed: int = 7) -> dict[str, str]:
    """A sha256 of each raw table's content, as :func:`stream` hands it to the writer.

    The model's quality goals measure the model, never the data: these digests, recorded
    in the tests, prove the retailer stays the same while models are tuned on it. Column
    names, dtypes and each row's values are hashed (pandas' row hashes), not parquet
    bytes, which change with the writer's version. The sales table is hashed chunk by
    chunk, so no scale is held whole, and its digest does not depend on the chunk size.
    """
    generated = stream(scale, seed)
    digests = {name: _content_digest([frame]) for name, frame in generated.tables.items()}
    sales = (
        c.rows if isinstance(c.rows, pd.DataFrame) else c.rows.to_pandas() for c in generated.chunks
    )
    digests[generated.sales_table.value] = _content_digest(sales)
    return digests


def _content_digest(frames: Iterator[pd.DataFrame] | list[pd.DataFrame]) -> str:
    sha = hashlib.sha256()
    for number, frame in enumerate(frames):
        if number == 0:  # the schema once: the same rows in other chunks hash the same
            sha.update(repr([(c, str(frame[c].dtype)) for c in frame.columns]).encode())
        sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()
