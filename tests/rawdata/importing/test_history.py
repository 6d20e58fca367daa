"""A retailer's history as it is, through `demand import` in-process: dates from the early
1990s accepted, the grain read from the dates and shown, a stopped import that says why
file by file with example lines, and an earlier import that a stopped one never touches.

The input is the shipped weekly example (``examples/weekly``: two years of Sunday weeks
from 2023-01-01), shifted back by whole weeks so that the weekdays stay Sundays.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cli.main import main
from examples.generate import HERE as EXAMPLES
from rawdata.importer import ImportOptions, run_import
from tests.rawdata.importing.files import NOW, base, write

WEEKLY = EXAMPLES / "weekly"
TO_1993 = dt.timedelta(weeks=1565)  # 2023-01-01 → 1993-01-03, a Sunday
TO_1892 = dt.timedelta(weeks=6784)  # 2023-01-01 → 1892-12-25, a Sunday
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMAND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    monkeypatch.delenv("DEMAND_IMPORT_EARLIEST_DATE", raising=False)
    monkeypatch.delenv("DEMAND_IMPORT_LATEST_DATE", raising=False)
    return tmp_path / "data"


def shifted(target: Path, back: dt.timedelta) -> Path:
    """A copy of the weekly example with every date and instant moved ``back``."""
    target.mkdir(parents=True)
    for path in WEEKLY.glob("*.csv"):
        text = _DAY.sub(lambda m: str(dt.date.fromisoformat(m[0]) - back), path.read_text())
        (target / path.name).write_text(text)
    return target


def rows(folder: Path) -> dict[str, int]:
    """Data lines per file (header excluded)."""
    return {p.stem: len(p.read_text().splitlines()) - 1 for p in folder.glob("*.csv")}


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_history_from_the_early_1990s_is_imported_as_it_is(tmp_path, data_dir, capsys):
    folder = shifted(tmp_path / "export", TO_1993)
    assert main(["import", str(folder)]) == 0
    out = capsys.readouterr().out
    sales = rows(folder)["sales"]
    assert (
        f"{sales:,} dates in sales.csv from 1993-01-03 to 1995-01-01, all Sundays: weekly, "
        "weeks start on Sunday" in out
    )
    raw_dir = data_dir / "raw"
    for name, count in rows(folder).items():  # every row accepted
        assert len(pd.read_parquet(raw_dir / f"{name}.parquet")) == count, name
    assert not (raw_dir / "quarantine").exists()
    assert pd.read_parquet(raw_dir / "sales.parquet")["date"].min() == pd.Timestamp("1993-01-03")
    assert main(["validate"]) == 0


@pytest.mark.parametrize(
    ("back", "window", "reason", "note"),
    [
        # the reported failure: the former default window, older than every row
        (TO_1993, "2000-01-01", "date_out_of_range", "DEMAND_IMPORT_EARLIEST_DATE=2000-01-01"),
        (TO_1892, None, "impossible_date", "impossible_date: before 1900-01-01"),
    ],
    ids=["outside the window the user set", "before 1900"],
)
def test_a_stopped_import_prints_every_file_and_reason_with_example_lines(
    tmp_path, data_dir, capsys, monkeypatch, back, window, reason, note
):
    if window:
        monkeypatch.setenv("DEMAND_IMPORT_EARLIEST_DATE", window)
    folder = shifted(tmp_path / "export", back)
    first = str(dt.date(2023, 1, 1) - back)
    assert main(["import", str(folder), "--grain", "week"]) == 1
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    # the grain from the dates, whatever the checks make of the rows
    if reason == "date_out_of_range":
        evidence = f"5,025 dates in sales.csv from {first}"
        assert f"week, weeks start on sunday (declared); {evidence}" in out
    else:  # no possible date: the declaration stands alone
        assert "week, weeks start on monday (no readable date in sales.csv)" in out
    n = rows(folder)
    for name in ("sales", "weather_observed", "promotions"):
        assert re.search(rf"{name}\.csv\s+{n[name]:,}\s+0\s+{n[name]:,}\n", out), name
    assert re.search(rf"products\.csv\s+{n['products']:,}\s+{n['products']:,}\s+0\n", out)
    assert f"    {reason} {n['sales']:,}\n" in out
    assert f"line 2, date: {first}\n" in out  # the first example of sales and promotions
    assert "region_without_weather 4\n" in out and "line 2, region_id: R00\n" in out
    assert note in out
    assert f"sales.csv {n['sales']:,} quarantined ({reason} {n['sales']:,})" in err
    assert "nothing written" in err
    assert not (data_dir / "raw").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--grain", "day"],
            "--grain day, but 5,025 dates in sales.csv from 2023-01-01 to 2024-12-29, all "
            "Sundays: the data is weekly, weeks starting on Sunday",
        ),
        (
            ["--week-start", "thursday"],
            "--week-start thursday, but 5,025 dates in sales.csv from 2023-01-01 to "
            "2024-12-29, all Sundays: weeks start on Sunday",
        ),
    ],
)
def test_a_grain_the_dates_contradict_exits_2_with_the_evidence(data_dir, capsys, args, message):
    assert main(["import", str(WEEKLY), *args]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not (data_dir / "raw").exists()


def test_nothing_already_imported_is_lost_when_an_import_stops(tmp_path, data_dir, capsys):
    assert main(["import", str(WEEKLY)]) == 0
    raw_dir = data_dir / "raw"
    before = digests(raw_dir)
    sales = pd.read_parquet(raw_dir / "sales.parquet")

    mondays = shifted(tmp_path / "mondays", dt.timedelta(days=-1))
    latin1 = tmp_path / "latin1"
    shutil.copytree(WEEKLY, latin1)
    with open(latin1 / "stores.csv", "ab") as handle:
        handle.write("Sé,R00,1,1\n".encode("latin-1"))
    no_units = tmp_path / "no_units"
    shutil.copytree(WEEKLY, no_units)
    text = (no_units / "sales.csv").read_text()
    (no_units / "sales.csv").write_text(text.replace("units", "qty", 1))
    stops = [
        ([str(WEEKLY), "--grain", "day"], 2, "the raw data was imported at the week grain"),
        ([str(WEEKLY), "--week-start", "monday"], 2, "this import says week, weeks start on"),
        ([str(mondays)], 2, "the raw data holds weeks starting on Sunday, but 5,025 dates"),
        ([str(latin1)], 1, "stores.csv is not UTF-8"),
        ([str(no_units)], 1, "required column units missing"),
    ]
    capsys.readouterr()
    for args, code, message in stops:
        assert main(["import", *args]) == code, args
        assert message in capsys.readouterr().err.replace("\n", " "), args
        assert digests(raw_dir) == before, args

    # files whose every dated row is impossible: the earlier rows all stay
    assert main(["import", str(shifted(tmp_path / "ancient", TO_1892))]) == 0
    assert "impossible_date 5,025" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(raw_dir / "sales.parquet"), sales)


def test_examples_show_the_key_when_the_reason_names_no_column(tmp_path):
    files = base()
    files["sales.csv"] += ["S1,P1,2024-01-01,7,9.9,false", "S1,P1"]
    folder = write(tmp_path / "export", files)
    report = run_import(folder, tmp_path / "raw", now=NOW, progress=lambda _: None)
    sales = next(f for f in report.files if f.file == "sales.csv")
    assert [(e.reason, e.line, e.column, e.value) for e in sales.examples] == [
        ("conflicting_duplicate", 2, None, "store_id=S1 product_id=P1 date=2024-01-01"),
        ("conflicting_duplicate", 44, None, "store_id=S1 product_id=P1 date=2024-01-01"),
        ("wrong_field_count", 45, None, "S1,P1"),
    ]


def test_a_week_start_on_daily_data_is_noted_not_used(tmp_path):
    folder = write(tmp_path / "export", base())
    options = ImportOptions(week_start="thursday")
    report = run_import(folder, tmp_path / "raw", options, now=NOW, progress=lambda _: None)
    assert (report.grain, report.notes) == (
        "day",
        ["--week-start thursday is not used: the data is daily"],
    )
    assert report.evidence == (
        "42 dates in sales.csv from 2024-01-01 to 2024-01-07, on 7 weekdays, 14% of them "
        "Mondays: daily"
    )
