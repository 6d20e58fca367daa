"""The BentoML service: forecasts for entity keys, features looked up in the Feast online store.

    bentoml serve serving.service:DemandForecast      (or `demand serve`)

Nothing is read at import: the model, its contract and the online store are
loaded in ``__init__`` from the DEMAND_* settings, so ``bentoml serve``, the
tests and a Bento all configure it the same way.

Feature freshness: each forecast item names the views whose features were null for
it (``stale``: the row absent, newer than the origin's close, or past the view's TTL;
see serving/lookup.py); ``/metadata`` shows each view's newest row against the
newest origin served; ``/metrics`` has ``demand_feature_age_seconds{view}`` (the
origin's close minus the newest row a request read; negative: the feed runs ahead)
and ``demand_stale_items_total{view}``. Workers, threads and access
logging are BentoML configuration (``BENTOML_CONFIG_OPTIONS``; `demand serve`
sets them); the defaults below are the ones the benchmark found fastest here.

What a request may be is ``ForecastRequest`` and ``Item``, published as the OpenAPI
document (``/docs.json``); a body's size and Content-Type are checked before BentoML
reads it (serving/guard.py). No malformed request is a 5xx (tests/serving/test_hardening.py,
test_openapi_fuzz.py).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import re
import threading
import uuid
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

import bentoml
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse

from demand.calendar import Calendar
from demand.quantiles import label as qlabel
from demand.settings import get_settings
from serving import feature_log, model_loader
from serving.guard import RequestGuard
from serving.lookup import StoreUnavailable
from serving.monitoring_gauges import MonitoringGauges
from serving.periods import misplaced, refusal
from serving.predict import lead_time_quantiles, score_all, short_history

logger = logging.getLogger("demand.serving")

# price/promo a client may plan for the target day → the contract feature they fill
PLANNED = {"price": "planned_price", "promo": "planned_promo"}
EXAMPLE_ITEMS = [
    {"store_id": "S000", "product_id": "P0000", "date": "2023-07-30"},
    {"store_id": "S000", "product_id": "P0001", "date": "2023-08-01"},
]


# An id has no control characters (C0, DEL, C1) and no space at either end: a key read with a
# trailing newline would only ever answer missing_features. (No \s: ECMA, Rust and Python
# disagree on what it matches.)
ID_PATTERN = r"^[^\x00-\x20\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _nullable(schema: dict[str, Any]) -> None:
    """``X | None`` as OpenAPI 3.0 (what BentoML publishes) spells it: ``nullable: true``."""
    for field in schema["properties"].values():
        variants = field.get("anyOf", [])
        if len(variants) == 2 and {"type": "null"} in variants:
            del field["anyOf"]
            field.update(next(v for v in variants if v != {"type": "null"}), nullable=True)


class Item(BaseModel):
    """A store, a product and the day forecast."""

    # A new per-item field is declared here, strict and with its limits (the published
    # document is made from this class); what it means for the model served is checked in
    # DemandForecast.forecast and answered 422 naming the field.
    # strict: "1" is not a number, 20230730 is not a date; unknown fields are typos
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_nullable)

    store_id: Key
    product_id: Key
    date: dt.date = Field(description="The day forecast (YYYY-MM-DD).")
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Planned price, if the model uses it."
    )
    promo: bool | None = Field(default=None, description="Planned promotion, if the model uses it.")

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        # pydantic alone also reads "1690675200" as a date (epoch seconds); parsed here, as
        # strict mode takes a date object but no str once a validator has run
        if not isinstance(value, str):
            return value
        if not ISO_DATE.fullmatch(value):
            raise ValueError("a date is YYYY-MM-DD")
        return dt.date.fromisoformat(value)  # ValueError for 2023-02-30


STORES_RETRY_SECONDS = 5.0  # a service whose stores do not answer yet tries again this often
LISTED_ERRORS = 10_000  # 5,000 items with two mistakes each: listed in 0.08 s, 1.6 MB


def _publish_request(schema: dict[str, Any]) -> None:
    # The configured cap, read when the document is generated (in the serving process),
    # so that a generated client knows it; more items are answered 422 (see forecast).
    schema["properties"]["items"]["maxItems"] = get_settings().serve_max_items
    _nullable(schema)
    _exclusive_bounds(schema)


def _exclusive_bounds(schema: dict[str, Any]) -> None:
    """Open bounds as OpenAPI 3.0 writes them: pydantic emits JSON Schema's numeric
    ``exclusiveMinimum: 0``, which 3.0 (BentoML's document) reads as a boolean; a client
    generator or schemathesis rejects it. 3.0 says ``minimum: 0, exclusiveMinimum: true``."""
    for field in schema.get("properties", {}).values():
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = field.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                field[limit] = value
                field[bound] = True


class ForecastRequest(bentoml.IODescriptor):
    """The items to forecast, answered in this order."""

    # the body of POST /forecast; a field for the whole request goes here
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_publish_request)

    items: Annotated[list[Item], Field(min_length=1, examples=[EXAMPLE_ITEMS])]
    lead_time: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Also answer each item's demand over this many periods from its date "
        "on (its lead-time total: quantiles of the sum, not sums of quantiles); at most the "
        "model's horizon.",
    )
    service_level: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Also answer the order-up-to level: the lead-time total's quantile at "
        "this level (one period when lead_time is not given).",
    )

    @classmethod
    async def from_http_request(cls, request: Any, serde: Any) -> ForecastRequest:
        """BentoML's parsing, with at most ``LISTED_ERRORS`` errors listed in a 400.

        BentoML answers a ValidationError with every error; listing them is what costs:
        2 MB of empty items made 2,070,000 errors, 12 s to list and a 282 MB answer.
        """
        try:
            return await super().from_http_request(request, serde)
        except ValidationError as error:
            count = error.error_count()
            if count <= LISTED_ERRORS:
                raise
            message = "{count} errors, more than the {listed} an answer lists: fix the first items"
            too_many = PydanticCustomError(
                "too_many_errors", message, {"count": count, "listed": LISTED_ERRORS}
            )
            raise ValidationError.from_exception_data(
                cls.__name__, [{"type": too_many, "loc": (), "input": None}]
            ) from None


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str | None


class Forecast(BaseModel):
    store_id: str
    product_id: str
    date: dt.date
    units: float | None
    status: Literal["ok", "missing_features", "inactive", "short_history"] = Field(
        description="ok; missing_features: no units, a view the model needs had no usable "
        "row; inactive: the pair was inactive at the origin (stopped selling, delisted: no "
        "batch forecast is published for it), units are the model's all the same; "
        "short_history: the pair was too new at the origin for the model (fewer periods past "
        "its first sale than the model's contract asks), units are the baseline's named in "
        "baseline. Clients should treat an unknown status as ok with a note.",
    )
    baseline: str | None = Field(
        default=None,
        description="short_history: the baseline whose forecast units are (as the training "
        "report names it: moving_average_4w, naive_1d …); null for every other status.",
    )
    stale: list[str] = Field(
        default_factory=list,
        description="Views whose features were null for this item, as in training at its "
        "origin: no row, or the row the store holds is newer than the origin or older than "
        "the view's TTL allows.",
    )
    quantiles: dict[str, float] | None = Field(
        default=None,
        description='Quantiles of the item\'s units by level ("0.1", "0.5", "0.9"), '
        "calibrated on the backtest, increasing; null for a model version without quantile "
        "forecasts or an item without units.",
        examples=[{"0.1": 2.0, "0.5": 5.0, "0.9": 9.0}],
    )
    lead_time: LeadTime | None = Field(
        default=None, description="The lead-time total, when the request asks for lead_time."
    )


class LeadTime(BaseModel):
    periods: int = Field(description="Periods of the model's grain, from the item's date on.")
    quantiles: dict[str, float] = Field(
        description="Quantiles of the total demand over those periods, by level."
    )
    service_level: float | None = None
    order_up_to: float | None = Field(
        default=None,
        description="The lead-time total's quantile at service_level: the stock to order up to.",
    )


class ForecastResponse(BaseModel):
    model: ModelRef
    forecasts: list[Forecast]


class QuantileFacts(BaseModel):
    """What the served version answers beyond units: its quantile levels, lead-time totals
    and order-up-to levels."""

    levels: list[str] = Field(
        description="The keys of each forecast's quantiles, increasing; empty when the "
        "version has none (registered before quantile forecasts, or DEMAND_SERVE_QUANTILES "
        "is false): its forecasts answer quantiles null.",
        examples=[["0.1", "0.5", "0.9"]],
    )
    lead_time: bool = Field(description="Whether /forecast answers a request's lead_time.")
    max_lead_time: int | None = Field(
        description="The longest lead_time, in periods of the model's grain: the horizon, "
        "for an item on the origin's next period (one h periods after the origin may ask "
        "for max_lead_time - h + 1); null without lead-time answers."
    )
    service_level: bool = Field(
        description="Whether /forecast answers a request's service_level (order_up_to)."
    )
    short_history: str | None = Field(
        description="The baseline whose empirical interval a short_history item's quantiles "
        "are: its units plus the quantiles of that baseline's residuals at the item's "
        "horizon, measured on the validation window. Null when the version has no such "
        "interval (its short_history items get the quantile model's quantiles) or no "
        "quantiles.",
    )


class TrainingRange(BaseModel):
    start: str = Field(description="The first target period the served model was fitted on.")
    end: str = Field(description="The last one.")


class ReloadFacts(BaseModel):
    follows_alias: bool
    poll_seconds: float


class Metadata(BaseModel):
    """The served version and what it answers."""

    model: ModelRef
    feature_service: str
    features: list[str]
    categorical: list[str]
    entity_keys: list[str]
    horizon: int = Field(description="Periods after the origin the model forecasts.")
    training_range: TrainingRange
    materialized_at: str | None = Field(
        description="When the online store was last loaded (null: never)."
    )
    freshness: dict[str, Any] = Field(
        description="Each view's newest row read, against the newest origin served."
    )
    loaded_at: str
    reload: ReloadFacts
    max_items: int = Field(description="The most items one /forecast request may hold.")
    quantiles: QuantileFacts


def _statuses(loaded, answers: list[float | None], vectors) -> list[tuple[str, str | None]]:
    """Each item's status and, for short_history, the baseline its units are: no units
    first, then a pair inactive at its origin, then one too new for the model."""
    rule = loaded.contract.short_history_rule
    out: list[tuple[str, str | None]] = []
    for value, stopped, short in zip(
        answers, vectors.inactive(), short_history(loaded, vectors), strict=True
    ):
        if value is None:
            out.append(("missing_features", None))
        elif stopped:
            out.append(("inactive", None))
        elif short and rule is not None:
            out.append(("short_history", rule.baseline))
        else:
            out.append(("ok", None))
    return out


def _serves_quantiles(loaded) -> bool:
    """Whether the bundle answers quantiles (and so lead times and service levels)."""
    return bool(loaded.contract.quantiles) and loaded.quantile_model is not None


def _quantile_facts(loaded) -> dict[str, Any]:
    """/metadata's ``quantiles``: what /forecast answers beyond units for this bundle."""
    serves = _serves_quantiles(loaded)
    rule = loaded.contract.short_history_rule
    interval = serves and rule is not None and loaded.contract.short_history_interval is not None
    return {
        "levels": [qlabel(level) for level in loaded.contract.quantiles] if serves else [],
        "lead_time": serves,
        "max_lead_time": loaded.contract.horizon if serves else None,
        "service_level": serves,
        "short_history": rule.baseline if interval else None,
    }


def _reject(status: int, field: str, message: str) -> Any:
    # BentoML's own 4xx body for an exception is a one-element list; this one names the field
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=status)


def _unavailable(error: StoreUnavailable) -> Any:
    return JSONResponse({"error": f"online store unavailable: {error}"}, status_code=503)


def _settle_garbage_collector() -> None:
    """Keep Python's cyclic GC out of the request path.

    A lookup makes many short-lived objects; with the default thresholds the GC
    paused a 1,000-item request every ~40 requests (measured here: 60 ms typical,
    221 ms spikes; with this, 50 ms flat). What is loaded now (model, registry,
    caches) is frozen out of its scans, and young collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


routes = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

_metrics: tuple[Any, Any] | None = None
_metrics_lock = threading.Lock()


def _freshness_metrics() -> tuple[Any, Any, Any, Any]:
    """The feature-age gauge, stale-item counter and feature-log counters, created once
    per process.

    prometheus_client refuses a second metric of the same name, and tests build the
    service more than once in one process. Imported here, not at module import:
    BentoML sets its multiprocess directory in the worker first (``bentoml.metrics``,
    deprecated in 1.4, is only a deferred alias of prometheus_client).
    """
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            from prometheus_client import Counter, Gauge

            age = Gauge(
                "demand_feature_age_seconds",
                "Origin close minus the newest row of the view a request read "
                "(negative: the feed runs ahead of the orders)",
                ["view"],
                multiprocess_mode="mostrecent",
            )
            stale = Counter(
                "demand_stale_items",
                "Forecast items whose features of the view were null (absent, ahead or expired)",
                ["view"],
            )
            dropped = Counter(
                "demand_feature_log_dropped_rows",
                "Answered forecast items the served-feature log did not keep (reason: full, "
                "the bounded buffer was; error, the write failed)",
                ["reason"],
            )
            logged = Counter(
                "demand_feature_log_rows", "Answered forecast items written to the feature log"
            )
            _metrics = (age, stale, dropped, logged)
        return _metrics


@bentoml.service(
    name="demand_forecast",
    workers=1,
    threads=4,
    traffic={"timeout": 30},
    logging={"access": {"enabled": True, "skip_paths": ["/livez", "/readyz", "/metrics"]}},
)
@bentoml.asgi_app(routes, path="/")
class DemandForecast:
    def __init__(self) -> None:
        self.settings = get_settings()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._age, self._stale, dropped, logged = _freshness_metrics()
        self.feature_log: feature_log.FeatureLog | None = None
        if self.settings.serve_feature_log:
            self.feature_log = feature_log.FeatureLog(
                self.settings.feature_log_dir,
                self.settings.serve_feature_log_max_rows,
                on_drop=lambda reason, rows: dropped.labels(reason=reason).inc(rows),
                on_write=logged.inc,
            )
        self._monitoring = MonitoringGauges(self.settings.monitoring_dir)
        self.loaded: model_loader.Loaded | None = None
        self.unready: str | None = None  # why there is no model yet: a store does not answer
        try:
            self._start()  # any other ServingError: no such model, an incomplete store: exit
        except model_loader.StoresUnreachable as error:
            # waiting can cure this one: not ready, the reason in the log, retried
            self.unready = str(error)
            logger.error("not ready: %s (retrying every %.0fs)", error, STORES_RETRY_SECONDS)
            threading.Thread(target=self._retry_start, name="stores-retry", daemon=True).start()

    def _start(self) -> None:
        self.loaded = model_loader.load(self.settings)
        self.unready = None
        self._monitoring.refresh()
        _settle_garbage_collector()
        if self.settings.serve_reload_seconds > 0 and self._follows_alias:
            threading.Thread(target=self._poll, name="alias-poll", daemon=True).start()
        logger.info("serving %s v%s", self.loaded.name, self.loaded.version)

    def _retry_start(self) -> None:
        while not self._stop.wait(STORES_RETRY_SECONDS):
            try:
                self._start()
                return
            except Exception as error:  # unreachable still, or the stores now say it cannot serve
                if str(error) != self.unready:  # one log line per new reason, not per try
                    logger.error("not ready: %s (retrying)", error)
                self.unready = str(error)

    @property
    def _follows_alias(self) -> bool:
        loaded = self.loaded
        return (
            loaded is not None and loaded.alias is not None and not self.settings.serve_bento_model
        )

    def _not_ready(self) -> Any:
        return JSONResponse({"error": f"not ready: {self.unready}"}, status_code=503)

    # -- health ------------------------------------------------------------------------------

    def __is_ready__(self) -> bool:
        loaded = self.loaded
        return loaded is not None and loaded.lookup.ping()

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        if self.feature_log is not None:
            self.feature_log.close()

    # -- forecasts ---------------------------------------------------------------------------

    @bentoml.api(route="/forecast", input_spec=ForecastRequest)
    def forecast(
        self,
        items: list[Item],
        lead_time: int | None = None,
        service_level: float | None = None,
    ) -> ForecastResponse:
        """Units per item (store, product, target day), in request order, with their
        quantiles; with ``lead_time``, each item's lead-time total too."""
        loaded = self.loaded  # one bundle for the whole request, even if a reload swaps it
        if loaded is None:
            return self._not_ready()
        periods = lead_time or (1 if service_level is not None else None)
        if periods is not None:
            field = "lead_time" if lead_time is not None else "service_level"
            if not _serves_quantiles(loaded):
                return _reject(
                    422,
                    field,
                    f"model {loaded.name} v{loaded.version} has no quantile forecasts",
                )
            if periods > loaded.contract.horizon:
                return _reject(
                    422,
                    "lead_time",
                    f"{periods} periods is longer than the horizon of model {loaded.name} "
                    f"v{loaded.version} ({loaded.contract.horizon})",
                )
        if len(items) > self.settings.serve_max_items:
            return _reject(
                422,
                "items",
                f"{len(items)} items; at most {self.settings.serve_max_items} per request",
            )
        for i, item in enumerate(items):
            for field, feature in PLANNED.items():
                if getattr(item, field) is not None and feature not in loaded.contract.features:
                    return _reject(
                        422,
                        f"items[{i}].{field}",
                        f"model {loaded.name} v{loaded.version} does not use a planned {field}",
                    )
        stores = [item.store_id for item in items]
        products = [item.product_id for item in items]
        dates = [item.date for item in items]
        refused = misplaced(loaded.contract, dates)  # no period of the grain: before any lookup
        if refused:
            return _reject(422, *refused)
        planned = {
            feature: [getattr(item, field) for item in items]
            for field, feature in PLANNED.items()
            if feature in loaded.contract.features
        }
        try:
            # on-demand views only for items within the horizon (the rest are refused below),
            # with the client's plan in place first: a price ratio reads the price asked
            vectors = loaded.lookup.fetch(
                stores, products, dates, within=loaded.contract.horizon, planned=planned
            )
        except StoreUnavailable as error:
            return _unavailable(error)
        refused = refusal(loaded.contract, dates, vectors.origin, vectors.horizon)
        if refused:  # not a period of the model's grain, or outside its horizon
            return _reject(422, *refused)
        answers, bands = score_all(loaded, stores, products, vectors, planned)
        totals: list[dict[str, Any] | None] = [None] * len(items)
        if periods is not None:
            late = next(
                (
                    i
                    for i, h in enumerate(vectors.horizon)
                    if h + periods - 1 > loaded.contract.horizon
                ),
                None,
            )
            if late is not None:
                return _reject(
                    422,
                    f"items[{late}].date",
                    f"a lead time of {periods} periods from {items[late].date} ends after the "
                    f"horizon of model {loaded.name} v{loaded.version} "
                    f"({loaded.contract.horizon} periods after the origin)",
                )
            try:
                totals = self._lead_times(loaded, stores, products, vectors, periods, service_level)
            except StoreUnavailable as error:
                return _unavailable(error)
        labels = [qlabel(level) for level in loaded.contract.quantiles]
        stale = vectors.stale_views()
        statuses = _statuses(loaded, answers, vectors)
        self._observe(vectors)
        self._log(loaded, items, vectors, answers)
        return ForecastResponse.model_validate(
            {
                "model": {"name": loaded.name, "version": loaded.version, "alias": loaded.alias},
                "forecasts": [
                    {
                        "store_id": item.store_id,
                        "product_id": item.product_id,
                        "date": item.date,
                        "units": value,
                        "status": status,
                        "baseline": baseline,
                        "stale": views,
                        "quantiles": None
                        if bands is None or bands[i] is None
                        else dict(zip(labels, bands[i], strict=True)),
                        "lead_time": totals[i],
                    }
                    for i, (item, value, views, (status, baseline)) in enumerate(
                        zip(items, answers, stale, statuses, strict=True)
                    )
                ],
            }
        )

    def _log(self, loaded, items, vectors, answers) -> None:
        """Hand the answer to the served-feature log: references only, never raises."""
        if self.feature_log is None:
            return
        try:
            served = feature_log.Served(
                uuid.uuid4().hex, datetime.now(UTC), loaded, items, vectors, answers
            )
            self.feature_log.submit(served)
        except Exception as error:  # the answer matters more than its log line
            logger.warning("served-feature log: request not logged: %s", error)

    def _lead_times(self, loaded, stores, products, vectors, periods, service_level):
        """Each item's total over ``periods`` periods from its date: its key's quantiles
        for those periods (the item's date and the ones after it; a client's planned price
        or promotion is the item's date's alone), drawn as sample paths."""
        known = [i for i, origin in enumerate(vectors.origin) if origin is not None]
        out: list[dict[str, Any] | None] = [None] * len(stores)
        if not known:
            return out
        first = [vectors.horizon[i] for i in known]
        wide_stores = [stores[i] for i in known for _ in range(periods)]
        wide_products = [products[i] for i in known for _ in range(periods)]
        horizons = [h + k for h in first for k in range(periods)]
        ahead = loaded.lookup.fetch(wide_stores, wide_products, horizons=horizons)
        _, bands = score_all(loaded, wide_stores, wide_products, ahead)
        levels = loaded.contract.quantiles
        wanted = [*levels, *([service_level] if service_level is not None else [])]
        labels = [qlabel(level) for level in levels]
        groups: dict[int, list[int]] = {}
        for position, h in enumerate(first):
            if all(bands[position * periods + k] is not None for k in range(periods)):
                groups.setdefault(h, []).append(position)
        for h, positions in groups.items():  # one dependence block per first horizon
            per = np.array(
                [[bands[p * periods + k] for k in range(periods)] for p in positions],
                dtype=np.float64,
            )
            result = lead_time_quantiles(loaded.contract, per, h, wanted)
            for p, row in zip(positions, result.tolist(), strict=True):
                out[known[p]] = {
                    "periods": periods,
                    "quantiles": dict(zip(labels, row[: len(levels)], strict=True)),
                    "service_level": service_level,
                    "order_up_to": row[-1] if service_level is not None else None,
                }
        return out

    def _observe(self, vectors) -> None:
        """Feature age per view against the request's newest origin; stale items per view."""
        origins = [o for o in vectors.origin if o is not None]
        if not origins:
            return
        close = _close(max(origins), self.loaded.lookup.calendar)
        for view, newest in vectors.newest.items():
            if newest is not None:
                self._age.labels(view=view).set((close - newest).total_seconds())
        for view, positions in vectors.stale.items():
            count = sum(1 for i in positions if vectors.origin[i] is not None)
            if count:
                self._stale.labels(view=view).inc(count)

    # -- metadata and reload (plain GET/POST routes, next to BentoML's POST-only APIs) -------

    @routes.get("/metadata", response_model=Metadata)
    def metadata(self) -> Any:
        """The served version, its features' freshness and its quantile levels.

        Also its contract, reload policy, and whether /forecast answers lead_time and
        service_level (``quantiles``)."""
        loaded = self.loaded
        if loaded is None:
            return self._not_ready()
        contract = loaded.contract
        return {
            "model": {"name": loaded.name, "version": loaded.version, "alias": loaded.alias},
            "feature_service": contract.feature_service,
            "features": contract.features,
            "categorical": contract.categorical,
            "entity_keys": contract.entity_keys,
            "horizon": contract.horizon,
            "training_range": {"start": contract.train_start, "end": contract.train_end},
            "materialized_at": model_loader.materialized_at(loaded.store),
            "freshness": _freshness(loaded.lookup),
            "loaded_at": loaded.loaded_at.isoformat(),
            "reload": {
                "follows_alias": self._follows_alias,
                "poll_seconds": self.settings.serve_reload_seconds,
            },
            "max_items": self.settings.serve_max_items,
            "quantiles": _quantile_facts(loaded),
        }

    @routes.post("/reload")
    def reload(self) -> Any:
        """Serve the version the alias points at now; the old one serves until the new is ready."""
        if self.loaded is None:
            return self._not_ready()
        if not self._follows_alias:
            return _reject(409, "alias", "this service serves a pinned version; nothing to reload")
        try:
            changed = self._reload()
        except model_loader.ServingError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        self._monitoring.refresh()  # the nightly cycle calls here after it monitored
        loaded = self.loaded
        return {
            "model": {"name": loaded.name, "version": loaded.version, "alias": loaded.alias},
            "changed": changed,
        }

    def _reload(self) -> bool:
        with self._reload_lock:  # one load at a time; requests keep using the current bundle
            alias = self.loaded.alias
            found = model_loader.resolve_version(self.settings, alias, None)
            if str(found.version) == self.loaded.version:
                return False
            fresh = model_loader.load(self.settings, alias=alias)
            self.loaded = fresh  # the swap: a single reference assignment
            logger.info("alias @%s moved: now serving v%s", alias, fresh.version)
            return True

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.serve_reload_seconds):
            try:
                self._monitoring.refresh()
                self._reload()
            except Exception as error:  # a failed reload keeps the current model serving
                logger.warning("reload check failed, keeping v%s: %s", self.loaded.version, error)


# size and Content-Type checked before BentoML reads a body (serving/guard.py)
DemandForecast.add_asgi_middleware(
    RequestGuard, json_routes=[api.route for api in DemandForecast.apis.values()]
)


def _close(origin: dt.date, calendar: Calendar | None = None) -> datetime:
    """When the origin period closes: the start of the next period of the model's grain."""
    cal = calendar or Calendar()
    return datetime.combine(cal.start(cal.period(origin) + 1), time(), UTC)


def _freshness(lookup) -> dict[str, Any]:
    """Each view's newest row the lookup has read, against the newest origin it served.

    ``state``: ``ok`` when the offline join at that origin would use the row, ``ahead``
    when it is newer than the origin's close (the feed runs ahead of the orders),
    ``expired`` when older than the TTL allows (a stalled feed), ``none`` before any row.
    """
    origin = lookup.last_origin
    close = _close(origin, lookup.calendar) if origin is not None else None
    views = {}
    for view in lookup.views:
        newest = lookup.last_seen.get(view.name)
        age = (close - newest).total_seconds() if close and newest else None
        if age is None:
            state = "none"
        elif age < 0:
            state = "ahead"
        elif view.ttl_s and age > view.ttl_s:
            state = "expired"
        else:
            state = "ok"
        views[view.name] = {
            "ttl_hours": view.ttl_s / 3600 or None,
            "newest_event_time": newest.isoformat() if newest else None,
            "age_hours": round(age / 3600, 3) if age is not None else None,
            "state": state,
        }
    return {
        "origin": origin.isoformat() if origin else None,
        "origin_close": close.isoformat() if close else None,
        "closed_day_lag_hours": lookup.closed_day_lag_hours,
        "as_of": "the newest rows of every lookup since the service started",
        "views": views,
    }
