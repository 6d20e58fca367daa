"""Served-feature logging: every forecast the service answers, with the vector it read.

One row per answered item: the request (keys, target day, a planned price or promotion),
each feature as served with its view's event time and Feast's field status, the model
version and the prediction. The nightly's skew check (monitoring/skew.py) recomputes a
sample of these rows offline; Feast's tooling reads them as a feature service's logs.

The request path only hands over references (the items, the looked-up vectors, the
answers) under a lock: no conversion, no I/O. A writer thread turns them into Arrow
columns and writes one parquet file per flush. Memory is bounded by ``capacity`` rows
waiting; a request that would exceed it is not logged and counted as dropped (as is a
batch whose write fails), so logging never blocks or fails a request.

Files: ``<log dir>/<feature service>/<UTC time>-<id>.parquet``, Feast's columns for the
service first (feastext/feature_logs.py), then ``EXTRA``. Written aside and renamed, so a
reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time as time_module
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa

from feastext.feature_logs import (
    LOG_DATE,
    LOG_TIMESTAMP,
    REQUEST_ID,
    Status,
    logging_schema,
    value_column,
)

logger = logging.getLogger("demand.serving.feature_log")

FLUSH_SECONDS = 5.0  # a quiet service writes what it has this often
FLUSH_ROWS = 5_000  # a busy one as soon as this many rows wait
YIELD_SECONDS = 0.0002  # the writer's pause between steps of a conversion (see _yield_gil)

# the platform's columns after Feast's: what a forecast answered, and the instant the
# offline join must be made at (the close of the item's origin: point in time, as training)
EXTRA = pa.schema(
    [
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("origin_date", pa.date32()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("prediction", pa.float64()),
        ("forecast_status", pa.string()),
        ("stale_views", pa.list_(pa.string())),
        ("request_price", pa.float64()),
        ("request_promo", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Served:
    """One answered request, as references: built on the request path in constant time."""

    request_id: str
    logged_at: datetime
    loaded: Any  # serving.model_loader.Loaded: the bundle that answered
    items: Sequence[Any]  # serving.service.Item
    vectors: Any  # serving.lookup.Vectors
    units: Sequence[float | None]

    @property
    def rows(self) -> int:
        return len(self.items)


class Layout:
    """Where each logged column comes from, for one served bundle's feature service."""

    def __init__(self, loaded):
        lookup = loaded.lookup
        self.feature_service = loaded.contract.feature_service
        feast = logging_schema(loaded.store, self.feature_service)
        clash = set(feast.names) & set(EXTRA.names)
        if clash:
            raise ValueError(f"the feature service logs columns the platform's use: {clash}")
        self.schema = pa.schema([*feast, *EXTRA])
        self.names = self.schema.names  # a new list per call of the property: read once
        request = {f for o in lookup.on_demand for f in o.inputs} | {"forecast_date", "horizon"}
        # Feast's columns that are neither features nor its own: entity keys, request fields
        plain = [n for n in feast.names if "__" not in n]
        self.keys = [n for n in plain if n not in request]
        self.request = [n for n in plain if n in request]
        self.calendar = lookup.calendar
        self.views = [(v.name, v.features) for v in lookup.views]
        self.on_demand = [(o.name, o.outputs) for o in lookup.on_demand]
        # the order ``rows`` builds a row in; the table is put in Feast's order at the end
        triplets = [
            (
                value_column(view, f),
                f"{value_column(view, f)}__timestamp",
                f"{value_column(view, f)}__status",
            )
            for view, features in [*self.views, *self.on_demand]
            for f in features
        ]
        plan = [*self.keys, *self.request, *(c for t in triplets for c in t)]
        plan += [LOG_TIMESTAMP, LOG_DATE, REQUEST_ID, *EXTRA.names]
        missing = [c for c in plan if c not in self.names]
        if missing:
            raise ValueError(f"columns the feature service does not log: {missing[:5]}")
        self.plan = plan
        self.plan_types = [self.schema.field(c).type for c in plan]
        self.unplanned = [c for c in self.names if c not in set(plan)]
        self.closes: dict[Any, datetime | None] = {}  # origin → its close, as met


def _status(value: Any, usable: bool, found: bool) -> int:
    if not found:
        return Status.NOT_FOUND
    if not usable:
        return Status.OUTSIDE_MAX_AGE
    return Status.NULL_VALUE if value is None else Status.PRESENT


def _utc(stamp: datetime | None) -> datetime | None:
    if stamp is not None and stamp.tzinfo is None:
        return stamp.replace(tzinfo=UTC)
    return stamp


def _close(origin: dt.date | None, calendar) -> datetime | None:
    if origin is None:
        return None
    return datetime.combine(calendar.start(calendar.period(origin) + 1), time(), UTC)


def rows(layout: Layout, served: Served) -> list[tuple]:
    """The logged rows of one request, each a tuple in ``layout.plan`` order.

    Row-major on purpose: a one-item request is one short loop, where building each of
    ~200 columns per request cost about a millisecond (the writer's work, but the GIL's).
    """
    vectors, n = served.vectors, served.rows
    keys = vectors.keys or [{}] * n
    columns = vectors.columns
    none = [None] * n
    at = served.logged_at
    views = [
        (
            set(vectors.stale.get(view, ())),
            [_utc(s) for s in vectors.event_time.get(view) or none],
            [columns.get(f) or none for f in features],
        )
        for view, features in layout.views
    ]
    derived = [columns.get(f) or none for _, outputs in layout.on_demand for f in outputs]
    loaded = served.loaded
    inactive, stale_views = vectors.inactive(), vectors.stale_views()
    closes = layout.closes
    for origin in set(vectors.origin) - closes.keys():
        closes[origin] = _close(origin, layout.calendar)
    target = [t.isoformat() if t else None for t in vectors.target]
    request = {"forecast_date": target, "horizon": vectors.horizon}
    asked = [request.get(name, none) for name in layout.request]
    out = []
    for i in range(n):
        key = keys[i]
        row = [key.get(k) or None for k in layout.keys]
        row += [values[i] for values in asked]
        for stale, stamps, values in views:
            stamp = stamps[i]
            if stamp is None:
                code = Status.NOT_FOUND
            elif i in stale:
                code = Status.OUTSIDE_MAX_AGE
            else:
                code = 0
            for column in values:
                value = column[i]
                row += (value, stamp, code or (Status.NULL_VALUE if value is None else 1))
        for column in derived:
            value = column[i]
            row += (value, at, Status.NULL_VALUE if value is None else Status.PRESENT)
        units, origin = served.units[i], vectors.origin[i]
        item = served.items[i]
        row += (
            at,
            at.date(),
            served.request_id,
            loaded.name,
            loaded.version,
            origin,
            closes[origin],
            units,
            "missing_features" if units is None else ("inactive" if inactive[i] else "ok"),
            stale_views[i],
            getattr(item, "price", None),
            getattr(item, "promo", None),
        )
        out.append(tuple(row))
    return out


def _array(values: list[Any], field: pa.Field) -> pa.Array:
    try:
        return pa.array(values, type=field.type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        # a value that does not fit the declared type (Feast's schema disagreeing with the
        # store's value): logged as a null, never a lost batch
        return pa.array([_fits(v, field.type) for v in values], type=field.type, from_pandas=True)


def _fits(value: Any, kind: pa.DataType) -> Any:
    try:
        pa.array([value], type=kind, from_pandas=True)
        return value
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None


def table(
    layout: Layout, batch: Sequence[Served], pause: Callable[[], None] = lambda: None
) -> pa.Table:
    """The rows of ``batch`` in the layout's schema; ``pause`` runs between small steps."""
    logged: list[tuple] = []
    for served in batch:
        logged += rows(layout, served)
        pause()
    values = list(zip(*logged, strict=True)) if logged else [()] * len(layout.plan)
    arrays = []
    for i, (name, kind) in enumerate(zip(layout.plan, layout.plan_types, strict=True)):
        arrays.append(_array(list(values[i]), pa.field(name, kind)))
        if i % 32 == 31:
            pause()
    planned = pa.Table.from_arrays(arrays, names=layout.plan)
    for name in layout.unplanned:  # a column of Feast's the lookup has no value for
        kind = layout.schema.field(name).type
        planned = planned.append_column(name, pa.nulls(planned.num_rows, kind))
    return planned.select(layout.names)


def _yield_gil() -> None:
    # A converting writer holds the GIL until the interpreter's switch interval (5 ms) asks
    # it to let go, and a request thread waits that long each time it needs the GIL back
    # (after each store read): measured, +87 % on the one-item p99 of bench-serve. Sleeping
    # after each small step hands the GIL over at once.
    time_module.sleep(YIELD_SECONDS)


class FeatureLog:
    """The service's logger: ``submit`` on the request path, a thread writes."""

    def __init__(
        self,
        directory: Path,
        capacity: int,
        on_drop: Callable[[str, int], None] = lambda reason, rows: None,
        on_write: Callable[[int], None] = lambda rows: None,
        flush_seconds: float = FLUSH_SECONDS,
        flush_rows: int = FLUSH_ROWS,
    ):
        self.directory = directory
        self.capacity = capacity
        self.flush_rows = min(flush_rows, capacity)
        self.flush_seconds = flush_seconds
        self._on_drop, self._on_write = on_drop, on_write
        self._lock = threading.Lock()
        self._waiting: deque[Served] = deque()
        self._pending = 0  # rows submitted and not yet written (or dropped)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._layouts: dict[int, tuple[Any, Layout]] = {}
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)
        self._thread.start()

    def submit(self, served: Served) -> bool:
        """Queue one answered request; False (and counted) when it would exceed the bound."""
        rows = served.rows
        with self._lock:
            accepted = not self._stop.is_set() and self._pending + rows <= self.capacity
            if accepted:
                self._pending += rows
                self._waiting.append(served)
                full = self._pending >= self.flush_rows
            else:
                self.dropped += rows
        if not accepted:
            self._on_drop("full", rows)
        elif full:
            self._wake.set()
        return accepted

    def close(self, timeout: float = 10.0) -> None:
        """Write what waits and stop the thread (the service's shutdown)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def flush(self) -> None:
        """Write every row waiting now (the thread's work; tests call it to be sure)."""
        with self._lock:
            batch = list(self._waiting)
            self._waiting.clear()
        if not batch:
            return
        rows = sum(s.rows for s in batch)
        try:
            by_service: dict[str, tuple[Layout, list[Served]]] = {}
            for served in batch:
                layout = self._layout(served.loaded)
                by_service.setdefault(layout.feature_service, (layout, []))[1].append(served)
            for service, (layout, group) in by_service.items():
                self._write(self.directory / service, table(layout, group, _yield_gil))
            self.written += rows
            self._on_write(rows)
        except Exception as error:  # a full disk, a registry gone: count, say, carry on
            with self._lock:
                self.dropped += rows
            self._on_drop("error", rows)
            logger.warning("served-feature log: %d rows not written: %s", rows, error)
        finally:
            with self._lock:
                self._pending -= rows

    def _layout(self, loaded) -> Layout:
        # one per served bundle (a reload brings a new one); the bundle is kept referenced
        # so its id is not reused while cached
        cached = self._layouts.get(id(loaded))
        if cached is None:
            if len(self._layouts) > 8:
                self._layouts.clear()
            cached = self._layouts[id(loaded)] = (loaded, Layout(loaded))
        return cached[1]

    @staticmethod
    def _write(folder: Path, rows: pa.Table) -> Path:
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        path = folder / f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(rows, tmp)
        tmp.replace(path)
        return path

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
        self.flush()


def read(directory: Path, feature_service: str | None = None):
    """Every logged row under ``directory`` (one service's, if named) as a pandas frame."""
    import pyarrow.parquet as pq

    folder = directory / feature_service if feature_service else directory
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        return None
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default").to_pandas()
