"""The nightly build step: incremental when the tables in place extend, full otherwise,
and says which; the tables it swaps in equal a full build's."""

from __future__ import annotations

import pytest

from demand.settings import get_settings
from features import build_duckdb
from nightly import cycle
from tests.features.test_incremental import assert_same_tables, write_aggregated

pytestmark = pytest.mark.nightly


def test_the_nightly_build_extends_the_tables_in_place(tmp_path):
    settings = get_settings(data_dir=tmp_path / "data")
    said: list[str] = []
    write_aggregated(settings.raw_dir, "day", 120)
    cycle._build_aside(settings, said.append)
    assert any(line.startswith("feature build: full,") for line in said), said

    said.clear()
    write_aggregated(settings.raw_dir, "day", 120, extra=1)
    cycle._build_aside(settings, said.append)
    assert any(line.startswith("feature build: incremental (1 new day(s)") for line in said), said
    build_duckdb.build(settings.raw_dir, tmp_path / "full")
    assert_same_tables(settings.feature_dir, tmp_path / "full")
    assert not (settings.data_dir / "features.next").exists()
