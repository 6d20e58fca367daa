"""Nights in a row on the tiny retailer, with a real service running through them.

Real Feast, CatBoost, MLflow (SQLite) and BentoML; the published forecasts also go to
a PostgreSQL database of the test's own. One long test, because each night builds on
the one before, as in production.
"""

from __future__ import annotations

import uuid

import pandas as pd
import psycopg
import pytest
from mlflow import MlflowClient

from cli.serve import free_port, post_json, start_server, stop, wait_ready
from demand.servers import Database
from demand.settings import TargetScale, get_settings
from features import pipeline
from monitoring import ledger
from nightly import cycle
from registry import lifecycle
from registry.gates import Stage
from serving.batch import TABLE
from tests.servers import drop_database, require_servers

pytestmark = [pytest.mark.nightly, pytest.mark.usefixtures("clean_demand_env")]


def quiet(_: str) -> None:
    pass


def _published(settings, report) -> pd.DataFrame:
    origin = pd.Timestamp(report.last_day).date()
    return pd.read_parquet(settings.forecast_dir / f"origin={origin}.parquet")


def _table_rows(url: str) -> pd.DataFrame:
    with psycopg.connect(Database(url).conninfo()) as conn:
        cursor = conn.execute(
            f"SELECT store_id, product_id, origin_date, target_date, units, "
            f"model_version FROM {TABLE}"
        )
        columns = [c.name for c in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def _served(url: str, published: pd.DataFrame) -> pd.DataFrame:
    """What /forecast answers for the published rows' keys and days."""
    items = [
        {"store_id": r.store_id, "product_id": r.product_id, "date": f"{r.target_date}"}
        for r in published.itertuples()
    ]
    status, body = post_json(f"{url}/forecast", {"items": items})
    assert status == 200, body
    return pd.DataFrame(body["forecasts"]).assign(version=body["model"]["version"])


def _assert_published_is_served(url: str, published: pd.DataFrame, version: str) -> None:
    served = _served(url, published)
    assert set(served["version"]) == {version}
    assert set(published["model_version"]) == {version}
    assert served["status"].eq("ok").all()
    assert served["units"].to_numpy() == pytest.approx(published["units"].to_numpy(), abs=1e-9)


def test_nights_in_a_row(tmp_path):
    require_servers(redis=False)
    forecast_db = (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{uuid.uuid4().hex[:10]}"
    )
    settings = get_settings(
        data_dir=tmp_path / "data",
        scale="tiny",
        seed=7,
        iterations=300,
        origin_every_days=3,
        # shorter windows than the default leave the tiny history enough to learn from:
        # the model then beats the baselines by ~0.09 WAPE (0.42 vs 0.51), every night
        test_days=28,
        validation_days=21,
        gate_margin=0.25,  # an absolute WAPE margin: the nights move production
        serve_reload_seconds=0,  # the nights tell the service (POST /reload)
        forecast_db_url=forecast_db,
        # each night's version straight to the production gate, on its backtest (the shadow
        # policy, which holds a challenger in staging first: test_shadow_hold.py)
        nightly_shadow_hold=False,
    )
    # a challenger the gates refuse: one tree on raw units (one tree on the scaled target is
    # a level times a constant, which can edge past the moving average)
    weak = settings.model_copy(update={"iterations": 1, "target_scale": TargetScale.none})
    pipeline.generate(settings, quiet)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    process = None
    try:
        # night 1: the first version reaches staging; production is not asked for
        first = cycle.run(settings, promote=False, progress=quiet)
        assert first.new_data and first.version == "1" and first.retrained
        assert first.staging == "v1 promoted to staging"
        assert first.production_version is None and first.published == []
        assert first.shadow == []  # no production to be a shadow of

        # nights 2 and 3: new days each, challengers that fail the gate change nothing
        for night in (2, 3):
            report = cycle.run(weak, append_days=1, promote=True, progress=quiet)
            assert report.version == str(night)
            assert report.staging.startswith("refused: beats")
            assert report.production_version is None
        assert first.last_day < report.last_day

        # v1 was trained two nights ago: its backtest window is rebuilt from today's data
        outcome = lifecycle.promote(settings, "1", Stage.production)
        assert outcome.gates.passed, outcome.gates.explain()

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(settings, port, log=tmp_path / "serve.log", access_log=False)
        wait_ready(url, process)

        # night 4: a better challenger is promoted and the running service follows it
        fourth = cycle.run(settings, append_days=1, promote=True, notify=[url], progress=quiet)
        assert fourth.version == "4" and fourth.production == "v4 promoted to production"
        assert fourth.production_evidence.startswith("backtest: ")  # no shadow of v4 yet
        assert fourth.services == [f"{url}: serving v4 (changed: True)"]
        published = _published(settings, fourth)
        assert published["origin_date"].astype(str).eq(fourth.last_day).all()
        _assert_published_is_served(url, published, "4")

        # night 5: a refused challenger keeps production; the service answers the new day
        fifth = cycle.run(weak, append_days=1, promote=True, notify=[url], progress=quiet)
        assert fifth.version == "5" and fifth.staging.startswith("refused")
        assert fifth.production_version == "4"
        assert fifth.services == [f"{url}: serving v4 (changed: False)"]
        _assert_published_is_served(url, _published(settings, fifth), "4")
        # what the service answered on night 4 (logged) is what Feast recomputes offline
        [skew] = fifth.skew
        assert skew["clean"] and skew["rows"] > 0, skew["summary"]

        # the same night again: nothing new at all
        again = cycle.run(weak, promote=True, notify=[url], progress=quiet)
        assert not again.new_data and again.version is None
        # …and even when the record of it is lost: no new version, no duplicate rows
        (settings.data_dir / "nightly" / "state.json").unlink()
        rows_before = len(_table_rows(forecast_db))
        redo = cycle.run(weak, promote=True, notify=[url], progress=quiet)
        assert redo.new_data and redo.version == "5" and not redo.retrained
        assert len(client.search_model_versions(f"name = '{settings.model_name}'")) == 5
        table = _table_rows(forecast_db)
        assert len(table) == rows_before
        assert not table.duplicated(["store_id", "product_id", "origin_date", "target_date"]).any()
        assert set(table["origin_date"].astype(str)) == {fourth.last_day, fifth.last_day}

        # monitoring: night 5 scored v4's forecasts of its new day, in parquet and PostgreSQL,
        # and the night redone above added nothing to either
        assert fourth.monitoring == "nothing to score yet"
        assert fifth.monitoring.startswith("v4 live WAPE"), fifth.monitoring
        scored = ledger.read(settings)
        assert set(scored["model_version"].astype(str)) == {"4"}
        assert set(scored["target_date"].dt.strftime("%Y-%m-%d")) == {fifth.last_day}
        assert set(scored["horizon"]) == {1}
        # v4 was published with quantiles: the ledger keeps each with its pinball loss
        assert set(scored["quantiles"].astype(str)) == {"0.1,0.5,0.9"}
        assert scored[["units_p10", "units_p90", "pinball_p10", "pinball_p90"]].notna().all().all()
        with psycopg.connect(Database(forecast_db).conninfo()) as conn:
            in_table, with_pinball = conn.execute(
                "SELECT count(*), count(pinball_p90) FROM forecast_accuracy"
            ).fetchone()
        assert in_table == with_pinball == len(scored) > 0
    finally:
        if process is not None:
            stop(process)
        drop_database(forecast_db)


def test_a_night_with_bad_new_data_stops_before_anything_changes(tmp_path):
    settings = get_settings(data_dir=tmp_path / "data", scale="tiny", seed=7)
    pipeline.generate(settings, quiet)
    orders = settings.raw_dir / "orders.parquet"
    bad = pd.read_parquet(orders)
    bad.loc[0, "quantity"] = -3
    bad.to_parquet(orders, index=False)
    with pytest.raises(Exception, match="quantity"):
        cycle.run(settings, progress=quiet)
    assert not settings.feature_dir.exists()
    assert not (settings.data_dir / "nightly").exists()
