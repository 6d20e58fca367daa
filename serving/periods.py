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


def misplaced(contract: FeatureContract, dates: Sequence[dt.date]) -> tuple[str, str] | None:
    """``(field, message)`` for the first date that starts no period of the grain, else None.

    Needs no origin: the service asks before it looks anything up.
    """
    cal = calendar_of(contract)
    for i, day in enumerate(dates):
        if not cal.starts_period(day):
            # at the ends of Python's calendar (years 1 and 9999) one side may not exist
            valid = [str(d) for d in cal.nearest_starts(day) if d is not None]
            nearest = (
                f"the nearest valid dates are {valid[0]} and {valid[1]}"
                if len(valid) == 2
                else f"the nearest valid date is {valid[0]}"
            )
            return (
                f"items[{i}].date",
                f"{day} does not start a {cal.grain.value}: the model forecasts whole "
                f"{cal.grain.value}s starting on {cal.week_start.capitalize()}; {nearest}",
            )
    return None


def refusal(
    contract: FeatureContract,
    dates: Sequence[dt.date],
    origins: Sequence[dt.date | None],
    horizons: Sequence[int],
) -> tuple[str, str] | None:
    """``(field, message)`` for the first item whose date cannot be forecast, else None."""
    cal = calendar_of(contract)
    refused = misplaced(contract, dates)
    if refused:
        return refused
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
