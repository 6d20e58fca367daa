"""A pair's active life, censored periods and age in the sales feature table (``active``,
``censored``, ``weeks_since_first_sale``).

Worked out by hand on a weekly export (tests/life.py) of seven pairs: a regular seller
that stops, a slow mover whose long gaps are its normal, a pair the assortment table lists
for a while, a pair whose rows carry the ``active`` flag, one with stock on hand, and one
never sold. The status of a week is known when the week closes: more weeks never change it
(the prefix rule), and an incremental build writes what a full build writes.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features import build_duckdb
from features import transforms as t
from synthetic import aggregate
from tests.life import WEEKS, life_export


@pytest.fixture(scope="module")
def export():
    return life_export()


def _status(tables, description, product) -> pd.DataFrame:
    out = build_duckdb.compute(tables, description=description)["store_product_weekly"]
    return _rows_of(out, product)


def _rows_of(out: pd.DataFrame, product) -> pd.DataFrame:
    rows = out[out["product_id"] == product].sort_values("event_timestamp")
    week = (rows["event_timestamp"] - pd.Timedelta(days=7)).dt.tz_convert(None)
    columns = ["units_lag_1", "active", "censored", "weeks_since_first_sale"]
    return rows.assign(week=week).set_index("week")[columns]


def _inactive_weeks(status: pd.DataFrame, weeks) -> list[int]:
    index = {w: i for i, w in enumerate(weeks)}
    return [index[w] for w in status.index[status["active"] == 0]]


def test_a_regular_seller_is_inactive_from_its_eighth_quiet_week(export):
    tables, description, _, products, weeks = export
    assert t.WEEKLY.inactive_after == 8
    status = _status(tables, description, products[0])
    # last sale in week 19: weeks 20-26 are seven quiet weeks, week 27 the eighth
    assert _inactive_weeks(status, weeks) == list(range(27, WEEKS))


def test_a_slow_mover_is_not_stopped_by_its_usual_gaps(export):
    tables, description, _, products, weeks = export
    status = _status(tables, description, products[1])
    assert _inactive_weeks(status, weeks) == []  # five quiet weeks at a time, its normal

    def inactive(after: int, multiple: float) -> list[int]:
        w = t.Windows(**{**t.WEEKLY.__dict__, "inactive_after": after})
        w = t.Windows(**{**w.__dict__, "inactive_gap_multiple": multiple})
        out = build_duckdb.compute(tables, windows=w, description=description)
        rows = out["store_product_weekly"]
        return _inactive_weeks(_rows_of(rows, products[1]), weeks)

    # three quiet weeks alone stop it in every gap; its mean gap (6 weeks, known from its
    # second sale on) keeps it active once it has one
    assert inactive(3, 0) == [w + k for w in range(0, 54, 6) for k in (3, 4, 5)]
    assert inactive(3, 1) == [3, 4, 5]


def test_a_stopped_pairs_quiet_run_must_also_reach_four_of_its_gaps(export):
    tables, description, _, products, weeks = export
    # a sale every 3 weeks: 12 quiet weeks (4 × 3) before it counts as stopped
    status = _status(tables, description, products[5])
    assert _inactive_weeks(status, weeks) == list(range(24 + 12, WEEKS))
    # never sold: quiet from its first row on
    status = _status(tables, description, products[6])
    assert _inactive_weeks(status, weeks) == list(range(7, WEEKS))


def test_the_assortment_table_overrides_the_rule(export):
    tables, description, _, products, weeks = export
    status = _status(tables, description, products[2])
    # listed through week 30: quiet weeks 10-30 are real zeros, 31 on not carried
    assert _inactive_weeks(status, weeks) == list(range(31, WEEKS))


def test_a_rows_active_flag_decides_its_week(export):
    tables, description, _, products, weeks = export
    status = _status(tables, description, products[3])
    # last sale week 9: week 12 flagged not carried, 17 on stopped by the rule, 40 flagged
    expected = [12, *range(17, 40), *range(41, WEEKS)]
    assert _inactive_weeks(status, weeks) == expected


def test_a_week_with_nothing_on_hand_is_censored(export):
    tables, description, _, products, weeks = export
    status = _status(tables, description, products[4])
    assert status.index[status["censored"] == 1].tolist() == [weeks[46]]
    assert (status["active"] == 1).all()


def test_a_pairs_age_counts_weeks_from_its_first_sale_not_its_first_row(export):
    tables, description, _, products, weeks = export
    age = _status(tables, description, products[0])["weeks_since_first_sale"]
    assert age.tolist() == list(range(WEEKS))  # 0 in the week of the first sale
    assert _status(tables, description, products[6])["weeks_since_first_sale"].isna().all()
    # the never-sold pair sells in week 4: its zero rows before say nothing of its age
    sales = tables["sales"]
    first = (sales["product_id"] == products[6]) & (sales["date"] == weeks[4])
    sold = {**tables, "sales": sales.assign(units=sales["units"].where(~first, 2.0))}
    age = _status(sold, description, products[6])["weeks_since_first_sale"]
    assert age.iloc[:4].isna().all()
    assert age.iloc[4:].tolist() == list(range(WEEKS - 4))


def test_the_status_of_a_week_ignores_every_later_week(export):
    tables, description, _, products, weeks = export
    cut = weeks[35]
    early = {**tables, "sales": tables["sales"][tables["sales"]["date"] <= cut]}
    for product in products[:7]:
        whole = _status(tables, description, product)
        known = _status(early, description, product)
        pd.testing.assert_frame_equal(whole.loc[known.index], known)


def test_an_incremental_build_writes_the_status_a_full_build_writes(export, tmp_path):
    tables, description, _, _, weeks = export
    before = {**tables, "sales": tables["sales"][tables["sales"]["date"] <= weeks[33]]}
    for name, frames in (("before", before), ("after", tables)):
        aggregate.write(aggregate.Aggregated(frames, description), tmp_path / name)
    # short windows: the incremental grid starts at week 31, after every pair's last sale
    # but the slow mover's and the stock pair's, so the status reads what came before it
    w = t.Windows(**{**t.WEEKLY.__dict__, "lags": (1, 2), "short": 2, "long": 4})
    build_duckdb.build(tmp_path / "before", tmp_path / "previous", windows=w)
    report = build_duckdb.build(
        tmp_path / "after", tmp_path / "incremental", windows=w, previous=tmp_path / "previous"
    )
    assert report.mode.startswith("incremental")
    build_duckdb.build(tmp_path / "after", tmp_path / "full", windows=w)
    columns = ["store_id", "product_id", "event_timestamp", "active", "censored"]
    columns += ["weeks_since_first_sale"]

    def read(folder):
        frame = pd.read_parquet(folder / "store_product_weekly.parquet", columns=columns)
        return frame.sort_values(columns[:3]).reset_index(drop=True)

    pd.testing.assert_frame_equal(read(tmp_path / "incremental"), read(tmp_path / "full"))
    assert (read(tmp_path / "full")["active"] == 0).sum() > 50
