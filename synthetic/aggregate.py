"""A retailer's aggregated export, made from the generated retailer: the test data of
the aggregated contract.

Most retailers cannot export order lines with customer ids; they export units per
store, product and day or week, a weather feed with some measures, and a plan of
prices and promotions. :func:`aggregate` turns the generated retailer into exactly
that, at a grain, so that the aggregated path (build, Feast, training, serving) is
tested on data whose drivers are known:

* ``sales``: units, mean price paid and whether any unit sold on promotion, per
  store, product and whole period (a period cut by the history's ends is dropped,
  as a retailer exports whole periods); no row where nothing sold;
* ``promotions``: the generator's own promotion calendar, planned ahead: per store,
  product and period (the history, and ``plan_ahead_days`` past it), ``promo``
  (any promotion day in the period) and ``price`` (list price less the discount,
  averaged over the period's days), with ``planned_at`` 21 to 34 days before the
  period starts, so a plan is genuinely known before its period;
* ``weather_observed`` (daily, whatever the grain) with the chosen measures, and
  ``weather_forecast`` only when asked for;
* ``products`` and ``stores`` as generated; ``dataset.json`` describing it all.

:func:`write` puts the tables and the description into a raw directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from demand.calendar import EPOCH, Calendar, Grain, RawDescription, SalesTable, Source
from synthetic.generator import PROMO_DISCOUNT, RetailData

MEASURES = ("temperature_c", "precipitation_mm", "sunshine_hours")
PLAN_LEAD_DAYS = (21, 35)  # a period's plan is made this many days (low, high) before it


@dataclass(frozen=True)
class Aggregated:
    tables: dict[str, pd.DataFrame]
    description: RawDescription


def _day_numbers(days: pd.Series) -> np.ndarray:
    return ((days - pd.Timestamp(EPOCH)) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)


def _period_start(days: pd.Series, calendar: Calendar) -> pd.Series:
    """The first day of each day's period (naive dates)."""
    period = (_day_numbers(days) - calendar.offset) // calendar.days
    start = period * calendar.days + calendar.offset
    return pd.Series(pd.Timestamp(EPOCH) + pd.to_timedelta(start, unit="D"), index=days.index)


def aggregate(
    data: RetailData,
    grain: Grain | str = Grain.week,
    week_start: str = "monday",
    measures: tuple[str, ...] = MEASURES,
    forecasts: bool = True,
    promotions: bool = True,
    plan_ahead_days: int = 56,
    seed: int = 0,
) -> Aggregated:
    """The generated retailer as a retailer's aggregated export at ``grain``."""
    calendar = Calendar(Grain(grain), week_start)
    unknown = set(measures) - set(MEASURES)
    if not measures or unknown:
        raise ValueError(f"measures {measures!r}: a non-empty subset of {MEASURES}")
    orders = data.orders
    day = orders["ordered_at"].dt.tz_convert(None).dt.normalize()
    first, last = day.min(), day.max()
    # whole periods only: the first period starting on or after the first day, the last
    # one ending on or before the last day
    first_start = _period_start(pd.Series([first]), calendar).iloc[0]
    if first_start < first:
        first_start += pd.Timedelta(days=calendar.days)
    end = _period_start(pd.Series([last + pd.Timedelta(days=1)]), calendar).iloc[0]  # exclusive

    lines = pd.DataFrame(
        {
            "store_id": orders["store_id"],
            "product_id": orders["product_id"],
            "date": _period_start(day, calendar),
            "units": orders["quantity"].astype(float),
            "revenue": orders["quantity"] * orders["unit_price"],
            "promo": orders["promo"].astype(bool),
        }
    )
    lines = lines[(lines["date"] >= first_start) & (lines["date"] < end)]
    sales = lines.groupby(["store_id", "product_id", "date"], as_index=False).agg(
        units=("units", "sum"), revenue=("revenue", "sum"), promo=("promo", "any")
    )
    sales["price"] = (sales["revenue"] / sales["units"]).round(2)
    sales = sales[["store_id", "product_id", "date", "units", "price", "promo"]]
    sales["date"] = sales["date"].astype("datetime64[ns]")

    weather = data.weather_observed
    weather = weather[(weather["date"] >= first_start) & (weather["date"] < end)]
    tables: dict[str, pd.DataFrame] = {
        "sales": sales.reset_index(drop=True),
        "products": data.products.copy(),
        "stores": data.stores.copy(),
        "weather_observed": weather[["region_id", "date", *measures]].reset_index(drop=True),
    }
    optional = []
    if forecasts:
        forecast = data.weather_forecast
        issued = forecast["issued_at"].dt.tz_convert(None)
        keep = (issued >= first_start) & (issued < end)
        cols = ["region_id", "issued_at", "valid_date", *measures]
        tables["weather_forecast"] = forecast.loc[keep, cols].reset_index(drop=True)
        optional.append("weather_forecast")
    if promotions:
        tables["promotions"] = _plan(
            data, sales, calendar, first_start, end + pd.Timedelta(days=plan_ahead_days), seed
        )
        optional.append("promotions")
    description = RawDescription(
        source=Source.generated,
        grain=calendar.grain,
        week_start=week_start,
        sales_table=SalesTable.sales,
        optional_tables=tuple(optional),
        weather_measures=tuple(measures),
        extra={"aggregated_from": "generator", "first_period": f"{first_start:%Y-%m-%d}"},
    )
    return Aggregated(tables, description)


def _plan(
    data: RetailData,
    sales: pd.DataFrame,
    calendar: Calendar,
    start: pd.Timestamp,
    until: pd.Timestamp,
    seed: int,
) -> pd.DataFrame:
    """The price and promotion plan of every selling pair, one row per period."""
    promo_days = data.promotion_days
    promo_days = promo_days[(promo_days["date"] >= start) & (promo_days["date"] < until)]
    counted = (
        promo_days.assign(date=_period_start(promo_days["date"], calendar))
        .groupby(["store_id", "product_id", "date"])
        .size()
        .rename("promo_days")
    )
    last_promo_day = data.promotion_days["date"].max()  # the calendar's known reach
    until = min(until, _period_start(pd.Series([last_promo_day]), calendar).iloc[0])
    periods = pd.date_range(start, until - pd.Timedelta(days=1), freq=f"{calendar.days}D")
    pairs = sales[["store_id", "product_id"]].drop_duplicates()
    plan = pairs.merge(pd.DataFrame({"date": periods}), how="cross")
    plan = plan.join(counted, on=["store_id", "product_id", "date"])
    share = plan["promo_days"].fillna(0.0) / calendar.days
    list_price = plan["product_id"].map(data.products.set_index("product_id")["list_price"])
    plan["promo"] = share > 0
    plan["price"] = (list_price * (1 - PROMO_DISCOUNT * share)).round(2)
    rng = np.random.default_rng(seed)
    lead = rng.integers(PLAN_LEAD_DAYS[0], PLAN_LEAD_DAYS[1], len(plan))
    plan["planned_at"] = (plan["date"] - pd.to_timedelta(lead, unit="D")).dt.tz_localize("UTC")
    plan["date"] = plan["date"].astype("datetime64[ns]")
    plan["planned_at"] = plan["planned_at"].astype("datetime64[ns, UTC]")
    return plan[["store_id", "product_id", "date", "promo", "price", "planned_at"]]


def write(aggregated: Aggregated, raw_dir: Path) -> dict[str, int]:
    """The tables as ``raw_dir/<table>.parquet`` and ``dataset.json``; rows per table.

    Test data straight from the generator: nothing to validate or quarantine (the
    importer does that for a retailer's files). Files of the other contract
    (``orders.parquet``) are removed so that the directory holds one data set.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("orders", "weather_forecast", "promotions"):
        if stale not in aggregated.tables:
            (raw_dir / f"{stale}.parquet").unlink(missing_ok=True)
    for name, frame in aggregated.tables.items():
        tmp = raw_dir / f"{name}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(raw_dir / f"{name}.parquet")
    aggregated.description.write(raw_dir)
    return {name: len(frame) for name, frame in aggregated.tables.items()}


def export_files(aggregated: Aggregated, folder: Path) -> dict[str, int]:
    """The tables as a retailer would export them: one CSV per table in ``folder``.

    What ``demand import`` reads: ISO dates, instants in UTC with an offset, prices to
    the cent, weather to a tenth, whole units written as integers. Rows per file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, frame in aggregated.tables.items():
        out = frame.copy()
        for column in out.columns:
            values = out[column]
            if isinstance(values.dtype, pd.DatetimeTZDtype):
                out[column] = values.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            elif pd.api.types.is_datetime64_any_dtype(values):
                out[column] = values.dt.strftime("%Y-%m-%d")
            elif pd.api.types.is_bool_dtype(values):
                out[column] = values.map({True: "true", False: "false"})
            elif pd.api.types.is_float_dtype(values):
                whole = values.dropna()
                if len(whole) and (whole == whole.round()).all():
                    out[column] = values.astype("Int64")
                else:
                    out[column] = values.round(2 if column in ("price", "list_price") else 1)
        out.to_csv(folder / f"{name}.csv", index=False)
        rows[name] = len(out)
    return rows
