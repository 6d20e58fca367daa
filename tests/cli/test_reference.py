"""The generated reference pages (cli/reference.py): equal to what the code generates now, and
each names everything it is generated from."""

from __future__ import annotations

import os
import re
import shutil

import pytest
import typer

from cli import reference
from demand.console import UserError
from demand.settings import Settings
from tests.servers import require_program

DOCS = reference.DOCS_DIR


@pytest.fixture(scope="module")
def pages():
    """Every generated file, generated once from the defaults (no DEMAND_* variables)."""
    require_program("dot", "`make graphviz` installs it")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DEMAND_")]:
            patch.delenv(name)
        return reference.generated()


@pytest.mark.slow
def test_the_committed_pages_are_the_generated_ones(pages):
    assert reference.stale(DOCS, pages) == [], "run `make docs` (python -m cli.reference)"


@pytest.mark.slow
def test_a_page_edited_by_hand_is_found_stale(pages, tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    settings = tmp_path / "docs" / "reference" / "settings.md"
    settings.write_text(settings.read_text().replace("`DEMAND_HORIZON`", "`DEMAND_HORIZONS`"))
    assert reference.stale(tmp_path / "docs", pages) == ["reference/settings.md"]
    (tmp_path / "docs" / "images" / "architecture.svg").unlink()
    assert reference.stale(tmp_path / "docs", pages) == [
        "reference/settings.md",
        "images/architecture.svg",
    ]


@pytest.mark.slow
def test_every_command_option_setting_route_table_and_feature_is_in_its_page(pages):
    from cli.main import app
    from rawdata.schemas import RAW_TABLES

    cli = pages["reference/cli.md"]
    commands = [
        " ".join(path[1:])
        for path, _ in reference._commands(typer.main.get_command(app), ["demand"])
    ]
    assert {"import", "nightly", "models promote", "team up", "bento containerize"} <= set(commands)
    for command in commands:
        assert f"## `{command}`" in cli
    assert "| <code>--append-days &lt;int range&gt;</code> | Generated data: first" in cli

    settings = pages["reference/settings.md"]
    for name in Settings.model_fields:
        assert f"| `DEMAND_{name.upper()}` | `{name}` |" in settings

    http = pages["reference/http-api.md"]
    for path, methods in reference.openapi_document()["paths"].items():
        for method in methods:
            assert f"## {method.upper()} `{path}`" in http
    assert "### Item" in http and "| `store_id` |" in http

    raw = pages["reference/raw-data.md"]
    for table, schema in RAW_TABLES.items():
        assert f"## `{table}`" in raw
        for column in schema.columns:
            assert f"| `{column}` |" in raw

    features = pages["reference/features.md"]
    contents = reference.feature_repo_contents()
    assert len(contents.feature_views) >= 10
    for view in contents.feature_views:
        section = features.split(f"### `{view.name}`", 1)[1].split("\n### ", 1)[0]
        assert re.search(r"TTL: (\d+ days?|none)", section), view.name
        for field in view.features:
            assert f"| `{field.name}` | {field.dtype} |" in section
    assert "Entities: `store`, `product` · TTL: 2 days" in features
    for service in contents.feature_services:
        assert f"| `{service.name}` |" in features


def test_every_feature_of_the_catalogue_says_what_it_means(pages):
    """Each entity, view, on-demand view, request input, service and feature has a
    description, and the catalogue prints it beside the feature."""
    contents = reference.feature_repo_contents()
    assert reference.undescribed(contents) == []
    features = pages["reference/features.md"]
    for view in [*contents.feature_views, *contents.on_demand_feature_views]:
        assert reference._cell(view.description) in features, view.name
        for field in view.features:
            text = reference._cell(reference._description(view, field))
            assert f"| `{field.name}` | {field.dtype} | {text} |" in features, field.name
    # an on-demand output's meaning is its view's tag (Feast refuses described outputs)
    calendar = next(v for v in contents.on_demand_feature_views if v.name == "target_day_calendar")
    assert not any(f.description for f in calendar.features)
    assert "| `target_day_of_week` | Int64 | Weekday of the target day, 0 Monday" in features


def test_a_feature_without_a_description_stops_the_catalogue(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "feature_repo"
    shutil.copytree(reference.REPO_ROOT / "feature_repo", repo)
    views = repo / "feature_views.py"
    text = views.read_text()
    described = '_float("units_lag_1", "Units of the product sold in the store on the origin day.")'
    assert described in text
    views.write_text(text.replace(described, 'Field(name="units_lag_1", dtype=Float64)'))

    assert reference.undescribed(reference.feature_repo_contents(repo)) == [
        "store_product_sales.units_lag_1"
    ]
    with pytest.raises(UserError, match=r"description of: store_product_sales\.units_lag_1;"):
        reference.features_page(repo)
    # `python -m cli.reference` (make docs) says so in one line, exit 1
    monkeypatch.setitem(reference.PAGES, "features.md", lambda: reference.features_page(repo))
    for name in [n for n in os.environ if n.startswith("DEMAND_")]:
        monkeypatch.delenv(name)  # main() clears them: put back after the test
    assert reference.main(["--check"]) == 1
    said = capsys.readouterr().err
    assert said.startswith("error: the feature catalogue needs a description of: ")
    assert "Traceback" not in said
    # the repo in place is parsed again as it is, not the copy's cached modules
    assert reference.undescribed(reference.feature_repo_contents()) == []

    # an on-demand output whose tag is gone, a view, an entity and a service without theirs
    contents = reference.feature_repo_contents()
    calendar = next(v for v in contents.on_demand_feature_views if v.name == "target_day_calendar")
    del calendar.tags[reference.OUTPUT_DESCRIPTION_TAG + "target_month"]
    next(v for v in contents.feature_views if v.name == "product_lifespan").description = ""
    next(e for e in contents.entities if e.name == "region").description = ""
    contents.feature_services[0].description = ""
    assert sorted(reference.undescribed(contents)) == sorted(
        [
            "target_day_calendar.target_month",
            "feature view product_lifespan",
            "entity region",
            f"feature service {contents.feature_services[0].name}",
        ]
    )
