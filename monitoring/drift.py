"""Feature and prediction drift: tonight's served inputs and forecasts against the version's
reference profile (``training.profile``, logged with the version at training).

Tonight's features are the vectors the online store serves now, read through the
service's own lookup (``serving.lookup``: the same point-in-time and TTL rules as
``/forecast``) for a fixed sample of ``monitor_drift_keys`` keys at every horizon;
tonight's predictions are the newest published forecasts of the version. Per feature:
PSI over the reference's bins, the share of values outside the reference's range and
the change of the null rate; a feature drifts when one passes its threshold (settings
``monitor_psi_threshold``, ``monitor_null_rate_change``; half the values outside). PSI
is left out (NaN) where one night cannot have a spread: a feature with a value per
region and day (weather) holds a few values a night, and its range check stands. Per
feed: a feed whose newest row has fallen behind the sales feed by a whole cadence more
than at training has stopped.

A version without a reference profile (trained before profiles existed) is skipped,
and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from demand.settings import Settings
from training import profile

COLUMNS = [
    "feature",
    "kind",
    "psi",
    "null_rate_reference",
    "null_rate_now",
    "outside",
    "drifted",
    "why",
]
# a feature drifts when this share of tonight's values falls outside the reference's range
# (its 0.5 % … 99.5 % quantiles): a unit changed, whatever PSI can say of one night
OUTSIDE = 0.5


@dataclass
class Drift:
    version: str | None
    skipped: str = ""  # why drift was not measured ("" when it was)
    rows: int = 0  # feature vectors compared
    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    feeds: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def drifted(self) -> list[str]:
        found = [] if self.table.empty else self.table.loc[self.table["drifted"], "feature"]
        stopped = [] if self.feeds.empty else self.feeds.loc[self.feeds["stopped"], "feed"]
        return [*found, *(f"feed {v}" for v in stopped)]

    def psi(self) -> dict[str, float]:
        if self.table.empty:
            return {}
        return {r.feature: float(r.psi) for r in self.table.itertuples() if pd.notna(r.psi)}


def compare(
    reference: dict,
    features: pd.DataFrame,
    predictions,
    settings: Settings,
    feeds: dict[str, dict[str, float]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drift table (one row per profiled feature, and ``prediction``) and the feeds'."""
    records = []
    columns = {**{n: features[n] for n in reference["features"] if n in features}}
    profiles = dict(reference["features"])
    if predictions is not None and reference.get(profile.PREDICTION):
        profiles[profile.PREDICTION] = reference[profile.PREDICTION]
        columns[profile.PREDICTION] = pd.Series(predictions, dtype=float)
    for name, expected in profiles.items():
        if name not in columns:
            records.append(
                {
                    "feature": name,
                    "kind": expected["kind"],
                    "psi": math.nan,
                    "null_rate_reference": expected["null_rate"],
                    "null_rate_now": math.nan,
                    "outside": math.nan,
                    "drifted": True,
                    "why": "absent tonight",
                }
            )
            continue
        shares, null_rate, present = profile.shares_like(expected, columns[name])
        value = (
            profile.psi(profile.reference_shares(expected), shares)
            if present and expected["shares"] and profile.comparable(expected, columns[name])
            else math.nan
        )
        outside = profile.outside_share(expected, columns[name])
        why = []
        if pd.notna(value) and value >= settings.monitor_psi_threshold:
            why.append(f"PSI {value:.2f} ≥ {settings.monitor_psi_threshold}")
        if outside >= OUTSIDE:
            why.append(f"{outside:.0%} outside the reference's range")
        change = null_rate - expected["null_rate"]
        if abs(change) >= settings.monitor_null_rate_change:
            why.append(f"nulls {expected['null_rate']:.0%} → {null_rate:.0%}")
        records.append(
            {
                "feature": name,
                "kind": expected["kind"],
                "psi": value,
                "null_rate_reference": expected["null_rate"],
                "null_rate_now": null_rate,
                "outside": outside,
                "drifted": bool(why),
                "why": "; ".join(why),
            }
        )
    table = pd.DataFrame(records, columns=COLUMNS)
    table = table.sort_values(["drifted", "psi"], ascending=False, na_position="last")
    return table.reset_index(drop=True), _feeds(reference.get("feeds") or {}, feeds or {})


def _feeds(reference: dict, tonight: dict) -> pd.DataFrame:
    """A feed stopped when its newest row lags the sales feed's by a whole cadence more than
    it did at training (a daily feed: the first night it misses)."""
    records = []
    for view, now in tonight.items():
        then = reference.get(view)
        if not then:
            continue
        cadence = then.get("cadence_days")
        lag = now["age_days"] - (then.get("age_days") or 0.0)
        stopped = cadence is not None and math.isfinite(cadence) and lag >= cadence
        records.append(
            {
                "feed": view,
                "age_days": now["age_days"],
                "age_days_reference": then.get("age_days"),
                "cadence_days": cadence,
                "stopped": bool(stopped),
            }
        )
    return pd.DataFrame(
        records, columns=["feed", "age_days", "age_days_reference", "cadence_days", "stopped"]
    )


def load_reference(settings: Settings, version: str) -> dict | None:
    """The version's reference profile from its MLflow run; None when it has none."""
    import mlflow

    from demand.tracking import connect

    client = connect(settings)
    run_id = client.get_model_version(settings.model_name, str(version)).run_id
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{profile.ARTIFACT}")
    except Exception:  # MLflow's own errors for an artifact that is not there
        return None


def sample_keys(keys: list[tuple[str, str]], size: int) -> list[tuple[str, str]]:
    """Every k-th key of the sorted keys: the same sample each night while the keys stay."""
    if len(keys) <= size:
        return keys
    step = len(keys) / size
    return [keys[int(i * step)] for i in range(size)]


def tonight(settings: Settings, alias: str = "production", progress=print) -> Drift:
    """Measure tonight's drift of the version ``alias`` names."""
    from serving import batch, model_loader

    try:
        loaded = model_loader.load(settings, alias=alias)
    except model_loader.ServingError as error:
        return Drift(version=None, skipped=f"no model to compare: {error}")
    reference = load_reference(settings, loaded.version)
    if reference is None:
        return Drift(
            version=loaded.version,
            skipped=f"v{loaded.version} has no reference profile (trained before profiles "
            "were logged): drift not measured for it",
        )
    keys = sample_keys(batch.keys(settings), settings.monitor_drift_keys)
    horizon = loaded.contract.horizon
    stores = [s for s, _ in keys for _ in range(horizon)]
    products = [p for _, p in keys for _ in range(horizon)]
    horizons = list(range(1, horizon + 1)) * len(keys)
    vectors = loaded.lookup.fetch(stores, products, horizons=horizons)
    frame = pd.DataFrame(
        {"store_id": stores, "product_id": products, **vectors.columns}, copy=False
    )
    served = pd.Series(
        [o is not None and not i for o, i in zip(vectors.origin, vectors.inactive(), strict=True)]
    )
    frame = frame[served.to_numpy()].reset_index(drop=True)
    predictions = _night_predictions(settings, loaded.version)
    sales = profile.feature_tables(loaded.store, loaded.contract.feature_views)
    from training.dataset import built_lineage

    feeds = profile.feed_ages(sales, built_lineage(settings).sales_features_table)
    table, feed_table = compare(reference, frame, predictions, settings, feeds)
    progress(
        f"drift: {len(frame):,} served vectors of v{loaded.version} against its reference; "
        f"{int(table['drifted'].sum())} feature(s) drifted, "
        f"{int(feed_table['stopped'].sum()) if len(feed_table) else 0} feed(s) stopped"
    )
    return Drift(version=loaded.version, rows=len(frame), table=table, feeds=feed_table)


def _night_predictions(settings: Settings, version: str):
    """The units of the newest published origin's forecasts by ``version`` (None: none)."""
    files = sorted(settings.forecast_dir.glob("origin=*.parquet"))
    if not files:
        return None
    frame = pd.read_parquet(files[-1], columns=["model_version", "units"])
    units = frame.loc[frame["model_version"].astype(str) == str(version), "units"]
    return units.to_numpy(dtype=float) if len(units) else None
