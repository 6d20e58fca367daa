"""`demand nightly` picks up a new import: the import's raw data, never generated over."""

from __future__ import annotations

import pytest

from demand.console import UserError
from demand.settings import get_settings
from nightly import cycle
from rawdata.importer import run_import
from synthetic import generator
from tests.rawdata.importing.files import export_tables, quiet

pytestmark = [pytest.mark.nightly, pytest.mark.usefixtures("clean_demand_env")]


def test_nightly_picks_up_a_new_import(tmp_path):
    settings = get_settings(
        data_dir=tmp_path / "data",
        scale="tiny",
        seed=7,
        iterations=60,
        origin_every_days=3,
        test_days=28,
        validation_days=21,
    )
    first = generator.generate("tiny", seed=7).tables()
    run_import(export_tables(tmp_path / "january", first), settings.raw_dir, progress=quiet)
    night = cycle.run(settings, progress=quiet)
    assert night.new_data and night.version == "1"

    # the next export carries three more days: order lines, observations, forecasts
    later = generator.generate("tiny", seed=7, extra_days=3).tables()
    last = first["orders"]["ordered_at"].max()
    increment = {
        "orders": later["orders"][later["orders"]["ordered_at"] > last],
        "weather_observed": later["weather_observed"][
            later["weather_observed"]["date"] > first["weather_observed"]["date"].max()
        ],
        "weather_forecast": later["weather_forecast"][
            later["weather_forecast"]["issued_at"] > first["weather_forecast"]["issued_at"].max()
        ],
    }
    report = run_import(
        export_tables(tmp_path / "february", increment), settings.raw_dir, progress=quiet
    )
    assert all(f.quarantined == 0 for f in report.files)
    assert report.written["orders"] == len(later["orders"])

    second = cycle.run(settings, progress=quiet)
    assert second.new_data and second.version == "2"
    assert len(second.new_days) == 3 and second.last_day > night.last_day
    assert second.raw_rows["orders"] == len(later["orders"])

    again = cycle.run(settings, progress=quiet)
    assert not again.new_data
    with pytest.raises(UserError, match="imported data"):
        cycle.run(settings, append_days=1, progress=quiet)
