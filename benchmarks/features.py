"""Benchmark the feature pipeline on the large scale.

    python -m benchmarks.features [--scale large] [--entity-rows 100000 1000000] [--no-redis]
                                  [--import-rows 5000000] [--only-import]

Reports the import of a large aggregated sales export (``--import-rows``, written by
the benchmark itself as Parquet and as CSV) in rows/s with validation and peak memory;
feature build time and order lines/s; Feast's ``get_historical_features``
for N entity rows through Feast's DuckDB offline store and through the platform's
ASOF store (features/offline_asof.py), against the lower bound, a plain
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
import warnings

import numpy as np
import pandas as pd

from benchmarks import imports
from benchmarks.common import console, peak_rss_gib, report, team_store, timed
from benchmarks.materialization import materialization_bench
from demand.featurestore import open_store
from demand.settings import OfflineStore, Scale, get_settings
from features import pipeline, publish

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
    horizon = rng.integers(1, 8, n)
    target = rows["event_timestamp"].dt.tz_convert(None) + pd.to_timedelta(horizon - 1, "D")
    rows["target_date"] = target.dt.strftime("%Y-%m-%d")
    stores = pd.read_parquet(settings.raw_dir / "stores.parquet")
    return rows.merge(stores[["store_id", "region_id"]], on="store_id")


def merge_asof_join(settings, store, rows: pd.DataFrame) -> pd.DataFrame:
    """The same point-in-time join, view by view, with pandas.merge_asof (the lower bound)."""
    out = rows.sort_values("event_timestamp").reset_index(drop=True)
    for view_name, table in VIEW_TABLES.items():
        view = store.get_feature_view(view_name)
        keys = [e.name for e in view.entity_columns]
        features = [f.name for f in view.features]
        frame = pd.read_parquet(
            settings.feature_dir / f"{table}.parquet", columns=[*keys, *features, "event_timestamp"]
        )
        frame = frame.rename(columns={"event_timestamp": "_ts"}).sort_values("_ts")
        tolerance = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
        out = pd.merge_asof(
            out,
            frame,
            left_on="event_timestamp",
            right_on="_ts",
            by=keys,
            direction="backward",
            tolerance=tolerance,
        ).drop(columns="_ts")
    return out


def agreement(feast_frame: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> float:
    keys = ["store_id", "product_id", "target_date", "event_timestamp"]
    a = feast_frame.drop_duplicates(keys).set_index(keys)[columns]
    b = reference.drop_duplicates(keys).set_index(keys).loc[a.index, columns]
    same = (a == b) | (a.isna() & b.isna())
    return float(same.to_numpy().mean())


def identical(retrieved: dict[str, pd.DataFrame], columns: list[str]) -> str:
    """Whether the ASOF store returned the DuckDB store's rows: every cell, in entity-key order."""
    keys = ["store_id", "product_id", "target_date", "event_timestamp"]
    a, b = (
        retrieved[s].sort_values([*keys, *columns]).reset_index(drop=True)[[*keys, *columns]]
        for s in ("DuckDB", "ASOF")
    )
    if a.shape != b.shape:
        return f"{a.shape} ≠ {b.shape}"
    differing = int((~((a == b) | (a.isna() & b.isna()))).to_numpy().sum())
    return "every cell as DuckDB" if differing == 0 else f"{differing:,} cells differ from DuckDB"


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
        report("bench-features (import)", rows, base.data_dir / "bench" / "bench-import.json")
        return 0
    if args.regenerate or not (settings.raw_dir / "orders.parquet").exists():
        with timed(t, "generate"):
            pipeline.generate(settings, console.print)
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

    store, _ = publish.apply(settings)
    refs = [f"{v}:{f.name}" for v in VIEW_TABLES for f in store.get_feature_view(v).features]
    asof_store = open_store(settings.model_copy(update={"offline_store": OfflineStore.asof}))
    columns = [r.split(":")[1] for r in refs]
    rng = np.random.default_rng(0)
    for n in args.entity_rows:
        entities = entity_rows(settings, n, rng)
        with timed(t, f"merge_asof {n}"):
            reference = merge_asof_join(settings, store, entities)
        retrieved = {}
        for label, feast_store in (("DuckDB", store), ("ASOF", asof_store)):
            with timed(t, f"{label} {n}"):
                retrieved[label] = feast_store.get_historical_features(
                    entity_df=entities.copy(), features=refs
                ).to_df()
            agree = agreement(retrieved[label], reference, columns)
            same = "" if label == "DuckDB" else f"; {identical(retrieved, columns)}"
            rows.append(
                {
                    "step": f"get_historical_features ({label} store) {n:,}",
                    "rows": len(retrieved[label]),
                    "seconds": t[f"{label} {n}"],
                    "rows/s": n / t[f"{label} {n}"],
                    "vs merge_asof": f"{t[f'{label} {n}'] / t[f'merge_asof {n}']:.2f}×",
                    "agree": f"{agree:.2%}{same}",
                    "peak GiB": peak_rss_gib(),
                }
            )
        rows.append(
            {
                "step": f"merge_asof {n:,}",
                "rows": len(reference),
                "seconds": t[f"merge_asof {n}"],
                "rows/s": n / t[f"merge_asof {n}"],
                "vs merge_asof": "1.0×",
                "agree": "",
                "peak GiB": peak_rss_gib(),
            }
        )
        del retrieved, reference

    keys = latest_keys(settings, store)
    shutil.rmtree(settings.feast_dir)  # a fresh registry and an empty online store
    rows.append(materialization_row("materialize (SQLite)", settings, keys, t))
    if args.redis:
        with team_store(settings, "features") as team:
            rows.append(materialization_row("materialize (Redis)", team, keys, t))
    if args.materialize_keys:
        redis_url = settings.redis_url if args.redis else None
        rows += materialization_bench(base.data_dir, args.materialize_keys, redis_url)
    report(f"bench-features ({args.scale})", rows, settings.data_dir / "bench-features.json")
    materialized = [r["agree"] for r in rows if "materialize" in r["step"]]
    return 0 if all(a.startswith("all keys") and "DIFFERS" not in a for a in materialized) else 1


if __name__ == "__main__":
    raise SystemExit(main())
