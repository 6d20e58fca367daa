"""Calendar of the target day, computed at request time from the request itself."""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Int64, String

forecast_request = RequestSource(
    name="forecast_request",
    schema=[
        Field(name="forecast_date", dtype=String),  # YYYY-MM-DD, the day forecast
        Field(name="horizon", dtype=Int64),  # days from the origin to forecast_date
    ],
    description="What the client asks for: a target day, and how far ahead it lies.",
)


@on_demand_feature_view(
    sources=[forecast_request],
    schema=[
        Field(name="horizon_days", dtype=Int64),
        Field(name="target_day_of_week", dtype=Int64),
        Field(name="target_day_of_month", dtype=Int64),
        Field(name="target_month", dtype=Int64),
        Field(name="target_is_holiday", dtype=Int64),
        Field(name="target_days_to_holiday", dtype=Int64),
    ],
    mode="pandas",
    description="Weekday, month and public holidays of the day forecast.",
)
def target_day_calendar(inputs: pd.DataFrame) -> pd.DataFrame:
    # imported here: Feast serialises this function and runs it where it serves
    import holidays
    import pandas as pd

    parsed = pd.to_datetime(inputs["forecast_date"], format="%Y-%m-%d", errors="coerce")
    # an unparseable date yields -1 everywhere; clients' dates are checked before this
    day = parsed.fillna(pd.Timestamp("1970-01-01"))
    years = range(int(day.dt.year.min()), int(day.dt.year.max()) + 2)
    # the same calendar as the generator's; a retailer elsewhere changes the country
    dates = pd.DatetimeIndex(sorted(holidays.country_holidays("US", years=years)))
    position = dates.searchsorted(day.to_numpy())
    next_holiday = dates[position.clip(max=len(dates) - 1)]
    out = pd.DataFrame(index=inputs.index)
    out["horizon_days"] = inputs["horizon"].astype("int64")
    out["target_day_of_week"] = day.dt.dayofweek.astype("int64")
    out["target_day_of_month"] = day.dt.day.astype("int64")
    out["target_month"] = day.dt.month.astype("int64")
    out["target_is_holiday"] = day.isin(dates).astype("int64")
    out["target_days_to_holiday"] = (next_holiday - day.to_numpy()).days.astype("int64")
    calendar_columns = out.columns.drop("horizon_days")
    out.loc[parsed.isna().to_numpy(), calendar_columns] = -1
    return out
