"""The target-period calendar views (feature_repo/calendar_features.py) over every date.

They run where a forecast is served, on the date a client sends, so they must answer for
any string: a date of year 1 to 9999, or none. Each is taken as Feast stores it (dill,
by value) and checked against the holiday library directly, row by row.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import dill
import holidays
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
FIRST, LAST = dt.date(1, 1, 1), dt.date(9999, 12, 31)
# pandas' Timestamp range, in whole days
PANDAS_FIRST, PANDAS_LAST = dt.date(1677, 9, 22), dt.date(2262, 4, 11)
EDGES = [FIRST, LAST, PANDAS_FIRST, PANDAS_LAST, dt.date(1777, 1, 1), dt.date(2100, 12, 25)]


@pytest.fixture(scope="module")
def udfs():
    """Each view's function as Feast serialises it into the registry and loads it to serve."""
    sys.path.insert(0, str(REPO))
    try:
        import calendar_features as views
    finally:
        sys.path.remove(str(REPO))

    def stored(view):
        return dill.loads(dill.dumps(view.feature_transformation.udf, recurse=True))

    return {"day": stored(views.target_day_calendar), "week": stored(views.target_week_calendar)}


def frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"forecast_date": texts, "horizon": list(range(len(texts)))})


def known_holidays(*years: int) -> list[dt.date]:
    return sorted(holidays.country_holidays("US", years=list(years)))


def expected_day(text: str) -> dict[str, int]:
    """What the daily view gives a date: its calendar and the days to its next holiday."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or not PANDAS_FIRST <= day <= PANDAS_LAST:
        return dict.fromkeys(DAY_COLUMNS, -1)
    known = known_holidays(day.year, day.year + 1)
    following = [h for h in known if h >= day]
    return {
        "target_day_of_week": day.weekday(),
        "target_day_of_month": day.day,
        "target_month": day.month,
        "target_is_holiday": int(day in known),
        # none in its year or the next: unknown (the library has none after 2100)
        "target_days_to_holiday": (following[0] - day).days if following else -1,
    }


def expected_week(text: str) -> dict[str, int]:
    try:
        start = dt.date.fromisoformat(text)
    except ValueError:
        start = None
    if start is None or not PANDAS_FIRST <= start <= PANDAS_LAST - dt.timedelta(days=7):
        return dict.fromkeys(WEEK_COLUMNS, -1)
    known = known_holidays(start.year, start.year + 1)
    following = [h for h in known if h >= start]
    end = start + dt.timedelta(days=7)
    return {
        "target_week_of_year": start.isocalendar().week,
        "target_month": (start + dt.timedelta(days=3)).month,
        "target_holidays_in_week": sum(1 for h in known if start <= h < end),
        "target_days_to_holiday": (following[0] - start).days if following else -1,
    }


DAY_COLUMNS = [
    "target_day_of_week",
    "target_day_of_month",
    "target_month",
    "target_is_holiday",
    "target_days_to_holiday",
]
WEEK_COLUMNS = [
    "target_week_of_year",
    "target_month",
    "target_holidays_in_week",
    "target_days_to_holiday",
]
EXPECTED = {"day": (expected_day, "horizon_days"), "week": (expected_week, "horizon_weeks")}

DATES = st.one_of(
    st.dates(FIRST, LAST),
    st.dates(dt.date(1677, 1, 1), dt.date(2263, 12, 31)),
    st.builds(
        lambda edge, days: dt.date.fromordinal(
            min(LAST.toordinal(), max(FIRST.toordinal(), edge.toordinal() + days))
        ),
        st.sampled_from(EDGES),
        st.integers(-400, 400),
    ),
)
TEXTS = st.one_of(DATES.map(str), st.sampled_from(["", "2023-02-30", "0000-01-01", "x"]))


@pytest.mark.fuzz_weight(2)
@pytest.mark.parametrize("grain", ["day", "week"])
def test_every_date_gets_its_calendar_row_by_row(udfs, grain, fuzzer):
    udf, (expected, horizon) = udfs[grain], EXPECTED[grain]

    def check(texts):
        out = udf(frame(texts))
        assert list(out.index) == list(range(len(texts)))
        assert {str(t) for t in out.dtypes} == {"int64"}
        assert out[horizon].tolist() == list(range(len(texts)))
        # row by row: a row's answer never depends on the others (the lookup memoises rows)
        got = out.drop(columns=horizon).to_dict("records")
        assert got == [expected(t) for t in texts], texts

    texts = st.lists(TEXTS, min_size=1, max_size=8)
    fuzzer.run(f"calendar view ({grain})", lambda r: r.apply(given(texts=texts)(check), 100)())


@pytest.mark.parametrize("grain", ["day", "week"])
def test_dates_centuries_apart_in_one_batch(udfs, grain):
    # found by this file's fuzzing: 1707's next holiday in the batch was 2000's, 293 years
    # on, past pandas' nanoseconds: OverflowError (a 500 before, with the 2000 item known)
    out = udfs[grain](frame(["2000-01-01", "1707-01-01"]))
    assert out["target_days_to_holiday"].tolist() == [0, -1]


@pytest.mark.parametrize(
    ("text", "holiday", "to_next"),
    [
        ("2023-07-03", 0, 1),  # the day before Independence Day
        ("2023-07-04", 1, 0),
        ("2023-12-26", 0, 6),  # after Christmas: New Year's Day of the next year
        ("2100-12-26", 0, 5),  # the library's last: 2101's New Year's Day, observed
        ("2101-01-02", 0, -1),  # none known after it
        ("2165-01-01", 0, -1),  # issue 22: no holiday known at all, was IndexError
        ("1700-06-01", 0, -1),
        ("1000-01-01", -1, -1),  # before pandas' calendar: unparseable
    ],
)
def test_holidays_of_a_day(udfs, text, holiday, to_next):
    out = udfs["day"](frame([text])).iloc[0]
    assert (out["target_is_holiday"], out["target_days_to_holiday"]) == (holiday, to_next)


def test_a_week_that_runs_past_pandas_calendar_is_unparseable(udfs):
    # 2262-04-05 + 7 days overflowed pandas' nanoseconds: OverflowError, a 500 at the weekly grain
    out = udfs["week"](frame(["2262-04-05", "2262-03-29"]))
    assert out["target_week_of_year"].tolist() == [-1, 13]
