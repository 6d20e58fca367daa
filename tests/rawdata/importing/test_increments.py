"""Importing again: the same files change nothing; newer files append, and win per key
with the rows they replace kept in the import history; a failed import changes nothing."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from demand.console import UserError
from rawdata.importer import run_import
from tests.rawdata.importing.files import NOW, base, write


def _bytes(raw_dir) -> dict[str, str]:
    """A digest of every file of the raw dir except the import history."""
    return {
        str(p.relative_to(raw_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(raw_dir.rglob("*"))
        if p.is_file() and "imports" not in p.parts
    }


def _import(folder, raw_dir):
    return run_import(folder, raw_dir, now=NOW, progress=lambda _: None)


def test_the_same_files_twice_change_nothing(tmp_path):
    files = base()
    files["sales.csv"].append("S1,P1,2024-01-08,-1,1,true")  # a quarantined row too
    folder = write(tmp_path / "export", files)
    raw_dir = tmp_path / "raw"
    first = _import(folder, raw_dir)
    before = _bytes(raw_dir)
    history = sorted(p.name for p in (raw_dir / "imports").iterdir())
    second = _import(folder, raw_dir)
    assert first.changed and not second.changed
    (record,) = (raw_dir / "imports").iterdir()
    kept = pd.read_parquet(record / "quarantine" / "sales.parquet")
    assert kept["reason"].tolist() == ["negative_units"]
    assert _bytes(raw_dir) == before
    assert sorted(p.name for p in (raw_dir / "imports").iterdir()) == history
    assert [f.accepted for f in second.files] == [f.accepted for f in first.files]


def test_the_same_parquet_files_twice_give_byte_identical_tables(tmp_path):
    folder = write(tmp_path / "export", base())
    for name in ("sales", "stores"):
        pd.read_csv(folder / f"{name}.csv").to_parquet(folder / f"{name}.parquet", index=False)
        (folder / f"{name}.csv").unlink()
    _import(folder, tmp_path / "a")
    _import(folder, tmp_path / "b")
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_a_later_import_appends_and_wins_per_key(tmp_path):
    raw_dir = tmp_path / "raw"
    first = base()
    _import(write(tmp_path / "one", first), raw_dir)
    before = pd.read_parquet(raw_dir / "sales.parquet")

    # the next export: only sales, one week later, overlapping one day with new figures
    later = {
        "sales.csv": [
            "store_id,product_id,date,units,price,promo",
            "S1,P1,2024-01-07,40,9.9,true",  # replaces the row of the first import
            "S2,P2,2024-01-07,1.5,9.9,true",  # the same values as before: not a replacement
            "S1,P1,2024-01-08,3,9.9,false",  # new
            "S3,P2,2024-01-08,2,9.9,false",  # new
        ]
    }
    old = before.set_index(["store_id", "product_id", "date"])
    same = old.loc[("S2", "P2", pd.Timestamp("2024-01-07"))]
    later["sales.csv"][2] = (
        f"S2,P2,2024-01-07,{same['units']},{same['price']},{str(same['promo']).lower()}"
    )
    report = _import(write(tmp_path / "two", later), raw_dir)

    after = pd.read_parquet(raw_dir / "sales.parquet").set_index(["store_id", "product_id", "date"])
    assert len(after) == len(before) + 2
    assert after.loc[("S1", "P1", pd.Timestamp("2024-01-07")), "units"] == 40
    assert after.loc[("S1", "P1", pd.Timestamp("2024-01-08")), "units"] == 3
    untouched = old.drop(index=[("S1", "P1", pd.Timestamp("2024-01-07"))])
    pd.testing.assert_frame_equal(after.loc[untouched.index], untouched)
    # the reference tables of the first import are still there, byte for byte
    assert (raw_dir / "stores.parquet").exists() and (raw_dir / "weather_observed.parquet").exists()

    assert report.replaced == {"sales": 1}
    records = sorted((raw_dir / "imports").iterdir())
    assert len(records) == 2
    replaced = pd.read_parquet(records[-1] / "replaced_sales.parquet")
    expected = old.loc[[("S1", "P1", pd.Timestamp("2024-01-07"))]].reset_index()
    pd.testing.assert_frame_equal(replaced, expected)
    assert (records[-1] / "summary.json").exists()
    assert not (raw_dir / "quarantine").exists()  # the latest import quarantined nothing


def test_a_failed_import_leaves_the_previous_raw_tables(tmp_path):
    raw_dir = tmp_path / "raw"
    _import(write(tmp_path / "one", base()), raw_dir)
    before = _bytes(raw_dir)
    broken = {"sales.csv": ["store_id,product_id,date", "S1,P1,2024-01-08"]}  # no units
    with pytest.raises(UserError, match="units"):
        _import(write(tmp_path / "two", broken), raw_dir)
    assert _bytes(raw_dir) == before
    assert not (tmp_path / "raw.next").exists()


def test_an_import_keeps_its_kind_and_grain(tmp_path):
    raw_dir = tmp_path / "raw"
    _import(write(tmp_path / "one", base()), raw_dir)
    orders = {"orders.csv": base("orders")["orders.csv"]}
    with pytest.raises(UserError, match="imported as sales"):
        _import(write(tmp_path / "two", orders), raw_dir)


def test_new_sales_are_checked_against_earlier_stores(tmp_path):
    raw_dir = tmp_path / "raw"
    _import(write(tmp_path / "one", base()), raw_dir)
    later = {
        "sales.csv": [
            "store_id,product_id,date,units",
            "S3,P1,2024-01-08,2",
            "S7,P1,2024-01-08,2",
        ]
    }
    report = _import(write(tmp_path / "two", later), raw_dir)
    assert report.files[0].reasons == {"unknown_store": 1}
    sales = pd.read_parquet(raw_dir / "sales.parquet")
    assert sales["price"].isna().sum() == 1  # the new row brought no price: null, not made up
