"""The online lookup: the feature service's vectors for many keys in one pass, from any store.

The one lookup of the code base (`demand online` and the service both use it).
It reads through Feast's online-store plug-in interface,
``OnlineStore.online_read(config, view, entity_keys, requested_features)``,
which SQLite, Redis and every other Feast online store implement, so the
profile's configuration alone decides where vectors come from. It skips
``get_online_features``' per-call bookkeeping (~24 ms a call here): one read
per feature view per request with each view's keys deduplicated, entity-key
protos built once per key, and the service's on-demand views run once per
distinct input. What to read comes from the Feast registry at construction, so
the feature list and the views' TTLs are never written down here.

Point in time, as training: a key's origin is the day its newest purchase row
describes, unless that day has not closed yet (``demand.settings.last_closed_day``:
an export cut at noon is not an origin). For each item, a view's row is used only
when the offline join at the origin's close would use it: its event timestamp (when
it became known) at or before the close and, for a TTL > 0, not older than the close
minus the TTL. The online store holds only each key's newest row, so a row newer
than the close (a feed that runs ahead of the orders: the offline join would have
used an older row, which the store no longer holds) and a row past its TTL (a
stalled feed) both leave that view's features null, and the item names the view in
``Vectors.stale``. The check is one comparison per item and view.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from demand.calendar import Calendar
from demand.servers import redact
from demand.settings import get_settings, last_closed_day

# How a client's key reaches every view: the store's region keys the weather
# views; the day sales are known up to is the origin.
REGION = ("store_attributes", "store_region_id")
# the view whose rows give the origin (at the weekly grain: the one with the same field)
KNOWN_AT = ("store_product_sales", "sales_known_at")
CLIENT_KEYS = ("store_id", "product_id")
REQUEST_FIELDS = ("forecast_date", "horizon")  # what a forecast request supplies
MEMO_ROWS = 200_000  # on-demand outputs (and entity-key protos) remembered


class StoreUnavailable(RuntimeError):
    """The online store cannot be read (file gone, server down or unreachable)."""


@dataclass(frozen=True)
class View:
    name: str
    definition: Any  # the registry's feast.FeatureView: what online_read takes
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl_s: float = 0.0  # the registry's FeatureView.ttl in seconds; 0: never expires (Feast)


@dataclass(frozen=True)
class OnDemand:
    name: str
    udf: Callable[[pd.DataFrame], pd.DataFrame]
    inputs: tuple[str, ...]  # source view features and request fields it reads
    outputs: tuple[str, ...]


@dataclass
class Vectors:
    """One entry per requested key, in order; ``origin`` is None for unknown keys."""

    origin: list[date | None]
    target: list[date | None]
    horizon: list[int]
    columns: dict[str, list[Any]]
    # per view: the event timestamp of the row the store holds for each key (None: none),
    # whether or not it was usable at the key's origin
    event_time: dict[str, list[datetime | None]] = field(default_factory=dict)
    # per view: the positions of the keys whose row was absent, newer than the origin's
    # close or older than the view's TTL allows (their features of that view are null)
    stale: dict[str, list[int]] = field(default_factory=dict)
    # per view: the newest event timestamp among the rows read (None: no row at all)
    newest: dict[str, datetime | None] = field(default_factory=dict)
    # per key: the entity keys every view was read with (store, product, region, target day)
    keys: list[dict[str, str]] = field(default_factory=list)

    def inactive(self) -> list[bool]:
        """For each key, whether its pair was inactive at its origin (the sales row's
        ``active`` is 0: it stopped selling or is not listed). Unknown: not inactive."""
        active = self.columns.get("active")
        if active is None:
            return [False] * len(self.origin)
        return [a is not None and a == 0 for a in active]

    def stale_views(self) -> list[list[str]]:
        """For each key, the views whose features are null for it, in view order."""
        out: list[list[str]] = [[] for _ in self.origin]
        for view, positions in self.stale.items():
            for i in positions:
                out[i].append(view)
        return out


# ValueProto kinds whose Python value Feast hands back unchanged; the rest (timestamps,
# lists, sets, maps, JSON …) go through Feast's own converter
_AS_IS = frozenset(
    {"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val", "bytes_val"}
)


def _value(proto) -> Any:
    """A ValueProto as Python, exactly as Feast's get_online_features returns it (null: None)."""
    kind = proto.WhichOneof("val")
    if kind in _AS_IS:
        return getattr(proto, kind)  # the common case, about twice as fast as the converter
    if kind is None or kind == "null_val":
        return None
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(proto)


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """What a store raises when it cannot be reached or read (never a bug of ours)."""
    errors: list[type[BaseException]] = [sqlite3.Error, OSError]
    try:
        from redis.exceptions import ClusterError, RedisClusterException
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        # a Redis Cluster that lost a master: its slots refuse connections, or the other
        # masters answer CLUSTERDOWN (ClusterDownError), or no node covers a slot
        errors += [RedisConnectionError, RedisTimeoutError, ClusterError, RedisClusterException]
    except ImportError:  # an install without the redis extra
        pass
    return tuple(errors)


def scrub(text: str) -> str:
    """An error's text with any password in it (a URL, ``password=…``) shown as ***."""
    return " ".join(redact(word) for word in text.split(" "))


def describe_store(config) -> str:
    """Where the online store is, for messages: type and address, never credentials."""
    online = config.online_store
    kind = getattr(online, "type", type(online).__name__)
    if kind == "sqlite":
        return f"sqlite online store at {_sqlite_path(config)}"
    address = getattr(online, "connection_string", None)
    if address is not None:  # redis: host:port[,…][,param=value…]
        nodes = [part for part in str(address).split(",") if "=" not in part]
        return f"{kind} online store at {','.join(nodes)}"  # no options, so no password
    return f"{kind} online store"


def _sqlite_path(config) -> Path:
    # resolved the way Feast's SQLite store resolves it: relative to the repo
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path:
        path = Path(config.repo_path) / path
    return path


def unavailable_advice(lookup: OnlineLookup, error: StoreUnavailable) -> str:
    """Why the online store cannot be read, and what to run about it."""
    if lookup.sqlite_path is not None:
        if not lookup.sqlite_path.exists():
            return f"no online store at {lookup.sqlite_path}; run `demand features`"
        return f"cannot read the {error}; run `demand features` to rebuild it"
    return (
        f"cannot reach the {error}; start it (`make team-up` checks the team's servers) "
        "or point DEMAND_REDIS_URL at one that runs"
    )


class OnlineLookup:
    def __init__(
        self,
        config,
        views: list[View],
        on_demand: list[OnDemand],
        request_fields: tuple[str, ...],
        closed_day_lag_hours: float | None = None,
        clock: Callable[[], datetime] | None = None,
        calendar: Calendar | None = None,
    ):
        from feast.infra.online_stores.helpers import get_online_store_from_config

        # periods of the model's grain: origins, closes and horizons count them
        self.calendar = calendar or Calendar()
        self.known_at_view = next((v.name for v in views if KNOWN_AT[1] in v.features), KNOWN_AT[0])
        if closed_day_lag_hours is None:  # the one setting (demand.settings), read now
            closed_day_lag_hours = get_settings().closed_day_lag_hours
        self.closed_day_lag_hours = closed_day_lag_hours
        self.clock = clock or (lambda: datetime.now(UTC))
        # what the fetches saw, for /metadata: per view the newest row read; the newest origin
        self.last_seen: dict[str, datetime | None] = {}
        self.last_origin: date | None = None
        self.config = config  # feast RepoConfig
        self.views = views
        self.on_demand = on_demand
        self.request_fields = request_fields
        self.where = describe_store(config)
        # Feast's SQLite store opens (and creates) its file on first read: serving checks
        # it is there first, so it never creates an empty online store
        self.sqlite_path = _sqlite_path(config) if config.online_store.type == "sqlite" else None
        self._new_store = lambda: get_online_store_from_config(config.online_store)
        self._errors = _unavailable_errors()
        # one store object per thread (BentoML runs requests on a thread pool): a SQLite
        # connection is not shared between threads, a Redis client keeps its own pool
        self._local = threading.local()
        self._memo: dict[str, dict[tuple, tuple]] = {}
        self._keys: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    @classmethod
    def from_store(
        cls,
        store,
        feature_service: str,
        closed_day_lag_hours: float | None = None,
        calendar: Calendar | None = None,
    ) -> OnlineLookup:
        """What the feature service reads (views, their TTLs), resolved once from the registry."""
        service = store.get_feature_service(feature_service)
        odfv_names = {v.name for v in store.list_on_demand_feature_views()}
        views, on_demand, request = [], [], []
        for projection in service.feature_view_projections:
            names = tuple(f.name for f in projection.features)
            if projection.name in odfv_names:
                odfv = store.get_on_demand_feature_view(projection.name)
                sources = odfv.source_feature_view_projections.values()
                inputs = [f.name for p in sources for f in p.features]
                fields = [f.name for s in odfv.source_request_sources.values() for f in s.schema]
                request += [f for f in fields if f not in request]
                udf = odfv.feature_transformation.udf
                on_demand.append(OnDemand(odfv.name, udf, tuple(inputs + fields), names))
            else:
                view = store.get_feature_view(projection.name)
                keys = tuple(c.name for c in view.entity_columns)
                ttl = view.ttl.total_seconds() if view.ttl else 0.0
                views.append(View(view.name, view, keys, names, ttl))
        unknown = set(request) - set(REQUEST_FIELDS)
        if unknown:
            raise ValueError(f"the feature service asks for request data serving lacks: {unknown}")
        return cls(
            store.config, views, on_demand, tuple(request), closed_day_lag_hours, calendar=calendar
        )

    # -- the store ---------------------------------------------------------------------------

    def _store(self):
        """This thread's online store object; a SQLite one is reopened when its file changed."""
        local = self._local
        if self.sqlite_path is not None:
            try:
                inode = os.stat(self.sqlite_path).st_ino
            except OSError:
                local.__dict__.clear()
                raise StoreUnavailable(f"{self.where}: the file is missing") from None
            if getattr(local, "inode", None) != inode:
                local.__dict__.clear()
                local.inode = inode
        store = getattr(local, "store", None)
        if store is None:
            store = local.store = self._new_store()
        return store

    def _online_read(self, view: View, entity_keys: list) -> list:
        try:
            # a fresh list each call: Feast's Redis store appends to the one it is given
            return self._store().online_read(
                self.config, view.definition, entity_keys, list(view.features)
            )
        except self._errors as error:
            # forget this thread's store object: the next read connects afresh
            self._local.__dict__.clear()
            raise StoreUnavailable(f"{self.where}: {scrub(str(error))}") from None

    def check(self) -> None:
        """Read one key from the configured store; StoreUnavailable when that fails."""
        if self.views:
            view = self.views[0]
            self._online_read(view, [self._key(view.join_keys, ("",) * len(view.join_keys))])

    def ping(self) -> bool:
        """True when the configured store answers a read (the file is there, the server up)."""
        try:
            self.check()
            return True
        except StoreUnavailable:
            return False

    def missing_features(self, wanted: Sequence[str]) -> list[str]:
        """Those of ``wanted`` (model inputs) that the feature service does not provide."""
        provided = {f for v in self.views for f in v.features} | {
            f for o in self.on_demand for f in o.outputs
        }
        return [f for f in wanted if f not in provided and f not in CLIENT_KEYS]

    def unmaterialized_views(self, wanted: Sequence[str]) -> list[str]:
        """Views serving needs that the Feast registry says were never materialized.

        Needed: views with a ``wanted`` feature, the views that route a key (region,
        origin), and the views the on-demand views read.
        """
        read_by_odfv = {name for o in self.on_demand for name in o.inputs}
        needed = set(wanted) | read_by_odfv | {REGION[1], KNOWN_AT[1]}
        return [
            view.name
            for view in self.views
            if needed & set(view.features) and view.definition.most_recent_end_time is None
        ]

    def _key(self, names: tuple[str, ...], values: tuple[str, ...]):
        # an EntityKey proto per distinct key, built once (the stores serialize it)
        cached = self._keys.get((names, values))
        if cached is not None:
            return cached
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        proto = EntityKey(join_keys=names, entity_values=[Value(string_val=v) for v in values])
        if len(self._keys) > MEMO_ROWS:
            self._keys.clear()
        self._keys[(names, values)] = proto
        return proto

    def _read(self, view: View, rows: list[dict[str, str]]) -> tuple[list[tuple], dict]:
        """The view's rows for ``rows``: each row's key, and key → (epoch, stamp, values)."""
        keys = [tuple(r[k] for k in view.join_keys) for r in rows]
        unique = list(dict.fromkeys(keys))
        found = self._online_read(view, [self._key(view.join_keys, k) for k in unique])
        decoded: dict[tuple, tuple] = {}
        features = view.features
        for key, (stamp, values) in zip(unique, found, strict=True):
            if not values or stamp is None:
                continue
            row = tuple([_value(values[f]) if f in values else None for f in features])
            # Redis answers an unknown key with empty values: no row, as on SQLite
            if row.count(None) < len(row):
                decoded[key] = (_epoch(stamp), stamp, row)
        return keys, decoded

    def _place(
        self, view: View, keys: list[tuple], decoded: dict, closes: list, vectors: Vectors
    ) -> None:
        """Fill ``vectors`` with the view's features, null where the row is unusable.

        Usable at an origin whose close is ``c`` (epoch seconds): known at or before
        ``c`` and, with a TTL, at or after ``c - ttl``: Feast's offline join, bounds
        included. One comparison per key; the rest is list building.
        """
        empty = (None, None, (None,) * len(view.features))
        got = [decoded.get(k, empty) for k in keys]
        ttl = view.ttl_s
        if ttl > 0:
            used = [
                g if c is not None and g[0] is not None and c - ttl <= g[0] <= c else empty
                for g, c in zip(got, closes, strict=True)
            ]
        else:
            used = [
                g if c is not None and g[0] is not None and g[0] <= c else empty
                for g, c in zip(got, closes, strict=True)
            ]
        vectors.stale[view.name] = [i for i, u in enumerate(used) if u is empty]
        vectors.event_time[view.name] = [g[1] for g in got]
        newest = max(decoded.values(), default=None, key=lambda d: d[0])
        vectors.newest[view.name] = newest[1] if newest else None
        for i, feature in enumerate(view.features):
            vectors.columns[feature] = [u[2][i] for u in used]

    # -- the lookup --------------------------------------------------------------------------

    def fetch(
        self,
        store_ids: Sequence[str],
        product_ids: Sequence[str],
        targets: Sequence[date | None] | None = None,
        horizons: Sequence[int] | None = None,
        within: int | None = None,
        planned: dict[str, Sequence[Any]] | None = None,
    ) -> Vectors:
        """Every feature of the service for each key at its origin, for its target day.

        A key's origin is the period its newest purchase row describes, or the last
        closed period when that one has not closed yet; its target defaults to the
        period after, and ``horizon`` is the periods between them (days at the daily
        grain; at the weekly grain origins and targets are weeks, named by their first
        day, and a week closes when its last day has). Each view's row is used
        only when the offline join at the origin would use it (module docstring);
        otherwise its features are null and ``stale`` names the view. Keys the store
        lacks get None. ``horizons`` (instead of ``targets``): each item's target is that
        many periods after its key's origin, whatever the origin turns out to be (batch
        forecasts ask for every key's next periods without reading its origin first).

        The on-demand views run only for the items that can be scored: a key with an
        origin and, given ``within``, a target 1 to ``within`` periods after it (the
        service passes the model's horizon and refuses the rest). Other items get None
        for their outputs, as a key without an origin gets for every view: a target
        the client made up (year 1, 9999) never reaches a view's code.

        ``planned``: a client's planned values per feature (None: the store's plan stands),
        in place before on-demand views run, so a view reading them sees the client's.
        """
        n = len(store_ids)
        rows = [
            {"store_id": s, "product_id": p} for s, p in zip(store_ids, product_ids, strict=True)
        ]
        vectors = Vectors([], [], [], {})
        first = [v for v in self.views if set(v.join_keys) <= set(CLIENT_KEYS)]
        read = {view.name: self._read(view, rows) for view in first}
        cal = self.calendar
        if self.known_at_view in read:
            origin = self._origins(*read[self.known_at_view])
        else:
            origin = [None] * n
        close_of = {o: _close(o, cal) for o in set(origin) if o is not None}
        closes = [close_of.get(o) for o in origin]
        for view in first:
            self._place(view, *read[view.name], closes, vectors)
        region = self._routing(first, read, n)
        if horizons is not None:
            # a batch has few distinct (origin, horizon): each target computed once
            ahead = {
                (o, h): cal.start(cal.period(o) + h)
                for o, h in set(zip(origin, horizons, strict=True))
                if o
            }
            target = [ahead[o, h] if o else None for o, h in zip(origin, horizons, strict=True)]
        else:
            wanted = list(targets) if targets is not None else [None] * n
            target = [
                t if t is not None else (cal.start(cal.period(o) + 1) if o else None)
                for t, o in zip(wanted, origin, strict=True)
            ]
        period = {d: cal.period(d) for d in {*origin, *target} if d}
        horizon = [
            period[t] - period[o] if t and o else 0 for t, o in zip(target, origin, strict=True)
        ]
        iso = {t: t.isoformat() for t in set(target) if t}
        for row, r, t in zip(rows, region, target, strict=True):
            row["region_id"] = r if r is not None else ""
            row["target_date"] = iso[t] if t else ""
        for view in self.views:
            if view not in first:
                self._place(view, *self._read(view, rows), closes, vectors)
        request = {
            "forecast_date": [r["target_date"] for r in rows],
            "horizon": horizon,
        }
        columns = vectors.columns
        for name, given in (planned or {}).items():
            held = columns.get(name, [None] * len(given))
            columns[name] = [v if v is not None else h for v, h in zip(given, held, strict=True)]
        values = {**columns, **request}
        scored = [
            i
            for i, (o, h) in enumerate(zip(origin, horizon, strict=True))
            if o is not None and (within is None or 1 <= h <= within)
        ]
        if len(scored) < n:  # only the inputs of the scored items
            inputs = {name for o in self.on_demand for name in o.inputs if name in values}
            values = {name: [values[name][i] for i in scored] for name in inputs}
        for odfv in self.on_demand:
            self._apply(odfv, values)
        for name in (name for o in self.on_demand for name in o.outputs):
            if len(scored) < n:
                column: list[Any] = [None] * n
                for i, value in zip(scored, values[name], strict=True):
                    column[i] = value
                columns[name] = column
            else:
                columns[name] = values[name]
        vectors.origin, vectors.target, vectors.horizon = origin, target, horizon
        vectors.keys = rows
        self._remember(vectors.newest, max(close_of, default=None))
        return vectors

    def _origins(self, keys: list[tuple], decoded: dict) -> list[date | None]:
        """Each key's origin: the period its newest purchase row describes, if that period
        has closed, else the last closed one; None for a key without a row."""
        cal = self.calendar
        closed = last_closed_day(self.clock(), self.closed_day_lag_hours)
        closed = cal.start(cal.period(closed + timedelta(days=1)) - 1)  # the last whole one
        origin_of = {k: min(_origin(d[1], cal), closed) for k, d in decoded.items()}
        return [origin_of.get(k) for k in keys]

    def _remember(self, newest: dict[str, datetime | None], origin: date | None) -> None:
        # per view, once per fetch (a benign race between threads: a maximum either way)
        for view, stamp in newest.items():
            seen = self.last_seen.get(view)
            if stamp is not None and (seen is None or stamp > seen):
                self.last_seen[view] = stamp
        if origin is not None and (self.last_origin is None or origin > self.last_origin):
            self.last_origin = origin

    def _routing(self, first: list[View], read: dict, n: int) -> list[Any]:
        """Each key's region, as the store holds it: the key that routes the weather views.

        Not subject to the origin check, as in training, whose entity rows take the
        store's region from the attribute table as it is.
        """
        for view in first:
            if REGION[1] in view.features:
                keys, decoded = read[view.name]
                at = view.features.index(REGION[1])
                return [d[2][at] if (d := decoded.get(k)) else None for k in keys]
        return [None] * n

    def _apply(self, odfv: OnDemand, values: dict[str, list[Any]]) -> None:
        """Add an on-demand view's outputs to ``values``, running its UDF only on new inputs.

        Pandas per call cost ~6 ms even for one row, more than all the rest of a
        lookup, so outputs are memoised per input row. That assumes the UDF is
        row-wise, which an on-demand view must be anyway: one whose output hung
        on the other rows of the batch would differ between training and serving.
        """
        memo = self._memo.setdefault(odfv.name, {})
        rows = list(zip(*(values[name] for name in odfv.inputs), strict=True))
        out = [memo.get(row) for row in rows]
        new = list(dict.fromkeys(row for row, got in zip(rows, out, strict=True) if got is None))
        if new:
            frame = pd.DataFrame.from_records(new, columns=list(odfv.inputs))
            result = odfv.udf(frame)
            computed = zip(*(result[name].tolist() for name in odfv.outputs), strict=True)
            fresh = {
                row: tuple(None if _isnan(v) else v for v in outputs)
                for row, outputs in zip(new, computed, strict=True)
            }
            if len(memo) + len(fresh) > MEMO_ROWS:
                memo.clear()  # crude bound; refilled from the next requests
            memo.update(fresh)
            out = [
                got if got is not None else fresh[row] for row, got in zip(rows, out, strict=True)
            ]
        for i, name in enumerate(odfv.outputs):
            values[name] = [o[i] for o in out]


def _epoch(stamp: datetime) -> float:
    """Seconds since 1970 of an event timestamp (naive ones are UTC, as Feast stores them)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _close(origin: date, calendar: Calendar | None = None) -> float:
    """The instant an origin period closes, 00:00 UTC of the next period, in epoch seconds."""
    cal = calendar or Calendar()
    return datetime.combine(cal.start(cal.period(origin) + 1), time(), UTC).timestamp()


def _origin(known_at: datetime | int | None, calendar: Calendar | None = None) -> date | None:
    """The period a row known at ``known_at`` describes (the one that closed then)."""
    if known_at is None:
        return None
    if not isinstance(known_at, datetime):  # epoch seconds
        known_at = datetime.fromtimestamp(known_at, UTC)
    cal = calendar or Calendar()
    return cal.start(cal.period(known_at.astimezone(UTC).date()) - 1)


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
