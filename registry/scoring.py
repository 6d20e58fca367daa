"""Re-scoring on the backtest: challenger and champion, same window, same rows, now.

The production gate must not trust the WAPE a run logged months ago against a
champion scored on other rows. It rebuilds the rows of the challenger's training set
whose origin is in its backtest window, the way training built them (deterministic:
the same settings and data give the same rows, which the hash of the backtest rows in
the contract proves), and only those: the window's origins and labels, one Feast
retrieval of its rows (``training.dataset.Window``). It predicts them with both versions'
*backtest* models. The model a version serves is refit on every closed day, its
backtest window included, so it is never scored here: the model fitted before the
window is kept inside it (see ``FeatureContract.backtest_model_uri``). Reading only:
nothing here trains, registers or serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from demand.contract import FeatureContract
from demand.settings import Settings
from training import dataset
from training.metrics import pinball, scores

Progress = Callable[[str], None]
KEYS = ["store_id", "product_id", "origin", "horizon"]
# run parameters that decide which rows a training set has (training logs them)
ROW_PARAMS = (
    "origin_every_days",
    "warmup_days",
    "test_days",
    "validation_days",
    # the weekly grain's schedule (training.periods), in weeks
    "weekly_origin_every",
    "weekly_warmup",
    "weekly_test",
    "weekly_validation",
    # the training-row sample (training.dataset.Sampling): the same pairs, the same rows
    "train_sample_seed",
)
FRACTION_PARAMS = ("train_sample_fraction",)
SERIES = ["store_id", "product_id"]


@dataclass(frozen=True)
class UnseenMinimum:
    """What two versions must still share when the champion saw part of the window.

    In periods of the grain and in series, never in rows: a fixed row count is a
    fortnight on one retailer and a year on another. A period's WAPE moves by ±0.05
    from week to week on the tiny retailer (measured), so one period says little; the
    paired interval widens on few periods and series anyway, the minimum refuses before
    a verdict on a slice of the calendar or of the assortment.
    """

    periods: int
    unit: str  # "day" or "week"
    key_share: float

    @classmethod
    def of(cls, settings: Settings, grain: str) -> UnseenMinimum:
        """Per grain: ``DEMAND_GATE_MIN_UNSEEN_DAYS`` (two of every weekday) or
        ``DEMAND_GATE_MIN_UNSEEN_WEEKS`` (a month), and ``DEMAND_GATE_MIN_UNSEEN_KEY_SHARE``."""
        if grain == "week":
            return cls(settings.gate_min_unseen_weeks, "week", settings.gate_min_unseen_key_share)
        return cls(settings.gate_min_unseen_days, "day", settings.gate_min_unseen_key_share)

    @property
    def setting(self) -> str:
        return f"DEMAND_GATE_MIN_UNSEEN_{self.unit.upper()}S"


class ScoringProblem(RuntimeError):
    """The backtest cannot be re-scored; the message says why (it ends up in the gate)."""


@dataclass
class BacktestRows:
    """The challenger's backtest rows, with the frames per feature service they came from."""

    settings: Settings
    start: pd.Timestamp
    end: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # service → backtest rows
    first_target: pd.Timestamp | None = None  # only targets from here on (see unseen_by)
    note: str = ""  # why fewer rows than the window were scored, if they were

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a rebuilt training set that belong to this window."""
        keep = (frame["origin"] >= self.start) & (frame["target"] <= pd.Timestamp(self.end))
        if self.first_target is not None:
            keep &= frame["target"] >= self.first_target
        return frame[keep].reset_index(drop=True)

    @property
    def window(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end}"

    @property
    def span(self) -> dataset.Window:
        """The rows to rebuild: origins from the start, targets through the end."""
        return dataset.Window(self.start, pd.Timestamp(self.end))

    @property
    def rows(self) -> int:
        return len(next(iter(self.frames.values())))

    def for_contract(self, contract: FeatureContract, progress: Progress) -> pd.DataFrame:
        """The rows with ``contract``'s features (a champion may read another feature service)."""
        service = contract.feature_service
        if service not in self.frames:
            settings = self.settings.model_copy(update={"feature_service": service})
            built = self.select(_training_set(settings, self.span).frame)
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


def _training_set(settings: Settings, window: dataset.Window | None) -> dataset.TrainingSet:
    """The training set of ``settings``, only ``window``'s rows of it when given."""
    from demand.featurestore import open_store

    try:
        return dataset.build(open_store(settings), settings, lambda _: None, window)
    except dataset.TrainingDataError as error:
        raise ScoringProblem(f"cannot rebuild the backtest rows: {error}") from None


def backtest_rows(
    settings: Settings, contract: FeatureContract, run_params: dict[str, str], progress: Progress
) -> BacktestRows:
    """Rebuild the challenger's training set and keep its backtest window's rows.

    The window is capped at its end as trained (origins from ``backtest_start``,
    targets through ``backtest_end``), so the rows are the ones the version was
    backtested on however many days the data has gained since; their hash proves it.
    Only the window's rows are rebuilt, unless the contract hashes the whole training set
    (versions from before ``backtest_hash``): then the whole set, for its hash.
    """
    start, end = contract.extra.get("backtest_start"), contract.extra.get("backtest_end")
    if not start or not end:
        raise ScoringProblem("the contract records no backtest window (backtest_start/end)")
    horizon = "weekly_horizon" if contract.grain == "week" else "horizon"
    update: dict[str, object] = {
        horizon: contract.horizon,
        "feature_service": contract.feature_service,
    }
    update.update({p: int(run_params[p]) for p in ROW_PARAMS if p in run_params})
    update.update({p: float(run_params[p]) for p in FRACTION_PARAMS if p in run_params})
    rebuilt = settings.model_copy(update=update)
    progress(f"rebuilding the backtest rows (origins {start}..{end}) through Feast")
    result = BacktestRows(rebuilt, pd.Timestamp(start), end)
    expected = contract.extra.get("backtest_hash")
    training_set = _training_set(rebuilt, result.span if expected else None)
    window = result.select(training_set.frame)
    if expected:
        found = dataset.digest(window, training_set.features)
        what = "backtest rows"
    else:  # versions trained before the window had a hash of its own: the whole set
        expected, found, what = contract.training_set_hash, training_set.digest, "training set"
    if found != expected:
        # other rows than the model was backtested on: comparing would be meaningless
        raise ScoringProblem(
            f"the rebuilt {what} (hash {found}) are not the ones the version was backtested "
            f"on ({expected}): the feature data of the window {start}..{end} changed since"
        )
    result.frames[contract.feature_service] = window
    if result.rows == 0:
        raise ScoringProblem(f"no backtest rows with origin ≥ {start}")
    return result


def unseen_by(
    champion: FeatureContract, rows: BacktestRows, minimum: UnseenMinimum
) -> BacktestRows:
    """The rows whose label ``champion``'s backtest model never saw, scored for both alike.

    A backtest model saw every label before its own backtest window (training and
    early stopping). When the champion was trained later than the challenger, that
    covers the start of the challenger's window; comparing there would flatter the
    champion. Fewer unseen target periods, or series, than ``minimum`` is a refusal,
    not a verdict.
    """
    start = champion.extra.get("backtest_start")
    if not start:
        raise ScoringProblem("its contract records no backtest window, so its training range")
    first_unseen = pd.Timestamp(start)
    if first_unseen <= rows.start:
        return rows
    kept = BacktestRows(rows.settings, rows.start, rows.end, first_target=first_unseen)
    for service, frame in rows.frames.items():
        kept.frames[service] = kept.select(frame)
    seen_through = f"{first_unseen - pd.Timedelta(days=1):%Y-%m-%d}"
    later = "promote with --force --reason, or wait for a challenger trained on later data"
    if kept.rows == 0:
        raise ScoringProblem(
            f"it saw labels through {seen_through}, which "
            f"covers the challenger's whole backtest window {rows.window}: no row is unseen "
            f"by both, so they cannot be compared; {later}"
        )
    every, left = next(iter(rows.frames.values())), next(iter(kept.frames.values()))
    periods = left["target"].nunique()
    if periods < minimum.periods:
        raise ScoringProblem(
            f"it saw labels through {seen_through}: the challenger's backtest "
            f"({rows.window}) has only {periods} target {minimum.unit}s after that "
            f"({kept.rows:,} rows), fewer than the {minimum.periods} {minimum.unit}s the gate "
            f"compares on ({minimum.setting}); {later}"
        )
    series, covered = _series(every), _series(left)
    if covered < minimum.key_share * series:
        raise ScoringProblem(
            f"it saw labels through {seen_through}: only {covered:,} of the backtest's "
            f"{series:,} series have a later target, fewer than the share "
            f"{minimum.key_share:g} the gate compares on (DEMAND_GATE_MIN_UNSEEN_KEY_SHARE); "
            f"{later}"
        )
    kept.note = (
        f"rows with a target from {first_unseen:%Y-%m-%d} only ({periods} {minimum.unit}s, "
        f"{covered:,} series): the champion saw the labels before"
    )
    return kept


def _series(frame: pd.DataFrame) -> int:
    return len(frame[SERIES].drop_duplicates())


def predict(name: str, version: str, contract: FeatureContract, rows: pd.DataFrame) -> np.ndarray:
    """Units the version's backtest model forecasts for ``rows``, never below zero.

    Never the refit model the version serves: it trained on the backtest rows.
    """
    import mlflow.catboost

    model = mlflow.catboost.load_model(contract.backtest_model_uri(name, version))
    return contract.predict(model, rows)


def forecast(
    name: str, version: str, contract: FeatureContract, rows: BacktestRows, progress: Progress
) -> np.ndarray:
    """The version's backtest model's units for ``rows``, in their order."""
    return predict(name, version, contract, rows.for_contract(contract, progress))


def wape(
    name: str, version: str, contract: FeatureContract, rows: BacktestRows, progress: Progress
) -> float:
    frame = rows.for_contract(contract, progress)
    return scores(frame["label"], predict(name, version, contract, frame))["wape"]


def actual_and_series(rows: BacktestRows) -> tuple[np.ndarray, np.ndarray]:
    """Units sold per row, and each row's series (the paired bootstrap's block)."""
    frame = next(iter(rows.frames.values()))
    series = frame["store_id"].astype(str) + "\x1f" + frame["product_id"].astype(str)
    return frame["label"].to_numpy(dtype=float), series.to_numpy()


def pinball_of(
    name: str, version: str, contract: FeatureContract, rows: BacktestRows
) -> np.ndarray | None:
    """:func:`pinball_losses` of the version on ``rows``, in their order."""
    return pinball_losses(name, version, contract, rows.for_contract(contract, lambda _: None))


def pinball_losses(
    name: str, version: str, contract: FeatureContract, frame: pd.DataFrame
) -> np.ndarray | None:
    """Each row's pinball loss (training.metrics.pinball) of the version's *backtest*
    quantile model on ``frame``, short-history rows on their baseline's interval as served,
    for the production gate's paired wQL check; None for a version without quantile
    forecasts."""
    import mlflow.catboost

    path = contract.extra.get("backtest_quantile_model")
    if not contract.quantiles or not path:
        return None
    model = mlflow.catboost.load_model(f"models:/{name}/{version}/{path}")
    raw = model.predict(contract.model_frame(frame))
    units = contract.quantile_forecast(raw, frame, frame["horizon"].to_numpy())
    return pinball(frame["label"], units, contract.quantiles)
