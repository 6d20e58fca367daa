import pandas as pd
import pytest

from rawdata.schemas import DataContractError, describe, validate


def test_generated_tables_meet_the_contract(tiny):
    for name, frame in tiny.tables().items():
        assert len(validate(name, frame)) == len(frame)


def _orders(tiny):
    return tiny.orders.head(50).copy()


def _fails_on(table, frame, column):
    with pytest.raises(DataContractError) as caught:
        validate(table, frame)
    assert any(v.column == column for v in caught.value.violations), caught.value
    assert f"'{column}'" in str(caught.value)
    return caught.value


def test_missing_column_is_named(tiny):
    _fails_on("orders", _orders(tiny).drop(columns="unit_price"), "unit_price")


def test_null_key_is_named(tiny):
    orders = _orders(tiny)
    orders.loc[3, "store_id"] = None
    _fails_on("orders", orders, "store_id")


def test_negative_quantity_is_named(tiny):
    orders = _orders(tiny)
    orders.loc[5, "quantity"] = -2
    error = _fails_on("orders", orders, "quantity")
    assert "-2" in str(error)


def test_every_failure_is_reported_at_once(tiny):
    orders = _orders(tiny).drop(columns="customer_id")
    orders.loc[1, "quantity"] = 0
    with pytest.raises(DataContractError) as caught:
        validate("orders", orders)
    assert {v.column for v in caught.value.violations} >= {"customer_id", "quantity"}


def test_forecast_for_a_day_before_its_issue_is_refused(tiny):
    fc = tiny.weather_forecast.head(20).copy()
    fc.loc[0, "valid_date"] = pd.Timestamp("2000-01-01")
    with pytest.raises(DataContractError, match="valid_date_not_before_issue"):
        validate("weather_forecast", fc)


def test_optional_columns_may_be_absent(tiny):
    products = tiny.products.drop(columns=["lifespan_days", "list_price"])
    assert len(validate("products", products)) == len(products)


# the raw data contract as docs/reference/raw-data.md, promises it: each table's columns, and
# which are optional. Written out here, not read from RAW_TABLES: a loop over RAW_TABLES
# would document and check whatever the code has, a lost column or table included.
CONTRACT = {
    "orders": {
        "order_id": True, "customer_id": True, "store_id": True, "ordered_at": True,
        "product_id": True, "quantity": True, "unit_price": True, "promo": False,
    },
    "sales": {
        "store_id": True, "product_id": True, "date": True, "units": True, "price": False,
        "promo": False, "on_hand": False, "stockout": False, "active": False,
    },
    "products": {"product_id": True, "category": True, "lifespan_days": False, "list_price": False},
    "stores": {"store_id": True, "region_id": True, "latitude": False, "longitude": False},
    "weather_observed": {
        "region_id": True, "date": True, "temperature_c": False, "precipitation_mm": False,
        "sunshine_hours": False,
    },
    "weather_forecast": {
        "region_id": True, "issued_at": True, "valid_date": True, "temperature_c": False,
        "precipitation_mm": False, "sunshine_hours": False,
    },
    "promotions": {
        "store_id": True, "product_id": True, "date": True, "promo": False, "price": False,
        "planned_at": True,
    },
    "assortment": {"store_id": True, "product_id": True, "listed_from": True, "listed_to": True},
}  # fmt: skip


def _documented(text: str) -> dict[str, dict[str, bool]]:
    """``demand contract``'s Markdown read back: table → column → required."""
    tables: dict[str, dict[str, bool]] = {}
    for block in text.split("### ")[1:]:
        name = block.split("`")[1]
        rows = [line.split("|") for line in block.splitlines() if line.startswith("| `")]
        tables[name] = {row[1].strip().strip("`"): row[3].strip() == "yes" for row in rows}
        assert all(row[4].strip() for row in rows), f"{name}: a column without a meaning"
    return tables


def test_contract_is_documented():
    assert _documented(describe()) == CONTRACT


def test_the_contract_checks_every_documented_column(tiny):
    """Each required column's absence is a violation naming it; an optional one's is not."""
    frames = tiny.tables()
    # the generated tables (sales, promotions and assortment come from imports only)
    assert set(frames) == {"orders", "products", "stores", "weather_forecast", "weather_observed"}
    for table, frame in frames.items():
        frame = frame.head(20)
        for column, required in CONTRACT[table].items():
            if required:
                _fails_on(table, frame.drop(columns=column), column)
            elif column in frame:
                assert len(validate(table, frame.drop(columns=column))) == len(frame)
