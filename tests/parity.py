"""Online vectors against training rows: what serving reads is what training saw at the origin.

Shared by the feature-store tests (SQLite), the team-profile tests (Redis) and
the serving tests. The offline side is built the way training builds its set
(:func:`training.dataset.entity_frame` → Feast's ``get_historical_features``),
the online side through the one lookup serving uses.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from tests.leakage import KNOWN_AT
from training.dataset import entity_frame, model_inputs


def offline_rows(store, settings, keys, origin: dt.date, horizons) -> pd.DataFrame:
    """Training rows for (store, product) ``keys`` at ``origin``, one per key, in order."""
    rows = pd.DataFrame(
        {
            "store_id": [s for s, _ in keys],
            "product_id": [p for _, p in keys],
            "origin": pd.Timestamp(origin),
            "horizon": list(horizons),
        }
    )
    rows["target"] = rows["origin"] + pd.to_timedelta(rows["horizon"], unit="D")
    entities = entity_frame(rows, settings)
    service = store.get_feature_service(settings.feature_service)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    return frame.sort_values("row_id").reset_index(drop=True)


def online_rows(lookup, keys, origin: dt.date, horizons) -> tuple[pd.DataFrame, list]:
    """The lookup's vectors for ``keys`` with target days ``origin + horizon``, and origins."""
    targets = [origin + dt.timedelta(days=int(h)) for h in horizons]
    vectors = lookup.fetch([s for s, _ in keys], [p for _, p in keys], targets)
    frame = pd.DataFrame(
        {"store_id": [s for s, _ in keys], "product_id": [p for _, p in keys], **vectors.columns}
    )
    return frame, vectors.origin


def assert_online_equals_offline(lookup, store, settings, keys, origin: dt.date, horizons):
    """Every model input and every ``*_known_at`` of the online vector is the training row's."""
    online, origins = online_rows(lookup, keys, origin, horizons)
    assert origins == [origin] * len(keys), "the online rows are not as of the origin"
    offline = offline_rows(store, settings, keys, origin, horizons)
    features = model_inputs(store, settings.feature_service)[0]
    pd.testing.assert_frame_equal(
        online[features], offline[features], check_dtype=False, check_exact=True
    )
    for column in KNOWN_AT:
        known = pd.to_datetime(online[column], utc=True)
        assert (known == pd.to_datetime(offline[column], utc=True)).all(), column
    assert online["units_mean_28"].notna().all(), "the keys have no purchase features"
