"""The feature contract: what a registered model needs to be scored from entity keys alone.

Training writes it onto the model version (as tags, and as ``feature_contract.json``);
the registry checks it is complete before a promotion; serving reads it to know
which features to fetch, in which order, and which are categorical. It is plain
data, so none of the three imports another.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from demand import quantiles as quantile_math
from demand.console import UserError

TAG_PREFIX = "demand.contract."
ARTIFACT = "feature_contract.json"
# the path, inside a version's model, of the model it was backtested with
BACKTEST_MODEL = "backtest_model"
# the sentinel categorical nulls become before CatBoost sees them
MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class FeatureContract:
    feast_project: str
    feature_service: str
    feature_views: dict[str, int]  # view name → version number in the Feast registry
    features: list[str]  # model input columns, in order
    dtypes: dict[str, str]  # column → "category" | "float"
    categorical: list[str]
    entity_keys: list[str]  # what a client sends
    request_features: list[str]  # computed from the request, not the store
    horizon: int
    train_start: str  # first and last target day the registered (served) model was fitted on
    train_end: str
    training_set_hash: str
    device: str
    # optional facts, all str; older versions lack the later ones:
    #   backtest_start, backtest_end, backtest_hash: the backtest window and its rows' hash
    #   backtest_model: path of the backtest model inside the version's model (absent: the
    #     registered model is the backtest model, as before the refit)
    #   backtest_model_train_start, backtest_model_train_end: its training targets
    #   loss: the CatBoost loss
    #   target_scale, target_scale_floor: the model was fitted on units divided by this
    #     feature (a level known at the origin, never below the floor), so its output is
    #     multiplied back (:meth:`units`); absent: the model outputs units
    #   short_history_min_periods, short_history_baseline, short_history_feature,
    #   short_history_age: the short-history rule (:meth:`short_history`): a pair fewer
    #     than min periods past its first sale at the origin (age feature) is forecast by
    #     the baseline (its name as logged), whose forecast is that feature's value;
    #     absent or min 0: every row is the model's
    #   short_history_residuals (JSON: horizon → the empirical quantiles, at the contract's
    #     quantile levels, of the rule's baseline's residuals on the validation window): the
    #     quantiles of a short-history row are its baseline's forecast plus these
    #     (:meth:`with_fallback_quantiles`); absent: they are the quantile model's
    #   quantiles ("0.1,0.5,0.9"), quantile_model and backtest_quantile_model (paths inside
    #     the version's model), quantile_offsets (JSON: horizon → each level's conformal
    #     offset, in the model's output), quantile_counts ("true": whole units),
    #     quantile_dependence (JSON: the horizons' correlation for lead-time totals),
    #     quantile_device: absent on versions without quantile forecasts
    extra: dict[str, str] = field(default_factory=dict)
    # the periods horizons count: day, or week starting on week_start (versions before
    # grains lack both and are daily)
    grain: str = "day"
    week_start: str = "monday"
    # where the training set was retrieved: duckdb or spark (DEMAND_ENGINE; versions before
    # the Spark engine lack it and were retrieved on DuckDB)
    engine: str = "duckdb"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureContract:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_tags(self) -> dict[str, str]:
        """Flat MLflow tags: one per field, lists and maps as JSON."""
        tags = {}
        for key, value in asdict(self).items():
            tags[TAG_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
        # the tag Feast's own MLflow integration resolves a model's features with
        tags["feast.feature_service"] = self.feature_service
        tags["feast.project"] = self.feast_project
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> FeatureContract:
        optional = {"extra", "grain", "week_start", "engine"}
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in optional and TAG_PREFIX + f.name not in tags
        ]
        if missing:
            raise IncompleteContract(missing)
        values = {}
        for f in fields(cls):
            raw = tags.get(TAG_PREFIX + f.name)
            if raw is None:
                continue
            values[f.name] = raw if f.type == "str" else json.loads(raw)
        return cls(**values)

    def backtest_model_uri(self, name: str, version: str) -> str:
        """The model version ``name``/``version`` was backtested with: the one to score.

        Since the refit, the registered model has seen the backtest rows; the model fitted
        before the window is kept inside it. A version registered before the refit has
        only the one model, which was fitted before its window.
        """
        path = self.extra.get("backtest_model")
        return f"models:/{name}/{version}/{path}" if path else f"models:/{name}/{version}"

    def problems(self) -> list[str]:
        """What makes this contract unusable for serving; empty when complete."""
        out = []
        if not self.features:
            out.append("no features")
        if set(self.categorical) - set(self.features):
            out.append(f"categorical not in features: {set(self.categorical) - set(self.features)}")
        if set(self.features) - set(self.dtypes):
            out.append(f"features without a dtype: {sorted(set(self.features) - set(self.dtypes))}")
        if self.horizon < 1:
            out.append(f"horizon {self.horizon} < 1")
        for name in (
            "feast_project",
            "feature_service",
            "training_set_hash",
            "train_start",
            "train_end",
            "device",
        ):
            if not getattr(self, name):
                out.append(f"{name} is empty")
        return out

    @property
    def target_scale(self) -> str | None:
        """The feature each row's units were divided by before the fit; None: not scaled."""
        return self.extra.get("target_scale") or None

    @property
    def output(self) -> str:
        """What the model's raw output (a CatBoost or MLflow pyfunc ``predict``) is, in words:
        units, or for a scaled model a ratio to each row's level, which :meth:`units` turns
        into units. Training writes it on the run and the registered version."""
        if self.target_scale is None:
            return "units"
        floor = self.extra.get("target_scale_floor", "0")
        return (
            f"a ratio, units / max({self.target_scale}, {floor}): multiply by that level for "
            "units (FeatureContract.units; the service and batch forecasts do)"
        )

    @property
    def short_history_rule(self) -> ShortHistory | None:
        """The short-history rule training recorded; None: every row is the model's (versions
        before the rule, or trained with DEMAND_MIN_HISTORY_PERIODS=0)."""
        minimum = int(self.extra.get("short_history_min_periods", 0) or 0)
        if minimum <= 0:
            return None
        return ShortHistory(
            minimum,
            self.extra["short_history_baseline"],
            self.extra["short_history_feature"],
            self.extra["short_history_age"],
        )

    def short_history(self, ages) -> np.ndarray:
        """For each row with periods-since-first-sale ``ages``, whether the rule forecasts it
        by the baseline: fewer periods than the minimum, or no sale yet (null). All False
        without a rule."""
        rule = self.short_history_rule
        if rule is None:
            return np.zeros(len(ages), dtype=bool)
        age = pd.to_numeric(pd.Series(list(ages), dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )
        return ~(age >= rule.min_periods)  # NaN compares False: no sale yet is short

    def with_fallback(self, units, ages, baseline) -> np.ndarray:
        """``units`` (the model's) with the short-history rows replaced by the baseline's
        forecast ``baseline`` (its feature's values; null: 0). Training's backtest, the
        gates (through :meth:`predict`), batch forecasts and /forecast all apply it here."""
        out = np.asarray(units, dtype=np.float64).copy()
        short = self.short_history(ages)
        if short.any():
            out[short] = baseline_units(baseline)[short]
        return out

    @property
    def short_history_interval(self) -> dict[int, list[float]] | None:
        """Horizon → the residual quantiles of the short-history baseline at the contract's
        levels; None without them (versions before them, no rule, no quantiles)."""
        text = self.extra.get("short_history_residuals")
        if not text or self.short_history_rule is None:
            return None
        return {int(h): [float(v) for v in q] for h, q in json.loads(text).items()}

    def with_fallback_quantiles(self, units, ages, baseline, horizons) -> np.ndarray:
        """Quantiles ``units`` (rows × levels, the quantile model's) with the short-history
        rows' replaced by their baseline's interval: its forecast (as :meth:`with_fallback`
        gives it) plus its residual quantiles at the row's horizon, within the support and
        increasing. Unchanged without the interval. Training's backtest, batch forecasts
        and /forecast all apply it here, so a short-history row's quantiles come from the
        same baseline as its units."""
        out = np.asarray(units, dtype=np.float64).copy()
        interval = self.short_history_interval
        if interval is None or out.size == 0:
            return out
        short = self.short_history(ages)
        if not short.any():
            return out
        shift = np.array([interval[int(h)] for h in np.asarray(horizons)[short]])
        point = baseline_units(baseline)[short]
        out[short] = quantile_math.non_crossing(
            quantile_math.support(point[:, None] + shift, self.quantile_counts)
        )
        return out

    def quantile_forecast(self, raw, columns, horizons) -> np.ndarray:
        """Quantiles in units (rows × levels) from the quantile model's ``raw`` output for
        rows whose columns ``columns`` holds (a frame, or a mapping of column → values): the
        calibrated quantiles, a pair too new for the model given its baseline's interval.
        What the service and batch answer and the production gate scores."""
        values = columns[self.target_scale] if self.target_scale else np.ones(len(horizons))
        units = self.quantile_units(raw, values, horizons)
        rule = self.short_history_rule
        if rule is None:
            return units
        return self.with_fallback_quantiles(
            units, columns[rule.age_feature], columns[rule.feature], horizons
        )

    @property
    def quantiles(self) -> tuple[float, ...]:
        """The levels this version forecasts quantiles at; () for a point-only version."""
        return quantile_math.parse_levels(self.extra.get("quantiles", ""))

    @property
    def quantile_counts(self) -> bool:
        return self.extra.get("quantile_counts") == "true"

    @property
    def dependence(self) -> np.ndarray:
        """The horizons' correlation (horizon × horizon) lead-time totals are drawn with."""
        text = self.extra.get("quantile_dependence")
        return np.asarray(json.loads(text)) if text else np.eye(self.horizon)

    def quantile_units(self, raw, values, horizons, offsets=None) -> np.ndarray:
        """Quantiles in units (rows × levels) from the quantile model's raw output: each
        horizon's conformal offset added, times each row's level (:meth:`levels`), within
        the support (:func:`demand.quantiles.support`), in increasing order. Training's
        backtest, the gates, the service and batch forecasts all turn quantiles into units
        here."""
        raw = np.asarray(raw, dtype=np.float64).reshape(len(horizons), -1)
        if offsets is None:  # the served ones; training's backtest passes each origin's
            offsets = json.loads(self.extra.get("quantile_offsets", "{}"))
        shift = np.array(
            [offsets.get(str(int(h)), [0.0] * raw.shape[1]) for h in horizons], dtype=np.float64
        ).reshape(raw.shape)
        level = self.levels(values) if self.target_scale else np.ones(len(horizons))
        units = quantile_math.support((raw + shift) * level[:, None], self.quantile_counts)
        return quantile_math.non_crossing(units)

    def levels(self, values) -> np.ndarray:
        """The divisor of each row, from the values of :attr:`target_scale` (ones when the
        model is not scaled): the feature, or the floor where it is lower or null (a pair
        that sold nothing lately still gets a forecast above zero)."""
        if self.target_scale is None:
            return np.ones(len(values))
        level = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
        floor = float(self.extra.get("target_scale_floor", 0) or 0)
        return np.fmax(level.to_numpy(dtype=np.float64), floor)

    def units(self, predicted, values) -> np.ndarray:
        """Units from the model's raw output for rows whose :attr:`target_scale` values are
        ``values``, never below zero. Training's backtest, the production gate and serving
        all turn predictions into units here."""
        raw = np.asarray(predicted, dtype=np.float64).clip(min=0)
        return raw if self.target_scale is None else raw * self.levels(values)

    def predict(self, model, frame: pd.DataFrame) -> np.ndarray:
        """Units ``model`` (a CatBoostRegressor of this contract) forecasts for the rows of
        ``frame`` (a training set's or an online frame's columns)."""
        raw = model.predict(self.model_frame(frame))
        scale = self.target_scale
        units = self.units(raw, frame[scale] if scale else np.ones(len(frame)))
        rule = self.short_history_rule
        if rule is None:
            return units
        return self.with_fallback(units, frame[rule.age_feature], frame[rule.feature])

    def model_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns, in order, with the dtypes CatBoost accepts.

        Categorical values become str and their nulls a sentinel; numeric nulls NaN.
        Used on training sets and on online vectors alike, so both see the same.
        """
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(f"frame lacks contract features: {missing}")
        out = {}
        for column in self.features:
            values = frame[column]
            if column in self.categorical:
                out[column] = (
                    values.astype(object).where(values.notna(), MISSING_CATEGORY).astype(str)
                )
            else:
                out[column] = pd.to_numeric(values, errors="coerce").astype(np.float64)
        return pd.DataFrame(out, index=frame.index)


def baseline_units(values) -> np.ndarray:
    """A short-history baseline's forecast from its feature's values: null is 0, never
    below 0."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    return np.nan_to_num(numbers.to_numpy(dtype=np.float64), nan=0.0).clip(min=0)


@dataclass(frozen=True)
class ShortHistory:
    """A pair with fewer than ``min_periods`` periods since its first sale at the origin
    (``age_feature``, or no sale yet) is forecast by ``baseline``: the value of
    ``feature`` at the origin (a baseline known then: the last period, a moving average)."""

    min_periods: int
    baseline: str
    feature: str
    age_feature: str

    @property
    def columns(self) -> list[str]:
        """The features the rule reads beside the model's inputs."""
        return [self.age_feature, self.feature]


class IncompleteContract(UserError, ValueError):
    def __init__(self, missing: list[str]):
        self.missing = missing
        super().__init__(
            f"the model version has no complete feature contract; missing: {', '.join(missing)}"
        )
