"""Opening the Feast store of the current settings, and online lookups by entity keys.

Shared by the feature pipeline (apply, materialize, print vectors) and by
serving (answer forecasts from keys): both need the same two-step lookup, since
weather is keyed by region and a client only knows its store.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from demand.console import quiet_library_warnings
from demand.settings import Settings


def open_store(settings: Settings):
    """A FeatureStore over ``settings.feature_repo`` with its data under ``settings.data_dir``."""
    # feature_store*.yaml and the data sources read DEMAND_* variables; export the
    # resolved values so Feast sees the same places as the rest of the platform.
    os.environ.update(
        DEMAND_DATA_DIR=str(settings.data_dir),
        DEMAND_FEAST_PROJECT=settings.feast_project,
        DEMAND_REDIS_URL=settings.redis_url,
        DEMAND_FEAST_REGISTRY_URL=settings.feast_registry_url,
    )
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    from feast import FeatureStore  # heavy import, only when a store is needed

    # ibis (under Feast's DuckDB store) warns about its own deprecated calls on every read,
    # and Feast calls its on-demand views experimental each time they are used
    quiet_library_warnings()
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    return FeatureStore(
        repo_path=str(settings.feature_repo), fs_yaml_file=settings.feature_store_yaml
    )


@dataclass(frozen=True)
class Key:
    store_id: str
    product_id: str


def _day(value: date | datetime | str) -> date:
    return pd.Timestamp(value).date()


def online_vectors(
    store,
    feature_service: str,
    keys: Sequence[Key],
    target_dates: Sequence[date | str | None] | None = None,
) -> pd.DataFrame:
    """Feature vectors for ``keys``, one row per key, in order.

    A row's origin is the day its purchase features are as of (the latest
    materialized day); its target day defaults to the day after, and
    ``horizon`` is the days between them. Keys the online store does not know
    come back with null features.
    """
    service = store.get_feature_service(feature_service)
    frame = pd.DataFrame(
        {"store_id": [k.store_id for k in keys], "product_id": [k.product_id for k in keys]}
    )
    first = store.get_online_features(
        features=["store_attributes:store_region_id", "store_product_sales:sales_known_at"],
        entity_rows=frame.to_dict("records"),
    ).to_df()
    known_at = pd.to_datetime(first["sales_known_at"], utc=True, errors="coerce")
    origin = (known_at - pd.Timedelta(days=1)).dt.date  # known at midnight after the day
    targets = list(target_dates) if target_dates is not None else [None] * len(keys)
    target = [
        _day(t) if t is not None else (o + timedelta(days=1) if pd.notna(o) else None)
        for t, o in zip(targets, origin, strict=True)
    ]
    frame["region_id"] = first["store_region_id"].fillna("").to_numpy()
    frame["target_date"] = [t.isoformat() if t else "" for t in target]
    frame["forecast_date"] = frame["target_date"]
    frame["horizon"] = [
        (t - o).days if t and pd.notna(o) else 0 for t, o in zip(target, origin, strict=True)
    ]
    vectors = store.get_online_features(
        features=service, entity_rows=frame.to_dict("records")
    ).to_df()
    vectors.insert(2, "origin_date", [o.isoformat() if pd.notna(o) else None for o in origin])
    return vectors
