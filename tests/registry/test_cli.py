"""`demand models …` arguments: enumerated options are the CLI library's choices."""

from __future__ import annotations

import pytest

from cli.main import main


@pytest.mark.parametrize("typo", ["prod", "Production", "archived", "candidate"])
def test_an_unknown_stage_is_a_usage_error_listing_the_stages(typo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEMAND_DATA_DIR", str(tmp_path))
    assert main(["models", "promote", "1", "--to", typo]) == 2
    err = capsys.readouterr().err
    assert f"'{typo}' is not one of 'staging', 'production'" in err
    assert "Traceback" not in err and "ValueError" not in err
    assert not (tmp_path / "mlflow").exists()  # refused before any registry was opened
