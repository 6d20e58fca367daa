"""Fit the demand model on an exported training set: numpy, pandas and catboost only.

    python benchmarks/catboost_fit.py DIR [--device cpu|gpu] [--loss LOSS ...]

DIR holds ``training_set.parquet`` (model inputs, ``label``, ``part`` = train /
valid / test) and ``params.json`` (CatBoost parameters and categorical columns),
written by ``python -m benchmarks.train``. This file imports nothing from the
platform, so it runs on a GPU box that has only the three libraries above.
Prints one JSON line per loss: fit seconds, rows/s, trees, backtest WAPE.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostRegressor, Pool


def fit_once(frame: pd.DataFrame, spec: dict, device: str, loss: str | None) -> dict:
    params = dict(spec["params"], task_type=device.upper())
    if loss:
        params["loss_function"] = loss
    features, categorical = spec["features"], spec["categorical"]
    parts = {p: frame[frame["part"] == p] for p in ("train", "valid", "test")}
    pools = {p: Pool(d[features], d["label"], cat_features=categorical) for p, d in parts.items()}
    model = CatBoostRegressor(**params)
    started = time.perf_counter()
    model.fit(pools["train"], eval_set=pools["valid"], use_best_model=True, verbose=False)
    seconds = time.perf_counter() - started
    test = parts["test"]
    predicted = model.predict(pools["test"]).clip(min=0)
    wape = float(np.abs(test["label"] - predicted).sum() / test["label"].sum())
    return {
        "device": device,
        "loss": params["loss_function"],
        "fit_seconds": round(seconds, 2),
        "train_rows": len(parts["train"]),
        "rows_per_second": round(len(parts["train"]) * model.tree_count_ / seconds),
        "trees": model.tree_count_,
        "test_wape": round(wape, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--loss", nargs="*", default=[None], help="losses to compare (default: the exported one)"
    )
    args = parser.parse_args(argv)
    frame = pd.read_parquet(args.directory / "training_set.parquet")
    spec = json.loads((args.directory / "params.json").read_text())
    for loss in args.loss:
        print(json.dumps(fit_once(frame, spec, args.device, loss)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
