"""The things features describe. Join keys are the columns clients send."""

from feast import Entity, ValueType

store = Entity(
    name="store",
    join_keys=["store_id"],
    value_type=ValueType.STRING,
    description="A store or fulfilment region that sells products.",
)

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A product in the catalogue.",
)

region = Entity(
    name="region",
    join_keys=["region_id"],
    value_type=ValueType.STRING,
    description="A weather region; every store lies in one.",
)

target_day = Entity(
    name="target_day",
    join_keys=["target_date"],
    value_type=ValueType.STRING,
    description="The day a forecast is for, as YYYY-MM-DD.",
)
