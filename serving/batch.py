"""Batch forecasts: every store × product for the next horizon days, as the service answers them.

Planners and replenishment systems read forecasts in bulk. This scores every
key the online store holds for each day of the model's horizon after the key's
origin, through the same lookup and the same scoring as ``/forecast``, and
publishes the rows where those systems read: one parquet file per origin under
DATA_DIR/forecasts and, when a database is configured (the team profile), the
table ``demand_forecasts``. Publishing is idempotent: an origin's rows are
replaced whole, so a second run leaves one set of rows per origin.

The staging version's forecasts are published the same way as a shadow (``shadow=True``),
never where planners read: DATA_DIR/forecasts/shadow/version=N/origin=….parquet and the
table ``demand_forecasts_shadow``, keyed by version. Once their targets close they are
the live evidence the production gate compares with production's (monitoring/shadow.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from demand.quantiles import column as quantile_column
from demand.settings import Settings
from serving.model_loader import Loaded
from serving.predict import lead_time_quantiles, score_all, short_history

TABLE = "demand_forecasts"
SHADOW_TABLE = "demand_forecasts_shadow"
COLUMNS = [
    "model_name",
    "model_version",
    "store_id",
    "product_id",
    "origin_date",
    "target_date",
    "horizon",
    "units",
]
Progress = Callable[[str], None]
# items per lookup: large enough that a key's horizons and most repeated view keys share
# a read, small enough that one read's keys stay well under SQLite's 32,766 bound
# parameters (Feast's SQLite store binds every key of a read) and a batch's columns small
BATCH_ITEMS = 20_000


def keys(settings: Settings) -> list[tuple[str, str]]:
    """Every (store, product) the feature tables describe, sorted."""
    import pyarrow.parquet as pq

    table = "store_product_weekly" if _weekly(settings) else "store_product_daily"
    # the keys as dictionaries: a row per series and day is ~36 M rows at the M5 size,
    # gigabytes as Python strings, a few hundred megabytes as codes
    keys = pq.read_table(
        settings.feature_dir / f"{table}.parquet",
        columns=["store_id", "product_id"],
        read_dictionary=["store_id", "product_id"],
    ).to_pandas()
    unique = keys.drop_duplicates()
    return sorted(
        zip(unique["store_id"].astype(str), unique["product_id"].astype(str), strict=True)
    )


def _weekly(settings: Settings) -> bool:
    # the purchase table of the grain built last (features.plan.remove_stale removes the other one)
    return (settings.feature_dir / "store_product_weekly.parquet").exists()


def forecast_all(settings: Settings, loaded: Loaded, progress: Progress = print) -> pd.DataFrame:
    """One row per key and target period (origin + 1 … origin + horizon periods of the
    model's grain), in key order; keys the online store knows no origin for are left out.

    The items go through the lookup and scoring of ``/forecast`` in batches of
    ``BATCH_ITEMS``, all horizons of a key in one batch, so each view a key alone keys
    (sales, replenishment, attributes) is read and decoded once per key, and the views
    keyed by the target day (plans, weather forecasts) once per key and day.
    """
    calendar = loaded.lookup.calendar
    horizon = loaded.contract.horizon
    pairs = keys(settings)
    progress(
        f"forecasting {len(pairs) * horizon:,} rows ({len(pairs):,} keys × {horizon} "
        f"{calendar.grain.value}s) with {loaded.name} v{loaded.version}"
    )
    stores = [s for s, _ in pairs for _ in range(horizon)]
    products = [p for _, p in pairs for _ in range(horizon)]
    horizons = list(range(1, horizon + 1)) * len(pairs)
    origins: list = []
    targets: list = []
    units: list[float | None] = []
    bands: list[list[float] | None] = []
    inactive: list[bool] = []
    short: list[bool] = []
    step = max(horizon, BATCH_ITEMS // horizon * horizon)  # whole keys per batch
    for start in range(0, len(stores), step):
        batch = slice(start, start + step)
        vectors = loaded.lookup.fetch(stores[batch], products[batch], horizons=horizons[batch])
        answered, banded = score_all(loaded, stores[batch], products[batch], vectors)
        units += answered
        bands += banded or [None] * len(answered)
        origins += vectors.origin
        targets += vectors.target
        inactive += vectors.inactive()
        short += short_history(loaded, vectors)
        if len(stores) > step:
            progress(f"  {min(start + step, len(stores)):,} of {len(stores):,} rows")
    frame = pd.DataFrame(
        {
            "model_name": loaded.name,
            "model_version": loaded.version,
            "store_id": stores,
            "product_id": products,
            "origin_date": origins,
            "target_date": targets,
            "horizon": horizons,
            "units": units,
        },
        columns=COLUMNS,
    )
    # one column per quantile level (NaN where there are no units); none for a version
    # without quantile forecasts
    for j, level in enumerate(loaded.contract.quantiles if loaded.quantile_model else ()):
        frame[quantile_column(level)] = [float("nan") if b is None else b[j] for b in bands]
    # a key without an origin (no sales row online) has nothing to forecast from; a pair
    # inactive at its origin (stopped selling, delisted) gets no published forecast
    stopped = pd.Series(inactive, index=frame.index, dtype=bool)
    if stopped.any():
        progress(f"left out {stopped.sum() // horizon:,} keys inactive at their origin")
    # a pair too new for the model is published with its baseline's forecast (score did it)
    new = pd.Series(short, index=frame.index, dtype=bool) & ~stopped
    rule = loaded.contract.short_history_rule
    if rule is not None and new.any():
        progress(
            f"{new.sum() // horizon:,} keys fewer than {rule.min_periods} "
            f"{calendar.grain.value}s past their first sale: forecast by {rule.baseline}"
        )
    return frame[frame["origin_date"].notna() & ~stopped].reset_index(drop=True)


def lead_times(
    loaded: Loaded, frame: pd.DataFrame, periods: int, service_level: float | None = None
) -> pd.DataFrame:
    """Each key's total over its next ``periods`` periods, from the quantile columns of
    ``forecast_all``'s ``frame`` (horizons 1..periods): one row per key with the total's
    quantiles and, given a service level, the order-up-to level."""
    levels = loaded.contract.quantiles
    names = [quantile_column(level) for level in levels]
    rows = frame[(frame["horizon"] <= periods)].dropna(subset=names)
    rows = rows.sort_values(["store_id", "product_id", "horizon"])
    whole = rows.groupby(["store_id", "product_id"])["horizon"].transform("count") == periods
    rows = rows[whole]
    keys = rows.drop_duplicates(["store_id", "product_id"])[
        ["model_name", "model_version", "store_id", "product_id", "origin_date"]
    ].reset_index(drop=True)
    per = rows[names].to_numpy(dtype=float).reshape(len(keys), periods, len(levels))
    wanted = [*levels, *([service_level] if service_level is not None else [])]
    if len(keys):
        totals = lead_time_quantiles(loaded.contract, per, 1, wanted)
    else:
        totals = pd.DataFrame(columns=wanted).to_numpy(dtype=float)
    out = keys.assign(lead_time=periods)
    for j, name in enumerate(names):
        out[name] = totals[:, j]
    if service_level is not None:
        out["service_level"] = service_level
        out["order_up_to"] = totals[:, -1]
    return out


def publish_lead_times(settings: Settings, frame: pd.DataFrame, progress: Progress = print):
    """Lead-time totals as parquet, one file per origin under forecasts/lead_time."""
    places = []
    for origin, rows in frame.groupby("origin_date", sort=True):
        places.append(str(_write_parquet(settings.forecast_dir / "lead_time", origin, rows)))
    for place in places:
        progress(f"published {len(frame):,} lead-time rows to {place}")
    return places


def publish(
    settings: Settings, frame: pd.DataFrame, progress: Progress = print, shadow: bool = False
) -> list[str]:
    """Write the forecasts where planners read them (``shadow``: the staging version's,
    beside them, by version); the places written."""
    if frame.empty:
        progress("no forecasts to publish: the online store holds no key with an origin")
        return []
    frame = frame.assign(published_at=datetime.now(UTC))
    places = []
    folder = settings.forecast_dir
    if shadow:
        [version] = frame["model_version"].unique()
        folder = folder / "shadow" / f"version={version}"
    for origin, rows in frame.groupby("origin_date", sort=True):
        places.append(str(_write_parquet(folder, origin, rows)))
    if settings.forecast_database:
        table = SHADOW_TABLE if shadow else TABLE
        places.append(_write_table(settings.forecast_database, frame, table))
    what = "shadow forecast rows (never served)" if shadow else "forecast rows"
    for place in places:
        progress(f"published {len(frame):,} {what} to {place}")
    return places


def _write_parquet(directory: Path, origin, rows: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"origin={origin:%Y-%m-%d}.parquet"
    tmp = path.with_suffix(".parquet.tmp")
    rows.reset_index(drop=True).to_parquet(tmp, index=False)
    tmp.replace(path)  # readers see the old file or the new one, never half of one
    return path


def _write_table(url: str, frame: pd.DataFrame, table: str = TABLE) -> str:
    """Replace the origins' rows in ``table`` in one transaction (the shadow table's key
    has the version: several staging versions may forecast one origin)."""
    import psycopg

    from demand.servers import Database, ServerUnavailable, redact

    key = "model_name, store_id, product_id, origin_date, target_date"
    if table == SHADOW_TABLE:
        key = "model_name, model_version, store_id, product_id, origin_date, target_date"
    database = Database(url)
    database.ensure()
    # Python scalars, not numpy's: what the driver adapts
    extra = [c for c in frame.columns if c.startswith("units_p")]
    written = [*COLUMNS, *extra, "published_at"]
    rows = frame[written].astype(object).where(frame[written].notna(), None)
    rows = rows.itertuples(index=False, name=None)
    try:
        with psycopg.connect(database.conninfo()) as conn, conn.transaction():
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {table} (
                    model_name text NOT NULL,
                    model_version text NOT NULL,
                    store_id text NOT NULL,
                    product_id text NOT NULL,
                    origin_date date NOT NULL,
                    target_date date NOT NULL,
                    horizon integer NOT NULL,
                    units double precision,
                    published_at timestamptz NOT NULL,
                    PRIMARY KEY ({key})
                )"""
            )
            # a table from before quantile forecasts (or other levels) gains their columns;
            # rows published before keep NULL there
            for name in extra:
                conn.execute(
                    f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{name}" double precision'
                )
            for name, version, origin in (
                frame[["model_name", "model_version", "origin_date"]]
                .drop_duplicates()
                .itertuples(index=False)
            ):
                if table == SHADOW_TABLE:
                    conn.execute(
                        f"DELETE FROM {table} WHERE model_name = %s AND model_version = %s "
                        "AND origin_date = %s",
                        (name, version, origin),
                    )
                else:
                    conn.execute(
                        f"DELETE FROM {table} WHERE model_name = %s AND origin_date = %s",
                        (name, origin),
                    )
            quoted = ", ".join(f'"{c}"' for c in written)
            copy_sql = f"COPY {table} ({quoted}) FROM STDIN"
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
    except psycopg.OperationalError as error:
        raise ServerUnavailable(
            f"cannot publish forecasts to PostgreSQL at {redact(url)}: "
            f"{str(error).strip().splitlines()[0]}"
        ) from None
    return f"{redact(url)} table {table}"
