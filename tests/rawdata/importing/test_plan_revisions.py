"""Plans as known then: every revision of a plan is kept, and a plan without planned_at is
known at the later of (its period's start − N periods) and the import's time, never earlier.

Importing the same plans again, later, adds no revision: a plan stamped by the import
whose promo and price equal the newest stored revision is no new revision.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from demand.calendar import Grain
from rawdata import raw
from rawdata.importer import ImportOptions, run_import
from tests.rawdata.importing.files import NOW, base, write

HEADER = "store_id,product_id,date,promo,price,planned_at"


def _import(folder, raw_dir, now=NOW, **options):
    return run_import(folder, raw_dir, ImportOptions(**options), now=now, progress=lambda _: None)


def _plans(raw_dir) -> pd.DataFrame:
    frame = pd.read_parquet(raw_dir / "promotions.parquet")
    return frame.sort_values(["store_id", "product_id", "date", "planned_at"]).reset_index(
        drop=True
    )


def test_every_revision_is_kept_and_the_contract_holds(tmp_path):
    files = base()
    files["promotions.csv"] = [
        HEADER,
        "S1,P1,2024-06-10,true,7.5,2024-05-01T00:00:00Z",
        "S1,P1,2024-06-10,false,8.0,2024-05-20T00:00:00Z",  # a revision, in order
        "S1,P2,2024-06-10,true,6,2024-05-01T00:00:00Z",
    ]
    report, raw_dir = _import(write(tmp_path / "x", files), tmp_path / "raw"), tmp_path / "raw"
    assert [f.quarantined for f in report.files if f.table == "promotions"] == [0]
    plans = _plans(raw_dir)
    s1p1 = plans[(plans["store_id"] == "S1") & (plans["product_id"] == "P1")]
    assert s1p1["price"].tolist() == [7.5, 8.0]
    assert s1p1["planned_at"].dt.strftime("%Y-%m-%d").tolist() == ["2024-05-01", "2024-05-20"]
    raw.validate_raw(raw_dir)  # the key (store, product, date, planned_at) is unique


def test_a_plan_without_planned_at_is_never_back_dated(tmp_path):
    files = base()
    files["promotions.csv"] = [
        HEADER,
        "S1,P1,2024-01-03,true,7,",  # a past period: known when imported, not before
        "S1,P2,2024-06-10,true,7,",  # 9 days ahead, inside the 14 days: imported then
        "S2,P1,2024-09-02,false,7,",  # far ahead: known 14 days before it starts
    ]
    _import(write(tmp_path / "x", files), tmp_path / "raw")
    known = _plans(tmp_path / "raw").set_index(["store_id", "product_id"])["planned_at"]
    now = pd.Timestamp(NOW)
    assert known[("S1", "P1")] == now
    assert known[("S1", "P2")] == now
    assert known[("S2", "P1")] == pd.Timestamp("2024-08-19", tz="UTC")


def test_n_counts_periods_of_the_grain(tmp_path):
    """Weekly: 13 weeks by default, so every weekly horizon sees a plan imported in time."""
    files = base(weekly=True)
    files["promotions.csv"] = [HEADER, "S1,P1,2024-12-02,true,7,"]  # a Monday, as the sales
    _import(write(tmp_path / "x", files), tmp_path / "raw", grain=Grain.week)
    (known,) = _plans(tmp_path / "raw")["planned_at"]
    assert known == pd.Timestamp("2024-12-02", tz="UTC") - pd.Timedelta(weeks=13)
    _import(
        write(tmp_path / "y", files),
        tmp_path / "raw2",
        grain=Grain.week,
        promo_known_periods_before=2,
    )
    (known,) = _plans(tmp_path / "raw2")["planned_at"]
    assert known == pd.Timestamp("2024-12-02", tz="UTC") - pd.Timedelta(weeks=2)


def test_the_same_plans_imported_later_add_no_revision_and_a_change_does(tmp_path):
    files = base()
    files["promotions.csv"] = [HEADER, "S1,P1,2024-01-03,true,7,", "S1,P2,2024-01-03,true,6,"]
    raw_dir = tmp_path / "raw"
    _import(write(tmp_path / "one", files), raw_dir)
    first = _plans(raw_dir)
    again = _import(write(tmp_path / "two", files), raw_dir, now=NOW + timedelta(days=1))
    assert not again.changed
    pd.testing.assert_frame_equal(_plans(raw_dir), first)

    files["promotions.csv"][1] = "S1,P1,2024-01-03,false,7,"  # the promotion was called off
    _import(write(tmp_path / "three", files), raw_dir, now=NOW + timedelta(days=2))
    plans = _plans(raw_dir)
    s1p1 = plans[plans["product_id"] == "P1"]
    assert s1p1["promo"].tolist() == [True, False]  # both revisions, as known then
    assert s1p1["planned_at"].tolist() == [
        pd.Timestamp(NOW),
        pd.Timestamp(NOW + timedelta(days=2)),
    ]
    assert len(plans[plans["product_id"] == "P2"]) == 1
