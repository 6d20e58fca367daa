"""The import's corpus: one broken row (or file) per case, each with the reason it must get.

Every case asserts the reason and column of each quarantined row, its line as the user
sees it (header = line 1), that accepted + quarantined = read for every file, and that
the raw table holds exactly the good rows (none lost, none invented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd
import pytest

from demand.calendar import Grain
from demand.console import UserError
from rawdata import raw
from rawdata.importer import GrainContradiction, ImportOptions, ImportStopped, run_import
from rawdata.importing.tables import SPECS
from tests.rawdata.importing.files import NOW, base, keys_of, table_keys, write

PROMOTIONS = [
    "store_id,product_id,date,promo,price,planned_at",
    "S1,P1,2024-06-10,true,7.5,2024-05-01T00:00:00Z",
    "S2,P2,2024-07-01,,8,",
]


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    add: list[str]  # lines appended to the file
    reasons: list[tuple[str, str | None]]  # (reason, column) of each appended line
    kind: str = "sales"  # the base export: sales (daily), weekly, orders
    earlier: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # base lines too
    grain: Grain | None = None
    promotions: bool = False
    promo_column: bool = False  # order lines with the optional promo column
    options: dict = field(default_factory=dict)  # more ImportOptions (a date window)
    stock_column: bool = False  # sales with the optional on_hand column
    assortment: bool = False  # with an assortment file


CASES = [
    # aggregated sales
    Case(
        "units not a number",
        "sales.csv",
        ["S1,P1,2024-01-03,abc,9.9,true"],
        [("wrong_type", "units")],
    ),
    Case("units NaN", "sales.csv", ["S1,P1,2024-01-08,nan,9.9,true"], [("wrong_type", "units")]),
    Case("null store key", "sales.csv", [",P1,2024-01-08,1,9.9,true"], [("null_key", "store_id")]),
    Case(
        "null product key",
        "sales.csv",
        ["S1, ,2024-01-08,1,9.9,true"],
        [("null_key", "product_id")],
    ),
    Case(
        "missing units", "sales.csv", ["S1,P1,2024-01-08,,9.9,true"], [("missing_value", "units")]
    ),
    Case(
        "negative units",
        "sales.csv",
        ["S1,P1,2024-01-08,-3,9.9,true"],
        [("negative_units", "units")],
    ),
    Case("impossible date", "sales.csv", ["S1,P1,2024-13-45,1,9.9,true"], [("wrong_type", "date")]),
    Case(
        "date before 1900",
        "sales.csv",
        ["S1,P1,1899-12-31,1,9.9,true"],
        [("impossible_date", "date")],
    ),
    Case(
        "date before the window the user sets",
        "sales.csv",
        ["S1,P1,2022-12-31,1,9.9,true"],
        [("date_out_of_range", "date")],
        options={"earliest": date(2023, 1, 1)},
    ),
    Case(
        "sale in the future",
        "sales.csv",
        ["S1,P1,2024-06-02,1,9.9,true"],
        [("future_date", "date")],
    ),
    Case(
        "unknown store",
        "sales.csv",
        ["S9,P1,2024-01-08,1,9.9,true"],
        [("unknown_store", "store_id")],
    ),
    Case(
        "unknown product",
        "sales.csv",
        ["S1,P9,2024-01-08,1,9.9,true"],
        [("unknown_product", "product_id")],
    ),
    Case(
        "negative price",
        "sales.csv",
        ["S1,P1,2024-01-08,1,-9.9,true"],
        [("negative_price", "price")],
    ),
    Case(
        "promo not a flag", "sales.csv", ["S1,P1,2024-01-08,1,9.9,maybe"], [("wrong_type", "promo")]
    ),
    Case("wrong field count", "sales.csv", ["S1,P1,2024-01-08"], [("wrong_field_count", None)]),
    Case(
        "identical duplicate kept once",
        "sales.csv",
        ["S1,P1,2024-01-01,0.5,9.9,false"],
        [("duplicate_row", None)],
    ),
    Case(
        "conflicting duplicates all quarantined",
        "sales.csv",
        ["S1,P1,2024-01-01,7,9.9,false"],
        [("conflicting_duplicate", None)],
        earlier={2: ("conflicting_duplicate", None)},
    ),
    # weekly sales
    Case(
        "weekly sale not on the week's first day",
        "sales.csv",
        ["S1,P1,2024-01-16,1,9.9,true"],
        [("not_period_start", "date")],
        kind="weekly",
        grain=Grain.week,
    ),
    # stores, products, weather
    Case(
        "store region without weather",
        "stores.csv",
        ["S4,R9,1,1"],
        [("region_without_weather", "region_id")],
    ),
    Case("latitude out of range", "stores.csv", ["S4,R1,95,1"], [("impossible_value", "latitude")]),
    Case(
        "conflicting store rows",
        "stores.csv",
        ["S5,R1,1,1", "S5,R2,1,1"],
        [("conflicting_duplicate", None), ("conflicting_duplicate", None)],
    ),
    Case("null category", "products.csv", ["P3,,10,1"], [("null_key", "category")]),
    Case(
        "negative lifespan",
        "products.csv",
        ["P3,ink,-5,1"],
        [("impossible_value", "lifespan_days")],
    ),
    Case(
        "temperature 99 °C",
        "weather_observed.csv",
        ["R1,2024-01-20,99"],
        [("impossible_weather", "temperature_c")],
    ),
    Case(
        "weather in the future",
        "weather_observed.csv",
        ["R1,2024-07-20,9"],
        [("future_date", "date")],
    ),
    Case(
        "weather date not a date",
        "weather_observed.csv",
        ["R1,yesterday,9"],
        [("wrong_type", "date")],
    ),
    Case("null region", "weather_observed.csv", [",2024-01-20,9"], [("null_key", "region_id")]),
    Case(
        "weather before 1900",
        "weather_observed.csv",
        ["R1,1850-01-20,9"],
        [("impossible_date", "date")],
    ),
    # order lines
    Case(
        "fractional quantity",
        "orders.csv",
        ["O99,C1,S1,2024-01-03T10:00:00Z,P1,1.5,20"],
        [("non_integer_quantity", "quantity")],
        kind="orders",
    ),
    Case(
        "zero quantity",
        "orders.csv",
        ["O99,C1,S1,2024-01-03T10:00:00Z,P1,0,20"],
        [("non_positive_quantity", "quantity")],
        kind="orders",
    ),
    Case(
        "negative quantity",
        "orders.csv",
        ["O99,C1,S1,2024-01-03T10:00:00Z,P1,-2,20"],
        [("non_positive_quantity", "quantity")],
        kind="orders",
    ),
    Case(
        "null customer",
        "orders.csv",
        ["O99,,S1,2024-01-03T10:00:00Z,P1,2,20"],
        [("null_key", "customer_id")],
        kind="orders",
    ),
    Case(
        "duplicated order line",
        "orders.csv",
        ["O1,C1,S1,2024-01-01T10:00:00Z,P1,2,20"],
        [("duplicate_row", None)],
        kind="orders",
    ),
    Case(
        "conflicting order lines",
        "orders.csv",
        ["O1,C1,S1,2024-01-01T10:00:00Z,P1,5,20"],
        [("conflicting_duplicate", None)],
        kind="orders",
        earlier={2: ("conflicting_duplicate", None)},
    ),
    Case(
        "order in the future",
        "orders.csv",
        ["O99,C1,S1,2024-06-01T13:00:00Z,P1,2,20"],
        [("future_date", "ordered_at")],
        kind="orders",
    ),
    Case(
        "order before 1900",
        "orders.csv",
        ["O99,C1,S1,1899-06-01T10:00:00Z,P1,2,20"],
        [("impossible_date", "ordered_at")],
        kind="orders",
    ),
    Case(
        "order for an unknown product",
        "orders.csv",
        ["O99,C1,S1,2024-01-03T10:00:00Z,P7,2,20"],
        [("unknown_product", "product_id")],
        kind="orders",
    ),
    Case(
        "order timestamp not a time",
        "orders.csv",
        ["O99,C1,S1,noon,P1,2,20"],
        [("wrong_type", "ordered_at")],
        kind="orders",
    ),
    Case(
        "order line with an empty promo flag",
        "orders.csv",
        ["O99,C1,S1,2024-01-03T10:00:00Z,P1,2,20,"],
        [("missing_value", "promo")],
        kind="orders",
        promo_column=True,
    ),
    # planned promotions
    Case(
        "plan recorded in the future",
        "promotions.csv",
        ["S1,P2,2024-06-10,true,,2024-06-05T00:00:00Z"],
        [("future_date", "planned_at")],
        promotions=True,
    ),
    Case(
        "plan with neither promo nor price",
        "promotions.csv",
        ["S1,P2,2024-06-10,,,"],
        [("empty_plan", None)],
        promotions=True,
    ),
    Case(
        # was a traceback: the raw tables' nanosecond timestamps end in 2262
        "plan dated after 2199",
        "promotions.csv",
        ["S1,P2,2300-06-12,true,,"],
        [("impossible_date", "date")],
        promotions=True,
    ),
    Case(
        "plan recorded before 1900",
        "promotions.csv",
        ["S1,P2,2024-06-10,true,,1899-01-01T00:00:00Z"],
        [("impossible_date", "planned_at")],
        promotions=True,
    ),
    Case(
        "plan after the window the user sets",
        "promotions.csv",
        ["S1,P2,2025-01-06,true,,"],
        [("date_out_of_range", "date")],
        promotions=True,
        options={"latest": date(2024, 12, 31)},
    ),
    Case(
        "plan revision dated before an earlier one",
        "promotions.csv",
        ["S1,P1,2024-06-10,false,7,2024-04-01T00:00:00Z"],
        [("revision_out_of_order", "planned_at")],
        promotions=True,
    ),
    # stock and assortment
    Case(
        "negative stock on hand",
        "sales.csv",
        ["S1,P1,2024-01-08,1,9.9,true,-2"],
        [("negative_stock", "on_hand")],
        stock_column=True,
    ),
    Case(
        "listing that ends before it starts",
        "assortment.csv",
        ["S2,P1,2024-03-01,2024-02-01"],
        [("listed_to_before_from", "listed_to")],
        assortment=True,
    ),
    Case(
        "listing of an unknown product",
        "assortment.csv",
        ["S2,P9,2024-03-01,"],
        [("unknown_product", "product_id")],
        assortment=True,
    ),
    Case(
        "plan for an unknown store",
        "promotions.csv",
        ["S8,P2,2024-06-10,true,,"],
        [("unknown_store", "store_id")],
        promotions=True,
    ),
]


def _run(tmp_path, files, **options):
    folder = write(tmp_path / "export", files)
    raw_dir = tmp_path / "data" / "raw"
    report = run_import(folder, raw_dir, ImportOptions(**options), now=NOW, progress=lambda _: None)
    return report, raw_dir


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(tmp_path, case: Case):
    files = base(case.kind if case.kind != "weekly" else "sales", weekly=case.kind == "weekly")
    if case.promotions:
        files["promotions.csv"] = list(PROMOTIONS)
    if case.promo_column:
        lines = files["orders.csv"]
        files["orders.csv"] = [lines[0] + ",promo"] + [
            f"{x},{i % 2}" for i, x in enumerate(lines[1:])
        ]
    if case.stock_column:
        lines = files["sales.csv"]
        files["sales.csv"] = [lines[0] + ",on_hand"] + [
            f"{x},{i % 3}" for i, x in enumerate(lines[1:])
        ]
    if case.assortment:
        files["assortment.csv"] = ["store_id,product_id,listed_from,listed_to", "S1,P1,2024-01-01,"]
    first = len(files[case.file]) + 1  # the line number of the first appended line
    files[case.file] = files[case.file] + case.add
    report, raw_dir = _run(tmp_path, files, grain=case.grain, **case.options)

    expected = {(first + i, r, c) for i, (r, c) in enumerate(case.reasons)}
    expected |= {(line, r, c) for line, (r, c) in case.earlier.items()}
    table = case.file.removesuffix(".csv")
    quarantine = pd.read_parquet(raw_dir / "quarantine" / f"{table}.parquet")
    got = {
        (int(r.line), r.reason, None if pd.isna(r.column) else r.column)
        for r in quarantine.itertuples()
    }
    assert got == expected
    assert set(quarantine["source_file"]) == {case.file}

    raw.validate_raw(raw_dir)  # what the import wrote meets the contract every build checks
    for summary in report.files:  # no row lost anywhere
        lines = [x for x in files[summary.file][1:] if x.strip()]
        assert summary.read == len(lines), summary
        assert summary.accepted + summary.quarantined == summary.read, summary
        spec = SPECS[summary.table]
        skipped = {line for line, _, _ in expected} if summary.file == case.file else set()
        assert summary.quarantined == len(skipped), summary
        # a plan without planned_at gets one: compared by store, product and period
        key = spec.key[:3] if summary.table == "promotions" else spec.key
        good = keys_of(files[summary.file], key, skipped)
        assert table_keys(raw_dir, summary.table, key) == good, summary.table
        assert len(pd.read_parquet(raw_dir / f"{summary.table}.parquet")) == summary.accepted


def test_the_corpus_is_at_least_thirty_cases():
    assert len(CASES) >= 30


# Imports refused whole, before a row is judged or after every row was: (id, the base
# export, what is done to it, options, the error, what its message must say). Nothing is
# written; a stopped import's report names every file's reasons and example lines.
def _before_1900(files):
    files["sales.csv"] = [files["sales.csv"][0]] + [
        line.replace("2024-", "1894-") for line in files["sales.csv"][1:]
    ]


REFUSED = [
    (
        "--grain day on weekly dates",
        "weekly",
        None,
        {"grain": Grain.day},
        GrainContradiction,
        "--grain day, but 12 dates in sales.csv from 2024-01-01 to 2024-01-08, all Mondays: "
        "the data is weekly, weeks starting on Monday",
    ),
    (
        "--grain week on daily dates",
        "sales",
        None,
        {"grain": Grain.week},
        GrainContradiction,
        "--grain week, but 42 dates in sales.csv from 2024-01-01 to 2024-01-07, on 7 "
        "weekdays, 14% of them Mondays: the data is daily",
    ),
    (
        "--week-start the dates contradict",
        "weekly",
        None,
        {"week_start": "thursday"},
        GrainContradiction,
        "--week-start thursday, but 12 dates in sales.csv from 2024-01-01 to 2024-01-08, "
        "all Mondays: weeks start on Monday",
    ),
    (
        "--grain week --week-start the dates contradict",
        "weekly",
        None,
        {"grain": Grain.week, "week_start": "sunday"},
        GrainContradiction,
        "--week-start sunday, but 12 dates in sales.csv",
    ),
    (
        "every sale before 1900",
        "sales",
        _before_1900,
        {},
        ImportStopped,
        "no row accepted: sales.csv 42 quarantined (impossible_date 42); nothing written",
    ),
]


@pytest.mark.parametrize(
    ("kind", "change", "options", "error", "message"),
    [r[1:] for r in REFUSED],
    ids=[r[0] for r in REFUSED],
)
def test_refused(tmp_path, kind, change, options, error, message):
    files = base(weekly=kind == "weekly")
    if change:
        change(files)
    with pytest.raises(UserError) as raised:
        _run(tmp_path, files, **options)
    assert type(raised.value) is error
    assert message in str(raised.value)
    assert not (tmp_path / "data" / "raw").exists()
    assert not (tmp_path / "data" / "raw.next").exists()
    if error is ImportStopped:  # every file's counts and the first lines of each reason
        sales = next(f for f in raised.value.report.files if f.file == "sales.csv")
        assert (sales.read, sales.accepted, sales.reasons) == (42, 0, {"impossible_date": 42})
        shown = [(e.line, e.column, e.value) for e in sales.examples]
        assert shown == [(line, "date", "1894-01-01") for line in (2, 3, 4)]
        others = [f for f in raised.value.report.files if f.file != "sales.csv"]
        assert all(f.quarantined == 0 and f.accepted == f.read for f in others)
