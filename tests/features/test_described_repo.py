"""The feature repo's descriptions are documentation: registering them changes no model input,
and a model version trained on a registry without them still serves, as before.

Feast compares a field's description when it compares views (``Field.__eq__``), so the first
apply after the descriptions were written updates every view in the registry, and Feast counts
a new version of each (``current_version_number`` 0 → 1; a contract records them, nothing
compares them). It is also why on-demand outputs carry their descriptions as view tags: Feast's
inference at apply refuses described on-demand fields. What serving checks a model's feature
contract against is names only (``OnlineLookup.missing_features``, and the materialized views),
so an older contract still matches; this test shows it on a real registry, online store and
model. Planting a check of the contract's view versions at load makes it fail.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from feast import repo_operations

from demand.featurestore import open_store
from demand.settings import get_settings
from feastext.feature_logs import logging_schema
from features import pipeline, publish
from serving import model_loader, predict
from training import dataset, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_demand_env")]


def quiet(_: str) -> None:
    pass


def _fields(contents):
    """Every Field object a parsed repo holds: views', projections', request sources'."""
    for view in [*contents.feature_views, *contents.on_demand_feature_views]:
        yield from view.features
        yield from view.projection.features
    for view in contents.on_demand_feature_views:
        for projection in view.source_feature_view_projections.values():
            yield from projection.features
        for request in view.source_request_sources.values():
            yield from request.schema
    for service in contents.feature_services:
        for projection in service.feature_view_projections:
            yield from projection.features


def _as_before_descriptions(parse):
    """Feast's parse_repo, giving the repo as it was before its fields were described."""

    def parse_repo(root):
        contents = parse(root)
        for field in _fields(contents):
            field.description = ""
        for view in contents.on_demand_feature_views:  # their outputs' descriptions: tags
            view.tags = {k: v for k, v in view.tags.items() if not k.startswith("description:")}
        return contents

    return parse_repo


def _same(a: list, b: list) -> bool:
    def norm(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return [norm(v) for v in a] == [norm(v) for v in b]


def test_a_version_trained_before_the_descriptions_serves_after_them(tmp_path, monkeypatch):
    settings = get_settings(
        data_dir=tmp_path / "data",
        scale="tiny",
        seed=7,
        iterations=20,
        origin_every_days=7,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
    )
    pipeline.generate(settings, quiet)
    pipeline.build_features(settings, quiet, validated=True)
    with monkeypatch.context() as patch:
        patch.setattr(
            repo_operations, "parse_repo", _as_before_descriptions(repo_operations.parse_repo)
        )
        publish.apply(settings)
    publish.materialize(settings)
    old = open_store(settings)
    assert not [f for v in old.list_feature_views() for f in v.features if f.description]

    version = train.run(settings, progress=quiet).version
    before = model_loader.load(settings, version=version)
    contract = before.contract
    schema = logging_schema(old, contract.feature_service)
    daily = pd.read_parquet(
        settings.feature_dir / "store_product_daily.parquet",
        columns=["store_id", "product_id", "event_timestamp"],
    )
    keys = daily[daily["event_timestamp"] == daily["event_timestamp"].max()].head(20)
    stores, products = keys["store_id"].tolist(), keys["product_id"].tolist()
    vectors = before.lookup.fetch(stores, products)
    units = predict.score(before, stores, products, vectors)
    assert len([u for u in units if u is not None]) == len(keys)

    # the repo as it is: `demand apply` (the nightly's apply) registers the descriptions
    _, changes = publish.apply(settings)
    assert changes and all(c.startswith("Updated ") for c in changes), changes
    assert "Updated feature view store_product_sales" in changes
    new = open_store(settings)
    sales = new.get_feature_view("store_product_sales")
    assert all(f.description for f in sales.features)

    # the version registered before them loads (its contract check passes) with no new
    # materialization, and reads and forecasts exactly what it did
    after = model_loader.load(settings, version=version)
    assert after.contract == contract
    again = after.lookup.fetch(stores, products)
    assert again.columns.keys() == vectors.columns.keys()
    for name, values in vectors.columns.items():
        assert _same(list(again.columns[name]), list(values)), name
    assert predict.score(after, stores, products, again) == units
    # served features are logged in the same schema (names and types; no descriptions)
    assert logging_schema(new, contract.feature_service) == schema
    # a model trained now takes the same inputs; only Feast's view version numbers moved
    features, categorical, request, views = dataset.model_inputs(
        new, contract.feature_service, dataset.built_lineage(settings).absent
    )
    assert (features, categorical, request) == (
        contract.features,
        contract.categorical,
        contract.request_features,
    )
    assert views.keys() == contract.feature_views.keys()
