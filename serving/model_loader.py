"""Which model to serve, and everything it needs, loaded and checked before the first request.

A :class:`Loaded` bundle is built whole (model, contract, online lookup) and
only then handed to the service, which swaps one reference: a request sees the
old bundle or the new one, never half of each. Loading fails with
:class:`ServingError` (a message a person can act on) when the registry has no
such version, its feature contract is incomplete, or the online store lacks a
feature the contract needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from demand import tracking
from demand.console import UserError
from demand.contract import FeatureContract, IncompleteContract
from demand.featurestore import open_store
from demand.servers import ServerUnavailable, redact
from demand.settings import Engine, OfflineStore, Settings
from serving.lookup import OnlineLookup, StoreUnavailable, scrub, unavailable_advice
from serving.periods import calendar_of

# labels a Bento model carries, so it can be traced to the registry version it came from
LABEL_NAME, LABEL_VERSION = "mlflow_name", "mlflow_version"
CONTRACT_METADATA = "feature_contract"


class ServingError(UserError, RuntimeError):
    """The service cannot start (or reload) with this model; the message says why."""


class StoresUnreachable(ServingError):
    """A server or store the model needs does not answer now; it may later.

    Unlike the rest of ServingError (no such model, an incomplete feature service),
    waiting can cure this, so a running service reports not-ready and retries
    instead of exiting (a container would otherwise restart in a loop).
    """


def _unreachable(error: BaseException) -> bool:
    """A connection failure (database, Redis, HTTP), as opposed to missing or wrong data."""
    seen: BaseException | None = error
    while seen is not None:
        kind = type(seen)
        if isinstance(seen, ConnectionError | TimeoutError) or (
            kind.__name__ in {"OperationalError", "InterfaceError"}  # SQLAlchemy, psycopg
            and kind.__module__.split(".")[0] in {"sqlalchemy", "psycopg", "psycopg2"}
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Loaded:
    name: str
    version: str
    alias: str | None
    model: Any  # catboost.CatBoostRegressor
    contract: FeatureContract
    lookup: OnlineLookup
    store: Any  # feast.FeatureStore, for metadata only (never on the request path)
    loaded_at: datetime
    # the quantile model (a MultiQuantile CatBoostRegressor) of a version with quantiles;
    # None: a version registered before them, served with `quantiles: null`
    quantile_model: Any = None


def resolve_version(settings: Settings, alias: str | None, version: str | None):
    """The registry's ModelVersion for ``version`` if given, else for ``alias``."""
    from mlflow.exceptions import MlflowException

    try:
        # checks the server answers first: seconds, not MLflow's minutes of retries
        client = tracking.connect(settings)
    except ServerUnavailable as error:
        raise StoresUnreachable(str(error)) from None
    name = settings.model_name
    try:
        if version:
            return client.get_model_version(name, version)
        return client.get_model_version_by_alias(name, alias or "production")
    except MlflowException as error:
        what = f"version {version}" if version else f"alias @{alias or 'production'}"
        raise ServingError(
            f"no {what} of model {name!r} in the registry at {redact(settings.tracking_uri)} "
            f"({error.message.splitlines()[0]}); train one with `demand train` and promote it "
            "with `demand models promote VERSION --to production`"
        ) from None


def _contract(tags: dict[str, str], where: str) -> FeatureContract:
    try:
        contract = FeatureContract.from_tags(tags)
    except IncompleteContract as error:
        raise ServingError(f"{where}: {error}") from None
    problems = contract.problems()
    if problems:
        raise ServingError(f"{where}: unusable feature contract: {'; '.join(problems)}")
    return contract


def _lookup(settings: Settings, contract: FeatureContract, where: str):
    """Open the online store and check it serves every feature the contract needs."""
    if settings.feature_service != contract.feature_service:
        # the contract decides; the setting is only the default for new models
        settings = settings.model_copy(update={"feature_service": contract.feature_service})
    # serving reads the online store only: the profile's yaml as it is, so Feast never
    # loads the platform's offline store, ASOF or Spark (features/ is not in the Bento, see
    # bento.SOURCES, nor is pyspark)
    settings = settings.model_copy(
        update={"offline_store": OfflineStore.duckdb, "engine": Engine.duckdb}
    )
    store = None
    try:
        store = open_store(settings)
        lookup = OnlineLookup.from_store(
            store,
            contract.feature_service,
            settings.closed_day_lag_hours,
            calendar=calendar_of(contract),
        )
    except Exception as error:
        registry = _registry(store, settings)
        reason = (scrub(str(error)).splitlines() or [type(error).__name__])[0]
        if _unreachable(error):
            raise StoresUnreachable(
                f"{where}: cannot reach the Feast registry at {registry} ({reason}); start it "
                "(`make team-up` checks the team's servers) or point DEMAND_FEAST_REGISTRY_URL "
                "at one that runs"
            ) from None
        raise ServingError(
            f"{where}: cannot read feature service {contract.feature_service!r} from the Feast "
            f"registry at {registry} ({reason}); run `demand features` (or `demand apply`)"
        ) from None
    rule = contract.short_history_rule  # its features are read online like the model's
    missing = lookup.missing_features(contract.features + (rule.columns if rule else []))
    if missing:
        raise ServingError(
            f"{where}: feature service {contract.feature_service!r} lacks features the model "
            f"needs: {', '.join(missing)}; train a model on the current feature service "
            "(`demand train`)"
        )
    try:
        lookup.check()
    except StoreUnavailable as error:
        raise StoresUnreachable(f"{where}: {unavailable_advice(lookup, error)}") from None
    never = lookup.unmaterialized_views(contract.features)
    if never:
        raise ServingError(
            f"{where}: the Feast registry at {_registry(store, settings)} has no "
            f"materialization of {', '.join(never)} into the {lookup.where}; "
            "run `demand materialize`"
        )
    return store, lookup


def _registry(store, settings: Settings) -> str:
    if store is None:  # the store could not even be opened: say what the settings name
        team = settings.profile.value == "team"
        return redact(settings.feast_registry_url) if team else str(settings.feast_dir)
    return redact(str(store.config.registry.path))


def load(settings: Settings, alias: str | None = None, version: str | None = None) -> Loaded:
    """The registry's model for ``version`` or ``alias`` (default: the settings'), checked."""
    import mlflow.catboost

    if settings.serve_bento_model:
        return load_bento_model(settings, settings.serve_bento_model)
    alias = None if version or settings.serve_version else alias or settings.serve_alias
    found = resolve_version(settings, alias, version or settings.serve_version)
    where = f"model {found.name} v{found.version}"
    contract = _contract(found.tags, where)
    store, lookup = _lookup(settings, contract, where)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    model = mlflow.catboost.load_model(f"models:/{found.name}/{found.version}")
    path = contract.extra.get("quantile_model") if settings.serve_quantiles else None
    quantile_model = (
        mlflow.catboost.load_model(f"models:/{found.name}/{found.version}/{path}") if path else None
    )
    return Loaded(
        found.name,
        str(found.version),
        alias,
        model,
        contract,
        lookup,
        store,
        datetime.now(UTC),
        quantile_model,
    )


def load_bento_model(settings: Settings, tag: str) -> Loaded:
    """A model from the Bento model store (inside a Bento): no registry needed, no reload."""
    import bentoml
    import mlflow.catboost

    bento_model = bentoml.models.get(tag)
    labels = bento_model.info.labels
    where = f"Bento model {bento_model.tag}"
    text = bento_model.info.metadata.get(CONTRACT_METADATA)
    if not text:
        raise ServingError(
            f"{where} carries no feature contract; rebuild with `demand bento build`"
        )
    contract = FeatureContract.from_json(str(text))
    store, lookup = _lookup(settings, contract, where)
    model = mlflow.catboost.load_model(bento_model.path_of("mlflow_model"))
    path = contract.extra.get("quantile_model") if settings.serve_quantiles else None
    quantile_model = (
        mlflow.catboost.load_model(bento_model.path_of(f"mlflow_model/{path}")) if path else None
    )
    return Loaded(
        labels.get(LABEL_NAME, bento_model.tag.name),
        labels.get(LABEL_VERSION, "?"),
        labels.get("mlflow_alias"),
        model,
        contract,
        lookup,
        store,
        datetime.now(UTC),
        quantile_model,
    )


def materialized_at(store) -> str | None:
    """When the online store was last loaded: the latest end of any view's materialization."""
    ends = [v.most_recent_end_time for v in store.list_feature_views() if v.most_recent_end_time]
    return max(ends).astimezone(UTC).isoformat() if ends else None
