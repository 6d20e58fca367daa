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
region and day (weather) holds a few values a night, and its range check stands. PSI
is also left out below ``monitor_psi_min_keys`` store × product keys ("too few rows to
judge"): over a few dozen keys a night's sampling noise alone passes 0.25 (a key's
vectors at every horizon share most values, so a key counts once); the range, null and
feed checks, which a handful of rows can judge, still apply. Per
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
    "note",  # what was not judged, and why ("too few rows to judge")
]
# a feature drifts when this share of tonight's values falls outside the reference's range
# (its 0.5 % … 99.5 % quantiles): a unit changed, whatever PSI can say of one night
OUTSIDE = 0.5


@dataclass
class Drift:
    version: str | None
    skipped: str = ""  # why drift was not measured ("" when it was)
    rows: int = 0  # feature vectors compared
    keys: int = 0  # store × product keys they are of
    note: str = ""  # what tonight could not judge (PSI over too few keys)
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


def too_few(keys: int, settings: Settings) -> str:
    """Why PSI cannot judge a sample of ``keys`` store × product keys ("" when it can)."""
    if keys >= settings.monitor_psi_min_keys:
        return ""
    return (
        f"too few rows to judge PSI: {keys:,} keys, fewer than "
        f"DEMAND_MONITOR_PSI_MIN_KEYS={settings.monitor_psi_min_keys:,}"
    )


def compare(
    reference: dict,
    features: pd.DataFrame,
    predictions,
    settings: Settings,
    feeds: dict[str, dict[str, float]] | None = None,
    *,
    keys: int | None = None,
    prediction_keys: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drift table (one row per profiled feature, and ``prediction``) and the feeds'.

    ``keys`` and ``prediction_keys``: the store × product keys the features and the
    predictions are of (None: each row its own), which PSI needs enough of (``too_few``).
    """
    if prediction_keys is None:
        prediction_keys = 0 if predictions is None else len(predictions)
    few = {
        "features": too_few(len(features) if keys is None else keys, settings),
        profile.PREDICTION: too_few(prediction_keys, settings),
    }
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
                    "note": "",
                }
            )
            continue
        shares, null_rate, present = profile.shares_like(expected, columns[name])
        note = few[profile.PREDICTION if name == profile.PREDICTION else "features"]
        if not note and present and not profile.comparable(expected, columns[name]):
            note = "PSI not judged: one night holds too few distinct values"
        value = (
            profile.psi(profile.reference_shares(expected), shares)
            if present and expected["shares"] and not note
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
                "note": note,
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
    keys_served = len(frame[["store_id", "product_id"]].drop_duplicates())
    predictions, prediction_keys = _night_predictions(settings, loaded.version)
    sales = profile.feature_tables(loaded.store, loaded.contract.feature_views)
    from training.dataset import built_lineage

    feeds = profile.feed_ages(sales, built_lineage(settings).sales_features_table)
    table, feed_table = compare(
        reference,
        frame,
        predictions,
        settings,
        feeds,
        keys=keys_served,
        prediction_keys=prediction_keys,
    )
    note = too_few(keys_served, settings)
    progress(
        f"drift: {len(frame):,} served vectors ({keys_served:,} keys) of v{loaded.version} "
        f"against its reference; {int(table['drifted'].sum())} feature(s) drifted, "
        f"{int(feed_table['stopped'].sum()) if len(feed_table) else 0} feed(s) stopped"
        + (f"; {note}" if note else "")
    )
    return Drift(
        version=loaded.version,
        rows=len(frame),
        keys=keys_served,
        note=note,
        table=table,
        feeds=feed_table,
    )


def _night_predictions(settings: Settings, version: str):
    """The units of the newest published origin's forecasts by ``version`` and the keys
    they are of ((None, 0): none)."""
    files = sorted(settings.forecast_dir.glob("origin=*.parquet"))
    if not files:
        return None, 0
    frame = pd.read_parquet(files[-1], columns=["store_id", "product_id", "model_version", "units"])
    mine = frame[frame["model_version"].astype(str) == str(version)]
    if mine.empty:
        return None, 0
    keys = len(mine[["store_id", "product_id"]].drop_duplicates())
    return mine["units"].to_numpy(dtype=float), keys
