"""The feature build on Spark (local mode) against DuckDB, in the same run: time and memory.

The retailer is bench-build's synthetic M5-width aggregated daily sales (``--stores ×
--products`` series over ``--days`` days; benchmarks/feature_build.py). Each build runs
in a process of its own: DuckDB, then Spark on each ``--masters`` (local[1], local[2]:
the scaling). Peak memory is the build's whole process tree: the Python process's peak
resident set plus the JVM's (a child process, read from its ``/proc/<pid>/status``
VmHWM before the session stops). Every Spark build is checked equal to DuckDB's
(row counts and a hash of every row, as bench-build checks its incremental build).

Prints seconds and peak GiB per build; writes DATA_DIR/bench-spark.json
(benchmarks.common.report). Run on purpose: `make bench-spark ARGS="--products 300"`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Figure, report, same_tables
from benchmarks.feature_build import write_retailer


def _peak_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(engine: str, master: str, data_dir: str, out: str) -> None:
    import psutil

    from demand.settings import Settings
    from features import pipeline

    settings = Settings(data_dir=Path(data_dir), engine=engine, spark_master=master or "local[*]")
    started = time.perf_counter()
    report = pipeline.build_with(settings, Path(out))
    seconds = time.perf_counter() - started
    jvm = sum(_peak_bytes(p.pid) for p in psutil.Process().children(recursive=True))
    print(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "python_peak_bytes": _peak_bytes(),
                "jvm_peak_bytes": jvm,
                "rows": sum(report.rows.values()),
                "input_rows": report.input_lines,
            }
        )
    )


def _run(engine: str, master: str, data_dir: Path, out: Path, timeout: float) -> dict:
    args = [sys.executable, "-m", "benchmarks.spark", "--child", engine, master]
    args += [str(data_dir), str(out)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f}s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--timeout", type=float, default=600, help="seconds per build")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    from demand.settings import get_settings

    data = args.data_dir or get_settings().data_dir
    root = data / "bench-spark"
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    sales_rows = write_retailer(root / "raw", args.stores, args.products, args.days)
    series = args.stores * args.products
    scale = f"{series} series x {args.days} days"
    print(f"retailer: {scale}, {sales_rows:,} sales rows, {time.perf_counter() - started:.0f}s")

    duckdb = _run("duckdb", "", root, root / "duckdb", args.timeout)
    print(f"duckdb: {duckdb}")
    builds = [("duckdb", duckdb)]
    for master in args.masters:
        out = root / master.replace("[", "_").replace("]", "")  # no brackets in a URI
        result = _run("spark", master, root, out, args.timeout)
        print(f"spark {master}: {result}")
        if "error" not in result:
            result["equals_duckdb"] = same_tables(out, root / "duckdb", float_digits=9)
            print(f"  equals the DuckDB build: {result['equals_duckdb']}")
        builds.append((f"spark {master}", result))

    rows, figures = [], []
    for name, result in builds:
        python = result.get("python_peak_bytes", 0) / 2**30
        jvm = result.get("jvm_peak_bytes", 0) / 2**30
        rows.append(
            {
                "step": name,
                "seconds": result.get("seconds", result.get("error", "")),
                "peak GiB (python + jvm)": round(python + jvm, 2),
                "python GiB": round(python, 2),
                "jvm GiB": round(jvm, 2),
                "equals duckdb": {True: "yes", False: "NO"}.get(result.get("equals_duckdb"), ""),
            }
        )
        spark = name != "duckdb"
        details = {
            "peak_gib": round(python + jvm, 2),
            "python_peak_gib": round(python, 2),
            "jvm_peak_gib": round(jvm, 2),
            "sales_rows": sales_rows,
            "equals_duckdb": result.get("equals_duckdb"),
            "error": result.get("error"),
        }
        figures.append(
            Figure(
                f"feature build ({name})",
                result.get("seconds"),
                "s",
                "feature build (duckdb)" if spark else None,
                duckdb.get("seconds") if spark else None,
                scale,
                details,
            )
        )
    report("spark", "bench-spark: the feature build on Spark against DuckDB", rows, figures, data)
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
