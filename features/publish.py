"""Publish the features: register the feature repo with Feast (apply) and load the online
store from the offline tables (materialize).

(Opening the store itself is ``demand.featurestore.open_store``, shared by every part.)
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from demand.console import UserError
from demand.featurestore import feast_environment, open_store
from demand.settings import Settings, last_closed_day
from features.plan import lineage

# Feast's own `feast apply` makes the project equal to the repo being applied: it
# deletes every registered object that repo does not declare, so with two repos in
# one project each apply deletes the other's views. The platform applies by owner
# instead: every object a repo declares is stamped OWNER_TAG=<owner>; an apply
# creates and updates the repo's objects and deletes only the objects stamped with
# its own owner that the repo no longer declares. An object registered by another
# owner is used as it is when the repo declares it identically (a shared entity) and
# refused when the declarations differ. Untagged objects (applied by `feast apply`
# or before owners existed) are adopted when declared and otherwise left alone.
OWNER_TAG = "demand.owner"


def apply(settings: Settings, owner: str | None = None):
    """``feast apply`` in-process, safe in a Feast project that other repos share.

    ``owner`` names the repo in the registry; default: the repo directory's name, so
    repos sharing a project need distinct directory names or explicit owners. Returns
    the store and one line per change (``Created feature view …``).
    """
    from feast.project import Project
    from feast.repo_operations import parse_repo

    _require_feature_tables(settings)
    store = open_store(settings)
    repo = Path(settings.feature_repo)
    owner = owner or repo.name
    # Feast resolves the repo's own imports (``from entities import store``) by path
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    _forget_repo_modules(repo)
    # Feast names the repo's modules relative to the cwd; the data sources read the data dir
    with contextlib.chdir(repo), feast_environment(settings):
        contents = _with_tables(parse_repo(repo))
    for source in {v.batch_source for v in contents.feature_views if v.batch_source}:
        store.provider.validate_data_source(store.config, source)
    declared = _declared(contents)
    with _registry_lock(store):
        before = _registered(store)
        to_apply, to_delete = _plan(declared, before, owner, store.project)
        # as `feast apply` does: the project named in the yaml
        to_apply += contents.projects or [Project(name=store.project)]
        store.apply(to_apply, objects_to_delete=list(to_delete.values()), partial=False)
        after = _registered(store)
    return store, _changes(before, after, sorted({*declared, *to_delete}))


def _with_tables(contents):
    """The repo's objects this data set can serve: views whose feature table exists.

    A daily order-line data set has every daily table; aggregated sales have no
    replenishment table, a weekly set no daily tables, a set without forecasts or
    plans no forecast or plan table. An on-demand view goes with the views it reads;
    a service keeps the views that exist and is left out when its first view (its
    sales) does not, so no registered service requires an absent view.
    """

    def present(source) -> bool:
        path = getattr(source, "path", None)
        return not path or Path(path).exists()

    views = [v for v in contents.feature_views if v.batch_source is None or present(v.batch_source)]
    kept = {v.name for v in views}
    on_demand = [
        o
        for o in contents.on_demand_feature_views
        if set(o.source_feature_view_projections) <= kept
    ]
    from feast import FeatureService

    # rebuilt rather than edited: a FeatureService keeps its declared views beside its
    # projections, and Feast's inference at apply walks both in step (an edited
    # projection list fails there with an IndexError). The repo's services list whole
    # views, so each kept view stands for its projection.
    by_name = {v.name: v for v in [*views, *on_demand]}
    services = []
    for service in contents.feature_services:
        names = [p.name for p in service.feature_view_projections]
        if names and set(names) <= set(by_name):
            services.append(service)  # as declared
        elif names and names[0] in by_name:
            services.append(
                FeatureService(
                    name=service.name,
                    features=[by_name[n] for n in names if n in by_name],
                    tags=service.tags,
                    description=service.description,
                    owner=service.owner,
                    logging_config=service.logging_config,
                )
            )
    return contents._replace(
        data_sources=[d for d in contents.data_sources if present(d)],
        feature_views=views,
        on_demand_feature_views=on_demand,
        feature_services=services,
    )


def _declared(contents) -> dict[tuple[str, str], object]:
    """The repo's objects by (kind, name), kinds as Feast names them ("feature view")."""
    from feast.infra.registry.registry import FeastObjectType

    return _keyed(FeastObjectType.get_objects_from_repo_contents(contents))


def _registered(store) -> dict[tuple[str, str], object]:
    """What the project's registry holds now, read past the registry's cache."""
    from feast.infra.registry.registry import FeastObjectType

    return _keyed(FeastObjectType.get_objects_from_registry(store.registry, store.project))


def _keyed(objects: dict) -> dict[tuple[str, str], object]:
    from feast.feature_view import DUMMY_ENTITY_NAME

    return {
        (kind.value, o.name): o
        for kind, found in objects.items()
        if kind.value != "project"  # the project is every repo's in it
        for o in found
        if o.name != DUMMY_ENTITY_NAME  # Feast's own placeholder entity, applied by every apply
    }


def _owner(obj) -> str | None:
    return (getattr(obj, "tags", None) or {}).get(OWNER_TAG)


def _plan(declared: dict, registered: dict, owner: str, project: str):
    """What this owner's apply writes, and which of its own registered objects it deletes."""
    to_apply, foreign = [], []
    for (kind, name), obj in declared.items():
        existing = registered.get((kind, name))
        holder = _owner(existing) if existing is not None else None
        if holder in (None, owner):
            obj.tags = {**obj.tags, OWNER_TAG: owner}
            to_apply.append(obj)
        elif not _same_definition(obj, existing):
            foreign.append(f"{kind} {name!r} (owner {holder!r})")
    if foreign:
        raise UserError(
            f"the feature repo {owner!r} redefines objects another repo owns in Feast project "
            f"{project!r}: {', '.join(foreign)}; rename them here or change them in their repo"
        )
    to_delete = {
        key: o for key, o in registered.items() if _owner(o) == owner and key not in declared
    }
    return to_apply, to_delete


def _same_definition(declared, registered) -> bool:
    """Feast's own equality (the one its registry uses to skip unchanged objects), owner aside."""
    tags = declared.tags
    declared.tags = {**tags, OWNER_TAG: _owner(registered)}
    try:
        return declared == registered
    finally:
        declared.tags = tags


def _changes(before: dict, after: dict, keys) -> list[str]:
    lines = []
    for kind, name in keys:
        old, new = before.get((kind, name)), after.get((kind, name))
        if old is None and new is not None:
            lines.append(f"Created {kind} {name}")
        elif new is None and old is not None:
            lines.append(f"Deleted {kind} {name}")
        elif old is not None and _spec(old) != _spec(new):
            lines.append(f"Updated {kind} {name}")
    return lines


def _spec(obj) -> bytes:
    """An object's definition, without what differs between two applies of the same one."""
    proto = obj.to_proto()
    if "spec" in proto.DESCRIPTOR.fields_by_name:
        proto = proto.spec
    _strip(proto)
    return proto.SerializeToString(deterministic=True)


def _strip(message) -> None:
    """Drop registry timestamps (``meta``, nested too) and pickled functions.

    A pickled on-demand transformation (``body``) differs from process to process;
    ``body_text`` next to it carries the source, as Feast's own diff compares.
    """
    for field, value in message.ListFields():
        fields = message.DESCRIPTOR.fields_by_name
        if field.name == "meta" or (field.name == "body" and "body_text" in fields):
            message.ClearField(field.name)
        elif field.message_type is None:
            continue
        elif field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _strip(item)
        elif hasattr(value, "ListFields"):
            _strip(value)
        else:  # a repeated message field
            for item in value:
                _strip(item)


@contextlib.contextmanager
def _registry_lock(store):
    """One apply at a time per Feast project on a PostgreSQL registry.

    Feast's apply has no lock ("TODO: Add locking"): two processes could each plan
    from a registry the other is changing. A session advisory lock serializes the
    read-plan-write of each apply; SQLite serializes its writers by itself.
    """
    path = getattr(store.config.registry, "path", "") or ""
    if store.config.registry.registry_type != "sql" or not path.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(path)
    key = {"key": f"feast apply {store.project}"}
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(hashtext(:key))"), key)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
                conn.commit()
    finally:
        engine.dispose()


def _forget_repo_modules(repo: Path) -> None:
    """Drop the repo's modules from Python's import cache before Feast imports them.

    The data sources read DEMAND_DATA_DIR when imported; a cached module would keep
    the first data directory of the process, and a second apply (another data dir,
    another profile) would register the first one's paths.
    """
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(repo.resolve()):
            del sys.modules[name]


def _require_feature_tables(settings: Settings):
    """What the feature tables were built from; FileNotFoundError when there are none."""
    try:
        return lineage(settings.feature_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"feature tables missing in {settings.feature_dir}; run `demand build-features` first"
        ) from None


def latest_feature_time(settings: Settings) -> datetime:
    """The newest event timestamp over all feature tables."""
    latest = max(
        pq.read_table(settings.feature_dir / f"{t}.parquet", columns=["event_timestamp"])
        .column("event_timestamp")
        .to_pandas()
        .max()
        for t in _require_feature_tables(settings).tables
    )
    return latest.to_pydatetime()


def origin_close(settings: Settings, now: datetime | None = None) -> datetime:
    """The close of the newest closed period the sales cover: the newest serving origin.

    Feeds run out of step (weather published a day ahead of the orders, a forecast
    issued this morning); the online store must hold, for every view, the row the
    offline join uses at this instant, not a newer one that would replace it. A
    period closes when its last day has (at the weekly grain: the whole week).
    """
    built = _require_feature_tables(settings)
    sales = pq.read_table(
        settings.feature_dir / f"{built.sales_features_table}.parquet",
        columns=["event_timestamp"],
    )
    newest = sales.column("event_timestamp").to_pandas().max().to_pydatetime()
    closed = last_closed_day(now or datetime.now(UTC), settings.closed_day_lag_hours)
    calendar = built.calendar
    # the first period that has not closed yet starts at the close of the newest closed one
    open_period = calendar.period(closed + timedelta(days=1))
    return min(newest, datetime.combine(calendar.start(open_period), time(), UTC))


def materialize(settings: Settings, incremental: bool = False, end: datetime | None = None):
    """Load the online store with each key's latest row known by ``end``.

    ``end`` defaults to the newest origin's close (:func:`origin_close`), so a feed
    running ahead of the orders reaches the online store when the orders catch up,
    and serving reads exactly the rows training joins. Full: every row since the
    start of time. Incremental: only rows newer than what each view last
    materialized (Feast keeps that interval in its registry). Written by the platform's
    materializer unless ``DEMAND_MATERIALIZER=feast`` (feastext/materialization.py).
    """
    _require_feature_tables(settings)
    store = open_store(settings, materializing=True)
    # +1 s: Feast's interval is end-exclusive for the newest rows
    end = end or origin_close(settings) + timedelta(seconds=1)
    if incremental:
        store.materialize_incremental(end_date=end)
    else:
        store.materialize(start_date=datetime(1970, 1, 2, tzinfo=UTC), end_date=end)
    return store
