"""A hand-made weekly export of pairs that start, stop and run out (tests of a pair's
active life, censored periods and short history, on DuckDB and on Spark).

Seven pairs of one store over 57 weeks: a regular seller that stops after week 19, a
slow mover selling every six weeks, a pair the assortment table lists through week 30, a
pair whose rows carry the ``active`` flag, a pair with stock on hand (week 46 ran out),
one selling every third week through week 24, and one listed with zero rows, never sold.
"""

from __future__ import annotations

import pandas as pd

from demand.calendar import RawDescription
from synthetic import aggregate, generator

WEEKS = 57


def life_export():
    """The weekly export of the module docstring: (tables, description, store, products,
    weeks)."""
    data = generator.generate("tiny", seed=7, days=400)
    full = aggregate.aggregate(data, "week", "sunday", measures=("temperature_c",))
    weeks = pd.date_range("2023-01-01", periods=WEEKS, freq="7D")
    store = full.tables["stores"]["store_id"].iloc[0]
    products = full.tables["products"]["product_id"].tolist()
    rows = []

    def sell(product, indices, units=3.0, **extra):
        for i in indices:
            rows.append(
                {
                    "store_id": store,
                    "product_id": product,
                    "date": weeks[i],
                    "units": units,
                    **extra,
                }
            )

    sell(products[0], range(0, 20))  # regular, then stops after week 19
    sell(products[1], range(0, WEEKS, 6))  # a slow mover: a sale every six weeks
    sell(products[2], range(0, 10))  # stops, but the assortment lists it to week 30
    sell(products[3], range(0, 10))  # stops; its rows say when it was carried
    sell(products[3], [12], units=0.0, active=False)  # a zero row: not carried that week
    sell(products[3], [40], units=0.0, active=True)  # carried, in a long quiet run
    sell(products[4], range(0, WEEKS), on_hand=5.0)
    rows[-1 - 10]["on_hand"] = 0.0  # week 46 ran out
    sell(products[5], range(0, 25, 3))  # every third week through week 24, then stops
    sell(products[6], range(0, 6), units=0.0)  # listed with zero rows, never sold
    sales = pd.DataFrame(rows)
    sales["active"] = sales["active"].astype("boolean")
    assortment = pd.DataFrame(
        {
            "store_id": [store],
            "product_id": [products[2]],
            "listed_from": [weeks[0]],
            "listed_to": [weeks[30]],
        }
    )
    tables = {**full.tables, "sales": sales, "assortment": assortment}
    tables.pop("promotions", None)
    tables.pop("weather_forecast", None)
    description = RawDescription(
        source=full.description.source,
        grain=full.description.grain,
        week_start="sunday",
        sales_table=full.description.sales_table,
        optional_tables=("assortment",),
        weather_measures=("temperature_c",),
    )
    return tables, description, store, products, weeks
