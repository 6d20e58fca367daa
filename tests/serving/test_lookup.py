"""The online lookup: Feast's own values, one read per view per request, the CatBoost input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from serving import model_loader
from serving.lookup import StoreUnavailable
from serving.predict import inputs, predict_units


@pytest.fixture(scope="module")
def loaded(service_settings):
    return model_loader.load(service_settings)


def _plain(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def test_values_are_what_feast_get_online_features_returns(loaded, feast_store, known_keys):
    keys, origin = known_keys
    sample = [*keys[:20], ("S_UNKNOWN", "P0000")]
    targets = [origin + dt.timedelta(days=1 + i % 7) for i in range(len(sample))]
    vectors = loaded.lookup.fetch([s for s, _ in sample], [p for _, p in sample], targets)
    assert vectors.origin == [origin] * 20 + [None]
    # Feast's own read of the same rows, routed as the lookup routed them
    rows = [
        {
            "store_id": s,
            "product_id": p,
            "region_id": region or "",
            "target_date": target.isoformat() if target else "",
            "forecast_date": target.isoformat() if target else "",
            "horizon": horizon,
        }
        for (s, p), region, target, horizon in zip(
            sample, vectors.columns["store_region_id"], vectors.target, vectors.horizon, strict=True
        )
    ]
    service = feast_store.get_feature_service("demand_forecast_v1")
    reference = feast_store.get_online_features(features=service, entity_rows=rows).to_dict()
    for name, values in vectors.columns.items():
        assert [_plain(v) for v in values[:20]] == [_plain(v) for v in reference[name][:20]], name
    # a key without an origin gets no features, not those of its product alone (Feast's)
    features = [f for view in loaded.lookup.views for f in view.features]
    assert all(vectors.columns[f][20] is None for f in features)
    assert {view.name for view in loaded.lookup.views} == {
        view for view, positions in vectors.stale.items() if positions == [20]
    }
    assert isinstance(vectors.columns["sales_known_at"][0], dt.datetime)
    # each row's event timestamp comes along (for TTL checks), None where the store has none
    stamps = vectors.event_time["store_product_sales"]
    assert stamps[:20] == [vectors.columns["sales_known_at"][0]] * 20 and stamps[20] is None


def test_one_read_per_view_with_each_views_keys_once(loaded, known_keys, monkeypatch):
    lookup = loaded.lookup
    keys, origin = known_keys
    # three keys, each asked for on three days: 3 sales keys, 1 or 2 stores, 9 forecast days
    sample = [k for k in keys[:3] for _ in range(3)]
    targets = [origin + dt.timedelta(days=1 + i) for i in range(len(sample))]
    store = type(lookup._store())
    reads: list[tuple[str, int]] = []
    original = store.online_read

    def counting(self, config, table, entity_keys, requested_features=None):
        reads.append((table.name, len(entity_keys)))
        return original(self, config, table, entity_keys, requested_features)

    monkeypatch.setattr(store, "online_read", counting)
    lookup.fetch([s for s, _ in sample], [p for _, p in sample], targets)
    assert sorted(name for name, _ in reads) == sorted(v.name for v in lookup.views)
    count = dict(reads)
    assert count["store_product_sales"] == 3
    assert count["store_attributes"] == len({s for s, _ in sample})
    assert count["region_weather_forecast"] == 9


def test_a_missing_store_file_is_unavailable_not_created(loaded, serving_env, known_keys):
    lookup = loaded.lookup
    db = lookup.sqlite_path
    away = db.with_suffix(".moved")
    db.rename(away)
    try:
        assert not lookup.ping()
        with pytest.raises(StoreUnavailable, match="the file is missing"):
            lookup.fetch(["S000"], ["P0000"])
        assert not db.exists()
    finally:
        away.rename(db)
    assert lookup.ping()


def test_catboost_input_without_pandas_predicts_what_the_contract_frame_predicts(
    loaded, known_keys
):
    keys, origin = known_keys
    sample = [*keys[:20], ("S_UNKNOWN", "P0000")]
    targets = [origin + dt.timedelta(days=1 + i % 7) for i in range(len(sample))]
    fast = loaded.lookup.fetch([s for s, _ in sample], [p for _, p in sample], targets)
    frame = pd.DataFrame(
        {"store_id": [s for s, _ in sample], "product_id": [p for _, p in sample], **fast.columns}
    )
    # the model's inputs and its short-history rule's columns
    columns = {name: frame[name].tolist() for name in inputs(loaded.contract)}
    columns = {k: [_plain(v) for v in vs] for k, vs in columns.items()}
    native = loaded.contract.predict(loaded.model, frame)
    assert np.allclose(predict_units(loaded.model, loaded.contract, columns, len(frame)), native)


def test_on_demand_views_run_only_for_items_that_can_be_scored(loaded, known_keys, monkeypatch):
    """A key without an origin, or a target outside ``within`` periods of it, never reaches
    an on-demand view's code: their outputs are None (issue 22: a client's year 2165 made
    the calendar view fail). The others are what a fetch of them alone gives."""
    lookup = loaded.lookup
    keys, origin = known_keys
    (s1, p1), (s2, p2) = keys[:2]
    far, before = dt.date(2165, 1, 1), origin - dt.timedelta(days=3)
    stores = [s1, "S_UNKNOWN", s2, s1]
    products = [p1, p1, p2, p2]
    targets = [origin + dt.timedelta(days=2), far, far, before]
    seen: list[str] = []
    wrapped = []
    for view in lookup.on_demand:

        def recording(frame, udf=view.udf):
            if "forecast_date" in frame:
                seen.extend(frame["forecast_date"])
            return udf(frame)

        wrapped.append(dataclasses.replace(view, udf=recording))
    monkeypatch.setattr(lookup, "on_demand", wrapped)
    monkeypatch.setattr(lookup, "_memo", {})  # every row computed afresh, and seen
    vectors = lookup.fetch(stores, products, targets, within=loaded.contract.horizon)
    assert vectors.origin == [origin, None, origin, origin]
    assert set(seen) == {str(targets[0])}
    outputs = [name for view in lookup.on_demand for name in view.outputs]
    assert outputs and all(vectors.columns[name][1:] == [None] * 3 for name in outputs)
    alone = lookup.fetch([s1], [p1], targets[:1])
    assert {name: vectors.columns[name][0] for name in outputs} == {
        name: alone.columns[name][0] for name in outputs
    }
    # without ``within`` (demand online): every key with an origin, whatever its target
    seen.clear()
    monkeypatch.setattr(lookup, "_memo", {})
    lookup.fetch(stores, products, targets)
    assert set(seen) == {str(targets[0]), str(far), str(before)}
