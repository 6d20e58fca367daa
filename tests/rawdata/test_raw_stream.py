"""The generator's chunked output and the bounded raw-table gate, on small specs.

The m5 scale itself (33 M rows) is measured by hand (docs/benchmarks.md, scales); here the same
code paths run on a few days of it and on the tiny order-line retailer split into
one-store chunks.
"""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demand.calendar import RawDescription, SalesTable
from rawdata import raw
from rawdata.schemas import DataContractError
from synthetic import generator


def _sales(days=10, chunk=None, **more) -> pa.Table:
    stream = generator.stream("m5", seed=7, days=days, chunk=chunk, **more)
    return pa.concat_tables(c.rows for c in stream.chunks)


def test_m5_rows_do_not_depend_on_the_chunk_size():
    whole = _sales(chunk=10)
    assert whole.num_rows > 30_000 * 10  # every stocked series, every day
    assert _sales(chunk=3).equals(whole)


def test_m5_same_seed_same_sales_other_seed_other_sales():
    first = _sales(days=4)
    assert _sales(days=4).equals(first)
    other = pa.concat_tables(c.rows for c in generator.stream("m5", seed=8, days=4).chunks)
    assert not other.column("units").equals(first.column("units"))


def test_m5_sales_are_intermittent_and_carry_the_drivers():
    sales = _sales(days=21).to_pandas()
    zero_share = (sales["units"] == 0).mean()
    assert 0.3 < zero_share < 0.9, zero_share
    promo = sales.groupby("promo")["units"].mean()
    assert promo[True] > 1.4 * promo[False]  # PROMO_LIFT 1.8, less the noise
    weekday = sales.groupby(sales["date"].dt.dayofweek)["units"].mean()
    assert weekday[5] > 1.2 * weekday[1]  # Saturday 1.30 against Tuesday 0.85


def test_m5_appended_days_keep_every_earlier_row():
    before = generator.stream("m5", seed=7, days=10)
    after = generator.stream("m5", seed=7, days=10, extra_days=2)
    old = pa.concat_tables(c.rows for c in before.chunks)
    new = pa.concat_tables(c.rows for c in after.chunks)
    assert new.num_rows == old.num_rows * 12 // 10
    assert new.slice(0, old.num_rows).equals(old)
    when = {"weather_observed": "date", "weather_forecast": "issued_at"}
    for name, frame in before.tables.items():
        later = after.tables[name]
        if name in when:
            later = later[later[when[name]] <= frame[when[name]].max()].reset_index(drop=True)
            assert len(later) < len(after.tables[name])
        pd.testing.assert_frame_equal(frame, later, obj=name)


def test_m5_is_not_held_in_memory_whole():
    with pytest.raises(ValueError, match="too many rows to hold in memory"):
        generator.generate("m5")


def test_sales_written_one_row_group_per_chunk_and_validated_in_batches(tmp_path):
    rows = raw.write_stream(
        generator.stream("m5", seed=7, days=10, chunk=3), tmp_path, lambda _: None, 100_000
    )
    written = pq.ParquetFile(tmp_path / "sales.parquet")
    assert written.metadata.num_row_groups == 4  # 3 + 3 + 3 + 1 days
    assert written.read().equals(_sales())
    assert rows["sales"] == written.metadata.num_rows
    assert RawDescription.read(tmp_path).sales_table is SalesTable.sales
    assert not (tmp_path / "orders.parquet").exists()
    assert raw.validate_raw(tmp_path, batch_rows=50_000) == raw.validate_raw(tmp_path)


def test_order_lines_written_per_store_chunk_are_the_generated_orders(tmp_path, tiny):
    raw.write_stream(generator.stream("tiny", seed=7, chunk=1), tmp_path, lambda _: None)
    written = pq.ParquetFile(tmp_path / "orders.parquet")
    assert written.metadata.num_row_groups == 4  # one per store
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "orders.parquet"), tiny.orders)
    assert generator.generate("tiny", seed=7, chunk=3).orders.equals(tiny.orders)


def _planted(tiny, tmp_path):
    """A raw dir whose orders break the contract in several ways, spread over the file."""
    raw.write_raw(tiny.tables(), tmp_path)
    orders = pd.read_parquet(tmp_path / "orders.parquet")
    orders.loc[[10, 20_000, 40_000], "quantity"] = -1
    orders.loc[[15, 30_000], "store_id"] = "S999"
    orders.loc[25_000, "product_id"] = None
    orders.to_parquet(tmp_path / "orders.parquet", index=False)


def _failures(tmp_path, batch_rows):
    with pytest.raises(DataContractError) as caught:
        raw.validate_raw(tmp_path, batch_rows=batch_rows)
    return sorted(caught.value.violations, key=str)


def test_batches_report_what_the_whole_table_reports(tiny, tmp_path):
    _planted(tiny, tmp_path)
    whole = _failures(tmp_path, batch_rows=10_000_000)
    assert {(v.column, v.rows) for v in whole} >= {
        ("quantity", 3),
        ("product_id", 1),
    }
    assert _failures(tmp_path, batch_rows=7_000) == whole


def test_unknown_store_found_in_batches_as_in_the_whole_table(tiny, tmp_path):
    raw.write_raw(tiny.tables(), tmp_path)
    orders = pd.read_parquet(tmp_path / "orders.parquet")
    orders.loc[[15, 30_000], "store_id"] = "S999"
    orders.to_parquet(tmp_path / "orders.parquet", index=False)
    whole = _failures(tmp_path, batch_rows=10_000_000)
    assert [(v.table, v.column, v.example, v.rows) for v in whole] == [
        ("orders", "store_id", "S999", 2)
    ]
    assert _failures(tmp_path, batch_rows=7_000) == whole


def _sales_dir(tmp_path):
    raw.write_stream(generator.stream("m5", seed=7, days=3), tmp_path, lambda _: None)
    return tmp_path / "sales.parquet"


@pytest.mark.parametrize(
    "mistake",
    [
        lambda s: s.assign(units=s["units"].where(s.index != 7, -1.0)),
        lambda s: s.assign(units=s["units"].where(s.index != 9, float("nan"))),
        lambda s: s.assign(product_id=s["product_id"].where(s.index != 11, None)),
        lambda s: s.assign(price=s["price"].where(s.index != 13, -0.5)),
        lambda s: pd.concat([s, s.iloc[[40_000]]], ignore_index=True),  # a key twice
        lambda s: s.assign(units=s["units"].astype(str).where(s.index != 17, "many")),
        lambda s: s.drop(columns="units"),
    ],
    ids=["negative", "nan", "null key", "negative price", "duplicate", "text", "missing"],
)
def test_sql_pass_never_clears_a_planted_mistake(tmp_path, mistake):
    path = _sales_dir(tmp_path)
    assert raw._proven_clean("sales", path)
    mistake(pd.read_parquet(path)).to_parquet(path, index=False)
    assert not raw._proven_clean("sales", path)
    with pytest.raises(DataContractError):
        raw.validate_raw(tmp_path, batch_rows=40_000)


def test_duplicate_sales_reported_in_batches_as_in_the_whole_table(tmp_path):
    path = _sales_dir(tmp_path)
    sales = pd.read_parquet(path)
    pd.concat([sales, sales.iloc[[500, 70_000]]], ignore_index=True).to_parquet(path, index=False)
    whole = _failures(tmp_path, batch_rows=10_000_000)
    assert {(v.column, v.check, v.rows) for v in whole} == {
        (c, "multiple_fields_uniqueness", 4) for c in ("store_id", "product_id", "date")
    }
    assert _failures(tmp_path, batch_rows=30_000) == whole
