"""Re-scoring on the backtest: challenger and champion, same window, same rows, now.

The production gate must not trust the WAPE a run logged months ago against a
champion scored on other rows. It rebuilds the challenger's training set the
way training built it (deterministic: the same settings and data give the same
rows, which the contract's training-set hash proves), keeps the rows whose
origin is in the challenger's backtest window, and predicts them with both
registered models. Reading only: nothing here trains, registers or serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from demand.contract import FeatureContract
from demand.settings import Settings
from training import dataset
from training.metrics import scores

Progress = Callable[[str], None]
KEYS = ["store_id", "product_id", "origin", "horizon"]
# run parameters that decide which rows a training set has (training logs them)
ROW_PARAMS = ("origin_every_days", "warmup_days", "test_days", "validation_days")


class ScoringProblem(RuntimeError):
    """The backtest cannot be re-scored; the message says why (it ends up in the gate)."""


@dataclass
class BacktestRows:
    """The challenger's backtest rows, with the frames per feature service they came from."""

    settings: Settings
    start: pd.Timestamp
    end: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # service → backtest rows

    @property
    def window(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end}"

    @property
    def rows(self) -> int:
        return len(next(iter(self.frames.values())))

    def for_contract(self, contract: FeatureContract, progress: Progress) -> pd.DataFrame:
        """The rows with ``contract``'s features (a champion may read another feature service)."""
        service = contract.feature_service
        if service not in self.frames:
            built = _backtest(self.settings.model_copy(update={"feature_service": service}), self)
            reference = next(iter(self.frames.values()))
            if (
                not built[KEYS]
                .reset_index(drop=True)
                .equals(reference[KEYS].reset_index(drop=True))
            ):
                raise ScoringProblem(
                    f"feature service {service!r} yields other backtest rows than the challenger's"
                )
            progress(f"rebuilt the backtest rows through feature service {service!r}")
            self.frames[service] = built
        return self.frames[service]


def _training_set(settings: Settings) -> dataset.TrainingSet:
    from demand.featurestore import open_store

    try:
        return dataset.build(open_store(settings), settings, progress=lambda _: None)
    except dataset.TrainingDataError as error:
        raise ScoringProblem(f"cannot rebuild the backtest rows: {error}") from None


def _backtest(settings: Settings, rows: BacktestRows) -> pd.DataFrame:
    frame = _training_set(settings).frame
    return frame[frame["origin"] >= rows.start].reset_index(drop=True)


def backtest_rows(
    settings: Settings, contract: FeatureContract, run_params: dict[str, str], progress: Progress
) -> BacktestRows:
    """Rebuild the challenger's training set and keep its backtest rows."""
    start, end = contract.extra.get("backtest_start"), contract.extra.get("backtest_end")
    if not start or not end:
        raise ScoringProblem("the contract records no backtest window (backtest_start/end)")
    update: dict[str, object] = {
        "horizon": contract.horizon,
        "feature_service": contract.feature_service,
    }
    update.update({p: int(run_params[p]) for p in ROW_PARAMS if p in run_params})
    rebuilt = settings.model_copy(update=update)
    progress(f"rebuilding the backtest rows (origins {start}..{end}) through Feast")
    training_set = _training_set(rebuilt)
    if training_set.digest != contract.training_set_hash:
        # other rows than the model was backtested on: comparing would be meaningless
        raise ScoringProblem(
            f"the rebuilt training set (hash {training_set.digest}) is not the one the version "
            f"was trained on ({contract.training_set_hash}): the feature data changed since"
        )
    frame = training_set.frame
    result = BacktestRows(rebuilt, pd.Timestamp(start), end)
    result.frames[contract.feature_service] = frame[frame["origin"] >= result.start].reset_index(
        drop=True
    )
    if result.rows == 0:
        raise ScoringProblem(f"no backtest rows with origin ≥ {start}")
    return result


def predict(name: str, version: str, contract: FeatureContract, rows: pd.DataFrame) -> np.ndarray:
    """Units the registered version forecasts for ``rows``, never below zero."""
    import mlflow.catboost

    model = mlflow.catboost.load_model(f"models:/{name}/{version}")
    return np.clip(model.predict(contract.model_frame(rows)), 0, None)


def wape(
    name: str, version: str, contract: FeatureContract, rows: BacktestRows, progress: Progress
) -> float:
    frame = rows.for_contract(contract, progress)
    return scores(frame["label"], predict(name, version, contract, frame))["wape"]
