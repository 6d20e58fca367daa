"""Which dates a model can forecast (serving/periods.py), for every date of years 1 to 9999."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from demand.calendar import WEEKDAYS
from demand.contract import FeatureContract
from serving.periods import misplaced, refusal

FIRST, LAST = dt.date(1, 1, 1), dt.date(9999, 12, 31)


def contract(grain: str, week_start: str = "monday", horizon: int = 4) -> FeatureContract:
    return FeatureContract(
        feast_project="p",
        feature_service="s",
        feature_views={},
        features=[],
        dtypes={},
        categorical=[],
        entity_keys=["store_id", "product_id"],
        request_features=[],
        horizon=horizon,
        train_start="2023-01-01",
        train_end="2023-06-30",
        training_set_hash="",
        device="cpu",
        grain=grain,
        week_start=week_start,
    )


CONTRACTS = [contract("day"), *(contract("week", day) for day in WEEKDAYS)]
DATES = st.one_of(
    st.dates(FIRST, LAST),
    st.integers(0, 13).map(lambda n: FIRST + dt.timedelta(n)),
    st.integers(0, 13).map(lambda n: LAST - dt.timedelta(n)),
)


@pytest.mark.parametrize("model", CONTRACTS, ids=lambda c: f"{c.grain}-{c.week_start}")
def test_any_date_is_served_or_refused_naming_it(model, fuzzer):
    """A date is forecast or refused with a message naming it; never an overflow."""
    origin = dt.date(2023, 7, 2)  # a Sunday; what the store holds is never near the ends

    def check(days, known):
        origins = [origin if k else None for k in known[: len(days)]]
        origins += [None] * (len(days) - len(origins))
        horizons = [(d - origin).days // (1 if model.grain == "day" else 7) for d in days]
        refused = refusal(model, days, origins, horizons)
        if refused is not None:
            field, message = refused
            assert field.startswith("items[") and field.endswith("].date")
            index = int(field[len("items[") : -len("].date")])
            assert str(days[index]) in message

    test = given(days=st.lists(DATES, min_size=1, max_size=4), known=st.lists(st.booleans()))
    fuzzer.run(f"periods {model.grain} {model.week_start}", lambda r: r.apply(test(check), 60)())


@pytest.mark.parametrize(
    ("day", "says"),
    [
        (dt.date(1, 1, 1), "the nearest valid date is 0001-01-07"),  # its week began in year 0
        (dt.date(9999, 12, 31), "the nearest valid date is 9999-12-26"),  # the next: year 10000
        (dt.date(2024, 6, 5), "the nearest valid dates are 2024-06-02 and 2024-06-09"),
    ],
)
def test_a_date_inside_a_week_names_the_starts_that_exist(day, says):
    field, message = misplaced(contract("week", "sunday"), [day])
    assert field == "items[0].date" and message.endswith(says), message
