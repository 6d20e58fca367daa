"""One typed settings object for the whole platform.

Every value comes from an environment variable prefixed ``DEMAND_`` (or a ``.env``
file in the working directory), e.g. ``DEMAND_DATA_DIR=/mnt/demand``. Nothing is
read at import time: call :func:`get_settings` where the value is needed.

Settings are checked when they are read, each against its type (URLs, byte sizes, the
loss): a bad value is a :class:`SettingError` naming the variable and where it came
from (exit 2), not a failure deep in a run. A ``DEMAND_*`` variable that no setting
has is an :class:`~demand.console.Advice` naming the closest setting.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from demand import swap
from demand.console import Advice, UserError

REPO_ROOT = Path(__file__).resolve().parents[1]


class Scale(StrEnum):
    """Sizes of the synthetic retailer; see ``synthetic/generator.py``."""

    tiny = "tiny"
    default = "default"
    large = "large"
    m5 = "m5"  # aggregated daily sales of 30,000+ series (the M5 competition's size)


class Profile(StrEnum):
    """Where the online store and the Feast registry live; see docs/concepts/profiles.md."""

    embedded = "embedded"
    team = "team"


class OfflineStore(StrEnum):
    """Feast's offline store for point-in-time retrieval; see docs/benchmarks.md."""

    duckdb = "duckdb"
    asof = "asof"


class Engine(StrEnum):
    """Where the feature build, training sets and materialization run; see docs/how-to/spark.md."""

    duckdb = "duckdb"
    spark = "spark"


class RedisType(StrEnum):
    """What DEMAND_REDIS_URL names: one Redis server, or the nodes of a Redis Cluster."""

    redis = "redis"
    redis_cluster = "redis_cluster"


class Materializer(StrEnum):
    """How the online store is loaded; see docs/benchmarks.md."""

    platform = "platform"
    feast = "feast"


class Loss(StrEnum):
    """CatBoost losses a model may train with: the ones docs/benchmarks.md, the loss, measured."""

    RMSE = "RMSE"
    Poisson = "Poisson"
    Tweedie = "Tweedie"  # needs :variance_power=P, 1 < P < 2


class TargetScale(StrEnum):
    """What the model learns; see docs/benchmarks.md, the target."""

    recent_mean = "recent_mean"  # units / the pair's recent mean, multiplied back
    none = "none"  # raw units


class SettingError(UserError):
    """A ``DEMAND_*`` setting with a value of the wrong type or out of range."""

    exit_code = 2  # the CLI reference: bad arguments and settings exit 2


@dataclass(frozen=True)
class Shown:
    """How the configuration reference (docs/reference/settings.md) names a checked type."""

    type: str


def _catboost_loss(value: str) -> str:
    family, _, params = value.partition(":")
    expected = "expected RMSE, Poisson or Tweedie:variance_power=P with 1 < P < 2"
    if family not in Loss.__members__:
        raise ValueError(f"{family!r} is not a loss the platform trains with; {expected}")
    if family != Loss.Tweedie:
        if params:
            raise ValueError(f"{family} takes no parameters; {expected}")
        return value
    name, _, power = params.partition("=")
    try:
        ok = name == "variance_power" and 1 < float(power) < 2
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(expected)
    return value


_SIZE = re.compile(
    r"\s*(?P<number>\d+(\.\d*)?|\.\d+)\s*(?P<unit>[KMGT]i?B|[KMGT]|(kilo|mega|giga|tera)bytes?)\s*",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"\s*(?P<number>\d+(\.\d*)?)\s*%\s*")


def _quantile_levels(value: str) -> str:
    from demand.quantiles import label, parse_levels

    # normalized, so the contract and the MLflow params spell one set of levels one way
    return ",".join(label(level) for level in parse_levels(value))


def _memory_size(value: str) -> str:
    # DuckDB's own notation, checked here: DuckDB reads '-1', 'none' or '0GB' as no limit or
    # none at all and fails at the first query; a size the build can run in is what is meant
    expected = "expected a size such as 8GB, 512MiB or 50% (of the machine's memory)"
    if match := _PERCENT.fullmatch(value):
        if not 0 < float(match["number"]) <= 100:
            raise ValueError("a share of the memory is above 0 % and at most 100 %")
        return value
    if not (match := _SIZE.fullmatch(value)):
        raise ValueError(expected)
    if float(match["number"]) <= 0:
        raise ValueError(f"the limit must be above zero; {expected}")
    return value


def _sql_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value).port  # noqa: B018 (parsing the port is the check)
    except (ArgumentError, ValueError):
        raise ValueError(
            "expected a SQLAlchemy database URL, e.g. postgresql+psycopg://user@host:5432/name"
        ) from None
    return value


def _postgresql_url(value: str) -> str:
    from sqlalchemy.engine import make_url

    if make_url(_sql_url(value)).get_backend_name() != "postgresql":
        raise ValueError("expected a PostgreSQL URL, e.g. postgresql+psycopg://user@host/name")
    return value


def _uri_or_path(value: str) -> str:
    # the usual slip is an address without its scheme (host:5000), which MLflow would
    # take for a relative path and fill with runs nobody finds
    if "://" not in value:
        if re.fullmatch(r"[^/\\:]+:\d+(/.*)?", value):
            raise ValueError(f"{value!r} has no scheme; write http://{value}")
        return value
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise ValueError("expected scheme://…, e.g. http://host:5000")
    try:
        urlsplit(value).port  # noqa: B018 (parsing the port is the check)
    except ValueError as error:
        raise ValueError(str(error)) from None
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("expected http://host/path or https://host/path")
    return value


def _redis_address(value: str) -> str:
    # Feast's connection string: host:port[,host:port…][,key=value…] (a cluster lists nodes)
    nodes = [p.strip() for p in value.split(",") if "=" not in p]
    expected = "expected host:port[,key=value…], e.g. 127.0.0.1:6379 or redis:6379,password=…"
    if not nodes:
        raise ValueError(expected)
    for node in nodes:
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{node!r}: {expected}")
    return value


def _model_version(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[1-9]\d*", value):
        raise ValueError("expected a registry version number such as 3")
    return value


CatBoostLoss = Annotated[str, AfterValidator(_catboost_loss), Shown("CatBoost loss")]
QuantileLevels = Annotated[
    str, AfterValidator(_quantile_levels), Shown("quantile levels, comma-separated")
]
MemorySize = Annotated[str, AfterValidator(_memory_size), Shown("size (8GB, 512MiB, 50%)")]
SqlUrl = Annotated[str, AfterValidator(_sql_url), Shown("SQLAlchemy URL")]
PostgresUrl = Annotated[str, AfterValidator(_postgresql_url), Shown("PostgreSQL URL")]
UriOrPath = Annotated[str, AfterValidator(_uri_or_path), Shown("URI or path")]
HttpUrl = Annotated[str, AfterValidator(_http_url), Shown("http(s) URL")]
RedisAddress = Annotated[str, AfterValidator(_redis_address), Shown("host:port[,key=value…]")]
ModelVersion = Annotated[str | None, AfterValidator(_model_version), Shown("version number")]

# read by demand.console before any settings are: known, but not settings
NOT_SETTINGS = frozenset({"DEMAND_DEBUG", "DEMAND_LIBRARY_WARNINGS"})

# A plan without planned_at is known this many periods before its period (or when it was
# imported, if later). Weekly: 13 weeks, so that a model forecasting up to 13 weeks ahead
# (DEMAND_WEEKLY_HORIZON's limit) sees at every horizon a plan imported in time.
PROMO_KNOWN_PERIODS_BEFORE = {"day": 14, "week": 13}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEMAND_", env_file=".env", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(
        default=REPO_ROOT / "data",
        description="Everything the platform writes lives here (raw and feature tables, "
        "Feast registry and online store, MLflow store, Bento store).",
    )
    feature_repo: Path = Field(
        default=REPO_ROOT / "feature_repo", description="The Feast feature repository."
    )
    profile: Profile = Field(
        default=Profile.embedded,
        description="embedded: SQLite online store and registries, no servers; team: Redis "
        "online store, the Feast registry on PostgreSQL, an MLflow tracking server.",
    )
    offline_store: OfflineStore = Field(
        default=OfflineStore.asof,
        description="Feast offline store for training sets. asof: Feast's DuckDB store with "
        "its point-in-time join as DuckDB's ASOF JOIN (feastext/offline_asof.py; the same "
        "rows, within merge_asof's time at 1 M and 10 M entity rows); duckdb: Feast's own. "
        "DEMAND_ENGINE=spark reads through Feast's Spark store instead.",
    )
    materializer: Materializer = Field(
        default=Materializer.platform,
        description="How materialization writes the online store. platform: Feast's engine "
        "with values serialized a column at a time (feastext/materialization.py), the bytes "
        "stock Feast writes, SQLite and Redis; feast: Feast's own local engine.",
    )
    feast_project: str = Field(
        default="demand_forecasting", description="Feast project (team profile; see Profiles)."
    )
    redis_url: RedisAddress = Field(
        default="127.0.0.1:6379",
        description="Feast online store (team profile): Feast's Redis connection string, "
        "host:port, more host:port for a cluster, then options such as password=….",
    )
    redis_type: RedisType = Field(
        default=RedisType.redis,
        description="What DEMAND_REDIS_URL names (team profile): redis, one server; "
        "redis_cluster, nodes of a Redis Cluster (keys spread over its masters by slot).",
    )
    feast_registry_url: SqlUrl = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/demand_feast",
        description="Feast SQL registry (team profile; see Profiles).",
    )
    seed: int = Field(default=7, description="Seed of the synthetic generator.")
    scale: Scale = Field(
        default=Scale.default,
        description="Size of the generated data: tiny (tests), default (demo), large "
        "(benchmarks), order lines; or m5 (aggregated daily sales, 30,000+ series; "
        "docs/benchmarks.md, scales).",
    )
    feature_service: str = Field(
        default="demand_forecast_v1",
        description="Feast feature service models use. Unset, training picks it from the "
        "feature tables: demand_forecast_v1 for daily order lines, demand_forecast_v2 for "
        "daily aggregated sales or planned promotions, demand_forecast_weekly_v2 for weeks.",
    )

    # importing a retailer's files (`demand import DIR`)
    promo_known_periods_before: int | None = Field(
        default=None,
        ge=0,
        description="A planned promotion or price without planned_at is known at the later of "
        "(its period's first day minus N periods of the grain) and the time it was imported "
        "(never back-dated). Default per grain: 14 days; 13 weeks (every weekly horizon, "
        "at most 13 weeks, sees a plan imported in time).",
    )
    # a store-product pair's active life (features.transforms.active_sql): periods it has
    # sold nothing in before it counts as stopped; unset, the grain's default
    inactive_after: int | None = Field(
        default=None,
        ge=1,
        description="A pair that has sold nothing for N periods of the grain (and for "
        "DEMAND_INACTIVE_GAP_MULTIPLE times its mean gap between sales) is inactive: no "
        "training labels, no batch forecasts. Default: 28 days; 8 weeks.",
    )
    inactive_gap_multiple: float | None = Field(
        default=None,
        ge=0,
        description="A slow mover's quiet run must also reach this multiple of its mean gap "
        "between sales before it counts as stopped. Default: 4.",
    )
    # no window by default: a history from the 1990s is as good as last year's; only
    # impossible dates (before 1900, observations after the clock) are quarantined
    import_earliest_date: date | None = Field(
        default=None,
        description="If set, imported rows dated before this day are quarantined "
        "(date_out_of_range). Default: none (only dates before 1900 are refused).",
    )
    import_latest_date: date | None = Field(
        default=None,
        description="If set, imported rows dated after this day are quarantined "
        "(date_out_of_range), plans included. Default: none (observations after now and "
        "dates after 2199 are refused).",
    )

    # DuckDB (the feature build, the import): peak memory is a setting, not the data's size
    duckdb_memory_limit: MemorySize = Field(
        default_factory=lambda: _half_the_memory(),
        description="Memory the feature build, `demand import` and the point-in-time joins "
        "let DuckDB hold before it spills to DUCKDB_TEMP_DIR, e.g. 8GB; peak memory follows "
        "this setting, not the data's size.",
        json_schema_extra={"shown_default": "half the machine's memory"},
    )
    duckdb_temp_dir: Path | None = Field(
        default=None,
        description="Where DuckDB spills what does not fit in DUCKDB_MEMORY_LIMIT. "
        "Default: DATA_DIR/duckdb-spill.",
    )
    duckdb_threads: int | None = Field(
        default=None, ge=1, description="DuckDB worker threads. Default: one per core."
    )

    # Spark (DEMAND_ENGINE=spark): when one machine is not enough
    engine: Engine = Field(
        default=Engine.duckdb,
        description="Engine of the feature build, training sets and materialization. duckdb: "
        "this machine (the default); spark: Spark SQL through PySpark, on SPARK_MASTER.",
    )
    spark_master: str = Field(
        default="local[*]",
        description="Spark master URL: local[N] (this machine, N cores), spark://host:7077 "
        "(standalone), yarn, or k8s://https://host:443.",
    )
    # NoDecode: the JSON is parsed by _spark_conf below, so bad JSON is this setting's error
    spark_conf: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Extra Spark configuration as JSON, applied last, e.g. "
        '\'{"spark.executor.memory": "8g", "spark.executor.instances": "4"}\'.',
    )

    # training
    model_name: str = Field(default="demand_forecast", description="Registered model name.")
    horizon: int = Field(
        default=7,
        ge=1,
        le=9,
        description="Days ahead a model forecasts "
        "(at most 9: forecasts reach nine days past their issue day).",
    )
    origin_every_days: int = Field(
        default=5,
        ge=1,
        description="Forecast origins are sampled "
        "every N days (3, 5, 6… walk through the weekdays).",
    )
    warmup_days: int = Field(
        default=28,
        ge=0,
        description="History skipped before the first origin, so the 28-day windows are full.",
    )
    test_days: int = Field(default=56, ge=7, description="Backtest: origins in the last N days.")
    validation_days: int = Field(
        default=42, ge=7, description="Early stopping: the N days before the backtest."
    )
    # the same schedule at the weekly grain, in weeks (the daily settings above are days)
    weekly_horizon: int = Field(
        default=4, ge=1, le=13, description="Weekly grain: weeks ahead a model forecasts."
    )
    weekly_origin_every: int = Field(
        default=1, ge=1, description="Weekly grain: an origin every N weeks (every week)."
    )
    weekly_warmup: int = Field(
        default=8, ge=0, description="Weekly grain: weeks of history before the first origin."
    )
    weekly_test: int = Field(
        default=13,
        ge=2,
        description="Weekly grain: backtest origins in the last N weeks (about a quarter).",
    )
    weekly_validation: int = Field(
        default=8, ge=2, description="Weekly grain: early stopping on the N weeks before it."
    )
    # a pair too new for the model (training.short_history); unset, the grain's default
    min_history_periods: int | None = Field(
        default=None,
        ge=0,
        description="A pair fewer than N periods of the grain past its first sale at the "
        "origin (or with none yet) is forecast by the baseline that did best on the "
        "validation window's such rows (the model's contract records it; /forecast says "
        "short_history). Default: 7 days; 4 weeks. 0: the model forecasts every pair.",
    )
    train_max_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Training rows at most (training, early stopping and backtest together): "
        "above it, a seeded uniform sample of (series, origin) pairs, every horizon of each, "
        "is kept before the Feast join. The default fits a CPU fit and refit of the default "
        "model in about 15 minutes on 2 cores (docs/benchmarks.md, M5 width).",
    )
    train_sample_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Keep this share of (series, origin) pairs instead of deriving it from "
        "TRAIN_MAX_ROWS (1: no sampling). Training logs the share it used; the production "
        "gate rebuilds a version's backtest rows with it.",
    )
    train_sample_seed: int = Field(
        default=7, description="Seed of the training-row sample (which pairs are kept)."
    )
    iterations: int = Field(
        default=600,
        ge=1,
        description="CatBoost trees (an upper bound: early stopping ends sooner).",
    )
    learning_rate: float = Field(default=0.08, gt=0, description="CatBoost learning rate.")
    depth: int = Field(default=6, ge=1, le=16, description="CatBoost tree depth.")
    ctr_complexity: int = Field(
        default=1,
        ge=1,
        le=4,
        description="CatBoost's max_ctr_complexity: how many categorical features (with "
        "splits of the tree) one target statistic may combine. 1, chosen on the validation "
        "window: the pairs' own levels are features already, and each combination's "
        "statistics grow the fit's memory with the trees (at 400k weekly rows the fit's own "
        "1.21 GiB with CatBoost's CPU default, 4, against 0.62; docs/benchmarks.md).",
    )
    loss: CatBoostLoss = Field(
        default="Tweedie:variance_power=1.5",
        description="CatBoost loss, chosen on the validation window (docs/benchmarks.md, "
        "the loss).",
    )
    search_seconds: int = Field(
        default=0,
        ge=0,
        description="Time budget of an Optuna hyperparameter search on the validation window "
        "(depth, learning rate, l2, random strength), each trial a nested MLflow run; 0: off, "
        "the parameters above.",
    )
    search_trials: int = Field(
        default=100, ge=1, description="At most this many search trials within the budget."
    )
    target_scale: TargetScale = Field(
        default=TargetScale.recent_mean,
        description="recent_mean: the model learns each row's units divided by its pair's "
        "recent mean (28 days, 13 weeks: known at the origin), weighted by it, and forecasts "
        "are multiplied back; series of every volume share one scale. none: raw units.",
    )
    quantiles: QuantileLevels = Field(
        default="0.1,0.5,0.9",
        description="Quantile forecasts beside the point forecast, at these levels in (0, 1), "
        "each once: a CatBoost MultiQuantile model fitted on CPU, calibrated per horizon on "
        "the latest known actuals (docs/how-to/quantiles.md). Empty: point forecasts only.",
    )
    quantile_calibration_periods: int | None = Field(
        default=None,
        ge=1,
        description="Quantile calibration reads the actuals of the last N periods known at "
        "each backtest origin (the served model's: at the last one), per horizon; a horizon "
        "with under 100 such rows reaches back to its latest 100. Default: 28 days; 4 weeks.",
    )
    mlflow_tracking_uri: UriOrPath | None = Field(
        default=None,
        description="Where MLflow clients send runs and versions. Default: embedded, a SQLite "
        "database in DATA_DIR/mlflow; team, the tracking server at "
        "http://MLFLOW_SERVER_HOST:MLFLOW_SERVER_PORT.",
    )
    # the team's MLflow tracking server (`demand team up` starts it)
    mlflow_server_host: str = Field(
        default="127.0.0.1", description="Address of the tracking server `demand team up` starts."
    )
    mlflow_server_port: int = Field(
        default=5000, ge=1, le=65535, description="Port of that tracking server."
    )
    mlflow_backend_store_uri: SqlUrl = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/demand_mlflow",
        description="The tracking server's database (team profile); clients never use it.",
    )
    mlflow_artifacts_destination: UriOrPath | None = Field(
        default=None,
        description="Where the tracking server keeps model files: a directory (default "
        "DATA_DIR/mlflow-artifacts) or an object store URI such as s3://bucket/mlflow.",
    )
    user: str | None = Field(
        default=None, description="Who the audit trail names; default: the OS user."
    )
    # registry
    # the production gate's paired comparison (registry/gates.py; docs/concepts/registry.md)
    gate_margin: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Production gate: a challenger passes when the upper end of the interval "
        "of its WAPE minus production's, on the same rows, is at most this (WAPE points). "
        "0: only a challenger shown no worse passes.",
    )
    gate_level: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="Production gate: the confidence level of that interval (a block bootstrap "
        "over the series, store and product).",
    )
    gate_draws: int = Field(
        default=2000,
        ge=100,
        le=100_000,
        description="Production gate: bootstrap resamples of the series behind the interval.",
    )
    gate_min_unseen_days: int = Field(
        default=14,
        ge=1,
        description="Production gate, daily grain: a champion trained later is compared on the "
        "target days it never saw; fewer than this many is a refusal (two of every weekday).",
    )
    gate_min_unseen_weeks: int = Field(
        default=4,
        ge=1,
        description="Production gate, weekly grain: the same minimum in target weeks (a month).",
    )
    gate_coverage_tolerance: float | None = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Staging gate: refuse a version whose central quantile interval's backtest "
        "coverage is further than this from nominal (0.05: ±5 points). `off`: the coverage "
        "is reported with the wQL check and not gated.",
    )
    gate_min_unseen_key_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Production gate: those unseen rows must cover at least this share of the "
        "backtest's series (store, product).",
    )
    registry_lock_url: PostgresUrl | None = Field(
        default=None,
        description="PostgreSQL database whose advisory lock (one per model name) serialises "
        "registry moves of a shared registry, from every host; clients only take the lock "
        "there. Default: a PostgreSQL tracking URI's own database; team profile, "
        "MLFLOW_BACKEND_STORE_URI. Embedded SQLite registries use a lock file instead.",
    )
    registry_lock_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a registry move waits for another one to finish before failing.",
    )
    nightly_promote: bool = Field(
        default=False,
        description="Let `demand nightly` move production when the production gate passes "
        "(`--promote` does it for one night).",
    )
    closed_day_lag_hours: float = Field(
        default=0.0,
        ge=0,
        le=48,
        description="A day is closed, and may be a forecast origin or a training label, once "
        "this many hours have passed since it ended (00:00 UTC of the next day) by the clock. "
        "0: at midnight UTC, the instant every feature row of the day is stamped known. A "
        "partial last day (an export cut at noon) is therefore never an origin; raise it when "
        "late orders still arrive after midnight.",
    )
    # batch forecasts (`demand forecast --all`, the nightly cycle)
    forecast_db_url: PostgresUrl | None = Field(
        default=None,
        description="PostgreSQL database that receives the published forecasts (table "
        "demand_forecasts). Default: none in the embedded profile (parquet files only), "
        "database demand_forecasts on the team's PostgreSQL in the team profile.",
    )
    # monitoring (`demand monitor`, `demand report`, the nightly cycle)
    monitor_restate_days: int = Field(
        default=28,
        ge=0,
        le=3660,
        description="Actuals of the last N days before the last closed day are compared with "
        "what the forecast ledger scored each night; a late or corrected actual there "
        "re-scores the forecasts of its day (older corrections are left as scored).",
    )
    monitor_window_days: int = Field(
        default=28,
        ge=7,
        le=3660,
        description="Live accuracy is the forecasts whose target falls in the last N days "
        "(the rolling figure; 28: four weeks).",
    )
    monitor_wape_margin: float = Field(
        default=0.2,
        ge=0,
        description="Alert when live WAPE exceeds the version's backtest WAPE by this share "
        "(0.2: live above 1.2 × backtest) …",
    )
    monitor_wape_nights: int = Field(
        default=3,
        ge=1,
        le=365,
        description="… on this many nights in a row.",
    )
    monitor_psi_threshold: float = Field(
        default=0.25,
        gt=0,
        description="A feature, or the predictions, drift when their population stability "
        "index against the version's reference profile reaches this (0.1 watch, 0.25 act).",
    )
    monitor_psi_min_keys: int = Field(
        default=300,
        ge=1,
        description="PSI judges a night's features (or predictions) only over at least this "
        "many store × product keys; below it the drift table says too few rows to judge, "
        "and only the range, null-rate and feed checks apply (over a few dozen keys sampling "
        "noise alone passes a PSI of 0.25).",
    )
    monitor_null_rate_change: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="A feature drifts when its share of nulls moves this much from the "
        "reference (0.1: ten points).",
    )
    monitor_drift_keys: int = Field(
        default=2000,
        ge=10,
        description="Store × product keys whose online feature vectors (every horizon) are "
        "compared with the reference each night, a fixed sample.",
    )
    # serving
    serve_host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    serve_port: int = Field(
        default=3000, ge=1, le=65535, description="Port the service listens on."
    )
    serve_max_items: int = Field(
        default=5000, ge=1, description="Items one /forecast request may carry."
    )
    serve_quantiles: bool = Field(
        default=True,
        description="Serve the version's quantile forecasts (false: point forecasts only, "
        "`quantiles: null`, as for a version without them; bench-serve's point-only peer).",
    )
    serve_max_body_bytes: int = Field(
        # 5,000 items with 64-character ids, a price and a promo are about 1.2 MB
        default=2 * 1024 * 1024,
        ge=1024,
        description="Largest request body the service reads; a larger one is answered 413 "
        "before it is read. Raise it with DEMAND_SERVE_MAX_ITEMS.",
    )
    serve_alias: str = Field(
        default="production", description="Registry alias whose model version is served."
    )
    serve_version: ModelVersion = Field(
        default=None, description="Serve this model version instead of the alias's."
    )
    serve_reload_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often a running service checks whether the alias moved (0: never; "
        "POST /reload always works).",
    )
    serve_bento_model: str | None = Field(
        default=None,
        description="Serve this Bento model store tag instead of the registry (set in Bentos).",
    )
    serve_feature_log: bool = Field(
        default=True,
        description="Log every forecast the service answers (request, features read with "
        "their event times and status, model version, prediction) as parquet in Feast's "
        "feature-logging schema; asynchronous, never slows or fails a request.",
    )
    serve_feature_log_dir: Path | None = Field(
        default=None,
        description="Where the served-feature log is written, one folder per feature "
        "service. Default: DATA_DIR/feature_logs.",
    )
    serve_feature_log_max_rows: int = Field(
        default=50_000,
        ge=1,
        description="Rows the feature log holds in memory before writing; a request that "
        "would exceed it is not logged (counted in /metrics: "
        "demand_feature_log_dropped_rows_total).",
    )
    # monitoring (the nightly's served-vs-offline skew check, live evidence from shadows)
    skew_sample_rows: int = Field(
        default=1000,
        ge=1,
        description="Logged rows the nightly recomputes offline to compare served with "
        "offline features: a seeded random sample over the whole logged period.",
    )
    skew_sample_seed: int = Field(
        default=7,
        description="Seed of the skew check's sample of logged rows (the same log, the same rows).",
    )
    shadow_nights: int = Field(
        default=7,
        ge=1,
        description="Nights of published staging (shadow) forecasts with actuals before the "
        "production gate judges a challenger on live evidence instead of the backtest.",
    )
    nightly_shadow_hold: bool = Field(
        default=True,
        description="Under `demand nightly --promote`, while a production version exists: "
        "a staging version with fewer than SHADOW_NIGHTS nights of live evidence stays in "
        "staging (each night's new version is registered, not staged), then the production "
        "gate judges it on that evidence and the night's version takes staging. A shadow "
        "that stopped being published releases it. false: each night's version replaces "
        "staging and is judged on its backtest at once.",
    )
    # containers (`demand bento containerize`, `make base-image`, `make container-smoke`)
    container_image: str = Field(
        default="localhost/demand-forecast-service:latest",
        description="Name and tag of the service image `demand bento containerize` builds.",
    )
    container_base_image: str | None = Field(
        default=None,
        description="The Bento's base image (it must carry Python 3.11). Default: BentoML's "
        "own (a python:3.11-slim from Docker Hub); `make base-image` builds "
        "localhost/demand-base:bookworm from Debian's packages, for machines without Docker "
        "Hub.",
    )
    container_storage_driver: Literal["auto", "overlay", "vfs"] = Field(
        default="auto",
        description="Image storage of buildah and podman (deploy/storage*.conf). auto: overlay "
        "where the kernel mounts it (a container starts without copying its image), else vfs.",
    )
    container_debian_mirror: HttpUrl = Field(
        default="http://deb.debian.org/debian",
        description="Debian mirror `make base-image` bootstraps the base image from.",
    )

    # where each value came from (default, .env, environment, argument), for `demand config`
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: object) -> None:
        # one place every read passes: get_settings, and the few that build Settings directly
        sources = value_sources(values)
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingError(_problems(error, sources)) from None
        self._sources = sources
        for advice in unknown_variables():
            warnings.warn(advice, Advice, stacklevel=2)

    @property
    def sources(self) -> dict[str, str]:
        """Where each setting's value came from: default, .env, environment or argument."""
        return dict(self._sources)

    @field_validator("gate_coverage_tolerance", mode="before")
    @classmethod
    def _coverage_not_gated(cls, value):
        return None if isinstance(value, str) and value.strip().lower() in ("off", "") else value

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _spark_conf(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"not JSON ({error.msg} at character {error.pos}); expected an object "
                    'such as {"spark.executor.memory": "8g"}'
                ) from None
        return value

    @field_validator("data_dir", "feature_repo", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # Feast and MLflow resolve relative paths against their own working
        # directories; absolute paths keep every tool looking at the same files.
        return path.expanduser().resolve()

    def promo_known_before(self, grain: str) -> int:
        """DEMAND_PROMO_KNOWN_PERIODS_BEFORE, or the grain's default, in periods of ``grain``."""
        if self.promo_known_periods_before is not None:
            return self.promo_known_periods_before
        return PROMO_KNOWN_PERIODS_BEFORE[grain]

    @property
    def duckdb_config(self) -> dict[str, str | int | bool]:
        """The settings every DuckDB connection of a build or import opens with.

        Passed as ``duckdb.connect(config=…)``; insertion order is not preserved (nothing
        reads the rows of an output in the order they were written), which lets DuckDB
        stream and spill more.
        """
        temp = self.duckdb_temp_dir or self.data_dir / "duckdb-spill"
        config: dict[str, str | int | bool] = {
            "memory_limit": self.duckdb_memory_limit,
            "temp_directory": str(temp),
            "preserve_insertion_order": False,
        }
        if self.duckdb_threads:
            config["threads"] = self.duckdb_threads
        return config

    @property
    def feature_store_yaml(self) -> Path:
        name = (
            "feature_store.yaml"
            if self.profile is Profile.embedded
            else (f"feature_store.{self.profile.value}.yaml")
        )
        return self.feature_repo / name

    @property
    def raw_dir(self) -> Path:
        # every command opens the directory here: an interrupted swap is undone first
        return swap.recover(self.data_dir / "raw")

    @property
    def feature_dir(self) -> Path:
        return swap.recover(self.data_dir / "features")

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def bentoml_home(self) -> Path:
        return self.data_dir / "bentoml"

    @property
    def forecast_dir(self) -> Path:
        return self.data_dir / "forecasts"

    @property
    def feature_log_dir(self) -> Path:
        return self.serve_feature_log_dir or self.data_dir / "feature_logs"

    @property
    def monitoring_dir(self) -> Path:
        """The forecast ledger, the nightly accuracy history, the report and its summary."""
        return self.data_dir / "monitoring"

    @property
    def forecast_database(self) -> str | None:
        if self.forecast_db_url or self.profile is not Profile.team:
            return self.forecast_db_url
        from sqlalchemy.engine import make_url

        # the team's PostgreSQL (the Feast registry's server), a database of its own
        url = make_url(self.feast_registry_url).set(database="demand_forecasts")
        return url.render_as_string(hide_password=False)

    @property
    def tracking_server_url(self) -> str:
        return f"http://{self.mlflow_server_host}:{self.mlflow_server_port}"

    @property
    def artifacts_destination(self) -> str:
        return self.mlflow_artifacts_destination or str(self.data_dir / "mlflow-artifacts")

    @property
    def team_dir(self) -> Path:
        """Pid files and logs of the servers the platform starts for the team profile."""
        return self.data_dir / "team"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.profile is Profile.team:
            return self.tracking_server_url
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"


def _half_the_memory() -> str:
    """Half of the machine's physical memory, in DuckDB's notation (MiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not a POSIX machine: DuckDB's own default is 80 %
        return "80%"
    return f"{total // 2 // 2**20}MiB"


def last_closed_day(now: datetime, lag_hours: float) -> date:
    """The newest day closed at ``now``: its end (00:00 UTC after it) + ``lag_hours`` has passed.

    The one rule for ``closed_day_lag_hours``; serving's origins and training's labels use it.
    """
    return (now.astimezone(UTC) - timedelta(hours=lag_hours)).date() - timedelta(days=1)


_ORIGINS = {
    "argument": "given as an argument",
    "environment": "from the environment",
    ".env": "from .env",
    "default": "the default",
}


def _dotenv() -> dict[str, str | None]:
    """The ``.env`` file pydantic-settings reads (in the working directory), keys upper-case."""
    from dotenv import dotenv_values

    path = Path(str(Settings.model_config.get("env_file")))
    return {k.upper(): v for k, v in dotenv_values(path).items()} if path.is_file() else {}


def value_sources(overrides: dict[str, object]) -> dict[str, str]:
    """Where each setting's value comes from, in pydantic-settings' order of precedence."""
    environ = {name.upper() for name in os.environ}  # names are not case-sensitive
    dotenv = _dotenv()
    sources = {}
    for name in Settings.model_fields:
        variable = f"DEMAND_{name.upper()}"
        if name in overrides:
            sources[name] = "argument"
        elif variable in environ:
            sources[name] = "environment"
        elif variable in dotenv:
            sources[name] = ".env"
        else:
            sources[name] = "default"
    return sources


def unknown_variables() -> list[str]:
    """One line for each ``DEMAND_*`` variable no setting has, naming the closest setting."""
    known = sorted(f"DEMAND_{name.upper()}" for name in Settings.model_fields)
    seen: dict[str, str] = {}
    for names, where in ((os.environ, ""), (_dotenv(), " in .env")):
        for name in names:
            variable = name.upper()
            if variable.startswith("DEMAND_") and variable not in seen:
                seen[variable] = where
    lines = []
    for variable, where in sorted(seen.items()):
        if variable in known or variable in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(variable, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"unknown setting {variable}{where}{hint}")
    return lines


def _problems(error: ValidationError, sources: dict[str, str]) -> str:
    """One line per bad value: the variable, its value (secrets hidden), its source, why."""
    from demand.servers import redact

    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        value = problem.get("input")
        shown = ""
        if isinstance(value, str | int | float):
            try:
                shown = f"={redact(str(value))}"
            except Exception:  # not even a URL's syntax: show nothing rather than a password
                shown = "=…"
        reason = problem["msg"].removeprefix("Value error, ")
        origin = _ORIGINS[sources.get(name, "default")]
        lines.append(f"setting DEMAND_{name.upper()}{shown} ({origin}): {reason}")
    return "\n".join(lines)


def get_settings(**overrides: object) -> Settings:
    """Read the settings now (environment, ``.env``), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
