"""Benchmark training: the Feast training-set build and the CatBoost fit, by scale.

    python -m benchmarks.train [--scales default large] [--compare-losses]

For each scale: retrieval time through Feast (DuckDB offline store) and rows/s,
then the fit on this machine's CPU, run by ``benchmarks/catboost_fit.py`` on the
training set exported to parquet, the same file a GPU machine fits with only
numpy, pandas and catboost installed (``--device gpu``): the backtest model (early
stopping on the validation window) and the refit of that many trees on every
closed day that training registers, each with its seconds. ``--compare-losses``
fits RMSE, Poisson and Tweedie on the first scale (default: the default scale)
and picks the loss with the lowest WAPE on the validation window (choose on
validation); the backtest WAPE beside it only judges the choice, it never makes
it. Data goes to DEMAND_DATA_DIR/bench/<scale>.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

from benchmarks.common import Figure, console, peak_rss_gib, report, timed
from demand.featurestore import open_store
from demand.settings import get_settings
from features import pipeline
from training import dataset
from training import model as demand_model
from training.train import feature_contract, time_split

# the large history is subsampled harder so one fit stays within minutes on 2 cores
# (steps coprime with 7, so origins still walk through the weekdays)
ORIGIN_EVERY = {"tiny": 3, "default": 5, "large": 29}
LOSSES = ["RMSE", "Poisson", "Tweedie:variance_power=1.3", "Tweedie:variance_power=1.5"]


def export(settings, out: Path, progress) -> int:
    store = open_store(settings)
    training_set = dataset.build(store, settings, progress)
    frame = training_set.frame
    split = time_split(frame, settings)
    contract = feature_contract(store.project, settings, training_set, split, "CPU")
    x = contract.model_frame(frame)
    x["label"] = frame["label"]
    x["part"] = "rest"  # in no window whole (a target past the window's end): refit only
    x.loc[split.train, "part"] = "train"
    x.loc[split.valid, "part"] = "valid"
    x.loc[split.test, "part"] = "test"
    out.mkdir(parents=True, exist_ok=True)
    x[split.refit].to_parquet(out / "training_set.parquet", index=False)
    params = demand_model.params(settings, "CPU")
    params.pop("task_type")
    (out / "params.json").write_text(
        json.dumps(
            {
                "params": params,
                "features": contract.features,
                "categorical": contract.categorical,
            },
            indent=2,
        )
    )
    return len(frame)


def fit(directory: Path, losses: list[str] | None = None) -> list[dict]:
    """The fit and refit of the exported loss, or, given ``losses``, each one's fit only."""
    script = Path(__file__).with_name("catboost_fit.py")
    command = [sys.executable, str(script), str(directory), "--device", "cpu"]
    if losses:
        command += ["--loss", *losses, "--no-refit"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _row(step: str, rows, seconds, trees="", valid="", backtest="", device="CPU") -> dict:
    return {
        "step": step,
        "rows": rows,
        "seconds": seconds,
        "rows/s": rows / seconds if rows and seconds else "",
        "device": device,
        "trees": trees,
        # four decimals: the losses differ in the third
        "valid WAPE": f"{valid:.4f}" if valid != "" else "",
        "backtest WAPE": f"{backtest:.4f}" if backtest != "" else "",
        "peak GiB": peak_rss_gib() if seconds else "",
    }


def figures(rows: list[dict]) -> list[Figure]:
    """Seconds and rows/s per measured step, and the WAPEs of each fit. No peer ran in the
    same process (the baselines' WAPEs are training's, README), so none is named."""
    out = []
    for row in rows:
        if row["seconds"] == "":
            continue  # not measured (the GPU row)
        details = {"rows": row["rows"], "trees": row["trees"], "device": row["device"]}
        out.append(Figure(row["step"], row["seconds"], "s", details=details))
        for column in ("valid WAPE", "backtest WAPE"):
            if row[column]:
                out.append(Figure(f"{row['step']}: {column}", float(row[column]), "WAPE"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["default", "large"])
    parser.add_argument("--compare-losses", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    base = get_settings()
    rows = []
    for scale in args.scales:
        settings = get_settings(
            data_dir=base.data_dir / "bench" / scale,
            scale=scale,
            origin_every_days=ORIGIN_EVERY[scale],
        )
        t: dict[str, float] = {}
        # always rebuild: feature tables left by an older build may lack today's columns
        with timed(t, f"features {scale}"):
            regenerate = not (settings.raw_dir / "orders.parquet").exists()
            pipeline.run(settings, progress=lambda m: None, regenerate=regenerate)
        out = settings.data_dir / "train_export"
        with timed(t, f"training set {scale}"):
            n = export(settings, out, console.print)
        seconds = t[f"training set {scale}"]
        rows.append(_row(f"training set via Feast ({scale})", n, seconds))
        with timed(t, f"fit {scale}"):
            (result,) = fit(out)
        rows.append(
            _row(
                f"CatBoost fit, backtest model ({scale}, {result['loss']})",
                result["train_rows"],
                result["fit_seconds"],
                result["trees"],
                result["valid_wape"],
                result["test_wape"],
            )
        )
        rows.append(
            _row(
                f"CatBoost refit on every closed day ({scale}, served model)",
                result["refit_rows"],
                result["refit_seconds"],
                result["trees"],
            )
        )
        if args.compare_losses and scale == args.scales[0]:
            compared = fit(out, LOSSES)
            # choose on the validation window (where early stopping already looked), judge
            # on the backtest: a choice made on the backtest would leave nothing to judge it
            chosen = min(compared, key=lambda r: r["valid_wape"])["loss"]
            for r in compared:
                mark = " ← lowest validation WAPE" if r["loss"] == chosen else ""
                rows.append(
                    _row(
                        f"loss {r['loss']} ({scale}){mark}",
                        r["train_rows"],
                        r["fit_seconds"],
                        r["trees"],
                        r["valid_wape"],
                        r["test_wape"],
                    )
                )
            if chosen != settings.loss:
                console.print(
                    f"the validation window picks {chosen}, not the default {settings.loss}"
                )
    rows.append(
        _row(
            "CatBoost fit (GPU)",
            "",
            "",
            device="not measured: no NVIDIA GPU here; run catboost_fit.py --device gpu",
        )
    )
    report("train", "bench-train", rows, figures(rows), base.data_dir)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
