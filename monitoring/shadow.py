"""Live evidence: the staging version's shadow forecasts against production's, on the same targets.

Each night publishes production's forecasts (DATA_DIR/forecasts/origin=….parquet) and,
beside them, the staging version's (DATA_DIR/forecasts/shadow/version=N/origin=….parquet,
never served; serving/batch.py). Once the targets close, the sales are known. Where both
versions forecast the same store, product, origin and target and the actual is known,
the two forecasts are compared with the rule the backtest uses:
``training.metrics.paired_difference``, a block bootstrap of the WAPE difference with
each series (store, product) one block.

Evidence is "sufficient" after ``shadow_nights`` origins with actuals (a setting); before
that the production gate judges on the backtest, and says so. The nightly cycle keeps a
staging version in staging while it collects them (``nightly_shadow_hold``), unless its
shadow has stopped (``stalled``).

The forecasts are joined with the actuals here (``with_actuals``), from the purchase
feature table's sales (as training's labels are); the forecast ledger
(``forecast_accuracy``) is the same join kept incrementally, which this could read instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from demand.settings import Settings
from training.metrics import PairedDifference, paired_difference

Progress = Callable[[str], None]
KEY = ["store_id", "product_id", "origin_date", "target_date"]


def shadow_dir(settings: Settings) -> Path:
    """Where the staging versions' forecasts are published (one folder per version)."""
    return settings.forecast_dir / "shadow"


@dataclass(frozen=True)
class LiveEvidence:
    """Champion (production) and challenger (shadow) forecasts of the same closed targets."""

    challenger_version: str
    champion_version: str
    nights: int  # origins with both versions' forecasts and actuals
    needed: int  # nights the setting asks for
    rows: int
    window: str  # "first origin..last origin"
    paired: PairedDifference | None  # None until there are enough nights

    @property
    def sufficient(self) -> bool:
        return self.paired is not None and self.nights >= self.needed and self.rows > 0

    def describe(self) -> str:
        return (
            f"live evidence: {self.nights} of {self.needed} nights, {self.rows:,} targets with "
            f"actuals, v{self.challenger_version} (shadow) against v{self.champion_version} "
            f"(production), origins {self.window}"
        )


def _read(files: list[Path]) -> pd.DataFrame:
    columns = [*KEY, "model_version", "units"]
    if not files:
        return pd.DataFrame(columns=columns)
    frame = pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
    for column in ("origin_date", "target_date"):
        frame[column] = pd.to_datetime(frame[column]).dt.normalize()
    frame["model_version"] = frame["model_version"].astype(str)
    return frame


def production_forecasts(settings: Settings, version: str, origins=None) -> pd.DataFrame:
    """What production published while ``version`` held it (of ``origins`` only, when
    given: the shadow's, so a year of published nights is not read for a week's)."""
    if origins is None:
        files = sorted(settings.forecast_dir.glob("origin=*.parquet"))
    else:
        named = (
            settings.forecast_dir / f"origin={pd.Timestamp(o):%Y-%m-%d}.parquet" for o in origins
        )
        files = [f for f in named if f.exists()]
    frame = _read(files)
    return frame[frame["model_version"] == str(version)].reset_index(drop=True)


def shadow_forecasts(settings: Settings, version: str) -> pd.DataFrame:
    """What ``version`` forecast in shadow while in staging."""
    return _read(sorted((shadow_dir(settings) / f"version={version}").glob("origin=*.parquet")))


def _origin_of(path: Path) -> pd.Timestamp:
    return pd.Timestamp(path.stem.removeprefix("origin="))


def shadow_origins(settings: Settings, version: str) -> list[pd.Timestamp]:
    """The origins ``version`` published a shadow for, oldest first."""
    folder = shadow_dir(settings) / f"version={version}"
    return sorted(_origin_of(p) for p in folder.glob("origin=*.parquet"))


def newest_production_origin(settings: Settings, version: str) -> pd.Timestamp | None:
    """The newest origin whose published (production) forecasts are ``version``'s (None:
    it published none). Read newest first: the first file of ``version`` ends it."""
    for path in sorted(settings.forecast_dir.glob("origin=*.parquet"), reverse=True):
        versions = pd.read_parquet(path, columns=["model_version"])["model_version"]
        if (versions.astype(str) == str(version)).any():
            return _origin_of(path)
    return None


def stalled(settings: Settings, challenger: str, champion: str) -> str:
    """Why ``challenger``'s shadow has stopped collecting evidence against ``champion``
    ("" while it collects, or before its first shadow): production published an origin
    after the challenger's newest shadow (a night whose shadow failed)."""
    shadows = shadow_origins(settings, challenger)
    if not shadows:
        return ""
    produced = newest_production_origin(settings, champion)
    if produced is not None and produced > shadows[-1]:
        return (
            f"v{challenger}'s shadow stopped at origin {shadows[-1]:%Y-%m-%d} while production "
            f"v{champion} published through {produced:%Y-%m-%d}"
        )
    return ""


def actuals(settings: Settings, targets: tuple | None = None) -> pd.DataFrame:
    """Units sold per store, product and period start (``date``), from the purchase table
    (of the periods from ``targets``' first through its last only, when given).

    Periods a pair was inactive or censored (a stock-out), where the tables say so, are
    left out: their sales say nothing about demand.
    """
    from training.dataset import Window, sales_history

    window = None if targets is None else Window(pd.Timestamp(targets[0]), pd.Timestamp(targets[1]))
    history = sales_history(settings, window)
    keep = pd.Series(True, index=history.index)
    if "active" in history:
        keep &= history["active"].fillna(1) != 0
    if "censored" in history:
        keep &= history["censored"].fillna(0) == 0
    history = history[keep]
    return pd.DataFrame(
        {
            "store_id": history["store_id"].astype(str),
            "product_id": history["product_id"].astype(str),
            "target_date": history["date"],
            "actual": history["units"],
        }
    )


def with_actuals(forecasts: pd.DataFrame, sold: pd.DataFrame) -> pd.DataFrame:
    """Forecast rows whose target has an actual, with it (the forecast ledger's join)."""
    return forecasts.merge(sold, on=["store_id", "product_id", "target_date"], how="inner")


def paired_rows(champion: pd.DataFrame, challenger: pd.DataFrame, sold: pd.DataFrame):
    """Targets both versions forecast from the same origin, with the actual."""
    both = champion[[*KEY, "units"]].merge(
        challenger[[*KEY, "units"]], on=KEY, suffixes=("_champion", "_challenger")
    )
    both = both.dropna(subset=["units_champion", "units_challenger"])
    return with_actuals(both, sold).dropna(subset=["actual"])


def evidence(
    rows: pd.DataFrame,
    challenger: str,
    champion: str,
    needed: int,
    *,
    level: float = 0.9,
    draws: int = 2000,
    seed: int = 0,
) -> LiveEvidence:
    """The paired comparison of ``paired_rows`` (pure: tests give it frames)."""
    nights = int(rows["origin_date"].nunique())
    window = (
        f"{rows['origin_date'].min():%Y-%m-%d}..{rows['origin_date'].max():%Y-%m-%d}"
        if len(rows)
        else "none"
    )
    paired = None
    if nights >= needed and len(rows):
        actual = rows["actual"].to_numpy(float)
        paired = paired_difference(
            (rows["units_champion"] - actual).abs(),
            (rows["units_challenger"] - actual).abs(),
            actual,
            rows["store_id"].astype(str) + "|" + rows["product_id"].astype(str),
            level=level,
            draws=draws,
            seed=seed,
        )
    return LiveEvidence(str(challenger), str(champion), nights, needed, len(rows), window, paired)


def live_evidence(
    settings: Settings, challenger: str, champion: str, progress: Progress = lambda _: None
) -> LiveEvidence:
    """Shadow forecasts of ``challenger`` against production's of ``champion``, with actuals."""
    shadow = shadow_forecasts(settings, challenger)
    if shadow.empty:
        rows = pd.DataFrame(columns=[*KEY, "units_champion", "units_challenger", "actual"])
    else:
        # only the shadow's origins and targets: the rest cannot pair
        origins = sorted(shadow["origin_date"].unique())
        targets = (shadow["target_date"].min(), shadow["target_date"].max())
        rows = paired_rows(
            production_forecasts(settings, champion, origins),
            shadow,
            actuals(settings, targets),
        )
    # the backtest gate's interval (DEMAND_GATE_LEVEL, DEMAND_GATE_DRAWS): one rule
    found = evidence(
        rows,
        challenger,
        champion,
        settings.shadow_nights,
        level=settings.gate_level,
        draws=settings.gate_draws,
    )
    progress(found.describe())
    return found
