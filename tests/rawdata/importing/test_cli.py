"""`demand import` and the gate, through the CLI: exit codes and messages."""

from __future__ import annotations

import pandas as pd
import pytest

from cli.main import main
from tests.rawdata.importing.files import base, write


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMAND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEMAND_SCALE", "tiny")
    return tmp_path / "data"


def test_import_prints_a_summary_per_file_and_reason(tmp_path, data_dir, capsys):
    files = base()
    files["sales.csv"] += ["S1,P1,2024-01-08,-1,1,true", "S9,P1,2024-01-08,1,1,true"]
    folder = write(tmp_path / "export", files)
    assert main(["import", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "sales.csv" in out and "negative_units 1" in out and "unknown_store 1" in out
    assert "quarantine" in out
    assert main(["import", str(folder)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert main(["validate"]) == 0


def test_import_options_reach_the_reader(tmp_path, data_dir, capsys):
    files = {k: [line.replace(",", ";") for line in v] for k, v in base(weekly=True).items()}
    files["sales.csv"][0] = files["sales.csv"][0].replace("units", "Menge")
    folder = write(tmp_path / "export", files)
    code = main(
        ["import", str(folder), "--delimiter", ";", "--map", "Menge=units", "--grain", "week"]
    )
    assert code == 0, capsys.readouterr().err
    assert "sales at the week grain" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["import", "/nonexistent/folder"], 1, "is not a folder"),
        # bad arguments are usage errors (docs/reference/cli.md)
        (["import", "{folder}", "--map", "units"], 2, "expected THEIR_NAME=OUR_NAME"),
        (["import", "{folder}", "--grain", "month"], 2, "'month' is not one of 'day', 'week'"),
        (["import", "{folder}", "--week-start", "funday"], 2, "'funday' is not one of"),
        (["import", "{folder}", "--decimal", ";"], 2, "--decimal"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(tmp_path, data_dir, capsys, args, code, message):
    folder = write(tmp_path / "export", base())
    assert main([a.format(folder=folder) for a in args]) == code
    assert message in capsys.readouterr().err
    assert not (data_dir / "raw").exists()


def test_a_file_missing_a_column_exits_1_and_writes_nothing(tmp_path, data_dir, capsys):
    files = base()
    files["stores.csv"] = [line.split(",")[0] + ",x" for line in files["stores.csv"]]
    folder = write(tmp_path / "export", files)
    assert main(["import", str(folder)]) == 1
    assert "stores.csv: required column region_id missing" in capsys.readouterr().err
    assert not (data_dir / "raw").exists()


def test_generated_data_never_replaces_imported_data(tmp_path, data_dir, capsys):
    folder = write(tmp_path / "export", base())
    assert main(["import", str(folder)]) == 0
    before = (data_dir / "raw" / "sales.parquet").read_bytes()
    assert main(["generate"]) == 1
    err = capsys.readouterr().err
    assert "holds imported data" in err and "--replace-imported" in err and "demand import" in err
    assert (data_dir / "raw" / "sales.parquet").read_bytes() == before
    assert main(["generate", "--replace-imported"]) == 0
    assert not (data_dir / "raw" / "sales.parquet").exists()
    assert (data_dir / "raw" / "orders.parquet").exists()
    assert main(["validate"]) == 0


def test_an_order_for_an_unknown_product_fails_validation_and_the_build(data_dir, capsys):
    assert main(["generate"]) == 0
    path = data_dir / "raw" / "orders.parquet"
    orders = pd.read_parquet(path)
    bad = orders.iloc[[0]].assign(product_id="P-NOPE", order_id="O-NOPE")
    pd.concat([orders, bad]).to_parquet(path, index=False)
    capsys.readouterr()
    assert main(["validate"]) == 1
    err = capsys.readouterr().err
    assert "product_id" in err and "exists in products" in err and "P-NOPE" in err
    assert main(["build-features"]) == 1
    assert "P-NOPE" in capsys.readouterr().err
    assert not (data_dir / "features").exists()


def test_a_store_without_weather_fails_the_build(data_dir, capsys):
    assert main(["generate"]) == 0
    path = data_dir / "raw" / "stores.parquet"
    stores = pd.read_parquet(path)
    stores.loc[0, "region_id"] = "NOWHERE"
    stores.to_parquet(path, index=False)
    assert main(["build-features"]) == 1
    assert "has observed weather" in capsys.readouterr().err


def test_features_builds_from_imported_data_without_generating(tmp_path, data_dir, capsys):
    from synthetic import generator

    export = tmp_path / "export"
    export.mkdir()
    for name, frame in generator.generate("tiny", seed=7).tables().items():
        frame.to_parquet(export / f"{name}.parquet", index=False)
    assert main(["import", str(export)]) == 0
    before = (data_dir / "raw" / "orders.parquet").read_bytes()
    capsys.readouterr()
    assert main(["features"]) == 0
    assert "holds imported data: building from it" in capsys.readouterr().out
    assert (data_dir / "raw" / "orders.parquet").read_bytes() == before
    assert not (data_dir / "raw" / "generated.json").exists()
    assert (data_dir / "features" / "store_product_daily.parquet").exists()


def test_an_import_replaces_generated_data(tmp_path, data_dir, capsys):
    assert main(["generate"]) == 0
    folder = write(tmp_path / "export", base())
    capsys.readouterr()
    assert main(["import", str(folder)]) == 0
    assert "generated data that was in the raw directory is replaced" in capsys.readouterr().out
    assert not (data_dir / "raw" / "orders.parquet").exists()
    assert not (data_dir / "raw" / "generated.json").exists()
    assert main(["validate"]) == 0


def test_validate_reports_imported_rows_that_break_the_links(tmp_path, data_dir, capsys):
    files = base()
    files["promotions.csv"] = ["store_id,product_id,date,promo", "S1,P1,2024-06-10,true"]
    assert main(["import", str(write(tmp_path / "export", files))]) == 0
    raw_dir = data_dir / "raw"
    sales = pd.read_parquet(raw_dir / "sales.parquet")
    sales.iloc[[0]].assign(product_id="P-GONE").pipe(
        lambda bad: pd.concat([sales, bad]).to_parquet(raw_dir / "sales.parquet", index=False)
    )
    plans = pd.read_parquet(raw_dir / "promotions.parquet")
    plans.assign(store_id="S-GONE").to_parquet(raw_dir / "promotions.parquet", index=False)
    capsys.readouterr()
    assert main(["validate"]) == 1
    err = capsys.readouterr().err
    assert "sales: column 'product_id' failed exists in products" in err and "P-GONE" in err
    assert "promotions: column 'store_id' failed exists in stores" in err
    assert main(["build-features"]) == 1
