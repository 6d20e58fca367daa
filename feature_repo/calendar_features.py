"""Request-time features of the target day: its calendar, and the buyers due on it."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from feature_views import on_demand_outputs, store_product_replenishment

forecast_request = RequestSource(
    name="forecast_request",
    schema=[
        Field(
            name="forecast_date",
            dtype=String,
            description="The day forecast, YYYY-MM-DD (at the weekly grain: the target "
            "week's first day).",
        ),
        Field(
            name="horizon",
            dtype=Int64,
            description="Periods (days, or weeks) from the origin to the target: 1 is the "
            "period right after the origin.",
        ),
    ],
    description="What the client asks for: a target day, and how far ahead it lies.",
)


@on_demand_feature_view(
    sources=[forecast_request],
    **on_demand_outputs(
        {
            "horizon_days": (
                Int64,
                "Days from the origin day to the target day (the request's "
                "horizon; 1: the day after the origin).",
            ),
            "target_day_of_week": (
                Int64,
                "Weekday of the target day, 0 Monday to 6 Sunday; -1 when the date cannot be read.",
            ),
            "target_day_of_month": (
                Int64,
                "Day of the month of the target day, 1 to 31; -1 when the date cannot be read.",
            ),
            "target_month": (
                Int64,
                "Month of the target day, 1 to 12; -1 when the date cannot be read.",
            ),
            "target_is_holiday": (
                Int64,
                "1 when the target day is a US public holiday (the holidays "
                "package's calendar, as the generator's), else 0; -1 when the date cannot be read.",
            ),
            "target_days_to_holiday": (
                Int64,
                "Days from the target day to the next US public holiday on or after "
                "it (0: a holiday), looked for in the target's year and the next; -1 when none "
                "is known there or the date cannot be read.",
            ),
        }
    ),
    mode="pandas",
    description="Weekday, month and public holidays of the day forecast.",
)
def target_day_calendar(inputs: pd.DataFrame) -> pd.DataFrame:
    # imported here: Feast serialises this function and runs it where it serves
    import holidays
    import pandas as pd

    parsed = pd.to_datetime(inputs["forecast_date"], format="%Y-%m-%d", errors="coerce")
    # an unparseable date yields -1 everywhere; clients' dates are checked before this.
    # A date pandas cannot hold (before 1677-09-22, after 2262-04-11) is unparseable here.
    day = parsed.fillna(pd.Timestamp("1970-01-01"))
    # The same calendar as the generator's; a retailer elsewhere changes the country.
    # A day's next holiday is looked for in its year and the next only, so that a row's
    # output never depends on the other rows (the lookup memoises rows), and a request
    # spanning centuries asks for four years, not every year between (2 s for 1678-2262).
    years = sorted({y + k for y in day.dt.year.unique().tolist() for k in (0, 1)})
    dates = pd.DatetimeIndex(sorted(holidays.country_holidays("US", years=years)))
    # The library knows no US holidays before 1865 or after 2100: there, and after the
    # last holiday it knows, the next holiday is unknown, -1 (an empty calendar was a 500).
    position = dates.searchsorted(day.to_numpy())
    following = dates.append(pd.DatetimeIndex([pd.NaT]))[position]
    # (masked before subtracting: centuries apart overflow pandas' nanoseconds)
    following = following.where(following.year <= day.dt.year.to_numpy() + 1)
    to_next = pd.Series((following - day.to_numpy()).days, index=inputs.index).fillna(-1)
    out = pd.DataFrame(index=inputs.index)
    out["horizon_days"] = inputs["horizon"].astype("int64")
    out["target_day_of_week"] = day.dt.dayofweek.astype("int64")
    out["target_day_of_month"] = day.dt.day.astype("int64")
    out["target_month"] = day.dt.month.astype("int64")
    out["target_is_holiday"] = day.isin(dates).astype("int64")
    out["target_days_to_holiday"] = to_next.astype("int64")
    calendar_columns = out.columns.drop("horizon_days")
    out.loc[parsed.isna().to_numpy(), calendar_columns] = -1
    return out


@on_demand_feature_view(
    sources=[forecast_request],
    **on_demand_outputs(
        {
            "horizon_weeks": (
                Int64,
                "Weeks from the origin week to the target week (the request's "
                "horizon; 1: the week after the origin).",
            ),
            "target_week_of_year": (
                Int64,
                "ISO week number of the target week's first day, 1 to 53; -1 when "
                "the date cannot be read.",
            ),
            "target_month": (
                Int64,
                "Month most of the target week lies in (that of its fourth day), 1 "
                "to 12; -1 when the date cannot be read.",
            ),
            "target_holidays_in_week": (
                Int64,
                "US public holidays in the 7 days of the target week, 0 to 7; -1 "
                "when the date cannot be read.",
            ),
            "target_days_to_holiday": (
                Int64,
                "Days from the target week's first day to the next US public "
                "holiday on or after it (0: that day is one), looked for in its year and the "
                "next; -1 when none is known there or the date cannot be read.",
            ),
        }
    ),
    mode="pandas",
    description="Week of the year, month and public holidays of the week forecast "
    "(forecast_date is the week's first day).",
)
def target_week_calendar(inputs: pd.DataFrame) -> pd.DataFrame:
    import holidays
    import pandas as pd

    parsed = pd.to_datetime(inputs["forecast_date"], format="%Y-%m-%d", errors="coerce")
    # a week that runs past the last day pandas can hold is unparseable (its end overflows)
    parsed = parsed.where(parsed <= pd.Timestamp.max.floor("D") - pd.Timedelta(days=7))
    start = parsed.fillna(pd.Timestamp("1970-01-01"))
    # holidays of the start's year and the next only: see target_day_calendar
    years = sorted({y + k for y in start.dt.year.unique().tolist() for k in (0, 1)})
    dates = pd.DatetimeIndex(sorted(holidays.country_holidays("US", years=years)))
    first = dates.searchsorted(start.to_numpy())
    after_week = dates.searchsorted((start + pd.Timedelta(days=7)).to_numpy())
    following = dates.append(pd.DatetimeIndex([pd.NaT]))[first]
    # (masked before subtracting: centuries apart overflow pandas' nanoseconds)
    following = following.where(following.year <= start.dt.year.to_numpy() + 1)
    to_next = pd.Series((following - start.to_numpy()).days, index=inputs.index).fillna(-1)
    out = pd.DataFrame(index=inputs.index)
    out["horizon_weeks"] = inputs["horizon"].astype("int64")
    out["target_week_of_year"] = start.dt.isocalendar().week.astype("int64").to_numpy()
    # the month most of the week lies in
    out["target_month"] = (start + pd.Timedelta(days=3)).dt.month.astype("int64")
    out["target_holidays_in_week"] = (after_week - first).astype("int64")
    out["target_days_to_holiday"] = to_next.astype("int64")
    calendar_columns = out.columns.drop("horizon_weeks")
    out.loc[parsed.isna().to_numpy(), calendar_columns] = -1
    return out


@on_demand_feature_view(
    sources=[store_product_replenishment, forecast_request],
    **on_demand_outputs(
        {
            "replacements_due_on_target": (
                Float64,
                "Customers of the store whose replacement of the product falls due "
                "on the target day itself, as known at the origin: the one of "
                "replacements_due_in_1d … _7d the horizon picks. Null beyond 7 days ahead.",
            ),
            "replacements_due_near_target": (
                Float64,
                "The same count for the target day and the days before and after "
                "it (a neighbour outside days 1 to 7 after the origin counts 0). Null beyond 7 "
                "days ahead.",
            ),
        }
    ),
    mode="pandas",
    description="Customers whose replacement falls due on the target day (and within a day "
    "of it): the per-day counts of the replenishment view, picked by the horizon.",
)
def target_day_replenishment(inputs: pd.DataFrame) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    days = 7
    due = np.column_stack(
        [
            pd.to_numeric(inputs[f"replacements_due_in_{k}d"], errors="coerce").to_numpy(float)
            for k in range(1, days + 1)
        ]
    )
    horizon = pd.to_numeric(inputs["horizon"], errors="coerce").fillna(0).to_numpy(int)
    padded = np.pad(due, ((0, 0), (1, 1)), constant_values=0.0)  # columns: k = 0..days+1
    rows = np.arange(len(horizon))
    k = np.clip(horizon, 0, days + 1)
    on = np.where((horizon >= 1) & (horizon <= days), padded[rows, k], np.nan)
    near = (
        padded[rows, np.clip(k - 1, 0, days + 1)]
        + padded[rows, k]
        + padded[rows, np.clip(k + 1, 0, days + 1)]
    )
    out = pd.DataFrame(index=inputs.index)
    out["replacements_due_on_target"] = on
    out["replacements_due_near_target"] = np.where(np.isnan(on), np.nan, near)
    return out
