"""The benchmarks' figures file: one object per figure, with its unit and its peer."""

from __future__ import annotations

import json

from benchmarks.common import Figure, report


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
