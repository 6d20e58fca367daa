"""A correction-only import (earlier periods replaced, no new day) reaches the online
store the same night: after the nightly's build and materialization, every key's online
values are its latest offline row's."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from demand.featurestore import open_store
from demand.settings import get_settings
from features import publish
from nightly import cycle
from tests.features.test_incremental import write_aggregated

pytestmark = [pytest.mark.nightly, pytest.mark.usefixtures("clean_demand_env")]

VIEW = "store_product_sales"


def quiet(_: str) -> None:
    pass


def _night(settings) -> None:
    """The nightly's feature steps: build aside and swap, apply, materialize."""
    built = cycle._build_aside(settings, quiet)
    publish.apply(settings)
    cycle._materialize(settings, quiet, built.mode)


def _online_and_offline(settings) -> tuple[np.ndarray, np.ndarray]:
    store = open_store(settings)
    view = store.get_feature_view(VIEW)
    names = [f.name for f in view.features if f.dtype.to_value_type().name in ("DOUBLE", "FLOAT")]
    end = publish.origin_close(settings) + timedelta(seconds=1)
    offline = pd.read_parquet(view.batch_source.path)
    offline = offline[offline["event_timestamp"] < end]
    latest = (
        offline.sort_values("event_timestamp")
        .drop_duplicates(["store_id", "product_id"], keep="last")
        .sort_values(["store_id", "product_id"])
        .reset_index(drop=True)
    )
    rows = latest[["store_id", "product_id"]].to_dict("records")
    online = store.get_online_features(features=[f"{VIEW}:{n}" for n in names], entity_rows=rows)
    online = online.to_df()[["store_id", "product_id", *names]]
    assert online[["store_id", "product_id"]].equals(latest[["store_id", "product_id"]])
    # the values only, as floats (a missing online value is None, a missing offline one NaN)
    return (
        online[names].to_numpy(dtype=float, na_value=np.nan),
        latest[names].to_numpy(dtype=float, na_value=np.nan),
    )


def test_a_correction_only_import_reaches_the_online_store_the_same_night(tmp_path):
    settings = get_settings(data_dir=tmp_path / "data")
    write_aggregated(settings.raw_dir, "day", 120)
    _night(settings)
    online, first = _online_and_offline(settings)
    np.testing.assert_allclose(online, first, rtol=1e-6)

    # the retailer corrects its last two days: more units everywhere, no new day
    path = settings.raw_dir / "sales.parquet"
    sales = pd.read_parquet(path)
    corrected = sales["date"] >= sales["date"].max() - pd.Timedelta(days=1)
    sales.loc[corrected, "units"] = sales.loc[corrected, "units"] * 3 + 5
    sales.to_parquet(path, index=False)
    _night(settings)

    online, offline = _online_and_offline(settings)
    # the latest offline rows changed (what the online store held is now stale)
    assert not np.allclose(offline, first, equal_nan=True)
    np.testing.assert_allclose(online, offline, rtol=1e-6)
