"""Benchmark the feature pipeline on the large scale.

    python -m benchmarks.features [--scale large] [--entity-rows 100000 1000000] [--no-redis]
                                  [--import-rows 5000000] [--only-import]

Reports the import of a large aggregated sales export (``--import-rows``, written by
the benchmark itself as Parquet and as CSV) in rows/s with validation and peak memory;
feature build time and order lines/s; Feast's ``get_historical_features``
for N entity rows through Feast's DuckDB offline store and through the platform's
ASOF store (feastext/offline_asof.py), against the lower bound, a plain
``pandas.merge_asof`` of the same point-in-time join, with the share of values
on which each agrees with it and whether the two stores return the same cells;
materialization of the same rows into SQLite and into Redis (DEMAND_REDIS_URL) in
entity keys/s (DEMAND_MATERIALIZER's path), each with a check, through Feast's
``online_read``, that the online store holds every key; and stock Feast against the
platform's materializer at ``--materialize-keys`` synthetic keys
(benchmarks/materialization.py). Data goes to DEMAND_DATA_DIR/bench/<scale> so the
user's own data is left alone; the Redis run uses a Feast project and a PostgreSQL
registry database of its own (on the server of DEMAND_FEAST_REGISTRY_URL), removed
with the project's keys afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import imports
from benchmarks.common import (
    Figure,
    console,
    peak_rss_gib,
    report,
    reset_peak,
    team_store,
    timed,
)
from benchmarks.materialization import figures as materialization_figures
from benchmarks.materialization import materialization_bench
from demand.featurestore import open_store
from demand.settings import OfflineStore, Scale, get_settings
from features import pipeline, publish

ROW = "entity_row"
VIEW_TABLES = {
    "store_product_sales": "store_product_daily",
    "store_product_replenishment": "store_product_replenishment",
    "product_lifespan": "product_lifespan",
    "region_weather_observed": "region_weather_daily",
    "region_weather_forecast": "region_weather_forecast",
    "store_attributes": "store_attributes",
    "product_attributes": "product_attributes",
}


def entity_rows(settings, n: int, rng: np.random.Generator) -> pd.DataFrame:
    keys = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    rows = keys.sample(n, replace=n > len(keys), random_state=int(rng.integers(1 << 30)))
    rows = rows.reset_index(drop=True)
    rows[ROW] = np.arange(n)  # where each entity row was: results are compared row by row
    horizon = rng.integers(1, 8, n)
    target = rows["event_timestamp"].dt.tz_convert(None) + pd.to_timedelta(horizon - 1, "D")
    rows["target_date"] = target.dt.strftime("%Y-%m-%d")
    stores = pd.read_parquet(settings.raw_dir / "stores.parquet")
    return rows.merge(stores[["store_id", "region_id"]], on="store_id")


def merge_asof_join(settings, store, rows: pd.DataFrame) -> pd.DataFrame:
    """The same point-in-time join, view by view, with pandas.merge_asof (the lower bound).

    Each view's merge carries its keys and times only and finds the matching feature row's
    position; the view's columns are then taken by position and set beside the entity rows
    once: merging the growing frame copied every column at each view (two whole results in
    memory, 15 GB at 10 M entity rows)."""
    out = rows.sort_values("event_timestamp").reset_index(drop=True)
    parts = [out]
    for view_name, table in VIEW_TABLES.items():
        view = store.get_feature_view(view_name)
        keys = [e.name for e in view.entity_columns]
        features = [f.name for f in view.features]
        frame = pd.read_parquet(
            settings.feature_dir / f"{table}.parquet", columns=[*keys, *features, "event_timestamp"]
        )
        frame = frame.rename(columns={"event_timestamp": "_ts"}).sort_values("_ts")
        frame = frame.reset_index(drop=True)
        tolerance = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
        matched = pd.merge_asof(
            out[[*keys, "event_timestamp"]],
            frame[[*keys, "_ts"]].assign(_at=np.arange(len(frame))),
            left_on="event_timestamp",
            right_on="_ts",
            by=keys,
            direction="backward",
            tolerance=tolerance,
        )
        # no row (or none fresh): position -1, and the value taken there is null (ints
        # become floats, as merge_asof makes them)
        at = matched["_at"].fillna(-1).to_numpy(dtype=np.int64)
        taken = {f: pd.api.extensions.take(frame[f].array, at, allow_fill=True) for f in features}
        parts.append(pd.DataFrame(taken))
    return pd.concat(parts, axis=1, copy=False)  # the blocks as they are: no second copy


def retrieval(settings, store, asof_store, refs: list[str], entities, args) -> list[dict]:
    """Feast's ``get_historical_features`` for ``entities`` through the ASOF store and
    Feast's DuckDB store, and the same join with ``pandas.merge_asof`` (the lower bound).

    One result is held at a time, so the peak is one store's, not the sum: each is
    written in entity order to the bench folder and compared from there, column by column.
    The DuckDB store's query is interrupted after ``--stock-timeout`` seconds (at 10 M
    entity rows its join of every feature row before each entity row may run for long).
    """
    n = len(entities)
    columns = [r.split(":")[1] for r in refs]
    folder = settings.data_dir / "retrieved"
    folder.mkdir(exist_ok=True)
    seconds, peaks, results, failed, agree = {}, {}, {}, {}, {}

    def saved(label: str, frame: pd.DataFrame) -> None:
        """Written as it is, a million rows at a time: a reordered or converted copy of a
        10 M-row result would double the peak."""
        path = folder / f"{label}-{n}.parquet"
        results[label] = (path, len(frame))
        step = 1_000_000
        first = pa.Table.from_pandas(frame.iloc[:step][[ROW, *columns]], preserve_index=False)
        # a column all null in the first rows: strings (the only object columns here)
        schema = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in first.schema]
        )
        with pq.ParquetWriter(path, schema) as out:
            for start in range(0, len(frame), step):
                part = frame.iloc[start : start + step][[ROW, *columns]]
                out.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))

    reset_peak()
    with timed(seconds, "merge_asof"):
        reference = merge_asof_join(settings, store, entities)
    peaks["merge_asof"] = peak_rss_gib()
    console.print(f"  peak {peaks['merge_asof']:.2f} GiB")
    saved("merge_asof", reference)
    del reference
    for label, feast_store in (("ASOF", asof_store), ("DuckDB", store)):
        reset_peak()
        timeout = args.stock_timeout if label == "DuckDB" else None
        try:
            with timed(seconds, label), interrupted_after(timeout):
                frame = feast_store.get_historical_features(
                    entity_df=entities.copy(), features=refs
                ).to_df()
        except (duckdb.InterruptException, duckdb.OutOfMemoryException) as error:
            failed[label] = (
                f"interrupted after {timeout:.0f} s"
                if isinstance(error, duckdb.InterruptException)
                else f"out of memory: {str(error).splitlines()[0][:60]}"
            )
            console.print(f"  {label}: {failed[label]}")
            seconds[label] = None
            peaks[label] = peak_rss_gib()
            continue
        peaks[label] = peak_rss_gib()
        console.print(f"  peak {peaks[label]:.2f} GiB")
        saved(label, frame)
        del frame
        agree[label] = agreement(results[label][0], results["merge_asof"][0], columns)
        console.print(f"  agrees with merge_asof: {agree[label]}")
    path = {label: saved_at for label, (saved_at, _) in results.items()}
    agree["merge_asof"] = ""  # the reference itself
    if seconds["DuckDB"] is not None:
        same = differing_cells(path["ASOF"], path["DuckDB"], columns)
        agree["ASOF"] += "; every cell as DuckDB" if same == 0 else f"; {same:,} cells ≠ DuckDB"
    for saved_at in path.values():
        saved_at.unlink()
    rows = []
    for label in ("DuckDB", "ASOF", "merge_asof"):
        step = "merge_asof" if label == "merge_asof" else f"get_historical_features ({label} store)"
        spent = seconds[label]
        rows.append(
            {
                "step": f"{step} {n:,}",
                "rows": results[label][1] if label in results else n,
                "seconds": spent if spent is not None else "",
                "rows/s": n / spent if spent else "",
                "vs merge_asof": f"{spent / seconds['merge_asof']:.2f}×" if spent else "",
                "agree": agree[label] if spent is not None else failed[label],
                "peak GiB": peaks[label],
            }
        )
    return rows


def agreement(path: Path, reference: Path, columns: list[str]) -> str:
    """The share of cells equal to the reference's, row by entity row."""
    cells = pq.read_metadata(path).num_rows * len(columns)
    differing = differing_cells(path, reference, columns)
    return "100 %" if differing == 0 else f"{1 - differing / cells:.4%} ({differing:,} differ)"


def differing_cells(a: Path, b: Path, columns: list[str]) -> int:
    """Cells of ``columns`` that differ between two saved results (nulls equal), read one
    column at a time: at 10 M entity rows two whole results would not fit beside the run."""
    # each file's rows in entity order (the stores return them in their own orders)
    orders = [np.argsort(pq.read_table(p, columns=[ROW])[ROW].to_numpy()) for p in (a, b)]
    if len(orders[0]) != len(orders[1]):
        raise ValueError(f"{len(orders[0]):,} rows against {len(orders[1]):,}")
    count = 0
    for column in columns:
        x, y = (
            pd.read_parquet(p, columns=[column])[column].iloc[order].reset_index(drop=True)
            for p, order in zip((a, b), orders, strict=True)
        )
        equal = (x.to_numpy() == y.to_numpy()) | (x.isna() & y.isna()).to_numpy()
        count += int((~equal).sum())
    return count


@contextmanager
def interrupted_after(seconds: float | None):
    """Interrupt the DuckDB query Feast's stores run (on ibis's default connection) after
    ``seconds``: DuckDB then raises ``InterruptException`` in the waiting call."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, ibis.get_backend().con.interrupt)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def latest_keys(settings, store) -> dict[str, pd.DataFrame]:
    """Every view's distinct entity keys in its offline table: what materialization must load."""
    keys = {}
    for view_name, table in VIEW_TABLES.items():
        columns = [e.name for e in store.get_feature_view(view_name).entity_columns]
        frame = pd.read_parquet(settings.feature_dir / f"{table}.parquet", columns=columns)
        keys[view_name] = frame.drop_duplicates().reset_index(drop=True)
    return keys


def online_keys(store, view_name: str, keys: pd.DataFrame, batch: int = 10_000) -> int:
    """How many of ``keys`` the online store holds for the view, read through Feast's
    ``OnlineStore.online_read`` (the interface SQLite and Redis both implement)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    view = store.get_feature_view(view_name)
    columns = list(keys.columns)  # the view's entity columns, the order materialization uses
    found = 0
    for start in range(0, len(keys), batch):
        entity_keys = [
            EntityKey(join_keys=columns, entity_values=[Value(string_val=str(v)) for v in row])
            for row in keys.iloc[start : start + batch].itertuples(index=False)
        ]
        rows = store.provider.online_read(store.config, view, entity_keys)
        found += sum(1 for _, values in rows if values)
    return found


def materialization_row(label: str, settings, keys: dict[str, pd.DataFrame], t: dict) -> dict:
    """Apply, materialize everything (timed), then check every key is online."""
    store, _ = publish.apply(settings)
    with timed(t, label):
        publish.materialize(settings)
    written, missing = 0, {}
    for view_name, expected in keys.items():
        online = online_keys(store, view_name, expected)
        written += online
        if online != len(expected):
            missing[view_name] = len(expected) - online
    return {
        "step": label,
        "rows": written,
        "seconds": t[label],
        "rows/s": written / t[label],
        "vs merge_asof": "",
        "agree": "all keys" if not missing else f"missing {missing}",
        "peak GiB": peak_rss_gib(),
    }


def figures(rows: list[dict], scale: str | None) -> list[Figure]:
    """The table's figures, each with the peer the README compares it with: retrieval
    seconds against ``merge_asof`` of the same entity rows, Redis keys/s against SQLite's;
    the rest (import, build) in rows/s on their own."""

    def seconds_of(step: str):
        return next((r["seconds"] for r in rows if r["step"] == step), None)

    # benchmarks/materialization.py's runs: stock Feast and the platform, per store
    paths = [r for r in rows if r["step"].endswith(("(Feast)", "(platform)"))]
    out = []
    for row in rows:
        step, count = row["step"], row["rows"]
        if step.startswith("get_historical_features") or step.startswith("merge_asof"):
            n = int(step.rsplit(" ", 1)[1].replace(",", ""))
            # an interrupted store: no value, and why in "agree"
            value = row["seconds"] if isinstance(row["seconds"], float) else None
            peer = "merge_asof" if not step.startswith("merge_asof") else None
            peer_value = seconds_of(f"merge_asof {n:,}") if peer else None
            details = {"entity_rows": n, "peak_gib": row["peak GiB"], "agree": row["agree"]}
            out.append(Figure(step, value, "s", peer, peer_value, scale, details))
        elif row in paths:
            continue  # below, each platform run against stock Feast's
        elif step.startswith("materialize"):
            sqlite = next((r for r in rows if r["step"] == "materialize (SQLite)"), None)
            peer = "materialize (SQLite)" if sqlite and sqlite is not row else None
            peer_value = sqlite["rows/s"] if peer else None
            details = {"keys": count, "agree": row["agree"]}
            out.append(Figure(step, row["rows/s"], "keys/s", peer, peer_value, scale, details))
        else:
            details = {"rows": count, "seconds": row["seconds"], "peak_gib": row["peak GiB"]}
            out.append(Figure(step, row["rows/s"], "rows/s", None, None, scale, details))
    return out + materialization_figures(paths, scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="large", choices=[s.value for s in Scale])
    parser.add_argument("--entity-rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--regenerate", action="store_true", help="generate even if raw exists")
    parser.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also materialize into Redis (DEMAND_REDIS_URL; registry on PostgreSQL)",
    )
    parser.add_argument(
        "--import-rows",
        type=int,
        default=5_000_000,
        help="sales rows of the export `demand import` reads (0: no import measurement)",
    )
    parser.add_argument(
        "--stock-timeout",
        type=float,
        default=900,
        help="seconds before Feast's DuckDB store's retrieval is interrupted",
    )
    parser.add_argument(
        "--build",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the feature tables (--no-build: retrieve from the ones built before)",
    )
    parser.add_argument("--only-import", action="store_true", help="measure the import only")
    parser.add_argument(
        "--materialize-keys",
        type=int,
        default=1_000_000,
        help="synthetic keys materialized by stock Feast and the platform (benchmarks/"
        "materialization.py; 0: none)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    base = get_settings()
    settings = get_settings(data_dir=base.data_dir / "bench" / args.scale, scale=args.scale)
    t: dict[str, float] = {}
    rows: list[dict] = []
    if args.import_rows:
        rows += imports.rows(base.data_dir / "bench" / "import", args.import_rows, console)
    if args.only_import:
        report("import", "bench-features (import)", rows, figures(rows, None), base.data_dir)
        return 0
    if args.regenerate or not (settings.raw_dir / "orders.parquet").exists():
        with timed(t, "generate"):
            pipeline.generate(settings, console.print)
    if args.build:
        with timed(t, "build"):
            built = pipeline.build_features(settings, lambda m: None)
        grid_rows = built.rows["store_product_daily"]
        rows.append(
            {
                "step": "feature build",
                "rows": built.input_lines,
                "seconds": t["build"],
                "rows/s": built.input_lines / t["build"],
                "vs merge_asof": "",
                "agree": "",
                "peak GiB": peak_rss_gib(),
            }
        )
        console.print(f"  {built.input_lines:,} order lines → {grid_rows:,} store×product×day rows")

    publish.apply(settings)
    store = open_store(settings.model_copy(update={"offline_store": OfflineStore.duckdb}))
    refs = [f"{v}:{f.name}" for v in VIEW_TABLES for f in store.get_feature_view(v).features]
    asof_store = open_store(settings.model_copy(update={"offline_store": OfflineStore.asof}))
    rng = np.random.default_rng(0)
    for n in args.entity_rows:
        rows += retrieval(settings, store, asof_store, refs, entity_rows(settings, n, rng), args)

    keys = latest_keys(settings, store)
    shutil.rmtree(settings.feast_dir)  # a fresh registry and an empty online store
    rows.append(materialization_row("materialize (SQLite)", settings, keys, t))
    if args.redis:
        with team_store(settings, "features") as team:
            rows.append(materialization_row("materialize (Redis)", team, keys, t))
    if args.materialize_keys:
        redis_url = settings.redis_url if args.redis else None
        rows += materialization_bench(base.data_dir, args.materialize_keys, redis_url)
    title = f"bench-features ({args.scale})"
    report("features", title, rows, figures(rows, args.scale), base.data_dir)
    materialized = [r["agree"] for r in rows if "materialize" in r["step"]]
    return 0 if all(a.startswith("all keys") and "DIFFERS" not in a for a in materialized) else 1


if __name__ == "__main__":
    raise SystemExit(main())
