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

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from demand.calendar import Calendar
from demand.settings import Settings, last_closed_day
from features.plan import AGE_FIELDS, STATUS_FIELDS, Lineage, lineage
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
    sampling: Sampling | None = None  # which (series, origin) pairs were kept

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


@dataclass(frozen=True)
class Window:
    """The rows of a training set whose origin is ``first_origin`` or later and whose
    target is ``last_target`` or earlier: a version's backtest window."""

    first_origin: pd.Timestamp
    last_target: pd.Timestamp

    def __str__(self) -> str:
        return f"{self.first_origin:%Y-%m-%d}..{self.last_target:%Y-%m-%d}"


HISTORY_COLUMNS = ["store_id", "product_id", "event_timestamp", "units_lag_1"]


def sales_history(settings: Settings, window: Window | None = None) -> pd.DataFrame:
    """Units per store, product and period, zeros included, from the purchase feature table.

    ``date`` is the period's first day. Only the four columns needed are read, the keys
    as categoricals: at the M5 size (~36 M rows) object strings would cost gigabytes and
    every grouping on them a hash of each string. With ``window``, only the periods from
    its first origin through its last target (the labels of its rows), filtered in DuckDB
    while it reads: a backtest window is a few weeks of the years there are.
    """
    import pyarrow.parquet as pq

    built = built_lineage(settings)
    path = settings.feature_dir / f"{built.sales_features_table}.parquet"
    # each period's status, where the tables have it (older builds: every period counts)
    names = pq.read_schema(path).names
    columns = HISTORY_COLUMNS + [c for c in STATUS_FIELDS if c in names]
    if window is None:
        table = pq.read_table(path, columns=columns, read_dictionary=["store_id", "product_id"])
        return _history_frame(table, built.calendar)
    # a row known at the start of period p + 1 describes period p: a day's margin on each
    # side of the stamps, the exact dates kept below
    days = pd.Timedelta(days=built.calendar.days + 1)
    known = (window.first_origin + days - pd.Timedelta(days=2), window.last_target + days)
    with _duckdb(settings) as con:
        table = con.sql(
            f"SELECT {', '.join(columns)} FROM read_parquet(?) "
            "WHERE event_timestamp >= ? AND event_timestamp <= ?",
            params=[str(path), *(t.tz_localize("UTC").to_pydatetime() for t in known)],
        ).to_arrow_table()
    history = _history_frame(table, built.calendar)
    inside = (history["date"] >= window.first_origin) & (history["date"] <= window.last_target)
    return history[inside].reset_index(drop=True)


def _history_frame(table, calendar: Calendar) -> pd.DataFrame:
    """``store_id``, ``product_id``, ``date`` and ``units`` (when read) from the feature
    table's columns."""
    stamps = table.column("event_timestamp").to_pandas()
    frame = pd.DataFrame(
        {
            "store_id": _sorted_categories(table.column("store_id").to_pandas()),
            "product_id": _sorted_categories(table.column("product_id").to_pandas()),
            # a row known at the start of period p + 1 describes period p
            "date": (stamps.dt.tz_convert(None) - pd.Timedelta(days=calendar.days)).dt.normalize(),
        }
    )
    if "units_lag_1" in table.column_names:
        frame["units"] = table.column("units_lag_1").to_pandas().astype(float)
    for status in STATUS_FIELDS:
        if status in table.column_names:
            frame[status] = table.column(status).to_pandas().astype(float)
    return frame


def _duckdb(settings: Settings):
    import duckdb

    return duckdb.connect(config=settings.duckdb_config)


def _sorted_categories(values: pd.Series) -> pd.Series:
    """``values`` as a categorical whose codes sort as the strings do."""
    values = values.astype("category")
    categories = values.cat.categories
    if not categories.is_monotonic_increasing:
        values = values.cat.reorder_categories(categories.sort_values())
    return values


def _starts(calendar: Calendar, periods: np.ndarray) -> pd.DatetimeIndex:
    """The first day of each period number."""
    days = np.asarray(periods, dtype=np.int64) * calendar.days + calendar.offset
    return pd.DatetimeIndex(pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D"))


@dataclass(frozen=True)
class Sampling:
    """Which (series, origin) pairs a training set keeps, and how many rows it could have had.

    Each pair is kept, with all its horizons, when a hash of its store, product, origin
    and ``seed`` falls below ``fraction``: the decision for one pair never depends on the
    others, so a rebuild with the same fraction and seed keeps the same pairs however
    many days or series the data has gained since (the production gate re-scores the
    backtest rows of a version so), and every window (training, early stopping,
    backtest) is a uniform sample of its own rows.
    """

    fraction: float  # share of (series, origin) pairs kept; 1.0: every one, no sampling
    seed: int
    candidate_rows: int  # the rows before sampling
    max_rows: int | None = None  # the cap the fraction came from (None: given as a fraction)
    # sampled rows left out because their target period was inactive or censored
    inactive_labels: int = 0
    censored_labels: int = 0

    @classmethod
    def of(cls, settings: Settings, candidate_rows: int) -> Sampling:
        """The settings' fraction when given (a rebuild), else what the row cap allows."""
        seed = settings.train_sample_seed
        if settings.train_sample_fraction is not None:
            return cls(settings.train_sample_fraction, seed, candidate_rows)
        cap = settings.train_max_rows
        fraction = 1.0 if candidate_rows <= cap else cap / candidate_rows
        return cls(fraction, seed, candidate_rows, cap)

    def params(self) -> dict[str, object]:
        """Logged with the run; ``train_sample_*`` are what a rebuild needs (registry.scoring)."""
        cap = {} if self.max_rows is None else {"train_max_rows": self.max_rows}
        return {
            **cap,
            "train_sample_fraction": self.fraction,
            "train_sample_seed": self.seed,
            "candidate_rows": self.candidate_rows,
            "inactive_labels": self.inactive_labels,
            "censored_labels": self.censored_labels,
        }


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: uint64 → well-spread uint64 (numpy wraps, as it should)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _kept(pair_hash: np.ndarray, origin_day: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Whether each (pair, origin) is in the sample: a uniform draw in [0, 1) below the fraction."""
    with np.errstate(over="ignore"):
        salt = _mix(origin_day.astype(np.uint64) + np.uint64(sampling.seed) * np.uint64(0x9E37))
        draw = _mix(pair_hash ^ salt)
    return (draw >> np.uint64(11)).astype(np.float64) / float(1 << 53) < sampling.fraction


@dataclass(frozen=True)
class Series:
    """The store × product series of a sales history: when each began selling, and the
    history's first and last day. Which (series, origin) pairs a training set has follows
    from these alone; labels then need only the history of their target periods.

    Pairs are numbered (``code``: store position × number of products + product position)
    so that they sort as (store_id, product_id) strings do.
    """

    stores: pd.Index  # sorted
    products: pd.Index  # sorted
    code: np.ndarray  # each pair's number, ascending
    first_period: np.ndarray  # each pair's first period in the history
    first_day: pd.Timestamp
    last_day: pd.Timestamp

    @classmethod
    def of(cls, history: pd.DataFrame, calendar: Calendar) -> Series:
        """The series of ``history`` (``store_id``, ``product_id``, ``date``)."""
        stores = _sorted_categories(history["store_id"]).cat.categories
        products = _sorted_categories(history["product_id"]).cat.categories
        codes = _pair_codes(history, stores, products)
        first = pd.Series(_periods(history["date"], calendar)).groupby(codes).min()
        return cls(
            stores,
            products,
            first.index.to_numpy(np.int64),
            first.to_numpy(np.int64),
            history["date"].min(),
            history["date"].max(),
        )

    @classmethod
    def read(cls, settings: Settings) -> Series:
        """The series of the purchase feature table, aggregated in DuckDB as it reads: each
        pair's first and last row are all :meth:`of` needs of its history (a first period
        is a minimum, the last day a maximum), tens of thousands of rows, not tens of
        millions."""
        built = built_lineage(settings)
        path = settings.feature_dir / f"{built.sales_features_table}.parquet"
        with _duckdb(settings) as con:
            table = con.sql(
                "WITH pairs AS (SELECT store_id, product_id, min(event_timestamp) AS first, "
                "max(event_timestamp) AS last FROM read_parquet(?) GROUP BY store_id, product_id) "
                "SELECT store_id, product_id, first AS event_timestamp FROM pairs "
                "UNION ALL SELECT store_id, product_id, last FROM pairs",
                params=[str(path)],
            ).to_arrow_table()
        return cls.of(_history_frame(table, built.calendar), built.calendar)

    def codes(self, history: pd.DataFrame) -> np.ndarray:
        """The pair number of each row of ``history``; −1 for a pair not among these series."""
        return _pair_codes(history, self.stores, self.products)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Each pair's store_id and product_id (object arrays, in pair order)."""
        n_products = max(len(self.products), 1)
        return (
            self.stores.to_numpy(dtype=object)[self.code // n_products],
            self.products.to_numpy(dtype=object)[self.code % n_products],
        )


def _pair_codes(history: pd.DataFrame, stores: pd.Index, products: pd.Index) -> np.ndarray:
    """Each row's store position × len(products) + product position; −1 where either is
    not among ``stores`` / ``products``."""
    store = pd.Categorical(history["store_id"], categories=stores).codes.astype(np.int64)
    product = pd.Categorical(history["product_id"], categories=products).codes.astype(np.int64)
    code = store * max(len(products), 1) + product
    return np.where((store < 0) | (product < 0), -1, code)


def _periods(dates: pd.Series, calendar: Calendar) -> np.ndarray:
    """The period number of each date."""
    day = ((dates - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy()
    return (day.astype(np.int64) - calendar.offset) // calendar.days


def origins_and_labels(
    history: pd.DataFrame,
    settings: Settings,
    now: datetime | None = None,
    schedule: Schedule | None = None,
) -> pd.DataFrame:
    """One row per (store, product, origin, horizon) with the label of the target period,
    every pair and origin (no sampling): see :func:`sampled_origins_and_labels`."""
    whole = settings.model_copy(update={"train_sample_fraction": 1.0})
    return sampled_origins_and_labels(history, whole, now, schedule)[0]


def sampled_origins_and_labels(
    history: pd.DataFrame,
    settings: Settings,
    now: datetime | None = None,
    schedule: Schedule | None = None,
    *,
    series: Series | None = None,
    window: Window | None = None,
) -> tuple[pd.DataFrame, Sampling]:
    """One row per (store, product, origin, horizon) with the label of the target period,
    for the (series, origin) pairs the settings' sampling keeps (:class:`Sampling`).

    The last label is the last closed period at ``now`` (default: the clock) or before.
    ``schedule`` defaults to the daily settings. Rows are sorted by origin, store,
    product and horizon. Counting and sampling happen on integer codes before any row
    is made, so the cost follows the rows kept, not the (series × origin × horizon)
    rows there could be (tens of millions at the M5 size).

    ``series`` (default: those of ``history``) decides the origins and pairs; ``history``
    then needs to hold only the periods of the labels asked for. ``window`` keeps only
    its rows: exactly the rows of the whole set that fall in it (each pair's sampling
    decision is its own, and the sampling fraction is counted over every candidate row).
    """
    schedule = schedule or Schedule.of(settings, Calendar())
    cal = schedule.calendar
    if schedule.horizon < 1:
        raise TrainingDataError(f"horizon {schedule.horizon} < 1: nothing to forecast")
    series = series or Series.of(history, cal)
    closed = last_closed_day(now or datetime.now(UTC), settings.closed_day_lag_hours)
    first_day = series.first_day
    # the newest period whose last day has closed
    closed_period = cal.period(closed + timedelta(days=1)) - 1
    first_period = cal.period(first_day.date())
    last_period = min(cal.period(series.last_day.date()), closed_period)
    last_day = pd.Timestamp(cal.start(last_period))
    origin_periods = np.arange(first_period + schedule.warmup, last_period)[
        :: schedule.origin_every
    ]
    if len(origin_periods) == 0:
        raise TrainingDataError(
            f"no forecast origins: the history ({first_day:%Y-%m-%d} to {last_day:%Y-%m-%d}) "
            f"is shorter than the {schedule.warmup}-{schedule.unit} warm-up plus one "
            f"{schedule.unit}"
        )
    pair_first = series.first_period
    pair_store, pair_product = series.keys()

    # every pair selling by an origin is a candidate there, with the horizons inside the history
    horizons_at = np.minimum(schedule.horizon, last_period - origin_periods)
    active_at = np.searchsorted(np.sort(pair_first), origin_periods, side="right")
    sampling = Sampling.of(settings, int((active_at * horizons_at).sum()))
    active = pair_first[None, :] <= origin_periods[:, None]  # origin × pair
    if window is not None:
        active &= (_starts(cal, origin_periods) >= window.first_origin)[:, None]
    origin_index, pair_index = np.nonzero(active)  # origin-major, pairs in key order
    if sampling.fraction < 1.0:
        pair_hash = pd.util.hash_pandas_object(
            pd.DataFrame({"store_id": pair_store, "product_id": pair_product}), index=False
        ).to_numpy()
        origin_day = origin_periods * cal.days + cal.offset
        keep = _kept(pair_hash[pair_index], origin_day[origin_index], sampling)
        origin_index, pair_index = origin_index[keep], pair_index[keep]

    # each kept (pair, origin) with its horizons 1..n
    counts = horizons_at[origin_index]
    row_origin = np.repeat(origin_index, counts)
    row_pair = np.repeat(pair_index, counts)
    starts = np.cumsum(counts) - counts
    horizon = np.arange(counts.sum(), dtype=np.int64) - np.repeat(starts, counts) + 1
    origin_period = origin_periods[row_origin]
    target_period = origin_period + horizon
    if window is not None:
        inside = _starts(cal, target_period) <= window.last_target
        row_pair, horizon = row_pair[inside], horizon[inside]
        origin_period, target_period = origin_period[inside], target_period[inside]
    history_pair = series.codes(history)
    # no label from a period the pair was inactive in, or that ran out of stock
    inactive = (
        _labels(series.code[row_pair], target_period, history_pair, history, cal, "active", 1.0)
        == 0
    )
    censored = (
        _labels(series.code[row_pair], target_period, history_pair, history, cal, "censored") == 1
    )
    kept = ~(inactive | censored)
    sampling = dataclasses.replace(
        sampling,
        inactive_labels=int(inactive.sum()),
        censored_labels=int((censored & ~inactive).sum()),
    )
    row_pair, horizon = row_pair[kept], horizon[kept]
    origin_period, target_period = origin_period[kept], target_period[kept]
    rows = pd.DataFrame(
        {
            "store_id": pair_store[row_pair],
            "product_id": pair_product[row_pair],
            "origin": _starts(cal, origin_period).astype("datetime64[ns]"),
            "horizon": horizon,
            "target": _starts(cal, target_period).astype("datetime64[ns]"),
            "label": _labels(series.code[row_pair], target_period, history_pair, history, cal),
        }
    )
    if rows.empty:
        where = f"the window {window} is" if window else "the training window is"
        raise TrainingDataError(
            f"{where} empty: no origin has a target {schedule.unit} "
            "inside the history; lower DEMAND_HORIZON or add history"
        )
    return rows, sampling


def _labels(
    row_pair: np.ndarray,
    row_period: np.ndarray,
    pair_code: np.ndarray,
    history: pd.DataFrame,
    calendar: Calendar,
    column: str = "units",
    missing: float = 0.0,
) -> np.ndarray:
    """Units of each row's pair in its target period; 0 where the history has no row
    (a pair selling by the origin that sold nothing then: a real zero).

    ``column``: another column of the history (a status), ``missing`` where it has none.
    """
    if len(history) == 0 or column not in history:
        return np.full(len(row_pair), missing)
    period = _periods(history["date"], calendar)
    span = int(max(period.max(), row_period.max(initial=0))) + 1
    history_key = np.where(pair_code < 0, -1, pair_code * span + period)
    order = np.argsort(history_key, kind="stable")
    sorted_key = history_key[order]
    units = history[column].to_numpy(dtype=float)[order]
    wanted = row_pair * span + row_period
    at = np.minimum(np.searchsorted(sorted_key, wanted), max(len(sorted_key) - 1, 0))
    found = sorted_key[at] == wanted
    labels = np.where(found, units[at], missing)
    return np.where(np.isnan(labels), missing, labels)


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
            if feature.name in STATUS_FIELDS:  # a period's status: labels', not an input
                continue
            if feature.name in AGE_FIELDS:  # the short-history rule's, not an input
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


def build(store, settings: Settings, progress=print, window: Window | None = None) -> TrainingSet:
    """The training set for ``settings``, retrieved point-in-time correct through Feast.

    With ``window``, only the rows of the whole set that fall in it, retrieved alone: the
    production gate's backtest rows. Its ``history`` is then the window's periods only.
    """
    from feast.errors import FeatureServiceNotFoundException

    built = built_lineage(settings)
    settings = settings.model_copy(update={"feature_service": service_for(settings, built)})
    schedule = Schedule.of(settings, built.calendar)
    if window is None:
        history = sales_history(settings)
        series = Series.of(history, built.calendar)
    else:  # the whole history's series, the window's labels: never the history in memory
        series, history = Series.read(settings), sales_history(settings, window)
    # too short for the schedule's windows: say how much is needed, before any retrieval
    schedule.check_history(series.first_day.date(), series.last_day.date())
    try:
        features, categorical, request, views = model_inputs(
            store, settings.feature_service, built.absent
        )
    except FeatureServiceNotFoundException:
        raise TrainingDataError(
            f"no feature service {settings.feature_service!r} in the Feast registry; "
            "run `demand features` (or `demand apply`)"
        ) from None
    rows, sampling = sampled_origins_and_labels(
        history, settings, schedule=schedule, series=series, window=window
    )
    entities = entity_frame(rows, settings, built.calendar)
    sampled = (
        ""
        if sampling.fraction >= 1.0
        else f", {sampling.fraction:.2%} of the {sampling.candidate_rows:,} candidate rows "
        f"(DEMAND_TRAIN_MAX_ROWS={sampling.max_rows or '-'}, seed {sampling.seed})"
    )
    left_out = [
        f"{n:,} {what}"
        for n, what in (
            (sampling.inactive_labels, "inactive"),
            (sampling.censored_labels, "censored (out of stock)"),
        )
        if n
    ]
    if left_out:
        sampled += f"; no label from {' and '.join(left_out)} target {schedule.unit}s"
    every = "weekly" if schedule.unit == "week" else "daily"
    progress(
        f"retrieving features for {len(entities):,} rows ({rows['origin'].nunique()} {every} "
        f"origins × {schedule.horizon} horizons{sampled}) through Feast"
    )
    service = store.get_feature_service(settings.feature_service)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame = frame.sort_values("row_id", ignore_index=True)  # one copy, not two
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
        sampling,
    )


def service_for(settings: Settings, built: Lineage | None = None) -> str:
    """The feature service a training set of the tables in place is built from (the
    nightly's apply decision asks the same question, so both must answer it here)."""
    built = built or built_lineage(settings)
    has_plans = (settings.feature_dir / "planned_promotions.parquet").exists()
    return feature_service(settings, built, has_plans)


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
    # one frame of the columns, the floats rounded, the others not copied: the training
    # set is the training job's largest object, and this runs while it is whole
    rows = pd.DataFrame(
        {
            c: frame[c].round(HASH_DECIMALS) if pd.api.types.is_float_dtype(frame[c]) else frame[c]
            for c in columns
        },
        copy=False,
    )
    hashed = pd.util.hash_pandas_object(rows, index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]
