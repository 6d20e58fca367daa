"""Materialization at a million keys: stock Feast against the platform's materializer.

    python -m benchmarks.materialization [--keys 1000000] [--no-redis] [--no-sqlite]

The repo's ``store_product_sales`` view (19 features: doubles, a string, a timestamp)
over a synthetic table of ``--keys`` store × product keys (1,000 products per store,
some values null), materialized into an empty SQLite store and into Redis, once with
Feast's local engine and once with the platform's (feastext/materialization.py), in
entity keys/s, with the CPU seconds this process and the Redis server spent (on a
shared machine the wall time follows the load; the CPU seconds much less). Each run
is checked: the store holds every key, and 1,000 sampled keys hold the same bytes in
both (SQLite rows, Redis hashes). Data goes to
DEMAND_DATA_DIR/bench/materialization; the Redis runs use Feast projects of their own
(DEMAND_REDIS_URL), torn down afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
import uuid
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Figure, peak_rss_gib, report, timed
from demand.featurestore import PLATFORM_ENGINE, PLATFORM_ONLINE_STORES
from demand.settings import REPO_ROOT, get_settings

DAY = pd.Timestamp("2026-01-01", tz="UTC")
SAMPLE = 1_000  # keys compared byte for byte between the two paths


def sales_view(path: Path):
    """The repo's store_product_sales view, reading ``path`` instead of the feature table."""
    from feast import FeatureView, FileSource

    sys.path.insert(0, str(REPO_ROOT / "feature_repo"))
    import entities
    import feature_views

    real = feature_views.store_product_sales
    return [entities.store, entities.product], FeatureView(
        name=real.name,
        entities=[entities.store, entities.product],
        ttl=real.ttl,
        schema=real.schema,
        source=FileSource(
            name="synthetic_sales", path=str(path), timestamp_field="event_timestamp"
        ),
    )


def synthetic_table(path: Path, keys: int, view, rng: np.random.Generator) -> None:
    """One row per key, as the latest day of a feature table (some values null)."""
    stores, products = np.divmod(np.arange(keys), 1_000)
    columns: dict[str, pa.Array] = {
        "store_id": pa.array(np.char.add("S", stores.astype(str))),
        "product_id": pa.array(np.char.add("P", products.astype(str))),
    }
    for field in view.features:
        if field.name == "copurchase_partner_id":
            partner = np.char.add("P", rng.integers(0, 1_000, keys).astype(str))
            columns[field.name] = pa.array(partner, mask=rng.random(keys) < 0.05)
        elif field.name.endswith("_known_at"):
            columns[field.name] = pa.array(
                np.full(keys, DAY.value // 1_000), pa.timestamp("us", "UTC")
            )
        else:
            values = rng.gamma(2.0, 3.0, keys).round(3)
            values[rng.random(keys) < 0.05] = np.nan
            columns[field.name] = pa.array(values)
    columns["event_timestamp"] = pa.array(
        np.full(keys, DAY.value // 1_000), pa.timestamp("us", "UTC")
    )
    pq.write_table(pa.table(columns), path)


def feature_store(root: Path, online: dict, platform: bool, project: str):
    from feast import FeatureStore, RepoConfig

    if platform:
        online = {**online, "type": PLATFORM_ONLINE_STORES[online["type"]]}
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(root / f"registry-{project}.db"),
        offline_store={"type": "duckdb"},
        online_store=online,
        batch_engine={"type": PLATFORM_ENGINE} if platform else "local",
        entity_key_serialization_version=3,
        materialization={"online_write_batch_size": 10_000, "pull_latest_features": True},
    )
    config.repo_path = root
    return FeatureStore(config=config)


def sqlite_keys(path: Path, table: str, sample: list[bytes]) -> tuple[int, list]:
    with sqlite3.connect(path) as db:
        count = db.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{table}"').fetchone()[0]
        marks = ",".join("?" * len(sample))
        rows = db.execute(
            "SELECT entity_key, feature_name, value, value_text, event_ts, created_ts "
            f'FROM "{table}" WHERE entity_key IN ({marks}) ORDER BY entity_key, feature_name',
            sample,
        ).fetchall()
    return count, rows


def redis_keys(url: str, project: str, sample: list[bytes]) -> tuple[int, list]:
    import redis

    host, port = url.split(",")[-1].split(":")
    client = redis.Redis(host=host, port=int(port))
    suffix = project.encode()
    count = sum(1 for _ in client.scan_iter(match=b"*" + suffix, count=10_000))
    return count, [client.hgetall(k + suffix) for k in sample]


def redis_cpu_seconds(url: str) -> float:
    """The Redis server's CPU seconds so far (user and system, all its threads)."""
    import redis

    host, port = url.split(",")[-1].split(":")
    cpu = redis.Redis(host=host, port=int(port)).info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def materialization_bench(
    data_dir: Path,
    keys: int,
    redis_url: str | None,
    paths: tuple[str, ...] = ("Feast", "platform"),
    sqlite: bool = True,
) -> list[dict]:
    """Stock Feast and the platform's path, SQLite then Redis, at ``keys`` keys; report rows."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    root = data_dir / "bench" / "materialization"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    path = root / "sales.parquet"
    objects, view = sales_view(path)
    synthetic_table(path, keys, view, rng)
    picked = rng.choice(keys, SAMPLE, replace=False)
    sample = [
        serialize_entity_key(
            EntityKey(
                join_keys=["store_id", "product_id"],
                entity_values=[Value(string_val=f"S{k // 1000}"), Value(string_val=f"P{k % 1000}")],
            )
        )
        for k in picked
    ]
    targets = ([("SQLite", None)] if sqlite else []) + ([("Redis", redis_url)] if redis_url else [])
    t: dict[str, float] = {}
    rows = []
    for target, url in targets:
        seen = {}
        for label, platform in (("Feast", False), ("platform", True)):
            if label not in paths:
                continue
            project = f"bench_{label.lower()}_{uuid.uuid4().hex[:6]}"
            online = (
                {"type": "sqlite", "path": str(root / f"{project}.db")}
                if url is None
                else {"type": "redis", "connection_string": url}
            )
            store = feature_store(root, online, platform, project)
            store.apply([*objects, view])
            name = f"materialize {keys:,} keys into {target} ({label})"
            try:
                server = redis_cpu_seconds(url) if url else None
                client = time.process_time()
                with timed(t, name):
                    store.materialize(
                        start_date=DAY - timedelta(days=2), end_date=DAY + timedelta(seconds=1)
                    )
                client = time.process_time() - client
                server = redis_cpu_seconds(url) - server if url else None
                if url is None:
                    count, seen[label] = sqlite_keys(
                        root / f"{project}.db", f"{project}_{view.name}", sample
                    )
                else:
                    count, seen[label] = redis_keys(url, project, sample)
            finally:
                if url is not None:
                    store.teardown()
            agree = "all keys" if count == keys else f"{keys - count:,} keys missing"
            versus = ""
            if platform and "Feast" in seen:
                versus = f"{t[name.replace('platform', 'Feast')] / t[name]:.1f}× Feast"
                same = seen["platform"] == seen["Feast"]
                agree += "; sample as Feast" if same else "; SAMPLE DIFFERS"
            rows.append(
                {
                    "step": name,
                    "rows": count,
                    "seconds": t[name],
                    "rows/s": count / t[name],
                    "vs Feast": versus,
                    "agree": agree,
                    "client CPU s": round(client, 1),
                    "Redis CPU s": round(server, 1) if server is not None else "",
                    "peak GiB": peak_rss_gib(),
                }
            )
    return rows


def figures(rows: list[dict], scale: str | None = None) -> list[Figure]:
    """Keys/s of each run; the platform's peer is stock Feast into the same store."""
    out = []
    for row in rows:
        feast = row["step"].replace("(platform)", "(Feast)")
        peer = next((r for r in rows if r["step"] == feast and r is not row), None)
        out.append(
            Figure(
                row["step"],
                row["rows/s"],
                "keys/s",
                "stock Feast, same store" if peer else None,
                peer["rows/s"] if peer else None,
                scale,
                {
                    "keys": row["rows"],
                    "seconds": row["seconds"],
                    "agree": row["agree"],
                    "client CPU s": row["client CPU s"],
                    "Redis CPU s": row["Redis CPU s"],
                    "load": round(os.getloadavg()[0], 1),
                },
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--redis", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--paths", nargs="+", default=["Feast", "platform"], choices=["Feast", "platform"]
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    settings = get_settings()
    rows = materialization_bench(
        settings.data_dir,
        args.keys,
        settings.redis_url if args.redis else None,
        args.paths,
        args.sqlite,
    )
    title = "bench-materialization"
    report("materialization", title, rows, figures(rows), settings.data_dir)
    return (
        0
        if all(r["agree"].startswith("all keys") and "DIFFERS" not in r["agree"] for r in rows)
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())
