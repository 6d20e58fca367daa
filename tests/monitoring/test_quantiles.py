"""Quantiles in the forecast ledger, on the tiny retailer's sales: each published quantile
kept with its pinball loss, live coverage and wQL by horizon from the backtest's metric code
beside the version's backtest figures (a real MLflow run), older forecasts and ledgers
without quantiles, `demand monitor`'s lines and the report in a real browser."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from cli.main import main
from monitoring import accuracy, ledger, monitor
from tests.browser import render
from tests.monitoring.test_ledger import HORIZON, ORIGINS, _publish, _sales
from training.metrics import quantile_scores

LEVELS = (0.1, 0.5, 0.9)
NAMES = ["units_p10", "units_p50", "units_p90"]
KEYS = ["store_id", "product_id", "origin_date", "target_date"]
# what the version's run says its backtest did, per horizon and over all horizons
BACKTEST = {
    "wape": 0.5,
    "wql": 0.4,
    "interval_coverage": 0.8,
    "coverage_p10": 0.12,
    "coverage_p50": 0.55,
    "coverage_p90": 0.91,
    "wql_p10": 0.2,
    "wql_p50": 0.5,
    "wql_p90": 0.5,
    **{f"wape_h{h}": 0.4 + h / 100 for h in range(1, HORIZON + 1)},
    **{f"wql_h{h}": 0.3 + h / 100 for h in range(1, HORIZON + 1)},
    **{f"interval_coverage_h{h}": 0.7 + h / 100 for h in range(1, HORIZON + 1)},
}


def _add_quantiles(settings, seed: int = 3) -> None:
    """Seeded quantiles in each forecast file, as serving.batch writes them (sorted, whole
    units, a spread wide enough that some actuals fall outside)."""
    rng = np.random.default_rng(seed)
    for path in sorted(settings.forecast_dir.glob("origin=*.parquet")):
        frame = pd.read_parquet(path)
        low = rng.integers(0, 2, len(frame)).astype(float)
        mid = low + rng.integers(0, 3, len(frame))
        high = mid + rng.integers(0, 6, len(frame))
        frame.assign(units_p10=low, units_p50=mid, units_p90=high).to_parquet(path, index=False)


def _register(settings, metrics: dict[str, float]) -> None:
    """v1 of the model in the data dir's own MLflow, its run holding ``metrics``."""
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    experiment = client.create_experiment("ledger-quantiles")
    run = client.create_run(experiment)
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(settings.model_name)
    client.create_model_version(
        settings.model_name, str(settings.data_dir / "model"), run_id=run.info.run_id
    )


def _night(feature_env, tmp_path, quantiles: bool):
    settings = feature_env.model_copy(update={"data_dir": tmp_path / "data"})
    shutil.copytree(feature_env.feature_dir, settings.feature_dir)
    sales = _sales(settings)
    last = pd.Timestamp(max(sales["target_date"]))
    pairs = (
        sales[["store_id", "product_id"]].drop_duplicates().sort_values(["store_id", "product_id"])
    )
    origins = [last - pd.Timedelta(days=d) for d in range(ORIGINS + 3, 3, -1)]
    _publish(settings, pairs, origins)
    if quantiles:
        _add_quantiles(settings)
    _register(settings, BACKTEST)
    return settings, last


@pytest.fixture
def quantiled(feature_env, tmp_path):
    """Forecasts with P10, P50 and P90 of five origins, v1's backtest in MLflow."""
    return _night(feature_env, tmp_path, quantiles=True)


@pytest.fixture
def plain(feature_env, tmp_path):
    """The same forecasts published without quantiles (a version trained without them)."""
    return _night(feature_env, tmp_path, quantiles=False)


def _published(settings) -> pd.DataFrame:
    frame = pd.concat(
        pd.read_parquet(p) for p in sorted(settings.forecast_dir.glob("origin=*.parquet"))
    )
    frame["origin_date"] = pd.to_datetime(frame["origin_date"])
    frame["target_date"] = pd.to_datetime(frame["target_date"])
    return frame[[*KEYS, *NAMES]]


def _scored(settings) -> pd.DataFrame:
    """The ledger's counted rows with the quantiles as published (not as the ledger kept them)."""
    rows = ledger.read(settings, columns=[*KEYS, "horizon", "actual", "excluded"])
    rows = rows[rows["excluded"].isna()].astype({"store_id": str, "product_id": str})
    return rows.merge(_published(settings), on=KEYS, how="left", validate="one_to_one")


def _agrees(measured: accuracy.Accuracy, rows: pd.DataFrame) -> None:
    """Every live quantile figure, per horizon and over all, is what the backtest's own
    ``quantile_scores`` gives on the same rows and published quantiles."""
    table = measured.quantiles.set_index("horizon")
    groups = [(accuracy.ALL, rows), *rows.groupby("horizon")]
    assert sorted(table.index) == sorted(h for h, _ in groups)
    for horizon, part in groups:
        expected = quantile_scores(part["actual"], part[NAMES].to_numpy(), LEVELS)
        got = table.loc[horizon]
        assert got["rows"] == len(part)
        for name, value in expected.items():
            assert got[f"live_{name}"] == pytest.approx(value, rel=1e-12), (horizon, name)


def test_the_ledger_keeps_each_quantile_and_its_pinball_loss(quantiled):
    settings, _ = quantiled
    ledger.update(settings, progress=lambda _: None)
    rows = ledger.read(settings).astype({"store_id": str, "product_id": str})
    assert list(rows.columns[: len(ledger.COLUMNS)]) == ledger.COLUMNS
    assert set(rows["quantiles"]) == {"0.1,0.5,0.9"}
    published = _published(settings).rename(columns={n: f"published_{n}" for n in NAMES})
    rows = rows.merge(published, on=KEYS, how="left", validate="one_to_one")
    for level, name in zip(LEVELS, NAMES, strict=True):
        assert (rows[name] == rows[f"published_{name}"]).all()
        # by hand: the level's share of an under-forecast, the rest of an over-forecast
        gap = rows["actual"] - rows[name]
        hand = np.where(gap >= 0, level * gap, (1 - level) * -gap)
        pinball = rows[name.replace("units", "pinball")]
        assert np.allclose(pinball, hand, rtol=0, atol=1e-12)
    assert (rows["pinball_p90"] > 0).any() and (rows["pinball_p10"] == 0).any()


def test_live_coverage_and_wql_are_the_backtests_metric_beside_its_figures(quantiled):
    settings, last = quantiled
    ledger.update(settings, progress=lambda _: None)
    backtests = accuracy.backtest_metrics(settings, ["1"])  # read from the run, as WAPE's
    measured = accuracy.measure(settings, last.date(), backtests)
    rows = _scored(settings)
    _agrees(measured, rows)
    assert measured.no_quantiles == []
    table = measured.quantiles.set_index("horizon")
    # live coverage is neither trivially 0 nor 1 on this data
    assert 0 < table.loc[accuracy.ALL, "live_interval_coverage"] < 1
    assert 0 < table.loc[accuracy.ALL, "live_coverage_p10"] < 1
    # beside them, the run's figures for the same horizons
    assert table.loc[3, "backtest_interval_coverage"] == pytest.approx(0.73)
    assert table.loc[3, "backtest_wql"] == pytest.approx(0.33)
    assert table.loc[accuracy.ALL, "backtest_wql"] == pytest.approx(0.4)
    assert table.loc[accuracy.ALL, "backtest_coverage_p90"] == pytest.approx(0.91)
    # the run logs no per-level figure per horizon: absent, not made up
    assert np.isnan(table.loc[3, "backtest_coverage_p10"])
    assert table.loc[accuracy.ALL, "nominal_interval"] == pytest.approx(0.8)
    lines = accuracy.quantile_lines(measured)
    live = table.loc[3, "live_interval_coverage"]
    assert lines["v1 h3"].startswith(f"P10–P90 coverage {live:.2f} (backtest 0.73, nominal 0.80)")
    assert "P90 " in lines["v1 level coverage"] and "(backtest 0.91)" in lines["v1 level coverage"]
    assert len([k for k in lines if k.startswith("v1 h")]) == HORIZON


@pytest.mark.parametrize("planted", ["pinball", "coverage"])
def test_a_planted_wrong_pinball_or_coverage_is_caught(quantiled, planted):
    """The check above fails when the ledger holds a wrong pinball loss (or a quantile
    moved, which changes the coverage): it compares with the published forecasts."""
    settings, last = quantiled
    ledger.update(settings, progress=lambda _: None)
    path = ledger.partitions(settings)[-1]
    frame = pq.read_table(path).to_pandas()
    some = frame.index[::7]
    if planted == "pinball":
        frame.loc[some, "pinball_p90"] = frame.loc[some, "pinball_p90"] * 3 + 1
    else:
        frame.loc[some, "units_p10"] = frame.loc[some, "units_p10"] + 100
    frame.to_parquet(path, index=False)
    measured = accuracy.measure(settings, last.date(), {"1": BACKTEST})
    with pytest.raises(AssertionError):
        _agrees(measured, _scored(settings))


def test_forecasts_without_quantiles_say_so(plain):
    settings, last = plain
    ledger.update(settings, progress=lambda _: None)
    rows = ledger.read(settings)
    assert rows["quantiles"].isna().all() and "units_p10" not in rows
    measured = accuracy.measure(settings, last.date(), {"1": BACKTEST})
    assert measured.rows > 0 and measured.quantiles.empty
    assert measured.no_quantiles == ["1"]
    assert accuracy.quantile_lines(measured) == {
        "v1 quantiles": "no quantiles (published without quantile columns)"
    }
    # a ledger written before it kept quantiles has no such column at all: the same answer
    for path in ledger.partitions(settings):
        pq.write_table(pq.read_table(path, columns=ledger.COLUMNS), path)
    again = accuracy.measure(settings, last.date(), {"1": BACKTEST})
    assert again.no_quantiles == ["1"] and again.rows == measured.rows


def test_an_older_ledger_gains_the_quantiles_once(quantiled):
    settings, last = quantiled
    ledger.update(settings, progress=lambda _: None)
    first = accuracy.measure(settings, last.date(), {"1": BACKTEST}).quantiles
    # as the ledger was before it kept quantiles: no quantile columns, manifest without
    # the layout or the files' levels
    for path in ledger.partitions(settings):
        pq.write_table(pq.read_table(path, columns=ledger.COLUMNS), path)
    manifest_path = ledger.ledger_dir(settings) / ledger.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    for held in manifest["targets"].values():
        held.pop("format")
    for held in manifest["files"].values():
        held.pop("levels")
    manifest_path.write_text(json.dumps(manifest))
    older = accuracy.measure(settings, last.date(), {"1": BACKTEST})
    assert older.quantiles.empty and older.no_quantiles == ["1"]  # absent, said so

    update = ledger.update(settings, progress=lambda _: None)
    assert not update.periods_new and update.rows_changed == 0  # columns added, values kept
    assert sorted(update.periods_rescored) == [
        p.stem.removeprefix("target=") for p in ledger.partitions(settings)
    ]
    pd.testing.assert_frame_equal(
        accuracy.measure(settings, last.date(), {"1": BACKTEST}).quantiles, first
    )
    assert not ledger.update(settings, progress=lambda _: None).changed  # once


def test_a_forecast_file_without_quantiles_beside_ones_with(quantiled):
    """An origin published before the version had quantiles (or by one without): its rows
    count for WAPE, not for the quantile figures."""
    settings, last = quantiled
    path = sorted(settings.forecast_dir.glob("origin=*.parquet"))[0]
    pd.read_parquet(path).drop(columns=NAMES).to_parquet(path, index=False)
    ledger.update(settings, progress=lambda _: None)
    measured = accuracy.measure(settings, last.date(), {"1": BACKTEST})
    rows = _scored(settings)
    with_quantiles = rows[rows["units_p10"].notna()]
    assert 0 < len(with_quantiles) < len(rows) == measured.rows
    _agrees(measured, with_quantiles)


def test_monitor_prints_and_the_report_shows_the_quantiles(
    quantiled, clean_demand_env, monkeypatch, tmp_path, capsys
):
    settings, _ = quantiled
    monkeypatch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    monkeypatch.setenv("COLUMNS", "200")  # rich's table wide enough for whole lines
    assert main(["monitor"]) == 0
    out = capsys.readouterr().out
    assert "v1 h1" in out and "P10–P90 coverage" in out and "(backtest 0.71, nominal 0.80)" in out
    assert "v1 level coverage" in out

    assert main(["report"]) == 0
    page = settings.monitoring_dir / "report" / "report.html"
    assert (page.parent / "quantiles_by_horizon.png").stat().st_size > 0
    rendered = render(page, tmp_path / "report.png")
    assert rendered.problems == []
    assert rendered.images >= 5  # the quantile plot beside the four others
    text = page.read_text()
    assert "Quantiles: live vs backtest coverage and wQL by horizon" in text
    assert "live_interval_coverage" in text and "backtest_wql" in text
    assert "no quantiles" not in text


def test_a_version_without_quantiles_says_so_in_monitor_and_report(
    plain, clean_demand_env, monkeypatch, tmp_path, capsys
):
    settings, _ = plain
    monkeypatch.setenv("DEMAND_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["monitor"]) == 0
    assert "no quantiles" in capsys.readouterr().out
    assert main(["report"]) == 0
    page = settings.monitoring_dir / "report" / "report.html"
    assert "v1: no quantiles" in page.read_text()
    assert not (page.parent / "quantiles_by_horizon.png").exists()
    assert render(page, tmp_path / "report.png").problems == []
    assert monitor.read_last(settings)["night"]


@pytest.mark.postgres
def test_an_older_postgresql_ledger_gains_the_quantile_columns(quantiled):
    import uuid

    import psycopg

    from demand.servers import Database
    from tests.servers import drop_database, require_servers

    require_servers(redis=False)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/demand_test_{uuid.uuid4().hex[:10]}"
    settings = quantiled[0].model_copy(update={"forecast_db_url": url})
    database = Database(url)
    database.ensure()
    try:
        with psycopg.connect(database.conninfo()) as conn:
            # the table as the ledger made it before it kept quantiles
            conn.execute(
                """CREATE TABLE forecast_accuracy (
                    model_name text NOT NULL, model_version text NOT NULL,
                    origin_date date NOT NULL, target_date date NOT NULL,
                    horizon integer NOT NULL, store_id text NOT NULL, product_id text NOT NULL,
                    category text, forecast double precision, actual double precision,
                    error double precision, abs_error double precision, excluded text,
                    PRIMARY KEY (model_name, model_version, store_id, product_id,
                                 origin_date, target_date)
                )"""
            )
        ledger.update(settings, progress=lambda _: None)
        rows = ledger.read(settings)
        with psycopg.connect(database.conninfo()) as conn:
            count, p90, label = conn.execute(
                "SELECT count(*), sum(pinball_p90), min(quantiles) FROM forecast_accuracy"
            ).fetchone()
        assert count == len(rows) > 0 and label == "0.1,0.5,0.9"
        assert p90 == pytest.approx(rows["pinball_p90"].sum())
    finally:
        drop_database(url)
