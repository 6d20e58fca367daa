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
    frame, vectors = online_vectors(lookup, keys, origin, horizons)
    return frame, vectors.origin


def online_vectors(lookup, keys, origin: dt.date, horizons):
    """The lookup's vectors as a frame (one row per key), and the Vectors themselves."""
    targets = [origin + dt.timedelta(days=int(h)) for h in horizons]
    vectors = lookup.fetch([s for s, _ in keys], [p for _, p in keys], targets)
    frame = pd.DataFrame(
        {"store_id": [s for s, _ in keys], "product_id": [p for _, p in keys], **vectors.columns}
    )
    return frame, vectors


def nulled_by(lookup, views) -> set[str]:
    """The features null when ``views`` are stale: theirs, and on-demand outputs reading them."""
    own = {f for v in lookup.views if v.name in set(views) for f in v.features}
    derived = {f for o in lookup.on_demand if own & set(o.inputs) for f in o.outputs}
    return own | derived


def expected_online(lookup, offline: pd.DataFrame, stale) -> pd.DataFrame:
    """The training rows with the features of each row's ``stale`` views nulled.

    What serving can answer at the origin: the online store holds each key's newest
    row only, so where that row is newer than the origin (a feed ahead of the orders)
    the row training used is gone and the view is null; where the row is older than
    the TTL allows (a stalled feed), training has nulls as well.
    """
    expected = offline.copy()
    for i, views in enumerate(stale):
        for feature in nulled_by(lookup, views):
            expected.at[i, feature] = None
    return expected


def assert_online_equals_offline(
    lookup, store, settings, keys, origin: dt.date, horizons, stale=None
) -> pd.DataFrame:
    """Every model input and ``*_known_at`` of the online vector is the training row's.

    ``stale``: per key, the views the lookup must name stale (default: none); their
    features must be null online (see :func:`expected_online`). Returns the offline rows.
    """
    online, vectors = online_vectors(lookup, keys, origin, horizons)
    assert vectors.origin == [origin] * len(keys), "the online rows are not as of the origin"
    stale = [[] for _ in keys] if stale is None else stale
    assert [sorted(v) for v in vectors.stale_views()] == [sorted(v) for v in stale]
    offline = offline_rows(store, settings, keys, origin, horizons)
    expected = expected_online(lookup, offline, stale)
    features = model_inputs(store, settings.feature_service)[0]
    pd.testing.assert_frame_equal(
        online[features], expected[features], check_dtype=False, check_exact=True
    )
    for column in KNOWN_AT:
        known = pd.to_datetime(online[column], utc=True)
        wanted = pd.to_datetime(expected[column], utc=True)
        assert ((known == wanted) | (known.isna() & wanted.isna())).all(), column
    fresh = [i for i, views in enumerate(stale) if "store_product_sales" not in views]
    assert online["units_mean_28"].iloc[fresh].notna().all(), "the keys have no purchase features"
    return offline
