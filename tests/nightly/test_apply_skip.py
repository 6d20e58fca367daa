"""The nightly skips `feast apply` only when the registry would not change.

What `apply` registers depends on the feature repo's files and on which feature tables
exist (a view whose table is absent is left out); what training reads depends on the
feature service it chooses. An import that adds plans must be registered the same
night, and a data set whose service is not the settings' default must not re-apply
every night.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from demand.settings import get_settings
from features import publish
from nightly import cycle
from rawdata.importer import run_import
from synthetic import aggregate, generator
from tests.features.test_incremental import write_aggregated
from tests.rawdata.importing.files import export_tables, quiet
from training import periods

pytestmark = [pytest.mark.nightly, pytest.mark.usefixtures("clean_demand_env")]


def _run_tags(settings, version: str) -> dict[str, str]:
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    found = client.get_model_version(settings.model_name, version)
    return client.get_run(found.run_id).data.tags


def test_plans_imported_on_night_two_are_registered_and_trained_on(tmp_path):
    settings = get_settings(
        data_dir=tmp_path / "data",
        iterations=20,
        origin_every_days=7,
        test_days=28,
        validation_days=21,
    )
    data = generator.generate("tiny", seed=7)
    tables = data.tables()
    run_import(export_tables(tmp_path / "first", tables), settings.raw_dir, progress=quiet)
    first = cycle.run(settings, progress=quiet)
    assert first.version == "1" and "feast apply" in first.seconds
    tags = _run_tags(settings, "1")
    assert tags["feast.feature_service"] == periods.SERVICE_V1
    assert "planned_promo" not in tags["feast.feature_refs"].split(",")

    # the retailer starts sending its promotion plans: no new day, no other table
    plans = aggregate.aggregate(data, "day").tables["promotions"]
    run_import(
        export_tables(tmp_path / "plans", {"promotions": plans}), settings.raw_dir, progress=quiet
    )
    said: list[str] = []
    second = cycle.run(settings, progress=said.append)
    assert second.new_data and "feast apply" in second.seconds, said
    assert second.version == "2" and second.retrained
    tags = _run_tags(settings, "2")
    assert tags["feast.feature_service"] == periods.SERVICE_V2
    refs = tags["feast.feature_refs"].split(",")
    assert {"planned_promo", "planned_price"} <= set(refs), refs


def test_a_weekly_data_set_applies_once_not_every_night(tmp_path):
    """The decision itself, on a real build and a real registry: a weekly set registers
    no `demand_forecast_v1`, and that must not read as "the registry was reset"."""
    settings = get_settings(data_dir=tmp_path / "data")
    write_aggregated(settings.raw_dir, "week", 400)
    cycle._build_aside(settings, quiet)
    assert cycle.apply_reason(settings, {}) is not None  # first night: nothing recorded
    publish.apply(settings)
    recorded = {"definitions": cycle.definitions_fingerprint(settings)}

    # a week later: more rows, the same tables, definitions and service
    write_aggregated(settings.raw_dir, "week", 400, extra=7)
    cycle._build_aside(settings, quiet)
    assert cycle.apply_reason(settings, recorded) is None

    # a table that goes (the retailer's weather forecasts stop, say) changes the registry
    (settings.feature_dir / "region_weather_forecast_weekly.parquet").unlink()
    assert cycle.apply_reason(settings, recorded) is not None
