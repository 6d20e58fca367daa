"""The benchmarks' figures file: one object per figure, with its unit and its peer."""

from __future__ import annotations

import json

import pandas as pd

from benchmarks.common import Figure, report, same_tables


def test_report_writes_every_figure_with_its_peer(tmp_path):
    rows = [{"step": "ASOF store 1,000", "seconds": 2.0}, {"step": "merge_asof", "seconds": 4.0}]
    figures = [
        Figure("ASOF store 1,000", 2.0, "s", "merge_asof", 4.0, "large", {"entity_rows": 1000}),
        Figure("merge_asof 1,000", 4.0, "s", scale="large"),
    ]
    report("retrieval", "title", rows, figures, tmp_path)

    saved = json.loads((tmp_path / "bench-retrieval.json").read_text())
    assert [f["name"] for f in saved] == ["ASOF store 1,000", "merge_asof 1,000"]
    first, second = saved
    assert (first["value"], first["unit"], first["peer"], first["peer_value"]) == (
        2.0,
        "s",
        "merge_asof",
        4.0,
    )
    assert first["ratio"] == 0.5 and first["scale"] == "large" and first["entity_rows"] == 1000
    assert second["peer"] is None and second["ratio"] is None
    assert first["date"] == second["date"]  # one run, one date
    table = json.loads((tmp_path / "bench" / "retrieval.json").read_text())
    assert table["rows"] == rows


def test_same_tables_compares_rows_in_any_order_and_floats_to_the_digits_asked(tmp_path):
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir(), right.mkdir()
    pd.DataFrame({"key": [1, 2], "mean": [0.1 + 0.2, 0.5]}).to_parquet(left / "t.parquet")
    # the same rows in another order, one float added up differently
    pd.DataFrame({"key": [2, 1], "mean": [0.5, 0.3]}).to_parquet(right / "t.parquet")

    assert not same_tables(left, right)
    assert same_tables(left, right, float_digits=9)
    pd.DataFrame({"key": [2, 1], "mean": [0.5, 0.31]}).to_parquet(right / "t.parquet")
    assert not same_tables(left, right, float_digits=9)
