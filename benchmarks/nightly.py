"""Benchmark the nightly cycle: a first night, then nights of one new day, per step.

    python -m benchmarks.nightly [--scale default] [--nights 2] [--iterations 600]

A data dir of its own under DEMAND_DATA_DIR/bench/nightly-<scale>: the first night
builds and loads everything; each later night appends one day of the generated
retailer and runs `demand nightly` in this process. The step times come from the
night's own report, so the benchmark times exactly what a team's night runs; the
incremental materialization of one new day is its own row. Each step's peak memory
comes from the report too (demand/memory.py); the table shows each night's largest.
`make bench-scale` is this benchmark on the M5-sized retailer, one new day.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings

from benchmarks.common import Figure, console, peak_rss_gib, report
from demand.settings import Scale, get_settings
from features import pipeline
from nightly import cycle


def figures(rows: list[dict], scale: str) -> list[Figure]:
    """Each night's seconds per step; a later night's peer is the first night's step."""
    first = rows[0]
    steps = [k for k in first if isinstance(first[k], float)]
    out = []
    for row in rows:
        for step in steps:
            if not isinstance(row[step], float):
                continue  # the step was skipped that night
            later = row is not first
            out.append(
                Figure(
                    f"{row['night']}: {step}",
                    row[step],
                    "GiB" if step == "peak GiB" else "s",
                    "first night" if later else None,
                    first[step] if later else None,
                    scale,
                    {"new_feature_rows": row["new feature rows"]},
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default", choices=[s.value for s in Scale])
    parser.add_argument("--nights", type=int, default=2, help="nights of one new day")
    parser.add_argument("--iterations", type=int, default=600)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    base = get_settings()
    data_dir = base.data_dir / "bench" / f"nightly-{args.scale}"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = base.model_copy(
        update={"data_dir": data_dir, "scale": Scale(args.scale), "iterations": args.iterations}
    )

    def progress(message: str) -> None:
        console.print(f"  [dim]{message}[/dim]")

    rows = []
    started = time.perf_counter()
    pipeline.generate(settings, progress)
    generated = time.perf_counter() - started
    for night in range(args.nights + 1):
        started = time.perf_counter()
        night_report = cycle.run(
            settings, append_days=1 if night else 0, promote=True, progress=progress
        )
        total = time.perf_counter() - started
        steps = night_report.seconds
        rows.append(
            {
                "night": "first (everything)" if night == 0 else f"+1 day ({night})",
                "generate s": round(generated, 1) if night == 0 else "",
                "last day": night_report.last_day,
                "new feature rows": night_report.new_feature_rows,
                **{name: round(seconds, 1) for name, seconds in steps.items()},
                "total s": round(total, 1),
                "peak GiB": max(night_report.peak_gib.values(), default=0.0),
                "peak step": max(night_report.peak_gib, key=night_report.peak_gib.get, default=""),
                "version": night_report.version,
                "production": night_report.production_version,
            }
        )
    columns = list(dict.fromkeys(k for row in rows for k in row))  # first seen, first shown
    rows = [{k: row.get(k, "") for k in columns} for row in rows]
    title = f"nightly cycle · {args.scale} scale · peak RSS {peak_rss_gib():.1f} GiB"
    report(f"nightly-{args.scale}", title, rows, figures(rows, args.scale), base.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
