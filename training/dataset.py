"""Training sets: forecast origins, labels, and features as known at each origin, via Feast.

A training row is (store, product, origin T, horizon h): the features known when
day T closed, and the label = units sold on T + h. Feast's entity timestamp is
that instant (00:00 UTC of T + 1), so every feature, the weather forecast
included, is one that existed then. Request-time inputs (the horizon and the
target day's calendar) come from the on-demand view of the feature service.

Origins are sampled every ``origin_every_days`` days (a step coprime with 7
walks through the weekdays) after a warm-up, for every store × product pair that
was selling by then; each origin gets all horizons 1..H. Only closed days count
(``closed_day_lag_hours``, the rule serving's origins follow too): a partial last
day in the data, an export cut at noon, is neither a label nor an origin.

At the weekly grain the same holds in weeks (``training.periods.Schedule``): an
origin is a week, known when it closes (00:00 UTC of the next week's first day),
targets are the weeks after it, and ``origin``/``target`` name each week by its
first day. Only a whole closed week is an origin or a label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from demand.settings import Settings, last_closed_day
from features.build import Lineage, lineage
from features.grain import Calendar
from training.periods import Schedule, TrainingDataError, feature_service


@dataclass
class TrainingSet:
    frame: pd.DataFrame  # keys, origin, horizon, target_date, label, every feature
    features: list[str]  # model input columns, in order
    categorical: list[str]
    request_features: list[str]
    feature_views: dict[str, int]
    digest: str
    history: pd.DataFrame  # units per store, product and period: the labels and the baselines
    schedule: Schedule | None = None  # None: the daily settings (sets built before grains)
    feature_service: str | None = None  # the service the rows came through

    @property
    def labels(self) -> pd.Series:
        return self.frame["label"]


def built_lineage(settings: Settings) -> Lineage:
    try:
        return lineage(settings.feature_dir)
    except FileNotFoundError:
        raise TrainingDataError(
            f"no feature tables in {settings.feature_dir}; run `demand features` first"
        ) from None


def sales_history(settings: Settings) -> pd.DataFrame:
    """Units per store, product and period, zeros included, from the purchase feature table.

    ``date`` is the period's first day.
    """
    built = built_lineage(settings)
    path = settings.feature_dir / f"{built.sales_features_table}.parquet"
    rows = pd.read_parquet(
        path, columns=["store_id", "product_id", "event_timestamp", "units_lag_1"]
    )
    return pd.DataFrame(
        {
            "store_id": rows["store_id"],
            "product_id": rows["product_id"],
            # a row known at the start of period p + 1 describes period p
            "date": (
                rows["event_timestamp"].dt.tz_convert(None) - pd.Timedelta(days=built.calendar.days)
            ).dt.normalize(),
            "units": rows["units_lag_1"].astype(float),
        }
    )


def _starts(calendar: Calendar, periods: np.ndarray) -> pd.DatetimeIndex:
    """The first day of each period number."""
    days = np.asarray(periods, dtype=np.int64) * calendar.days + calendar.offset
    return pd.DatetimeIndex(pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D"))


def origins_and_labels(
    history: pd.DataFrame,
    settings: Settings,
    now: datetime | None = None,
    schedule: Schedule | None = None,
) -> pd.DataFrame:
    """One row per (store, product, origin, horizon) with the label of the target period.

    The last label is the last closed period at ``now`` (default: the clock) or before.
    ``schedule`` defaults to the daily settings.
    """
    schedule = schedule or Schedule.of(settings, Calendar())
    cal = schedule.calendar
    if schedule.horizon < 1:
        raise TrainingDataError(f"horizon {schedule.horizon} < 1: nothing to forecast")
    closed = last_closed_day(now or datetime.now(UTC), settings.closed_day_lag_hours)
    first_day = history["date"].min()
    # the newest period whose last day has closed
    closed_period = cal.period(closed + timedelta(days=1)) - 1
    first_period = cal.period(first_day.date())
    last_period = min(cal.period(history["date"].max().date()), closed_period)
    last_day = pd.Timestamp(cal.start(last_period))
    origin_periods = np.arange(first_period + schedule.warmup, last_period)[
        :: schedule.origin_every
    ]
    origin_days = _starts(cal, origin_periods)
    if len(origin_days) == 0:
        raise TrainingDataError(
            f"no forecast origins: the history ({first_day:%Y-%m-%d} to {last_day:%Y-%m-%d}) "
            f"is shorter than the {schedule.warmup}-{schedule.unit} warm-up plus one "
            f"{schedule.unit}"
        )
    pairs = history.groupby(["store_id", "product_id"], as_index=False)["date"].min()
    rows = pairs.merge(pd.DataFrame({"origin": origin_days}), how="cross")
    rows = rows[rows["date"] <= rows["origin"]].drop(columns="date")
    horizons = pd.DataFrame({"horizon": np.arange(1, schedule.horizon + 1)})
    rows = rows.merge(horizons, how="cross")
    rows["target"] = rows["origin"] + pd.to_timedelta(rows["horizon"] * cal.days, unit="D")
    rows = rows[rows["target"] <= last_day]
    labels = history.rename(columns={"date": "target", "units": "label"})
    rows = rows.merge(labels, on=["store_id", "product_id", "target"], how="left")
    if rows.empty:
        raise TrainingDataError(
            f"the training window is empty: no origin has a target {schedule.unit} "
            "inside the history; lower DEMAND_HORIZON or add history"
        )
    rows["label"] = rows["label"].fillna(0.0)  # a pair selling by then sold nothing: real zero
    return rows.sort_values(["origin", "store_id", "product_id", "horizon"]).reset_index(drop=True)


def entity_frame(
    rows: pd.DataFrame, settings: Settings, calendar: Calendar | None = None
) -> pd.DataFrame:
    """What Feast joins on: keys, the origin instant (its period's close), request inputs."""
    days = (calendar or Calendar()).days
    stores = pd.read_parquet(
        settings.feature_dir / "store_attributes.parquet", columns=["store_id", "store_region_id"]
    )
    out = rows.merge(stores, on="store_id", how="left").rename(
        columns={"store_region_id": "region_id"}
    )
    out["event_timestamp"] = (out["origin"] + pd.Timedelta(days=days)).dt.tz_localize("UTC")
    out["target_date"] = out["target"].dt.strftime("%Y-%m-%d")
    out["forecast_date"] = out["target_date"]
    out["row_id"] = np.arange(len(out))
    return out


def model_inputs(
    store, service_name: str, absent: frozenset[str] = frozenset()
) -> tuple[list[str], list[str], list[str], dict[str, int]]:
    """Model columns from the feature service: keys first, then its features in order.

    Timestamps (the ``*_known_at`` lineage fields) are not inputs, nor are features
    the data set has no data for (``absent``: customers of aggregated sales, weather
    measures not given); string features and the entity keys are categorical;
    on-demand outputs are request features.
    """
    from feast import FeatureService
    from feast.types import String, UnixTimestamp

    service: FeatureService = store.get_feature_service(service_name)
    features, categorical, request = ["store_id", "product_id"], ["store_id", "product_id"], []
    views: dict[str, int] = {}
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    for projection in service.feature_view_projections:
        views[projection.name] = _view_version(
            store, projection.name, projection.name in odfv_names
        )
        for feature in projection.features:
            if feature.dtype == UnixTimestamp or feature.name in absent:
                continue
            features.append(feature.name)
            if feature.dtype == String:
                categorical.append(feature.name)
            if projection.name in odfv_names:
                request.append(feature.name)
    return features, categorical, request, views


def _view_version(store, name: str, on_demand: bool) -> int:
    view = store.get_on_demand_feature_view(name) if on_demand else store.get_feature_view(name)
    return int(getattr(view, "current_version_number", None) or 0)


def build(store, settings: Settings, progress=print) -> TrainingSet:
    """The training set for ``settings``, retrieved point-in-time correct through Feast."""
    from feast.errors import FeatureServiceNotFoundException

    built = built_lineage(settings)
    service_name = feature_service(
        settings, built, (settings.feature_dir / "planned_promotions.parquet").exists()
    )
    settings = settings.model_copy(update={"feature_service": service_name})
    schedule = Schedule.of(settings, built.calendar)
    history = sales_history(settings)
    # too short for the schedule's windows: say how much is needed, before any retrieval
    schedule.check_history(history["date"].min().date(), history["date"].max().date())
    try:
        features, categorical, request, views = model_inputs(
            store, settings.feature_service, built.absent
        )
    except FeatureServiceNotFoundException:
        raise TrainingDataError(
            f"no feature service {settings.feature_service!r} in the Feast registry; "
            "run `demand features` (or `demand apply`)"
        ) from None
    rows = origins_and_labels(history, settings, schedule=schedule)
    entities = entity_frame(rows, settings, built.calendar)
    progress(
        f"retrieving features for {len(entities):,} rows ({rows['origin'].nunique()} "
        f"{schedule.unit}ly origins × {schedule.horizon} horizons) through Feast"
    )
    service = store.get_feature_service(settings.feature_service)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame = frame.sort_values("row_id").reset_index(drop=True)
    for column in ("origin", "target"):  # Feast hands every datetime back in UTC
        frame[column] = frame[column].dt.tz_convert(None).astype("datetime64[ns]")
    if len(frame) != len(entities):
        raise TrainingDataError(f"Feast returned {len(frame):,} of {len(entities):,} rows")
    return TrainingSet(
        frame,
        features,
        categorical,
        request,
        views,
        digest(frame, features),
        history,
        schedule,
        settings.feature_service,
    )


def chosen_service(settings: Settings, training_set: TrainingSet) -> str:
    return training_set.feature_service or settings.feature_service


HASH_DECIMALS = 6


def digest(frame: pd.DataFrame, features: list[str]) -> str:
    """A content hash of the rows a model sees: keys, origin, horizon, features, label.

    Floats are rounded to HASH_DECIMALS first: DuckDB's parallel window sums can
    differ in the last bits between two builds of the same data (measured here on
    rolling standard deviations and mean prices, ~1e-15), and that is not other data.
    """
    columns = list(
        dict.fromkeys(["store_id", "product_id", "origin", "horizon", *features, "label"])
    )
    rows = frame[columns]
    floats = [c for c in columns if pd.api.types.is_float_dtype(rows[c])]
    rows = rows.assign(**{c: rows[c].round(HASH_DECIMALS) for c in floats})
    hashed = pd.util.hash_pandas_object(rows, index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]
