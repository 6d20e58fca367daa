"""The prefix test: the guard of every feature transform against reading the future.

A feature row stamped as known at an instant may only depend on raw rows known by
then. Checking stamps cannot see a computed leak (a ``LEAD()``, an estimate over
the whole history): the stamp is written by the same code as the value. So the
check builds the feature tables three times, from the raw data as it is, with
everything known after the close of day T deleted, and with everything known after
it changed (values perturbed, rows added), and asks that every feature row known
at or before that close be identical in the three builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

Frames = Mapping[str, pd.DataFrame]
Build = Callable[[Frames], Mapping[str, pd.DataFrame]]

# every feature view's "became known at" field (see feature_repo/feature_views.py)
KNOWN_AT = [
    "sales_known_at",
    "replenishment_known_at",
    "lifespan_known_at",
    "weather_known_at",
    "forecast_issued_at",
]

# the key of a feature row, besides its event_timestamp, per feature table
FEATURE_KEYS: dict[str, tuple[str, ...]] = {
    "store_product_daily": ("store_id", "product_id"),
    "store_product_replenishment": ("store_id", "product_id"),
    "product_lifespan": ("product_id",),
    "region_weather_daily": ("region_id",),
    "region_weather_forecast": ("region_id", "target_date"),
    "region_weather_climate": ("region_id", "target_date"),
    "store_attributes": ("store_id",),
    "product_attributes": ("product_id",),
}


def _observed_day_closed(frame: pd.DataFrame) -> pd.Series:
    return (frame["date"] + pd.Timedelta(days=1)).dt.tz_localize("UTC")


# when each raw row becomes known; None: master data with no time of its own, the same
# in every build (its rows are stamped at the start of the history)
RAW_KNOWN_AT: dict[str, Callable[[pd.DataFrame], pd.Series] | None] = {
    "orders": lambda f: f["ordered_at"],
    "weather_observed": _observed_day_closed,  # a day's weather is known when it ends
    "weather_forecast": lambda f: f["issued_at"],
    "products": None,
    "stores": None,
}


def close_of(day: str | pd.Timestamp) -> pd.Timestamp:
    """The instant day ``day`` closes (00:00 UTC of the next day): what is known 'at T'."""
    return pd.Timestamp(day).tz_localize(None).normalize().tz_localize("UTC") + pd.Timedelta(days=1)


def _later(name: str, frame: pd.DataFrame, close: pd.Timestamp) -> pd.Series:
    if name not in RAW_KNOWN_AT:
        raise KeyError(f"raw table {name!r}: say in RAW_KNOWN_AT when its rows become known")
    known = RAW_KNOWN_AT[name]
    if known is None:
        return pd.Series(False, index=frame.index)
    return known(frame) > close


def delete_after(frames: Frames, close: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The raw tables as they were at ``close``: every row known later deleted."""
    return {
        name: frame[~_later(name, frame, close)].reset_index(drop=True)
        for name, frame in frames.items()
    }


def perturb_after(frames: Frames, close: pd.Timestamp, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The raw tables with every row known after ``close`` changed, and rows added after it.

    Orders: other quantities, prices, promotions, customers and products, extra
    baskets, and a product bundled into every basket (a new co-purchase pair).
    Weather: other observations, extra days. Forecasts issued later: other values,
    extra issues. Values stay within the raw data contract.
    """
    rng = np.random.default_rng(seed)
    out = dict(frames)

    orders = frames["orders"].copy()
    late = _later("orders", orders, close).to_numpy()
    n = int(late.sum())
    products = frames["products"]["product_id"].to_numpy()
    orders.loc[late, "quantity"] = orders.loc[late, "quantity"] * 3 + 1
    orders.loc[late, "unit_price"] = (orders.loc[late, "unit_price"] * 1.7 + 0.01).round(2)
    if "promo" in orders:
        orders.loc[late, "promo"] = ~orders.loc[late, "promo"].astype(bool)
    orders.loc[late, "customer_id"] = rng.choice(
        np.concatenate([orders["customer_id"].unique()[:50], [f"CX{i:05d}" for i in range(50)]]),
        n,
    )
    orders.loc[late, "product_id"] = rng.choice(products, n)
    later = orders[late]
    bundle = later.drop_duplicates("order_id").assign(product_id=products[0], quantity=1)
    extra = later.sample(frac=0.5, random_state=seed).assign(
        order_id=lambda f: "X" + f["order_id"].astype(str),
        customer_id=lambda f: "CY" + f["customer_id"].astype(str),
        ordered_at=lambda f: f["ordered_at"] + pd.Timedelta(hours=1),
    )
    out["orders"] = pd.concat([orders, bundle, extra], ignore_index=True)

    observed = frames["weather_observed"].copy()
    late = _later("weather_observed", observed, close)
    observed.loc[late, "temperature_c"] = (observed.loc[late, "temperature_c"] + 7).clip(-60, 60)
    observed.loc[late, "precipitation_mm"] = observed.loc[late, "precipitation_mm"] * 2 + 3
    observed.loc[late, "sunshine_hours"] = (24 - observed.loc[late, "sunshine_hours"]).clip(0, 24)
    last = observed.groupby("region_id")["date"].transform("max")
    more = observed[observed["date"] == last]
    more = more.assign(date=more["date"] + pd.Timedelta(days=1))
    more = more[_later("weather_observed", more, close)]
    out["weather_observed"] = pd.concat([observed, more], ignore_index=True)

    forecast = frames["weather_forecast"].copy()
    late = _later("weather_forecast", forecast, close)
    forecast.loc[late, "temperature_c"] = (forecast.loc[late, "temperature_c"] - 5).clip(-60, 60)
    forecast.loc[late, "precipitation_mm"] = forecast.loc[late, "precipitation_mm"] + 4
    forecast.loc[late, "sunshine_hours"] = (forecast.loc[late, "sunshine_hours"] / 2).round(1)
    reissued = forecast[late].assign(
        issued_at=lambda f: f["issued_at"] + pd.Timedelta(hours=6), temperature_c=0.0
    )
    out["weather_forecast"] = pd.concat([forecast, reissued], ignore_index=True)
    return out


@dataclass(frozen=True)
class Change:
    """Rows of ``table`` known at the close whose ``column`` differs in the ``variant`` build."""

    table: str
    column: str  # "<row>": the row itself is missing from one build
    variant: str  # what happened after the close: "deleted", "perturbed", ...
    rows: int
    example: str

    def __str__(self) -> str:
        return (
            f"{self.table}.{self.column}: {self.rows} row(s) known at the close differ when "
            f"everything after it is {self.variant} (e.g. {self.example})"
        )


def _key_text(row: pd.Series, key: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in key)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    both_null = a.isna().to_numpy() & b.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            return both_null | np.isclose(x, y, rtol=1e-12, atol=1e-12)
    return both_null | (a.to_numpy() == b.to_numpy())


def compare(
    full: Mapping[str, pd.DataFrame],
    other: Mapping[str, pd.DataFrame],
    close: pd.Timestamp,
    variant: str,
) -> list[Change]:
    """Every difference between two builds among the rows known at or before ``close``."""
    missing = set(full) ^ set(FEATURE_KEYS)
    if missing:
        raise KeyError(f"feature tables without a key in FEATURE_KEYS: {sorted(missing)}")
    changes = []
    for table, keys in FEATURE_KEYS.items():
        key = [*keys, "event_timestamp"]
        a, b = full[table], other[table]
        a = a[pd.to_datetime(a["event_timestamp"], utc=True) <= close]
        b = b[pd.to_datetime(b["event_timestamp"], utc=True) <= close]
        for side in (a, b):
            duplicated = side.duplicated(key)
            assert not duplicated.any(), f"{table}: {duplicated.sum()} rows share a key {key}"
        merged = a.merge(b, on=key, how="outer", suffixes=("", " other"), indicator=True)
        alone = merged["_merge"] != "both"
        if alone.any():
            row = merged[alone].iloc[0]
            side = "only in the full build" if row["_merge"] == "left_only" else "missing there"
            example = f"{_key_text(row, key)} {side}"
            changes.append(Change(table, "<row>", variant, int(alone.sum()), example))
        merged = merged[~alone]
        for column in a.columns:
            if column in key:
                continue
            differs = ~_same(merged[column], merged[f"{column} other"])
            if differs.any():
                row = merged[differs].iloc[0]
                example = f"{_key_text(row, key)}: {row[column]} vs {row[f'{column} other']}"
                changes.append(Change(table, column, variant, int(differs.sum()), example))
    return changes


def prefix_changes(
    build: Build, frames: Frames, day: str | pd.Timestamp, full: Frames | None = None
) -> list[Change]:
    """Build from ``frames``, with everything after ``day`` deleted, and perturbed; compare.

    ``full`` is the build of ``frames`` when the caller has it already.
    """
    close = close_of(day)
    full = build(frames) if full is None else full
    changes = compare(full, build(delete_after(frames, close)), close, "deleted")
    return changes + compare(full, build(perturb_after(frames, close)), close, "perturbed")


def assert_prefix_stable(
    build: Build, frames: Frames, day: str | pd.Timestamp, full: Frames | None = None
) -> None:
    """Every feature row known at the close of ``day`` is the same whatever happened later."""
    changes = prefix_changes(build, frames, day, full)
    assert not changes, f"feature rows known at {close_of(day)} read later data:\n  " + "\n  ".join(
        map(str, changes)
    )
