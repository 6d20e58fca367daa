"""The shadow policy through real nights on the tiny retailer: a challenger keeps staging
while it collects live evidence (each night's new version is registered, not staged),
then the production gate judges it on that evidence, which decides both ways.

Real Feast, CatBoost, MLflow (SQLite) and DuckDB; the forecasts and shadows also go to a
PostgreSQL database of the test's own (the team profile's tables).
"""

from __future__ import annotations

import uuid

import pandas as pd
import psycopg
import pytest
from mlflow import MlflowClient

from demand.servers import Database
from demand.settings import get_settings
from features import pipeline
from monitoring import shadow
from nightly import cycle
from serving.batch import SHADOW_TABLE
from tests.servers import drop_database, require_servers

pytestmark = [pytest.mark.nightly, pytest.mark.usefixtures("clean_demand_env")]

NIGHTS = 2  # of live evidence before the production gate judges a challenger on it


def quiet(_: str) -> None:
    pass


def _aliases(client, settings) -> dict[str, str]:
    found = client.get_registered_model(settings.model_name).aliases
    return {alias: str(version) for alias, version in found.items()}


def _shadow_table(url: str) -> pd.DataFrame:
    with psycopg.connect(Database(url).conninfo()) as conn:
        cursor = conn.execute(
            f"SELECT model_version, store_id, product_id, origin_date, target_date, units "
            f"FROM {SHADOW_TABLE}"
        )
        return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])


def test_a_challenger_is_held_in_staging_then_judged_on_live_evidence(tmp_path):
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
        # the windows of test_cycle.py: the model beats the baselines every night
        test_days=28,
        validation_days=21,
        gate_margin=0.25,
        shadow_nights=NIGHTS,
        forecast_db_url=forecast_db,
    )
    assert settings.nightly_shadow_hold  # the default
    pipeline.generate(settings, quiet)
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        # night 1: no production to shadow: v1 goes through both gates on its backtest
        first = cycle.run(settings, promote=True, progress=quiet)
        assert first.production == "v1 promoted to production", first.production
        assert first.production_evidence.startswith("backtest: no production version yet")
        assert first.challenger is None and first.shadow == []

        # night 2: v2 takes staging and is shadowed beside production, not judged
        second = cycle.run(settings, append_days=1, promote=True, progress=quiet)
        assert second.staging == "v2 promoted to staging"
        assert second.production.startswith("not run: v2 is shadowed beside production first")
        assert second.production_evidence is None
        assert _aliases(client, settings) == {"production": "1", "staging": "2"}
        assert any(SHADOW_TABLE in place for place in second.shadow), second.shadow

        # night 3: v2 has 1 of 2 nights: it keeps staging; v3 is registered, not staged
        third = cycle.run(settings, append_days=1, promote=True, progress=quiet)
        held = "v2 stays in staging collecting live evidence (1 of 2 nights of live evidence)"
        assert third.version == "3" and third.retrained
        assert third.challenger == held
        assert third.staging == f"v3 registered, not staged: {held}"
        assert third.production == f"not run: {held}"
        assert _aliases(client, settings) == {"production": "1", "staging": "2"}
        # v2's shadow in PostgreSQL is its parquet, night by night, never duplicated
        parquet = shadow.shadow_forecasts(settings, "2")
        table = _shadow_table(forecast_db)
        assert set(table["model_version"]) == {"2"}
        assert len(table) == len(parquet) > 0
        assert not table.duplicated(shadow.KEY).any()
        days = {second.last_day, third.last_day}
        assert set(table["origin_date"].astype(str)) == days
        assert set(parquet["origin_date"].dt.strftime("%Y-%m-%d")) == days
        merged = table.assign(
            origin_date=pd.to_datetime(table["origin_date"]),
            target_date=pd.to_datetime(table["target_date"]),
        ).merge(parquet, on=shadow.KEY, suffixes=("_table", "_parquet"))
        assert len(merged) == len(parquet)
        assert merged["units_table"].to_numpy() == pytest.approx(merged["units_parquet"])

        # night 4: 2 of 2 nights: the production gate judges v2 on them, and v4 takes staging
        fourth = cycle.run(settings, append_days=1, promote=True, progress=quiet)
        assert fourth.challenger == (
            "v2 has 2 of 2 nights of live evidence: the production gate judges it"
        )
        assert fourth.production == "v2 promoted to production", fourth.production
        evidence = fourth.production_evidence
        assert evidence.startswith("live (shadow against production): WAPE"), evidence
        assert "2 of 2 nights" in evidence and "v2 (shadow) against v1 (production)" in evidence
        assert fourth.staging == "v4 promoted to staging"
        assert _aliases(client, settings) == {"production": "2", "staging": "4"}

        # night 5, one night asked: v4's shadow, planted three times too high, is what the
        # gate reads; live evidence refuses it (its backtest is as good as v2's was) and
        # v5 takes staging, v4 goes back to candidate
        for path in (shadow.shadow_dir(settings) / "version=4").glob("origin=*.parquet"):
            frame = pd.read_parquet(path)
            frame.assign(units=frame["units"] * 3).to_parquet(path, index=False)
        one = settings.model_copy(update={"shadow_nights": 1})
        fifth = cycle.run(one, append_days=1, promote=True, progress=quiet)
        assert fifth.challenger.startswith("v4 has 1 of 1 nights of live evidence")
        assert fifth.production.startswith("refused: no worse than production, live: WAPE")
        assert "upper end > margin 0.25" in fifth.production
        assert fifth.production_evidence.startswith("live (shadow against production): ")
        assert fifth.staging == "v5 promoted to staging"
        assert _aliases(client, settings) == {"production": "2", "staging": "5"}
        assert fifth.production_version == "2"
    finally:
        drop_database(forecast_db)


def _published(folder, origin: str, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"model_version": [version], "units": [1.0]}).to_parquet(
        folder / f"origin={origin}.parquet", index=False
    )


def test_a_shadow_that_stopped_is_said(tmp_path):
    settings = get_settings(data_dir=tmp_path / "data")
    assert shadow.stalled(settings, "5", "4") == ""  # nothing published yet: starting
    for day in ("2024-03-01", "2024-03-02"):
        _published(settings.forecast_dir, day, "4")
        _published(shadow.shadow_dir(settings) / "version=5", day, "5")
    assert shadow.stalled(settings, "5", "4") == ""  # every night shadowed
    _published(settings.forecast_dir, "2024-03-03", "4")  # production went on alone
    assert shadow.stalled(settings, "5", "4") == (
        "v5's shadow stopped at origin 2024-03-02 while production v4 published through 2024-03-03"
    )
    # production moved (by hand) to v6, which has published nothing yet: not behind it
    assert shadow.stalled(settings, "5", "6") == ""
