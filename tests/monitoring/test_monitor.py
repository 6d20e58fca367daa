"""A night's monitoring on a trained tiny model: faults planted in the feature tables are
caught through the online store the first night, `demand monitor` exits 1 on them, and
`demand report` renders in a real browser with its plots and no errors."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from cli.main import main
from demand import monitor_summary
from features import publish
from monitoring import accuracy, drift, ledger, monitor
from tests.browser import render
from tests.monitoring.test_ledger import _publish, _sales
from tests.monitoring.test_quantiles import _add_quantiles
from training import profile

pytestmark = pytest.mark.slow


def _rewrite(settings, table: str, change) -> None:
    path = settings.feature_dir / f"{table}.parquet"
    original = pq.read_table(path)
    frame = change(original.to_pandas())
    out = type(original).from_pandas(frame, preserve_index=False)
    pq.write_table(out.replace_schema_metadata(original.schema.metadata), path)


@pytest.fixture(scope="module")
def planted(serving_env, tmp_path_factory):
    """A copy of the served data (its own Feast registry and online store) with forecasts
    of v1 for targets now closed; drift measured before and after three planted faults:
    list prices in cents (×10), observed temperature gone null, weather forecasts stopped
    two days ago."""
    fresh = serving_env.model_copy(update={"data_dir": tmp_path_factory.mktemp("monitored")})
    shutil.copytree(serving_env.feature_dir, fresh.feature_dir)
    publish.apply(fresh)
    publish.materialize(fresh)
    sales = _sales(fresh)
    last = pd.Timestamp(max(sales["target_date"]))
    pairs = sales[["store_id", "product_id"]].drop_duplicates()
    _publish(fresh, pairs, [last - pd.Timedelta(days=d) for d in (9, 8, 7)])
    _add_quantiles(fresh)
    before = drift.tonight(fresh, progress=lambda _: None)

    _rewrite(fresh, "product_attributes", lambda f: f.assign(list_price=f["list_price"] * 10))
    newest = pd.read_parquet(
        fresh.feature_dir / "region_weather_daily.parquet", columns=["event_timestamp"]
    )["event_timestamp"].max()

    def null_temperature(frame):
        frame.loc[frame["event_timestamp"] >= newest - pd.Timedelta(days=3), "temperature_c"] = None
        return frame

    _rewrite(fresh, "region_weather_daily", null_temperature)
    issued = pd.read_parquet(
        fresh.feature_dir / "region_weather_forecast.parquet", columns=["event_timestamp"]
    )["event_timestamp"].max()
    _rewrite(
        fresh,
        "region_weather_forecast",
        lambda f: f[f["event_timestamp"] <= issued - pd.Timedelta(days=2)],
    )
    publish.materialize(fresh)
    after = drift.tonight(fresh, progress=lambda _: None)
    return fresh, before, after


def test_planted_faults_are_caught_the_first_night(planted):
    _, before, after = planted
    assert not before.skipped and before.rows > 0
    table = after.table.set_index("feature")
    assert table.loc["list_price", "drifted"]
    assert "outside the reference's range" in table.loc["list_price", "why"]
    assert table.loc["temperature_c", "drifted"]
    assert table.loc["temperature_c", "null_rate_now"] == 1.0
    assert "feed region_weather_forecast" in after.drifted
    planted_faults = {"list_price", "temperature_c", "feed region_weather_forecast"}
    assert not planted_faults & set(before.drifted), before.drifted  # none before planting
    # PSI over the tiny retailer's 48 keys is noise: not judged, and no false alarm
    assert before.drifted == [] and before.keys == 48
    assert before.note.startswith("too few rows to judge PSI: 48 keys")
    feeds = after.feeds.set_index("feed")
    assert not feeds.loc["store_product_sales", "stopped"]


def test_a_version_without_a_reference_profile_is_skipped(planted, monkeypatch):
    fresh = planted[0]
    monkeypatch.setattr(profile, "ARTIFACT", "monitoring/no_such_profile.json")
    skipped = drift.tonight(fresh, progress=lambda _: None)
    assert skipped.skipped.startswith("v1 has no reference profile")
    assert skipped.table.empty


def test_monitor_exits_1_on_alerts_and_the_report_renders(planted, monkeypatch, tmp_path):
    fresh = planted[0]
    monkeypatch.setenv("DEMAND_DATA_DIR", str(fresh.data_dir))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    monkeypatch.setenv("DEMAND_MLFLOW_TRACKING_URI", fresh.tracking_uri)
    assert main(["monitor"]) == 1
    last = monitor.read_last(fresh)
    kinds = {a["kind"] for a in last["alerts"]}
    assert {"drift", "feed"} <= kinds
    assert ledger.partitions(fresh)
    summary = monitor_summary.read(fresh.monitoring_dir)
    assert summary.model_version == "1" and summary.live_wape > 0
    assert "list_price" in summary.drifted
    assert summary.psi == {}  # 48 keys: too few for PSI (the /metrics gauge stays empty)

    assert main(["report"]) == 0
    page = fresh.monitoring_dir / "report" / "report.html"
    for png in (
        "wape_over_time.png",
        "by_category.png",
        "by_store.png",
        "worst_series.png",
        "quantiles_by_horizon.png",
    ):
        assert (page.parent / png).stat().st_size > 0
    rendered = render(page, tmp_path / "report.png")
    assert rendered.problems == []
    assert rendered.images >= 5
    assert rendered.title.startswith("Forecast monitoring")
    text = page.read_text()
    # `demand monitor` ran the served-vs-offline check: the report has its section
    assert "list_price" in text and "No served-vs-offline mismatch" in text
    assert "too few rows to judge PSI: 48 keys" in text
    client = MlflowClient(fresh.tracking_uri)
    run_id = client.get_model_version(fresh.model_name, "1").run_id
    # the live quantile figures sit beside the ones the training run logged, per horizon
    run = client.get_run(run_id).data.metrics
    measured = accuracy.measure(
        fresh, pd.Timestamp(last["night"]).date(), accuracy.backtest_metrics(fresh, ["1"])
    )
    table = measured.quantiles.set_index("horizon")
    assert table.loc[1, "backtest_interval_coverage"] == run["interval_coverage_h1"]
    assert table.loc[1, "backtest_wql"] == run["wql_h1"]
    assert table.loc[accuracy.ALL, "backtest_coverage_p90"] == run["coverage_p90"]
    logged = {a.path for a in client.list_artifacts(run_id, "monitoring/report")}
    assert "monitoring/report/report.html" in logged


def test_a_report_with_nothing_closed_says_so_and_exits_0(
    feature_env, monkeypatch, tmp_path, capsys
):
    data = tmp_path / "data"
    shutil.copytree(feature_env.feature_dir, data / "features")
    monkeypatch.setenv("DEMAND_DATA_DIR", str(data))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    assert main(["report"]) == 0
    assert "nothing to score yet" in capsys.readouterr().out


def test_the_service_exposes_the_summary_on_metrics(tmp_path):
    from serving.monitoring_gauges import MonitoringGauges

    summary = monitor_summary.Summary(
        night="2024-03-01",
        model_name="demand_forecast",
        model_version="7",
        live_wape=0.41,
        backtest_wape=0.38,
        ratio=0.41 / 0.38,
        live_wape_by_horizon={"1": 0.3},
        psi={"list_price": 2.5},
        drifted=["list_price"],
        alerts=["v7: list_price drifted"],
    )
    monitor_summary.write(tmp_path, summary)
    gauges = MonitoringGauges(tmp_path)
    assert gauges.refresh() and not gauges.refresh()  # read once, again only when changed
    from prometheus_client import REGISTRY, generate_latest

    text = generate_latest(REGISTRY).decode()
    assert 'demand_live_wape{horizon="all",version="7"} 0.41' in text
    assert 'demand_feature_psi{feature="list_price"} 2.5' in text
    assert json.loads(monitor_summary.path(tmp_path).read_text())["ratio"] == pytest.approx(
        0.41 / 0.38
    )
