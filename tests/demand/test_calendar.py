import datetime as dt

import pytest

from demand.calendar import Calendar, Grain, RawDescription, SalesTable, Source


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
