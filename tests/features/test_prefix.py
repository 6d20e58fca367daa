"""The prefix test on the tiny retailer: no feature row known at T reads anything after T.

See ``tests/leakage.py``. Each T is a day of the history: one in the middle, and
the day before and the day of a snapshot of the lifespan and co-purchase
estimates (a snapshot taken at the close of T is known at T; the next is not).
"""

from __future__ import annotations

import pandas as pd
import pytest

from features import build_duckdb, plan
from features.transforms import Windows
from rawdata import raw
from synthetic import generator
from tests.leakage import (
    assert_prefix_stable,
    close_of,
    compare,
    perturb_after,
)

WINDOWS = Windows()


@pytest.fixture(scope="module")
def frames(tiny):
    return tiny.tables()


@pytest.fixture(scope="module")
def first_day(frames):
    return frames["orders"]["ordered_at"].min().tz_convert(None).normalize()


@pytest.fixture(scope="module")
def full(frames):
    return build_duckdb.compute(frames)


@pytest.mark.parametrize(
    "offset",
    [105, 4 * WINDOWS.lifespan_every - 1, 4 * WINDOWS.lifespan_every],
    ids=["middle", "day-before-snapshot", "snapshot-day"],
)
def test_rows_known_at_t_ignore_everything_after_t(frames, full, first_day, offset):
    assert_prefix_stable(build_duckdb.compute, frames, first_day + pd.Timedelta(days=offset), full)


def test_through_raw_files_and_the_file_build(frames, first_day, tmp_path):
    """The path a retailer's own files take: validated parquet in, parquet feature tables out."""
    runs = iter(range(10))

    def from_files(tables):
        run = tmp_path / str(next(runs))
        raw.write_raw(dict(tables), run / "raw")  # the perturbed data meets the contract too
        build_duckdb.build(run / "raw", run / "features")
        return {
            name: pd.read_parquet(run / "features" / f"{name}.parquet")
            for name in plan.FEATURE_TABLES
        }

    assert_prefix_stable(from_files, frames, first_day + pd.Timedelta(days=140))


def test_the_perturbation_reaches_every_dated_table(frames, full, first_day):
    """A perturbation that changed nothing would make the test above pass vacuously."""
    close = close_of(first_day + pd.Timedelta(days=105))
    perturbed = build_duckdb.compute(perturb_after(frames, close))
    everything = pd.Timestamp.max.tz_localize("UTC")
    changed = {c.table for c in compare(full, perturbed, everything, "perturbed")}
    assert changed >= {
        "store_product_daily",
        "store_product_replenishment",
        "product_lifespan",
        "region_weather_daily",
        "region_weather_climate",
        "region_weather_forecast",
    }


def _plant(monkeypatch, step: str, old: str, new: str) -> None:
    """Rewrite part of the SQL of the build's intermediate relation ``step``."""

    def edit(sql: str) -> str:
        assert old in sql, f"{step} no longer contains {old!r}: update the planted leak"
        return sql.replace(old, new)

    steps = tuple(
        (name, (lambda w, sql=sql: edit(sql(w))) if name == step else sql)
        for name, sql in plan.ORDER_LINE_STEPS
    )
    monkeypatch.setattr(plan, "ORDER_LINE_STEPS", steps)


def test_a_planted_lead_is_caught(monkeypatch, frames, first_day):
    """units_lag_1 reading the next day, with every stamp as it was."""
    lead = "LEAD(units) OVER (PARTITION BY store_id, product_id ORDER BY day) AS units_lag_1"
    _plant(monkeypatch, "purchase_features", "units AS units_lag_1", lead)
    with pytest.raises(AssertionError) as caught:
        assert_prefix_stable(build_duckdb.compute, frames, first_day + pd.Timedelta(days=105))
    assert "store_product_daily.units_lag_1:" in str(caught.value)


def test_a_pairing_over_the_whole_history_is_caught(monkeypatch, frames, first_day):
    """Every co-purchase snapshot counting every basket, later ones included (issue 11)."""
    every = WINDOWS.copurchase_every
    _plant(
        monkeypatch,
        "copurchase_partners",
        f"s.day = c.snapshot_day + o.k * {every}",
        "o.k = 0",
    )
    with pytest.raises(AssertionError) as caught:
        assert_prefix_stable(build_duckdb.compute, frames, first_day + pd.Timedelta(days=105))
    assert "store_product_daily.copurchase_partner_id:" in str(caught.value)
    assert "store_product_daily.partner_units_lag_1:" in str(caught.value)


def test_the_nightly_append_changes_no_row_known_before_it(tiny, full):
    """The daily cycle: a night's new days (`demand generate --append-days`) rebuild the
    tables; every row known when the previous last day closed stays as it was."""
    later = generator.generate("tiny", seed=7, extra_days=7)
    last_day = tiny.orders["ordered_at"].max()
    assert later.orders["ordered_at"].max() > close_of(last_day)
    changes = compare(full, build_duckdb.compute(later.tables()), close_of(last_day), "appended")
    assert not changes, "\n".join(map(str, changes))
