"""The feature build at retailer size: full and incremental, time and peak memory.

An aggregated daily retailer of ``--stores × --products`` series over ``--days`` days
(Poisson units, no row where nothing sold) is written in chunks, one store at a time,
so writing it holds one store's rows. Then, each in a process of its own (its peak
resident memory is its own):

1. a full build under each ``--limits`` (DuckDB memory limits; spilling under DATA_DIR);
2. the same retailer one day later (appended, earlier rows as they were), built
   incrementally from the first build's tables, and checked equal to a full build.

Prints rows, seconds and peak RSS per build; writes them to
DATA_DIR/bench-build.json (benchmarks.common.report).
Run on purpose (`python -m benchmarks.feature_build --stores 10 --products 3000`).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Figure, report, same_tables


def write_retailer(folder: Path, stores: int, products: int, days: int) -> int:
    """The retailer's raw tables; the tiny generated retailer's weather and forecasts."""
    from synthetic import aggregate, generator

    base = aggregate.aggregate(
        generator.generate("tiny", seed=7, days=days), "day", promotions=False
    )
    tables = dict(base.tables)
    regions = tables["stores"]["region_id"].unique()
    store_ids = np.array([f"S{i:04d}" for i in range(stores)])
    tables["stores"] = pd.DataFrame(
        {
            "store_id": store_ids,
            "region_id": regions[np.arange(stores) % len(regions)],
            "latitude": 50.0,
            "longitude": 10.0,
        }
    )
    categories = tables["products"]["category"].unique()
    product_ids = np.array([f"P{i:05d}" for i in range(products)])
    tables["products"] = pd.DataFrame(
        {
            "product_id": product_ids,
            "category": categories[np.arange(products) % len(categories)],
            "lifespan_days": 60.0,
            "list_price": 9.99,
        }
    )
    first = tables["sales"]["date"].min()
    sales = tables.pop("sales")
    aggregate.write(
        aggregate.Aggregated({**tables, "sales": sales.iloc[:0]}, base.description), folder
    )
    dates = pd.date_range(first, periods=days, freq="D").values
    rows = 0
    writer = None
    # one store at a time; a store's draws come from its own seed, over a fixed horizon of
    # days, so the same retailer with more days has the same earlier rows
    horizon = 1500
    if days > horizon:
        raise SystemExit(f"--days {days}: at most {horizon}")
    for s, store in enumerate(store_ids):
        rng = np.random.default_rng(s)
        shape = (products, horizon)
        units = rng.poisson(rng.gamma(1.0, 1.5, (products, 1)), shape)[:, :days].astype(float)
        price = np.round(rng.uniform(1, 20, shape), 2)[:, :days]
        promo = (rng.random(shape) < 0.05)[:, :days]
        sold = units > 0
        p, d = np.nonzero(sold)
        table = pa.table(
            {
                "store_id": pa.array(np.full(len(p), store)).dictionary_encode(),
                "product_id": pa.array(product_ids[p]).dictionary_encode(),
                "date": pa.array(dates[d].astype("datetime64[us]")),
                "units": units[sold],
                "price": price[sold],
                "promo": promo[sold],
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(folder / "sales.parquet", table.schema)
        writer.write_table(table)
        rows += table.num_rows
    writer.close()
    return rows


def _child(raw: str, out: str, limit: str, previous: str | None, spill: str) -> None:
    from features import build_duckdb

    config = {"memory_limit": limit, "temp_directory": spill, "preserve_insertion_order": False}
    started = time.perf_counter()
    report = build_duckdb.build(
        Path(raw), Path(out), duckdb_config=config, previous=Path(previous) if previous else None
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "mode": report.mode,
                "seconds": round(time.perf_counter() - started, 1),
                "peak_rss_bytes": peak,
                "rows": report.rows,
                "input_rows": report.input_lines,
            }
        )
    )


def _run(raw: Path, out: Path, limit: str, spill: Path, previous: Path | None = None) -> dict:
    args = [sys.executable, "-m", "benchmarks.feature_build", "--child", str(raw), str(out), limit]
    args += [str(spill), str(previous) if previous else ""]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1][:300], "limit": limit}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "limit": limit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--days", type=int, default=1200)
    parser.add_argument("--limits", nargs="+", default=["4GB", "1GB"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        raw, out, limit, spill, previous = args.child
        _child(raw, out, limit, previous or None, spill)
        return 0

    from demand.settings import get_settings

    data = args.data_dir or get_settings().data_dir
    root = data / "bench-build"
    shutil.rmtree(root, ignore_errors=True)
    spill = root / "spill"
    started = time.perf_counter()
    rows_written = write_retailer(root / "raw", args.stores, args.products, args.days)
    later = write_retailer(root / "raw_next", args.stores, args.products, args.days + 1)
    print(
        f"retailer: {args.stores * args.products:,} series × {args.days} days, "
        f"{rows_written:,} sales rows (+{later - rows_written:,} the next day), "
        f"written in {time.perf_counter() - started:.0f}s"
    )
    figures = []
    for limit in args.limits:
        result = _run(root / "raw", root / f"full_{limit}", limit, spill)
        print(f"full build, memory_limit {limit}: {result}")
        figures.append({"name": f"full build ({limit})", **result})
    base = root / f"full_{args.limits[0]}"
    for limit in args.limits:
        result = _run(root / "raw_next", root / f"next_incremental_{limit}", limit, spill, base)
        print(f"incremental build (+1 day), memory_limit {limit}: {result}")
        figures.append({"name": f"incremental build ({limit})", **result})
    full = _run(root / "raw_next", root / "next_full", args.limits[0], spill)
    print(f"full build of the next day, memory_limit {args.limits[0]}: {full}")
    figures.append({"name": f"full build, next day ({args.limits[0]})", **full})
    same = same_tables(root / f"next_incremental_{args.limits[0]}", root / "next_full")
    print(f"incremental equals full: {same}")
    peer = figures[-1]  # the full build of the same next day, the incremental's peer
    rows, measured = [], []
    for figure in figures:
        seconds = figure.get("seconds")
        incremental = figure["name"].startswith("incremental")
        peak = figure.get("peak_rss_bytes", 0) / 2**30
        rows.append(
            {
                "step": figure["name"],
                "mode": figure.get("mode", figure.get("error", "")),
                "seconds": seconds,
                "peak GiB": round(peak, 2),
                "equals full": same if incremental else "",
            }
        )
        measured.append(
            Figure(
                figure["name"],
                seconds,
                "s",
                peer["name"] if incremental else None,
                peer.get("seconds") if incremental else None,
                f"{args.stores * args.products} series x {args.days} days",
                {"peak_gib": round(peak, 2), "sales_rows": rows_written, "equals_full": same},
            )
        )
    report("build", "bench-build: full and incremental feature builds", rows, measured, data)
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
