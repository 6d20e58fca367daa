"""Planned promotions are read point in time: a plan counts from its planned_at, never before.

Two guards: the feature table does not change for what was known at T when plans made
after T change (the prefix rule of tests/features/test_prefix.py, for plans), and
Feast's point-in-time join at an origin returns the newest plan known then: none
before the first plan, the first plan before its revision, the revision after it.
"""

from __future__ import annotations

import pandas as pd
import pytest

from demand.featurestore import open_store
from demand.settings import get_settings
from features import build_duckdb, plan, publish
from synthetic import aggregate, generator
from training import dataset


@pytest.fixture(scope="module")
def export():
    data = generator.generate("tiny", seed=7, days=400)
    return aggregate.aggregate(data, "week", "sunday", measures=("temperature_c",), forecasts=True)


def test_plans_made_after_t_change_no_row_known_at_t(export):
    plans = export.tables["promotions"]
    close = pd.Timestamp("2023-09-01", tz="UTC")
    later = plans["planned_at"] > close
    assert later.any() and (~later).any()
    changed = plans.copy()
    changed.loc[later, "price"] = changed.loc[later, "price"] * 0.5
    changed.loc[later, "promo"] = ~changed.loc[later, "promo"]
    # and a revision, planned after T, of a plan known before T
    revised = plans[~later].head(3).assign(price=0.01, planned_at=close + pd.Timedelta(days=1))
    changed = pd.concat([changed, revised], ignore_index=True)

    def known_at_close(promotions):
        tables = {**export.tables, "promotions": promotions}
        out = build_duckdb.compute(tables, description=export.description)["planned_promotions"]
        rows = out[out["event_timestamp"] <= close]
        return rows.sort_values(["store_id", "product_id", "target_date"]).reset_index(drop=True)

    before, after = known_at_close(plans), known_at_close(changed)
    assert len(before) == (~later).sum()
    pd.testing.assert_frame_equal(before, after)


@pytest.fixture(scope="module")
def revised_store(export, tmp_path_factory):
    """The weekly set with one plan revised later, built and applied to Feast."""
    root = tmp_path_factory.mktemp("plans")
    settings = get_settings(data_dir=root)
    plans = export.tables["promotions"]
    key = plans.iloc[200]
    revision = key.to_frame().T.assign(
        price=0.5 * key["price"], planned_at=key["planned_at"] + pd.Timedelta(days=10)
    )
    revision = revision.astype(plans.dtypes.to_dict())
    tables = {**export.tables, "promotions": pd.concat([plans, revision], ignore_index=True)}
    aggregate.write(aggregate.Aggregated(tables, export.description), settings.raw_dir)
    build_duckdb.build(settings.raw_dir, settings.feature_dir)
    publish.apply(settings)
    return settings, key


def test_the_join_uses_the_newest_plan_known_at_the_origin(revised_store):
    settings, key = revised_store
    first_known = key["planned_at"]
    revised_known = first_known + pd.Timedelta(days=10)
    instants = [
        first_known - pd.Timedelta(seconds=1),  # nothing planned yet
        first_known,  # the first plan, from the instant it was made
        revised_known - pd.Timedelta(seconds=1),
        revised_known,  # the revision
    ]
    stores = pd.read_parquet(settings.feature_dir / "store_attributes.parquet")
    region = stores.set_index("store_id").loc[key["store_id"], "store_region_id"]
    target = f"{key['date']:%Y-%m-%d}"
    entities = pd.DataFrame(
        {
            "store_id": key["store_id"],
            "product_id": key["product_id"],
            "region_id": region,
            "target_date": target,
            "forecast_date": target,
            "horizon": 1,
            "event_timestamp": pd.to_datetime(instants, utc=True),
        }
    )
    store = open_store(settings)
    frame = store.get_historical_features(
        entity_df=entities, features=["planned_promotions:planned_price"]
    ).to_df()
    frame = frame.sort_values("event_timestamp").reset_index(drop=True)
    prices = frame["planned_price"].tolist()
    assert pd.isna(prices[0])
    assert prices[1] == pytest.approx(key["price"]) and prices[2] == pytest.approx(key["price"])
    assert prices[3] == pytest.approx(0.5 * key["price"])
    # and the model's inputs include the plan and the week's forecast (the weekly service
    # carries both), not the measures the data set lacks
    built = plan.lineage(settings.feature_dir)
    features = dataset.model_inputs(store, "demand_forecast_weekly_v1", built.absent)[0]
    assert {"planned_price", "planned_promo", "forecast_temperature_c"} <= set(features)
    assert not {"forecast_sunshine_hours", "precipitation_mm"} & set(features)
