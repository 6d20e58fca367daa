"""Served-vs-offline skew: logged vectors recomputed offline, point in time, feature by feature.

The service logs what it read for every answered forecast (serving/feature_log.py).
Each night a seeded random sample of those rows, drawn over the whole logged period
(``skew_sample_rows`` rows, ``skew_sample_seed``), is rebuilt offline the way
training builds its rows: Feast's ``get_historical_features`` through the same feature
service, with the logged entity keys, request fields and the instant the service
read as of (the close of the item's origin, ``as_of``). Every feature must be equal
on both sides.

Where the log says a view was stale for a row (no row, or a row the origin could not
use: Feast's NOT_FOUND or OUTSIDE_MAX_AGE), serving answered nulls on purpose
(serving/lookup.py) while the offline join may find an older row: those differences
are counted apart and are not skew, nor are on-demand outputs of such a row. Neither
are the planned price and promotion of an item whose client gave its own (and the
on-demand outputs reading them): the offline side knows the store's plan only.

The target is zero mismatches outside stale views; a feature with any is named, with
examples, so a wrong value in the online store (a bad load, a corrupted key) shows up
the morning after it is served.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from demand.settings import Settings
from feastext.feature_logs import (
    LOG_TIMESTAMP,
    REQUEST_ID,
    Status,
    logging_schema,
    value_column,
)

Progress = Callable[[str], None]
STALE = {Status.NOT_FOUND, Status.OUTSIDE_MAX_AGE}
PLANNED = ("planned_price", "planned_promo")  # features a client's price/promo replace
REL_TOLERANCE = 1e-6  # float32 features: both sides read the same stored value
EXAMPLES = 5  # per feature


@dataclass
class Skew:
    """One night's comparison: per feature, logged rows whose served value differs offline."""

    rows: int = 0
    feature_service: str | None = None
    mismatches: dict[str, int] = field(default_factory=dict)  # outside stale views: skew
    stale: dict[str, int] = field(default_factory=dict)  # inside stale views: expected
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    note: str = ""

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        if self.note:
            return self.note
        if self.clean:
            return f"no skew: {self.rows:,} logged rows equal offline ({self.feature_service})"
        named = ", ".join(f"{f} ({n:,} rows)" for f, n in sorted(self.mismatches.items()))
        return f"skew in {len(self.mismatches)} features of {self.rows:,} logged rows: {named}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean, "summary": self.summary()}


def sample(
    settings: Settings, feature_service: str, rows: int, seed: int | None = None
) -> pd.DataFrame | None:
    """A seeded uniform sample of ``rows`` logged rows that were scored (an item whose key
    had an origin), drawn over the whole logged period, oldest first.

    Not the newest rows alone: a bad load that was served for a day last week, then
    overwritten, would never be looked at again. The seed (``skew_sample_seed`` unless
    given) makes a night's sample the same when the night is run again on the same log.
    """
    from serving.feature_log import read

    logged = read(settings.feature_log_dir, feature_service)
    if logged is None:
        return None
    scored = logged[logged["origin_date"].notna() & logged["as_of"].notna()]
    # one order whatever order the files were read in: the draw depends on the log alone
    scored = scored.sort_values([LOG_TIMESTAMP, REQUEST_ID], kind="stable")
    if len(scored) > rows:
        rng = np.random.default_rng(settings.skew_sample_seed if seed is None else seed)
        scored = scored.iloc[np.sort(rng.choice(len(scored), size=rows, replace=False))]
    return scored.reset_index(drop=True)


def _services(settings: Settings) -> list[str]:
    folder = settings.feature_log_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def check(
    settings: Settings, store=None, rows: int | None = None, progress: Progress = print
) -> list[Skew]:
    """Each logged feature service's sample compared with offline (one Skew per service)."""
    services = _services(settings)
    if not services:
        return [
            Skew(
                note=f"nothing to compare: no served features logged in {settings.feature_log_dir}"
            )
        ]
    if store is None:
        from demand.featurestore import open_store

        store = open_store(settings)
    return [
        compare(
            store, service, sample(settings, service, rows or settings.skew_sample_rows), progress
        )
        for service in services
    ]


def offline(store, feature_service: str, logged: pd.DataFrame) -> pd.DataFrame:
    """The training rows of ``logged``: same keys, request fields and as-of instant."""
    schema = logging_schema(store, feature_service)
    # Feast's columns that are neither features nor its own: join keys and request fields
    keys = [n for n in schema.names if "__" not in n]
    entities = logged[keys].copy()
    entities["event_timestamp"] = pd.to_datetime(logged["as_of"], utc=True)
    entities["row_id"] = range(len(entities))
    service = store.get_feature_service(feature_service)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    return frame.sort_values("row_id").reset_index(drop=True)


def compare(store, feature_service: str, logged: pd.DataFrame | None, progress=print) -> Skew:
    """Served (logged) against offline, feature by feature; see the module docstring."""
    if logged is None or logged.empty:
        return Skew(
            feature_service=feature_service,
            note=f"nothing to compare: no scored rows logged for {feature_service}",
        )
    progress(f"recomputing {len(logged):,} logged rows offline ({feature_service})")
    rebuilt = offline(store, feature_service, logged)
    if len(rebuilt) != len(logged):
        raise RuntimeError(f"Feast returned {len(rebuilt):,} of {len(logged):,} rows")
    skew = Skew(rows=len(logged), feature_service=feature_service)
    service = store.get_feature_service(feature_service)
    odfvs = {v.name for v in store.list_on_demand_feature_views()}
    views = [p for p in service.feature_view_projections if p.name not in odfvs]
    stale_rows = pd.Series(False, index=logged.index)
    stale_by_view = {}
    for projection in views:
        view = projection.name_to_use()
        first = value_column(view, projection.features[0].name)
        stale_by_view[view] = logged[f"{first}__status"].isin(STALE)
        stale_rows |= stale_by_view[view]
    planned_by_client = logged["request_price"].notna() | logged["request_promo"].notna()
    for projection in service.feature_view_projections:
        view = projection.name_to_use()
        on_demand = projection.name in odfvs
        for feature in (f.name for f in projection.features):
            column = value_column(view, feature)
            if column not in logged or feature not in rebuilt:
                continue
            expected = stale_rows if on_demand else stale_by_view[view]
            excused = planned_by_client if (on_demand or feature in PLANNED) else None
            _compare_column(skew, column, logged, rebuilt[feature], expected, excused)
    return skew


def _compare_column(skew: Skew, column, logged, rebuilt, expected, excused) -> None:
    served = logged[column]
    for i in range(len(logged)):
        if excused is not None and excused.iloc[i]:
            continue
        if _equal(served.iloc[i], rebuilt.iloc[i]):
            continue
        if expected.iloc[i]:
            skew.stale[column] = skew.stale.get(column, 0) + 1
            continue
        skew.mismatches[column] = skew.mismatches.get(column, 0) + 1
        shown = skew.examples.setdefault(column, [])
        if len(shown) < EXAMPLES:
            shown.append(
                {
                    "store_id": logged["store_id"].iloc[i],
                    "product_id": logged["product_id"].iloc[i],
                    "as_of": str(logged["as_of"].iloc[i]),
                    "served": _plain(served.iloc[i]),
                    "offline": _plain(rebuilt.iloc[i]),
                }
            )


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list
        return False


def _instant(value: Any) -> pd.Timestamp | None:
    if isinstance(value, pd.Timestamp | datetime | np.datetime64):
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return None


def _equal(served: Any, offline: Any) -> bool:
    """Equal as features: nulls alike, instants in UTC, numbers to float32's precision."""
    if _missing(served) or _missing(offline):
        return _missing(served) and _missing(offline)
    stamps = _instant(served), _instant(offline)
    if stamps[0] is not None or stamps[1] is not None:
        return stamps[0] == stamps[1]
    if isinstance(served, bool | np.bool_) or isinstance(offline, bool | np.bool_):
        return bool(served) == bool(offline)
    if isinstance(served, numbers.Number) and isinstance(offline, numbers.Number):
        return math.isclose(float(served), float(offline), rel_tol=REL_TOLERANCE, abs_tol=1e-9)
    return str(served) == str(offline)


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, int | float | str | bool) else str(value)


def findings(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Skewed features as the monitor's alerts read them, from ``Skew.to_dict()`` records:
    one ``{"feature", "mismatches", "rows"}`` per feature served unlike offline."""
    return [
        {"feature": feature, "mismatches": count, "rows": one["rows"]}
        for one in found
        for feature, count in sorted(one["mismatches"].items())
    ]


def for_monitor(settings: Settings) -> list[dict[str, Any]]:
    """The skew check as ``demand monitor`` plugs it in (monitoring.monitor.run's ``skew``)."""
    return findings([one.to_dict() for one in check(settings, progress=lambda _: None)])
