import pandas as pd
import pytest

from rawdata.schemas import RAW_TABLES, DataContractError, describe, validate


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


def test_contract_is_documented():
    text = describe()
    for name, schema in RAW_TABLES.items():
        assert f"`{name}`" in text
        for column in schema.columns:
            assert f"`{column}`" in text
