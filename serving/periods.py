"""Which dates a model can forecast: first days of its grain's periods, within its horizon.

At the weekly grain a forecast is for a whole week, named by its first day (the
retailer's week start); any other day is refused with the two nearest valid dates.
At the daily grain every day starts a period. Horizons count periods from the
key's origin (the newest closed period the online store holds for it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from demand.calendar import Calendar, Grain
from demand.contract import FeatureContract


def calendar_of(contract: FeatureContract) -> Calendar:
    return Calendar(Grain(contract.grain), contract.week_start)


def refusal(
    contract: FeatureContract,
    dates: Sequence[dt.date],
    origins: Sequence[dt.date | None],
    horizons: Sequence[int],
) -> tuple[str, str] | None:
    """``(field, message)`` for the first item whose date cannot be forecast, else None."""
    cal = calendar_of(contract)
    for i, day in enumerate(dates):
        if not cal.starts_period(day):
            before, after = cal.nearest_starts(day)
            return (
                f"items[{i}].date",
                f"{day} does not start a {cal.grain.value}: the model forecasts whole "
                f"{cal.grain.value}s starting on {cal.week_start.capitalize()}; the nearest "
                f"valid dates are {before} and {after}",
            )
    horizon = contract.horizon
    for i, (day, origin, h) in enumerate(zip(dates, origins, horizons, strict=True)):
        if origin is not None and not 1 <= h <= horizon:
            first = cal.start(cal.period(origin) + 1)
            last = cal.start(cal.period(origin) + horizon)
            unit = "days" if cal.grain is Grain.day else "weeks"
            return (
                f"items[{i}].date",
                f"{day} is outside the model's horizon: forecasts from the origin "
                f"{origin} cover {first} to {last} ({horizon} {unit})",
            )
    return None
