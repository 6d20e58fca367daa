"""Import speed: `demand import` of a large aggregated sales export, CSV and Parquet.

The export is written by DuckDB (weekly sales of S stores × P products over W weeks,
with stores, products and daily weather; one sales row in a thousand has negative
units and is quarantined); each import runs in a process of its own
so that its peak memory is its own.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import resource
import time
from pathlib import Path

STORES, PRODUCTS, REGIONS = 100, 500, 10


def write_export(folder: Path, rows: int, fmt: str) -> int:
    """A retailer's export of about ``rows`` weekly sales rows; the sales rows written."""
    import duckdb

    weeks = math.ceil(rows / (STORES * PRODUCTS))
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SELECT setseed(0.7)")
    options = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
    tables = {
        "sales": f"""
            SELECT 'S' || lpad(CAST(s AS VARCHAR), 4, '0') AS store_id,
                   'P' || lpad(CAST(p AS VARCHAR), 5, '0') AS product_id,
                   CAST(DATE '2023-01-02' + INTERVAL (7 * w) DAY AS DATE) AS date,
                   -- one row in a thousand is quarantined (negative units)
                   CASE WHEN random() < 0.001 THEN -1 ELSE round(random() * 20, 1) END AS units,
                   round(5 + random() * 20, 2) AS price,
                   random() < 0.1 AS promo
            FROM range({STORES}) a(s), range({PRODUCTS}) b(p), range({weeks}) c(w)""",
        "stores": f"""
            SELECT 'S' || lpad(CAST(s AS VARCHAR), 4, '0') AS store_id,
                   'R' || CAST(s % {REGIONS} AS VARCHAR) AS region_id
            FROM range({STORES}) a(s)""",
        "products": f"""
            SELECT 'P' || lpad(CAST(p AS VARCHAR), 5, '0') AS product_id,
                   'C' || CAST(p % 50 AS VARCHAR) AS category
            FROM range({PRODUCTS}) b(p)""",
        "weather_observed": f"""
            SELECT 'R' || CAST(r AS VARCHAR) AS region_id,
                   CAST(DATE '2023-01-02' + INTERVAL (d) DAY AS DATE) AS date,
                   round(10 + 10 * sin(d / 58.0) + random() * 4, 1) AS temperature_c
            FROM range({REGIONS}) a(r), range({weeks * 7}) b(d)""",
    }
    for name, query in tables.items():
        path = str(folder / f"{name}.{fmt}")
        con.execute(f"COPY ({query} ORDER BY ALL) TO '{path}' {options}")
    return STORES * PRODUCTS * weeks


def _child(folder: str, raw_dir: str, results) -> None:
    from rawdata.importer import run_import

    started = time.perf_counter()
    report = run_import(Path(folder), Path(raw_dir), progress=lambda _: None)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = usage.ru_maxrss / 2**20, usage.ru_utime + usage.ru_stime
    read = sum(f.read for f in report.files)
    quarantined = sum(f.quarantined for f in report.files)
    results.put(
        {"seconds": seconds, "cpu": cpu, "peak": peak, "read": read, "quarantined": quarantined}
    )


def measure(folder: Path, raw_dir: Path, fresh: bool = True) -> dict:
    """Import ``folder`` into ``raw_dir`` (emptied first when ``fresh``) in a process of its
    own: seconds, peak GiB."""
    from demand import swap

    if fresh:
        swap.remove(raw_dir)  # a link and its generation (rmtree refuses a link)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(str(folder), str(raw_dir), results))
    child.start()
    while True:
        try:
            outcome = results.get(timeout=5)
            break
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the import of {folder} failed ({child.exitcode})") from None
    child.join()
    return outcome


def rows(base: Path, sales_rows: int, console) -> list[dict]:
    """bench-features rows for the import of the same export as Parquet and as CSV."""
    out = []
    runs = [("parquet", True), ("parquet", False), ("csv", True)]  # False: the same again
    for fmt, fresh in runs:
        folder = base / f"export-{fmt}"
        if not (folder / f"sales.{fmt}").exists():
            console.print(f"  writing a {fmt} export of ~{sales_rows:,} sales rows …")
            write_export(folder, sales_rows, fmt)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        result = measure(folder, base / f"raw-{fmt}", fresh)
        what = f"import {fmt}" if fresh else f"import {fmt} again (nothing changes)"
        console.print(
            f"  {what}: {result['read']:,} rows in {result['seconds']:.1f}s "
            f"({result['read'] / result['seconds']:,.0f} rows/s, CPU {result['cpu']:.1f}s "
            f"incl. imports, peak {result['peak']:.2f} GiB)"
        )
        out.append(
            {
                "step": f"{what} ({size:,.0f} MiB)",
                "rows": result["read"],
                "seconds": result["seconds"],
                "rows/s": result["read"] / result["seconds"],
                "vs merge_asof": "",
                # CPU seconds of the process (imports included): less noisy than wall time
                # on a shared machine
                "agree": f"{result['quarantined']} quarantined · CPU {result['cpu']:.1f}s",
                "peak GiB": result["peak"],
            }
        )
    return out
