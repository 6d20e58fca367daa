"""The realistic retailer (``synthetic/realistic.py``): deterministic and fixed by a digest,
shaped like a real weekly export, and imported with every row accepted except the
deliberately broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.main import main
from synthetic import realistic

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "realistic"
# `make examples` on 2026-12-06; the README quotes it. A model tuned on this export is
# tuned on these bytes: change the generator and this changes (issue 21).
DIGEST = "130d92a566c726e9416a1d8e57140c544bc518edb65b822c8f03d96ad48b7093"
KEY = ["store_id", "product_id", "date"]


@pytest.fixture(scope="module")
def data() -> realistic.Realistic:
    return realistic.realistic("example")


def _clean(data: realistic.Realistic, name: str) -> pd.DataFrame:
    """A file's rows without the broken ones, typed."""
    frame = data.files[name]
    lines = data.broken.loc[data.broken["file"] == f"{name}.csv", "line"]
    frame = frame.drop(index=lines.to_numpy() - 2)
    for column in ("date", "planned_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column])
    for column in ("units", "price", "temperature_c"):
        if column in frame:
            frame[column] = frame[column].astype(float)
    if "promo" in frame:
        frame["promo"] = frame["promo"] == "1"
    return frame


@pytest.fixture(scope="module")
def sales(data) -> pd.DataFrame:
    return _clean(data, "sales")


# --- fixed data ----------------------------------------------------------------------


def test_same_seed_same_files(data):
    again = realistic.realistic("example")
    for name, frame in data.files.items():
        pd.testing.assert_frame_equal(frame, again.files[name], obj=name)
    pd.testing.assert_frame_equal(data.broken, again.broken)


def test_another_seed_other_files(data):
    other = realistic.realistic("example", seed=1993)
    assert not other.files["sales"].equals(data.files["sales"])


def test_the_shipped_example_is_what_the_generator_writes(tmp_path):
    realistic.write(tmp_path)
    shipped = sorted(p.name for p in EXAMPLE.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == shipped
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), (
            f"{name}: run `make examples`"
        )


def test_the_shipped_example_has_its_recorded_digest():
    assert realistic.digest(EXAMPLE) == DIGEST, (
        "examples/realistic changed: models are compared on these bytes (issue 21); if the "
        "change is meant, record the new digest here and in docs/benchmarks.md, with the date"
    )


# --- the shape of a real export --------------------------------------------------------


def test_weeks_start_on_thursday_and_history_before_1995(data, sales):
    plan = _clean(data, "promotions")
    assert set(sales["date"].dt.day_name()) == {"Thursday"}
    assert set(plan["date"].dt.day_name()) == {"Thursday"}
    assert sales["date"].min().year < 1995
    assert (sales["date"].max() - sales["date"].min()).days >= 2 * 364  # two years


def test_fifty_stores_and_more(data, sales):
    assert len(data.files["stores"]) >= 50
    assert sales["store_id"].nunique() >= 50


def test_volumes_are_heavy_tailed(sales):
    per_series = sales.groupby(["store_id", "product_id"])["units"]
    total = per_series.sum().sort_values(ascending=False)
    top = int(np.ceil(0.01 * len(total)))
    assert total.iloc[:top].sum() > 0.3 * total.sum()  # the top 1% of series: 40 %
    mean = per_series.mean()
    assert mean.median() < 50  # most series small
    assert ((mean >= 1e5) & (mean <= 1e6)).sum() >= 2  # a few at 10^5–10^6 a week
    assert sales["units"].max() <= 1e7


def test_prices_in_dollars_with_temporary_cuts_and_promotions(data, sales):
    assert sales["price"].between(0.09, 20).all()
    assert (data.files["sales"]["price"].str.fullmatch(r"-?\d+\.\d9")).all()  # $2.49
    regular = sales.groupby(["store_id", "product_id"])["price"].transform("max")
    cut = sales["price"] < regular
    assert (cut & ~sales["promo"]).mean() > 0.03  # temporary price cuts, not promoted
    assert (cut & sales["promo"]).mean() > 0.03  # promotions
    assert (sales["promo"] <= cut).all()  # a promotion always cuts the price


def test_promotions_lift_two_to_five_times_and_price_cuts_by_elasticity(data):
    weeks = data.truth["weeks"].merge(data.truth["products"][["product_id", "elasticity"]])
    promoted = weeks[weeks["promo"]]
    assert promoted["lift"].between(2, 5).all()
    tpr = weeks[~weeks["promo"]]
    assert np.allclose(tpr["lift"], (tpr["price"] / tpr["regular_price"]) ** tpr["elasticity"])
    assert (tpr["lift"] > 1.1).any()
    # and in the units sold: a listing's promoted weeks against its weeks at regular price
    sold = weeks[~weeks["stockout"]]
    plain = sold[(sold["lift"] == 1)].groupby(["store_id", "product_id"])["units"].mean()
    lifted = promoted[~promoted["stockout"]].groupby(["store_id", "product_id"])["units"]
    ratio = (lifted.mean() / plain)[(lifted.size() >= 3) & (plain >= 5)]
    assert len(ratio) >= 20 and 2 <= ratio.median() <= 5


def test_slow_movers_sell_intermittently(data, sales):
    pairs = data.truth["pairs"].set_index(["store_id", "product_id"])
    weeks_listed = (pairs["end_week"] - pairs["first_week"]).rename("listed")
    rows = sales.groupby(["store_id", "product_id"]).size().rename("rows")
    share = pd.concat([weeks_listed, rows], axis=1).fillna(0)
    share = share["rows"] / share["listed"]
    assert (share < 0.6).sum() >= 10  # weeks without a sale: no row


def test_new_and_delisted_items(data, sales):
    first, last = sales["date"].min(), sales["date"].max()
    span = sales.groupby("product_id")["date"].agg(["min", "max"])
    assert (span["min"] > first + pd.Timedelta(weeks=8)).any()  # launched late
    assert (span["max"] < last - pd.Timedelta(weeks=8)).any()  # delisted chain-wide
    listing = sales.groupby(["store_id", "product_id"])["date"].agg(["min", "max"])
    listing = listing.join(span, on="product_id", rsuffix="_product")
    # a store dropping an item the chain still sells
    assert (listing["max"] < listing["max_product"] - pd.Timedelta(weeks=8)).sum() >= 3


def test_stock_outs_cut_the_sales(data):
    weeks = data.truth["weeks"]
    out = weeks[weeks["stockout"]]
    assert out[["store_id", "product_id"]].drop_duplicates().shape[0] >= 20
    assert out["units"].sum() < 0.5 * out["demand"].sum()
    assert (out["units"] == 0).sum() >= 20  # whole weeks out of stock: no row at all


def test_weather_days_are_missing(data):
    weather = _clean(data, "weather_observed")
    days = pd.date_range(weather["date"].min(), weather["date"].max())
    counts = weather.groupby("region_id")["date"].nunique()
    assert (counts < len(days)).all()  # every region misses days
    gaps = weather.sort_values("date").groupby("region_id")["date"].diff().dt.days
    assert gaps.max() >= 10  # a station's outage
    assert weather["temperature_c"].between(-40, 45).all()


def test_plans_are_made_ahead_and_some_revised(data):
    plan = _clean(data, "promotions")
    assert (plan["planned_at"] < plan["date"]).all()
    revised = plan[plan.duplicated(KEY, keep=False)]
    assert revised.groupby(KEY).size().eq(2).all()
    first, last = revised.groupby(KEY).nth(0), revised.groupby(KEY).nth(1)
    assert (first["planned_at"].to_numpy() < last["planned_at"].to_numpy()).all()
    changed = (first["price"].to_numpy() != last["price"].to_numpy()) | (
        first["promo"].to_numpy() != last["promo"].to_numpy()
    )
    assert changed.all() and len(revised) >= 50
    # a cancelled promotion: planned as one, revised to none at the regular price
    assert (first["promo"].to_numpy() & ~last["promo"].to_numpy()).sum() >= 5


def test_the_broken_rows_are_listed_where_they_are(data):
    assert sorted(data.broken["reason"]) == sorted(b[1] for b in realistic.BROKEN)
    for row in data.broken.itertuples():
        frame = data.files[row.file.removesuffix(".csv")]
        written = frame.iloc[row.line - 2]
        if row.reason == "duplicate_row":
            assert written.equals(frame.iloc[row.line - 3])
        elif row.reason == "null_key":
            assert written[row.column] == ""
        elif row.reason in ("negative_units", "negative_price"):
            assert written[row.column].startswith("-")
    listed = (EXAMPLE / "BROKEN.md").read_text()
    assert all(f"| {r.file} | {r.line} | {r.reason} |" in listed for r in data.broken.itertuples())


# --- imported as it comes --------------------------------------------------------------


def _import(folder: Path, data_dir: Path, monkeypatch) -> pd.DataFrame:
    """`demand import folder` in-process; the quarantined rows (file, line, reason)."""
    monkeypatch.setenv("DEMAND_DATA_DIR", str(data_dir))
    assert main(["import", str(folder)]) == 0
    quarantine = sorted((data_dir / "raw" / "quarantine").glob("*.parquet"))
    rows = pd.concat([pd.read_parquet(p) for p in quarantine], ignore_index=True)
    return rows[["source_file", "line", "reason"]].rename(columns={"source_file": "file"})


def _expected(data) -> pd.DataFrame:
    return data.broken[["file", "line", "reason"]].sort_values(["file", "line"])


def _sorted(quarantined: pd.DataFrame) -> pd.DataFrame:
    return quarantined.sort_values(["file", "line"]).reset_index(drop=True)


def test_the_import_with_default_settings_accepts_all_but_the_broken_rows(
    data, tmp_path, monkeypatch, clean_demand_env
):
    quarantined = _import(EXAMPLE, tmp_path / "data", monkeypatch)
    expected = _expected(data).reset_index(drop=True)
    pd.testing.assert_frame_equal(_sorted(quarantined), expected)


def test_the_import_quarantines_exactly_the_broken_rows_when_1992_is_allowed(
    data, tmp_path, monkeypatch, clean_demand_env
):
    """As above, under a date window the user sets that admits the whole history."""
    monkeypatch.setenv("DEMAND_IMPORT_EARLIEST_DATE", "1900-01-01")
    quarantined = _import(EXAMPLE, tmp_path / "data", monkeypatch)
    expected = _expected(data).reset_index(drop=True)
    pd.testing.assert_frame_equal(_sorted(quarantined), expected)
    raw = tmp_path / "data" / "raw"
    broken = (data.broken["file"] == "sales.csv").sum()
    assert len(pd.read_parquet(raw / "sales.parquet")) == len(data.files["sales"]) - broken


def test_the_import_keeps_every_plan_revision(data, tmp_path, monkeypatch, clean_demand_env):
    monkeypatch.setenv("DEMAND_IMPORT_EARLIEST_DATE", "1900-01-01")
    quarantined = _import(EXAMPLE, tmp_path / "data", monkeypatch)
    plans = quarantined[quarantined["file"] == "promotions.csv"].reset_index(drop=True)
    expected = _expected(data)
    expected = expected[expected["file"] == "promotions.csv"].reset_index(drop=True)
    pd.testing.assert_frame_equal(plans, expected)
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "promotions.parquet")
    assert len(stored) == len(data.files["promotions"]) - len(expected)
