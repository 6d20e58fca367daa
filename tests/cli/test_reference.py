"""The generated reference pages (cli/reference.py): equal to what the code generates now, and
each names everything it is generated from."""

from __future__ import annotations

import re
import shutil

import pytest
import typer

from cli import reference
from demand.settings import Settings
from tests.servers import require_program

DOCS = reference.DOCS_DIR


@pytest.fixture(scope="module")
def pages():
    """Every generated file, generated once from the defaults (no DEMAND_* variables)."""
    require_program("dot", "`make graphviz` installs it")
    with pytest.MonkeyPatch.context() as patch:
        import os

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
