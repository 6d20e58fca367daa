"""Whole files: rejected with a message and nothing written; the reading options; the grain."""

from __future__ import annotations

import pandas as pd
import pytest

from demand.calendar import Grain, RawDescription
from demand.console import UserError
from rawdata.importer import ImportOptions, run_import
from rawdata.importing.read import ReadOptions
from tests.rawdata.importing.files import NOW, base, write


def _import(tmp_path, files, encoding="utf-8", **options):
    folder = write(tmp_path / "export", files, encoding)
    raw_dir = tmp_path / "data" / "raw"
    return run_import(folder, raw_dir, ImportOptions(**options), now=NOW, progress=lambda _: None)


def _refused(tmp_path, files, match, encoding="utf-8", **options):
    with pytest.raises(UserError, match=match):
        _import(tmp_path, files, encoding, **options)
    assert not (tmp_path / "data" / "raw").exists()  # nothing written
    assert not (tmp_path / "data" / "raw.next").exists()


def test_missing_required_column(tmp_path):
    files = base()
    files["sales.csv"] = [",".join(line.split(",")[:3]) for line in files["sales.csv"]]
    _refused(tmp_path, files, r"sales.csv: required column units missing.*--map")


def test_empty_file(tmp_path):
    files = base()
    files["stores.csv"] = []
    _refused(tmp_path, files, "stores.csv is empty")


def test_header_without_rows(tmp_path):
    files = base()
    files["products.csv"] = files["products.csv"][:1]
    _refused(tmp_path, files, "products.csv has a header but no rows")


def test_not_utf8(tmp_path):
    files = base()
    files["stores.csv"].append("Sé,R1,1,1")
    _refused(tmp_path, files, "stores.csv is not UTF-8", encoding="latin-1")


def test_unreadable_parquet(tmp_path):
    files = base()
    write(tmp_path / "export", files)
    (tmp_path / "export" / "sales.csv").unlink()
    (tmp_path / "export" / "sales.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match=r"sales\.parquet: not a readable Parquet file"):
        run_import(tmp_path / "export", tmp_path / "data" / "raw", now=NOW, progress=print)
    assert not (tmp_path / "data" / "raw").exists()


def test_a_first_import_needs_the_reference_tables(tmp_path):
    files = base()
    del files["weather_observed.csv"]
    _refused(tmp_path, files, "no weather_observed file")


def test_weather_without_any_measure(tmp_path):
    files = base()
    files["weather_observed.csv"] = [
        ",".join(x.split(",")[:2]) for x in files["weather_observed.csv"]
    ]
    _refused(tmp_path, files, "no weather measure")


def test_mixed_grains_are_refused(tmp_path):
    files = base(weekly=True)  # Mondays
    files["sales.csv"].append("S1,P1,2024-01-03,1,9.9,true")  # a Wednesday
    _refused(tmp_path, files, "sales.csv mixes grains")


def test_weekly_grain_and_week_start_are_detected(tmp_path):
    files = base(weekly=True)
    sundays = [
        line.replace("2024-01-01", "2023-12-31").replace("2024-01-08", "2024-01-07")
        for line in files["sales.csv"]
    ]
    files["sales.csv"] = sundays
    report = _import(tmp_path, files)
    assert (report.grain, report.week_start) == ("week", "sunday")
    described = RawDescription.read(tmp_path / "data" / "raw")
    assert (described.grain, described.week_start, described.sales_table.value) == (
        Grain.week,
        "sunday",
        "sales",
    )
    assert described.weather_measures == ("temperature_c",)
    assert described.optional_tables == ()


def test_options_delimiter_decimal_date_format_and_renames(tmp_path):
    files = base()
    european = {}
    for name, lines in files.items():
        out = []
        for line in lines:
            cells = line.split(",")
            cells = [
                pd.Timestamp(c).strftime("%d/%m/%Y") if c.startswith("2024-") else c for c in cells
            ]
            cells = [c.replace(".", ",") for c in cells]
            out.append(";".join(cells))
        european[name] = out
    european["sales.csv"][0] = european["sales.csv"][0].replace("units", "qty")
    report = _import(
        tmp_path,
        european,
        read=ReadOptions(
            delimiter=";", decimal=",", date_format="%d/%m/%Y", renames={"qty": "units"}
        ),
    )
    assert all(f.quarantined == 0 for f in report.files)
    sales = pd.read_parquet(tmp_path / "data" / "raw" / "sales.parquet")
    expected = pd.Series([float(x.split(",")[3]) for x in files["sales.csv"][1:]])
    assert sales["units"].sum() == pytest.approx(expected.sum())
    assert sales["date"].min() == pd.Timestamp("2024-01-01")


def test_parquet_rows_are_numbered_from_one(tmp_path):
    files = base()
    folder = write(tmp_path / "export", files)
    sales = pd.read_csv(folder / "sales.csv")
    sales.loc[4, "units"] = -1.0
    sales.to_parquet(folder / "sales.parquet", index=False)
    (folder / "sales.csv").unlink()
    report = run_import(folder, tmp_path / "raw", now=NOW, progress=lambda _: None)
    quarantine = pd.read_parquet(tmp_path / "raw" / "quarantine" / "sales.parquet")
    assert quarantine[["line", "reason", "units"]].values.tolist() == [
        [5, "negative_units", "-1.0"]
    ]
    summary = next(f for f in report.files if f.table == "sales")
    assert (summary.read, summary.accepted) == (len(sales), len(sales) - 1)


def test_blank_lines_keep_the_line_numbers(tmp_path):
    files = base()
    files["sales.csv"] = [*files["sales.csv"][:3], "", "", *files["sales.csv"][3:]]
    files["sales.csv"].append("S1,P1,2024-01-08,-1,1,true")
    _import(tmp_path, files)
    quarantine = pd.read_parquet(tmp_path / "data" / "raw" / "quarantine" / "sales.parquet")
    assert quarantine["line"].tolist() == [len(files["sales.csv"])]


def test_plans_without_planned_at_are_known_fourteen_days_before_or_when_imported(tmp_path):
    files = base()
    files["promotions.csv"] = [
        "store_id,product_id,date,promo,price",
        "S1,P1,2024-06-20,true,7.5",
        "S1,P2,2024-06-10,true,7.5",  # 14 days before is before the import: not back-dated
    ]
    _import(tmp_path, files)
    plans = pd.read_parquet(tmp_path / "data" / "raw" / "promotions.parquet")
    assert plans["planned_at"].tolist() == [pd.Timestamp("2024-06-06", tz="UTC"), pd.Timestamp(NOW)]
    assert str(plans["promo"].dtype) == "bool" and plans["price"].tolist() == [7.5, 7.5]


def test_prices_is_another_name_for_promotions(tmp_path):
    files = base()
    files["prices.csv"] = ["store_id,product_id,date,price", "S1,P1,2024-06-10,7.5"]
    report = _import(tmp_path, files)
    assert ("promotions", "prices.csv") in {(f.table, f.file) for f in report.files}
    assert RawDescription.read(tmp_path / "data" / "raw").optional_tables == ("promotions",)


def test_orders_and_sales_together_are_refused(tmp_path):
    files = base()
    files["orders.csv"] = base("orders")["orders.csv"]
    _refused(tmp_path, files, "bring one of them")
