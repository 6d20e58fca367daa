"""The nightly's feature tables are swapped in whole: a night killed at any step of the
swap leaves every table of the last night or every table of this one, never a mix."""

from __future__ import annotations

import pandas as pd
import pytest

from demand.settings import get_settings
from nightly import cycle
from tests.demand.test_swap import Crash, crash_at
from tests.features.test_incremental import write_aggregated

pytestmark = pytest.mark.nightly


def _tables(folder) -> dict[str, tuple]:
    """Each table's rows and newest row (two builds of the same data need not be the same
    bytes: the metadata and float sums in the last bits)."""
    out = {}
    for path in sorted(folder.glob("*")):
        frame = pd.read_parquet(path)
        newest = frame["event_timestamp"].max() if "event_timestamp" in frame else None
        out[path.name] = (len(frame), newest)
    return out


def quiet(_: str) -> None:
    pass


def test_a_night_killed_at_every_step_of_the_swap_keeps_whole_tables(tmp_path, monkeypatch):
    # the last night's tables, and tonight's (one more day), built once each for reference
    settings = get_settings(data_dir=tmp_path / "reference")
    write_aggregated(settings.raw_dir, "day", 120)
    cycle._build_aside(settings, quiet)
    old = _tables(settings.feature_dir)
    write_aggregated(settings.raw_dir, "day", 120, extra=1)
    seen = crash_at(monkeypatch, 10_000)
    cycle._build_aside(settings, quiet)
    monkeypatch.undo()
    new = _tables(settings.feature_dir)
    assert old != new and old.keys() == new.keys()
    total = len(seen)
    assert total >= 3  # the generation rename, the link, the flip (and the deletions)

    for step in range(total):
        night = get_settings(data_dir=tmp_path / f"crash-{step}")
        write_aggregated(night.raw_dir, "day", 120)
        cycle._build_aside(night, quiet)
        write_aggregated(night.raw_dir, "day", 120, extra=1)
        crash_at(monkeypatch, step)
        with pytest.raises(Crash):
            cycle._build_aside(night, quiet)
        monkeypatch.undo()
        assert _tables(night.feature_dir) in (old, new), step
        # the next night builds again from whatever it finds, and ends whole and new
        cycle._build_aside(night, quiet)
        assert _tables(night.feature_dir) == new, step
        left = sorted(p.name for p in night.data_dir.iterdir() if p.name.startswith("features"))
        assert len(left) == 2, left  # the link and its generation
