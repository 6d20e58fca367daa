"""Fit the demand model on an exported training set: numpy, pandas and catboost only.

    python benchmarks/catboost_fit.py DIR [--device cpu|gpu] [--loss LOSS ...] [--no-refit]

DIR holds ``training_set.parquet`` (model inputs, ``label``, ``part`` = train /
valid / test / rest) and ``params.json`` (CatBoost parameters and categorical columns),
written by ``python -m benchmarks.train``. This file imports nothing from the
platform, so it runs on a GPU box that has only the three libraries above.

Does what training does: fits on ``train`` with early stopping on ``valid`` (the
backtest model), scores it on ``valid`` (where choices are made) and on ``test``
(the backtest, where they are judged), then refits that many trees on every row
(the served model; ``rest`` are rows no window holds whole, which the refit uses
too). Prints one JSON line per loss: fit and refit seconds, rows/s, trees, WAPEs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostRegressor, Pool


def _wape(model: CatBoostRegressor, pool: Pool, label: pd.Series) -> float:
    predicted = model.predict(pool).clip(min=0)
    return round(float(np.abs(label - predicted).sum() / label.sum()), 4)


def fit_once(frame: pd.DataFrame, spec: dict, device: str, loss: str | None, refit: bool) -> dict:
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
    result = {
        "device": device,
        "loss": params["loss_function"],
        "fit_seconds": round(seconds, 2),
        "train_rows": len(parts["train"]),
        "rows_per_second": round(len(parts["train"]) * model.tree_count_ / seconds),
        "trees": model.tree_count_,
        "valid_wape": _wape(model, pools["valid"], parts["valid"]["label"]),
        "test_wape": _wape(model, pools["test"], parts["test"]["label"]),
    }
    if refit:  # as training.model.refit: the same trees on every row, no early stopping
        fixed = {k: v for k, v in params.items() if k not in ("od_type", "od_wait")}
        served = CatBoostRegressor(**{**fixed, "iterations": model.tree_count_})
        everything = Pool(frame[features], frame["label"], cat_features=categorical)
        started = time.perf_counter()
        served.fit(everything, verbose=False)
        result["refit_seconds"] = round(time.perf_counter() - started, 2)
        result["refit_rows"] = len(frame)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--loss", nargs="*", default=[None], help="losses to compare (default: the exported one)"
    )
    parser.add_argument(
        "--no-refit", dest="refit", action="store_false", help="skip the refit on every row"
    )
    args = parser.parse_args(argv)
    frame = pd.read_parquet(args.directory / "training_set.parquet")
    spec = json.loads((args.directory / "params.json").read_text())
    for loss in args.loss:
        print(json.dumps(fit_once(frame, spec, args.device, loss, args.refit)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
