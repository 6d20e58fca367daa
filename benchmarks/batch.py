"""Benchmark training on sampled origins and the batch forecasts at M5 width (~30,000 series).

    python -m benchmarks.batch [--series 30000] [--days 150] [--max-rows 200000] [--reuse]

Makes an aggregated daily retailer of ``--series`` store × product series: the
``default`` generated retailer over ``--days`` days, aggregated, its stores copied
until there are enough series (the copies keep their region, so weather is shared as
in a real chain). Planned promotions are kept for the last 14 days and the 10 ahead
only, so materializing them stays within minutes. Then: feature build, apply,
materialize; training with ``DEMAND_TRAIN_MAX_ROWS=--max-rows`` (training-set rows,
seconds of the Feast join, CatBoost fit and refit seconds on CPU); and the batch
forecasts of every key × horizon (``serving.batch.forecast_all``) against the peer,
the same lookups and scoring in /forecast-sized batches of DEMAND_SERVE_MAX_ITEMS
items (what the batch path did before), with whether both give the same units.
Data goes to DEMAND_DATA_DIR/bench/batch-<series>; figures to bench-batch.json there.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from benchmarks.common import Figure, console, peak_rss_gib, report, timed
from demand.settings import get_settings
from features import pipeline, publish
from synthetic import aggregate, generator

# planned promotions kept: targets from this many days before the last sales day to this
# many after (the horizon), so that materializing them stays within minutes at 30k series
PROMOTION_DAYS = (14, 10)


def retailer(series: int, days: int, seed: int) -> aggregate.Aggregated:
    """The default retailer's aggregated export with its stores copied up to ``series``."""
    data = generator.generate("default", seed=seed, days=days)
    base = aggregate.aggregate(data, "day", seed=seed)
    tables = dict(base.tables)
    stores = tables["stores"]
    per_store = len(tables["products"])
    copies = math.ceil(series / (len(stores) * per_store))

    def copied(frame: pd.DataFrame) -> pd.DataFrame:
        parts = [frame.assign(store_id=frame["store_id"] + f"-{k:03d}") for k in range(copies)]
        return pd.concat(parts, ignore_index=True)

    tables["stores"] = copied(stores)
    tables["sales"] = copied(tables["sales"])
    promotions = tables["promotions"]
    last = tables["sales"]["date"].max()
    before, after = (pd.Timedelta(days=d) for d in PROMOTION_DAYS)
    dates = promotions["date"]
    recent = promotions[(dates > last - before) & (dates <= last + after)]
    tables["promotions"] = copied(recent)
    return replace(base, tables=tables)


def peer_forecasts(settings, loaded) -> pd.DataFrame:
    """The batch forecasts as a client of /forecast gets them: lookups and scoring in
    batches of ``serve_max_items`` items, a target per item (the path before)."""
    from serving import batch
    from serving.predict import score

    calendar = loaded.lookup.calendar
    pairs = batch.keys(settings)
    stores, products = [s for s, _ in pairs], [p for _, p in pairs]
    origins = loaded.lookup.fetch(stores, products).origin
    horizon = loaded.contract.horizon
    items = [
        (s, p, o, h)
        for s, p, o in zip(stores, products, origins, strict=True)
        if o is not None
        for h in range(1, horizon + 1)
    ]
    units: list[float | None] = []
    step = settings.serve_max_items
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        cs, cp = [i[0] for i in chunk], [i[1] for i in chunk]
        targets = [calendar.start(calendar.period(i[2]) + i[3]) for i in chunk]
        units += score(loaded, cs, cp, loaded.lookup.fetch(cs, cp, targets))
    return pd.DataFrame(
        {
            "store_id": [i[0] for i in items],
            "product_id": [i[1] for i in items],
            "horizon": [i[3] for i in items],
            "units": units,
        }
    )


def _warm(settings, loaded) -> None:
    """One key looked up and scored: imports (holidays, CatBoost) paid before any timing."""
    from serving import batch
    from serving.predict import score

    store, product = batch.keys(settings)[0]
    score(loaded, [store], [product], loaded.lookup.fetch([store], [product]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--max-rows", type=int, default=200_000)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--reuse", action="store_true", help="keep the data and model built")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args(argv)

    base = get_settings()
    data_dir = base.data_dir / "bench" / f"batch-{args.series}"
    update = {
        "data_dir": data_dir,
        "mlflow_tracking_uri": f"sqlite:///{data_dir}/mlflow.db",
        "train_max_rows": args.max_rows,
    }
    if args.iterations:
        update["iterations"] = args.iterations
    settings = get_settings(**update)
    seconds: dict[str, float] = {}
    figures: list[dict] = []

    built = (settings.feature_dir / "store_product_daily.parquet").exists()
    if not (args.reuse and built):
        with timed(seconds, "generate"):
            export = retailer(args.series, args.days, settings.seed)
            aggregate.write(export, settings.raw_dir)
        with timed(seconds, "build features"):
            pipeline.build_features(settings, progress=lambda _: None)
        with timed(seconds, "feast apply"):
            publish.apply(settings)
        with timed(seconds, "materialize"):
            publish.materialize(settings)

    import mlflow

    from registry import lifecycle
    from serving import batch, model_loader
    from training import train

    if not (args.reuse and (data_dir / "mlflow.db").exists()):
        with timed(seconds, "train"):
            result = train.run(settings, device="cpu", progress=console.print)
        lifecycle.promote(settings, result.version, "production", force=True, reason="benchmark")
        params = mlflow.get_run(result.run_id).data.params
        figures += [
            {"name": "training rows", "value": result.rows, "unit": "rows"},
            {"name": "candidate rows", "value": int(params["candidate_rows"]), "unit": "rows"},
            {"name": "training set (Feast join)", "value": result.seconds["training set"]},
            {"name": "CatBoost fit (CPU)", "value": result.seconds["fit"]},
            {"name": "CatBoost refit (CPU)", "value": result.seconds["refit"]},
        ]

    loaded = model_loader.load(settings, alias="production")
    _warm(settings, loaded)
    # CPU seconds beside wall seconds: on a shared machine the wall clock counts the others
    started, cpu = time.perf_counter(), time.process_time()
    frame = batch.forecast_all(settings, loaded, progress=console.print)
    fast = time.perf_counter() - started
    row = {"name": f"batch forecasts {len(frame):,} rows", "value": fast, "unit": "s"}
    figures.append(
        {"name": "batch forecasts, CPU", "value": time.process_time() - cpu, "unit": "s"}
    )
    if not args.skip_peer:
        loaded = model_loader.load(settings, alias="production")  # no memo carried over
        _warm(settings, loaded)
        started, cpu = time.perf_counter(), time.process_time()
        peer = peer_forecasts(settings, loaded)
        row["peer"] = time.perf_counter() - started
        figures[-1]["peer"] = time.process_time() - cpu
        row["peer_name"] = f"lookups in batches of {settings.serve_max_items} items"
        mine = frame[["store_id", "product_id", "horizon", "units"]].reset_index(drop=True)
        row["same_units"] = bool(mine.equals(peer))
        if not row["same_units"]:
            differ = ~np.isclose(mine["units"], peer["units"], rtol=0, atol=0)
            console.print(f"[red]{int(differ.sum())} rows differ[/red]")
    figures.append(row)
    figures += [{"name": k, "value": v, "unit": "s"} for k, v in seconds.items()]
    figures.append({"name": "peak RSS", "value": peak_rss_gib(), "unit": "GiB"})
    columns = {
        "name": "",
        "value": None,
        "unit": "s",
        "peer": "",
        "peer_name": "",
        "same_units": "",
    }
    rows = [{**columns, **f} for f in figures]
    measured = [
        Figure(
            r["name"],
            r["value"],
            r["unit"],
            (r["peer_name"] or "the same path") if r["peer"] != "" else None,
            r["peer"] if r["peer"] != "" else None,
            None,
            {"same_units": r["same_units"]} if r["same_units"] != "" else {},
        )
        for r in rows
    ]
    report("batch", "batch forecasts and sampled training", rows, measured, data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
