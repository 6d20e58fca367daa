"""Benchmark one night's monitoring at M5 width: 30,490 series, 28 days ahead every night.

    python -m benchmarks.monitor [--series 30490] [--horizon 28] [--days 120]

Writes, straight to parquet (no model is trained: the figures are the monitoring's own),
a sales feature table of ``--days`` days, 28 nights of published forecasts (``--series``
× ``--horizon`` rows each, with P10/P50/P90 beside the point forecast as ``demand batch``
publishes them) and a registered version with backtest metrics (WAPE and the quantile
figures training logs), and brings the ledger up to date (the catch-up, timed apart).
Then one night: a day of sales more and a new origin published, and the night's
monitoring timed step by step with its peak memory: the ledger (one new period, 28 days
of actuals checked for corrections, each quantile's pinball loss), the accuracy
aggregates over the rolling 4 weeks (WAPE; coverage and wQL by horizon beside the
backtest's), drift (the comparison of ``monitor_drift_keys`` × horizon vectors with the
reference: the online reads of those vectors are the lookup ``make bench-batch``
measures) and the report.

The peer, in the same run: the same night with the ledger rebuilt from nothing (every
closed period re-scored), what a monitor without the incremental ledger would do.
Data goes to DEMAND_DATA_DIR/bench/monitor-<series>; figures to bench-monitor.json.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Figure, console, peak_rss_gib, report, reset_peak
from demand import memory
from demand.quantiles import column as quantile_column
from demand.quantiles import support
from demand.settings import get_settings
from monitoring import accuracy, drift, ledger
from monitoring import monitor as monitoring
from monitoring import report as monitoring_report
from training import profile

STORES = 10
CATEGORIES = ("FOODS", "HOBBIES", "HOUSEHOLD")
LAST = date(2016, 5, 22)  # M5's last day
LEVELS = (0.1, 0.5, 0.9)  # the levels training's default contract publishes
# the standard normal's quantiles at LEVELS: a key's band around its point forecast
Z = (-1.2816, 0.0, 1.2816)


def keys(series: int) -> tuple[np.ndarray, np.ndarray]:
    products = -(-series // STORES)
    store = np.repeat([f"S{s:02d}" for s in range(STORES)], products)[:series]
    product = np.tile([f"P{p:05d}" for p in range(products)], STORES)[:series]
    return store, product


def write_sales(settings, series: int, days: int, last: date, rng) -> None:
    """units_lag_1 stamped at the start of the next day, as the feature build writes it."""
    store, product = keys(series)
    level = rng.gamma(1.2, 2.0, series)
    parts = []
    for d in range(days):
        day = last - timedelta(days=days - 1 - d)
        rng = np.random.default_rng(day.toordinal())  # a day's sales are the same every write
        parts.append(
            pa.table(
                {
                    "store_id": pa.array(store).dictionary_encode(),
                    "product_id": pa.array(product).dictionary_encode(),
                    "event_timestamp": pa.array(
                        np.full(series, pd.Timestamp(day + timedelta(days=1), tz="UTC")),
                        pa.timestamp("us", tz="UTC"),
                    ),
                    "units_lag_1": rng.poisson(level).astype(float),
                    "active": np.where(rng.random(series) < 0.02, 0.0, 1.0),
                    "censored": np.where(rng.random(series) < 0.01, 1.0, 0.0),
                }
            )
        )
    settings.feature_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.concat_tables(parts).combine_chunks(),
        settings.feature_dir / "store_product_daily.parquet",
        row_group_size=series * 7,
    )
    products = np.unique(product)
    pq.write_table(
        pa.table(
            {
                "product_id": products,
                "category": rng.choice(CATEGORIES, len(products)),
                "event_timestamp": pa.array(
                    np.full(len(products), pd.Timestamp("2011-01-29", tz="UTC")),
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
        settings.feature_dir / "product_attributes.parquet",
    )


def publish(settings, series: int, horizon: int, origin: date, rng) -> None:
    """An origin's forecasts in the published layout: the point forecast, then one column
    per quantile level (whole units, never crossing, as ``serving.batch`` writes them),
    then ``published_at``."""
    store, product = keys(series)
    n = series * horizon
    units = rng.gamma(1.2, 2.0, n)
    spread = np.sqrt(units)  # a Poisson-like band: wider where more sells
    frame = pa.table(
        {
            "model_name": pa.array([settings.model_name] * 1)
            .dictionary_encode()
            .take(np.zeros(n, dtype=int)),
            "model_version": pa.array(["1"]).dictionary_encode().take(np.zeros(n, dtype=int)),
            "store_id": pa.array(np.repeat(store, horizon)).dictionary_encode(),
            "product_id": pa.array(np.repeat(product, horizon)).dictionary_encode(),
            "origin_date": pa.array(np.full(n, origin), pa.date32()),
            "target_date": pa.array(
                np.tile([origin + timedelta(days=h) for h in range(1, horizon + 1)], series),
                pa.date32(),
            ),
            "horizon": np.tile(np.arange(1, horizon + 1), series),
            "units": units,
            **{
                quantile_column(level): support(units + z * spread, counts=True)
                for level, z in zip(LEVELS, Z, strict=True)
            },
            "published_at": pa.array(
                np.full(n, pd.Timestamp.now(tz="UTC")), pa.timestamp("us", tz="UTC")
            ),
        }
    )
    settings.forecast_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(frame, settings.forecast_dir / f"origin={origin:%Y-%m-%d}.parquet")


def register(settings, horizon: int) -> None:
    """A version whose run holds backtest metrics under training's names: WAPE overall and
    by horizon (the live/backtest ratio); the quantile model's wQL and coverage per level
    over all horizons (``wql_p10``, ``coverage_p10``), the mean wQL and the central
    interval's coverage overall and by horizon (``wql_h{h}``, ``interval_coverage_h{h}``),
    as ``training.quantiles`` logs them."""
    import mlflow

    from demand.tracking import connect
    from training.metrics import level_key

    client = connect(settings)
    mlflow.set_experiment("bench-monitor")
    metrics = {"wape": 0.7, **{f"wape_h{h}": 0.65 + h / 200 for h in range(1, horizon + 1)}}
    for level in LEVELS:
        metrics[f"wql_{level_key(level)}"] = 0.25 + abs(level - 0.5) / 10
        metrics[f"coverage_{level_key(level)}"] = level + 0.02
    metrics.update({"wql": 0.27, "interval_coverage": 0.82})
    for h in range(1, horizon + 1):
        metrics[f"wql_h{h}"] = 0.25 + h / 400
        metrics[f"interval_coverage_h{h}"] = 0.83 - h / 1000
    with mlflow.start_run() as run:
        mlflow.log_params({"quantiles": ",".join(f"{v:g}" for v in LEVELS)})
        mlflow.log_metrics(metrics)
    client.create_registered_model(settings.model_name)
    client.create_model_version(
        settings.model_name, f"runs:/{run.info.run_id}/model", run.info.run_id
    )


def drift_frames(keys_: int, horizon: int, rng) -> tuple[dict, pd.DataFrame]:
    """A reference profile of 40 features and a night's vectors of ``keys_`` × horizon."""

    def frame(rows: int) -> pd.DataFrame:
        data = {f"f{i}": rng.gamma(1 + i % 5, 2.0, rows) for i in range(36)}
        data.update({f"c{i}": rng.choice(list("abcdefgh"), rows) for i in range(4)})
        return pd.DataFrame(data)

    reference = frame(500_000)
    ref = profile.reference_profile(
        reference, [f"c{i}" for i in range(4)], rng.gamma(1.2, 2.0, len(reference))
    )
    return ref, frame(keys_ * horizon)


def night(settings, horizon: int, reference, vectors, seconds: dict, peaks: dict) -> None:
    def step(name, fn):
        memory.release()
        reset_peak()
        started = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - started
        peaks[name] = peak_rss_gib()
        console.print(f"  {name}: {seconds[name]:.2f}s, peak {peaks[name]:.2f} GiB")
        return result

    update = step("ledger", lambda: ledger.update(settings, progress=lambda _: None))
    backtests = accuracy.backtest_metrics(settings, ["1"])
    measured = step("accuracy", lambda: accuracy.measure(settings, update.last_closed, backtests))
    step("record", lambda: accuracy.record(settings, measured))
    table, feeds = step(
        "drift", lambda: drift.compare(reference, vectors, vectors["f0"], settings, {})
    )
    found = drift.Drift(version="1", rows=len(vectors), table=table, feeds=feeds)
    step(
        "keep",
        lambda: monitoring._keep(
            settings, monitoring.Result(update, measured, found, None, [], {})
        ),
    )
    step(
        "report",
        lambda: monitoring_report.write(settings, progress=lambda _: None, measured=measured),
    )
    if measured.no_quantiles or measured.quantiles.empty:
        # the point-only path would be timed: not what a night with quantiles costs
        raise SystemExit(f"the night scored no quantiles (versions {measured.no_quantiles})")
    everything = measured.quantiles[measured.quantiles["horizon"] == accuracy.ALL].iloc[0]
    seconds["rows scored"] = measured.rows
    seconds["quantile rows"] = everything["rows"]
    seconds["live interval coverage"] = everything["live_interval_coverage"]
    seconds["live wql"] = everything["live_wql"]
    seconds["periods"] = len(update.periods_new) + len(update.periods_rescored)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=30_490)
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args(argv)
    base = get_settings()
    data = base.data_dir / "bench" / f"monitor-{args.series}"
    shutil.rmtree(data, ignore_errors=True)
    settings = base.model_copy(
        update={
            "data_dir": data,
            "mlflow_tracking_uri": f"sqlite:///{data}/mlflow.db",
            "horizon": args.horizon,
        }
    )
    rng = np.random.default_rng(0)
    console.print(f"setting up {args.series:,} series × {args.horizon} days ahead in {data}")
    # yesterday's world: sales through LAST - 1, 28 origins published, the ledger caught up
    write_sales(settings, args.series, args.days, LAST - timedelta(days=1), rng)
    for k in range(28, 0, -1):
        publish(settings, args.series, args.horizon, LAST - timedelta(days=k + 1), rng)
    register(settings, args.horizon)
    reference, vectors = drift_frames(settings.monitor_drift_keys, args.horizon, rng)
    started = time.perf_counter()
    ledger.update(settings, progress=lambda _: None)
    catch_up = time.perf_counter() - started
    console.print(f"ledger catch-up (28 nights at once): {catch_up:.1f}s")
    # tonight: one more day of sales, one more origin
    write_sales(settings, args.series, args.days, LAST, np.random.default_rng(0))
    publish(settings, args.series, args.horizon, LAST - timedelta(days=1), rng)

    console.print("[bold]the night[/bold]")
    seconds: dict = {}
    peaks: dict = {}
    night(settings, args.horizon, reference, vectors, seconds, peaks)
    total = sum(v for k, v in seconds.items() if k in peaks)
    peak = max(peaks.values())

    console.print("[bold]peer: the same night, the ledger rebuilt from nothing[/bold]")
    shutil.rmtree(ledger.ledger_dir(settings))
    (accuracy.history_path(settings)).unlink(missing_ok=True)
    peer_seconds: dict = {}
    peer_peaks: dict = {}
    night(settings, args.horizon, reference, vectors, peer_seconds, peer_peaks)
    peer_total = sum(v for k, v in peer_seconds.items() if k in peer_peaks)
    peer_peak = max(peer_peaks.values())

    rows = [
        {
            "step": name,
            "seconds": round(seconds[name], 2),
            "peak GiB": round(peaks[name], 2),
            "rebuild seconds": round(peer_seconds[name], 2),
            "rebuild peak GiB": round(peer_peaks[name], 2),
        }
        for name in peaks
    ]
    rows.append(
        {
            "step": "night",
            "seconds": round(total, 2),
            "peak GiB": round(peak, 2),
            "rebuild seconds": round(peer_total, 2),
            "rebuild peak GiB": round(peer_peak, 2),
        }
    )
    details = {
        "series": args.series,
        "horizon": args.horizon,
        "rows scored (window)": int(seconds["rows scored"]),
        "rows with quantiles scored (window)": int(seconds["quantile rows"]),
        "levels": ",".join(f"{v:g}" for v in LEVELS),
        "live interval coverage": round(float(seconds["live interval coverage"]), 3),
        "live wQL": round(float(seconds["live wql"]), 3),
        "periods written": int(seconds["periods"]),
        "peer periods written": int(peer_seconds["periods"]),
        "catch-up seconds": round(catch_up, 1),
    }
    figures = [
        Figure(
            "one night's monitoring",
            total,
            "s",
            "ledger rebuilt from nothing",
            peer_total,
            f"{args.series} series",
            details,
        ),
        Figure(
            "one night's monitoring peak memory",
            peak,
            "GiB",
            "ledger rebuilt from nothing",
            peer_peak,
            f"{args.series} series",
            details,
        ),
    ]
    report("monitor", "One night's monitoring", rows, figures, base.data_dir)
    console.print(details)
    verdict = "within" if total < 60 and peak < 2 else "OUTSIDE"
    console.print(f"{verdict} the goal (< 60 s, < 2 GiB): {total:.1f} s, {peak:.2f} GiB")


if __name__ == "__main__":
    main()
