import datetime as dt

import pytest

from demand.calendar import WEEKDAYS, Calendar, Grain, RawDescription, SalesTable, Source


@pytest.mark.parametrize("week_start", ["monday", "thursday", "sunday"])
def test_weeks_start_on_the_declared_weekday_and_number_consecutively(week_start):
    calendar = Calendar(Grain.week, week_start)
    days = [dt.date(2023, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    starts = [d for d in days if calendar.starts_period(d)]
    assert {d.strftime("%A").lower() for d in starts} == {week_start}
    periods = [calendar.period(d) for d in starts]
    assert periods == list(range(periods[0], periods[0] + len(periods)))
    for day in days:  # every day lies in the week its period starts
        first = calendar.start(calendar.period(day))
        assert 0 <= (day - first).days < 7


def test_the_daily_grain_numbers_days_since_1970():
    calendar = Calendar()
    assert calendar.period(dt.date(1970, 1, 2)) == 1
    assert calendar.start(19_000) == dt.date(1970, 1, 1) + dt.timedelta(days=19_000)
    assert calendar.starts_period(dt.date(2024, 2, 29))


def test_nearest_starts_bracket_a_day_inside_a_week():
    calendar = Calendar(Grain.week, "sunday")
    assert calendar.nearest_starts(dt.date(2024, 6, 5)) == (
        dt.date(2024, 6, 2),
        dt.date(2024, 6, 9),
    )


def test_period_sql_matches_python(tmp_path):
    import duckdb

    for calendar in (Calendar(), Calendar(Grain.week, "sunday"), Calendar(Grain.week, "friday")):
        for day in range(-10, 40):
            sql = calendar.period_sql(str(day))
            got = duckdb.connect().execute(f"SELECT {sql}").fetchone()[0]
            assert got == calendar.period(dt.date(1970, 1, 1) + dt.timedelta(days=day))
            start = duckdb.connect().execute(f"SELECT {calendar.start_sql(str(got))}").fetchone()[0]
            assert dt.date(1970, 1, 1) + dt.timedelta(days=start) == calendar.start(got)


def test_a_raw_dir_without_description_holds_generated_daily_order_lines(tmp_path):
    assert RawDescription.read(tmp_path) == RawDescription()
    written = RawDescription(
        Source.imported, Grain.week, "thursday", SalesTable.sales, (), ("temperature_c",)
    )
    written.write(tmp_path)
    assert RawDescription.read(tmp_path) == written


def test_an_unknown_weekday_is_refused():
    with pytest.raises(ValueError, match="week_start"):
        Calendar(Grain.week, "caturday")


CALENDARS = [Calendar(), *(Calendar(Grain.week, day) for day in WEEKDAYS)]


@pytest.mark.parametrize("calendar", CALENDARS, ids=lambda c: f"{c.grain}-{c.week_start}")
def test_every_date_from_year_1_to_9999_has_its_period_and_nearest_starts(calendar, fuzzer):
    """No date of Python's calendar raises: at its ends a nearest start may not exist (None)."""
    from hypothesis import given
    from hypothesis import strategies as st

    first, last = dt.date(1, 1, 1), dt.date(9999, 12, 31)
    edges = st.sampled_from([first, last]).flatmap(
        lambda edge: st.integers(0, 20).map(
            lambda n: edge + dt.timedelta(n) if edge == first else edge - dt.timedelta(n)
        )
    )

    def check(day):
        before, after = calendar.nearest_starts(day)
        if before is not None:
            assert before <= day and calendar.starts_period(before)
            assert calendar.starts_period(day) == (before == day)
            assert (day - before).days < calendar.days
        if after is not None:
            assert day < after and calendar.starts_period(after)
            assert (after - day).days <= calendar.days
        if before is not None and after is not None:
            assert (after - before).days == calendar.days
        assert before is not None or day < first + dt.timedelta(calendar.days)
        assert after is not None or day > last - dt.timedelta(calendar.days)

    days = st.one_of(st.dates(first, last), edges)
    name = f"calendar {calendar.grain} {calendar.week_start}"
    fuzzer.run(name, lambda r: r.apply(given(day=days)(check), 100)())


def test_the_ends_of_the_calendar():
    sunday = Calendar(Grain.week, "sunday")  # 0001-01-01 is a Monday: its week starts in year 0
    assert not sunday.starts_period(dt.date(1, 1, 1))
    assert sunday.nearest_starts(dt.date(1, 1, 1)) == (None, dt.date(1, 1, 7))
    assert sunday.nearest_starts(dt.date(9999, 12, 31)) == (dt.date(9999, 12, 26), None)
    assert Calendar().nearest_starts(dt.date(9999, 12, 31)) == (dt.date(9999, 12, 31), None)
