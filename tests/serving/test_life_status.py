"""A pair's status over HTTP: a delisted pair and a pair too new for the model.

The tiny retailer with two pairs changed: one stopped selling 41 days before the end
(inactive: more than 28 quiet days), one first sold 3 days before it (short history:
fewer than the 7 days the daily model asks). A model trained on it, served by a real
`bentoml serve`: the delisted pair answers 200 with status inactive, the new one
short_history with its baseline's forecast (the feature its contract names), every
other pair ok; batch forecasts leave the delisted pair out and publish the baseline for
the new one.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cli import serve as cli
from demand.settings import get_settings
from features import pipeline
from rawdata import raw
from serving import batch, model_loader
from synthetic import generator
from training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def life(tmp_path_factory):
    """Settings over the changed retailer with a production model; the two pairs."""
    root = tmp_path_factory.mktemp("life")
    tables = generator.generate("tiny", seed=7).tables()
    orders = tables["orders"]
    day = pd.to_datetime(orders["ordered_at"]).dt.tz_localize(None).dt.normalize()
    last = day.max()
    pairs = orders.groupby(["store_id", "product_id"]).size().sort_values(ascending=False)
    stopped, new = pairs.index[0], pairs.index[1]

    def of(pair):
        return (orders["store_id"] == pair[0]) & (orders["product_id"] == pair[1])

    keep = ~(of(stopped) & (day > last - pd.Timedelta(days=41)))
    keep &= ~(of(new) & (day < last - pd.Timedelta(days=3)))
    tables["orders"] = orders[keep].reset_index(drop=True)
    assert (of(new) & keep).any()  # it sold in its last days
    settings = get_settings(
        data_dir=root / "data",
        iterations=40,
        origin_every_days=3,
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        serve_reload_seconds=0.0,
    )
    raw.write_raw(tables, settings.raw_dir)
    pipeline.run(settings, progress=lambda _: None, regenerate=False)
    result = train.run(settings, progress=lambda _: None)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.set_registered_model_alias(settings.model_name, "production", result.version)
    return settings, stopped, new, pairs.index[2]


@pytest.fixture(scope="module")
def life_server(life, tmp_path_factory):
    settings = life[0]
    port = cli.free_port()
    log = tmp_path_factory.mktemp("life_serve") / "bentoml.log"
    process = cli.start_server(settings, port, log=log, threads=2, access_log=False)
    try:
        cli.wait_ready(f"http://127.0.0.1:{port}", process, timeout=150)
    except Exception:
        cli.stop(process)
        pytest.fail(f"bentoml serve did not start:\n{log.read_text()[-3000:]}")
    yield f"http://127.0.0.1:{port}"
    cli.stop(process)


def _origin(settings) -> dt.date:
    sales = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet", columns=["event_timestamp"]
    )
    return (sales["event_timestamp"].max() - pd.Timedelta(days=1)).date()


def test_a_delisted_pair_is_inactive_and_a_new_one_gets_its_baseline(life, life_server):
    settings, stopped, new, regular = life
    loaded = model_loader.load(settings)
    rule = loaded.contract.short_history_rule
    assert rule is not None and rule.min_periods == 7
    assert rule.baseline in ("moving_average_28d", "naive_1d")
    assert rule.age_feature == "days_since_first_sale"

    origin = _origin(settings)
    target = str(origin + dt.timedelta(days=2))
    items = [{"store_id": s, "product_id": p, "date": target} for s, p in (stopped, new, regular)]
    status, answer = cli.post_json(f"{life_server}/forecast", {"items": items})
    assert status == 200, answer
    got = answer["forecasts"]
    assert [f["status"] for f in got] == ["inactive", "short_history", "ok"]
    assert [f["baseline"] for f in got] == [None, rule.baseline, None]
    assert all(f["units"] is not None and f["units"] >= 0 for f in got)

    # the new pair's units are its baseline's at the origin: the rule's feature, as read
    vectors = loaded.lookup.fetch([new[0]], [new[1]], [origin + dt.timedelta(days=2)])
    assert vectors.columns[rule.age_feature][0] < 7
    assert got[1]["units"] == pytest.approx(max(vectors.columns[rule.feature][0], 0.0))
    # and its quantiles that baseline's interval: its units plus the residual quantiles the
    # contract recorded for the item's horizon (2 days), in whole units, never below 0
    residuals = json.loads(loaded.contract.extra["short_history_residuals"])["2"]
    expected = sorted(np.floor(max(got[1]["units"] + r, 0.0) + 0.5) for r in residuals)
    assert list(got[1]["quantiles"].values()) == expected

    # the OpenAPI document declares the status and the baseline
    with urllib.request.urlopen(f"{life_server}/docs.json", timeout=10) as response:
        document = json.load(response)
    forecast = document["components"]["schemas"]["Forecast"]["properties"]
    assert "short_history" in forecast["status"]["enum"]
    assert "inactive" in forecast["status"]["enum"]
    assert "baseline" in forecast

    # batch forecasts: none for the delisted pair, the baseline for the new one
    published = batch.forecast_all(settings, loaded, progress=lambda _: None)
    keys = set(zip(published["store_id"], published["product_id"], strict=True))
    assert stopped not in keys and new in keys and regular in keys
    mine = published[(published["store_id"] == new[0]) & (published["product_id"] == new[1])]
    assert len(mine) > 0
    assert mine["units"].tolist() == pytest.approx([got[1]["units"]] * len(mine))
    served = mine[mine["target_date"] == dt.date.fromisoformat(target)]
    assert served[["units_p10", "units_p50", "units_p90"]].values.tolist() == [expected]
