"""Training's schedule in periods of the data's grain, and the feature service it implies.

Horizons, warm-up, origin spacing and the early-stopping and backtest windows are
counted in periods: days at the daily grain (``DEMAND_HORIZON``, ``DEMAND_WARMUP_DAYS``
…), weeks at the weekly grain (``DEMAND_WEEKLY_HORIZON`` … : 4 weeks ahead, an origin
every week after 8 weeks, 8 weeks of early stopping, 13 of backtest). The grain is
the one recorded in the feature tables (``features.plan.lineage``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from demand.calendar import Calendar, Grain, SalesTable
from demand.console import UserError
from demand.settings import Settings
from features.plan import Lineage


class TrainingDataError(UserError):
    """The data needed to train is missing or empty; the message says what to run."""


SERVICE_V1, SERVICE_V2, SERVICE_WEEKLY = (
    "demand_forecast_v1",
    "demand_forecast_v2",
    "demand_forecast_weekly_v2",
)


@dataclass(frozen=True)
class Schedule:
    calendar: Calendar
    horizon: int
    origin_every: int
    warmup: int
    test: int
    validation: int

    @classmethod
    def of(cls, settings: Settings, calendar: Calendar) -> Schedule:
        if calendar.grain is Grain.week:
            return cls(
                calendar,
                settings.weekly_horizon,
                settings.weekly_origin_every,
                settings.weekly_warmup,
                settings.weekly_test,
                settings.weekly_validation,
            )
        return cls(
            calendar,
            settings.horizon,
            settings.origin_every_days,
            settings.warmup_days,
            settings.test_days,
            settings.validation_days,
        )

    @property
    def unit(self) -> str:
        return "week" if self.calendar.grain is Grain.week else "day"

    def params(self) -> dict[str, int]:
        """The settings that made these rows, by their settings names (logged with the run)."""
        if self.calendar.grain is Grain.week:
            names = ("weekly_horizon", "weekly_origin_every", "weekly_warmup", "weekly_test")
            names += ("weekly_validation",)
        else:
            names = ("horizon", "origin_every_days", "warmup_days", "test_days")
            names += ("validation_days",)
        values = (self.horizon, self.origin_every, self.warmup, self.test, self.validation)
        return dict(zip(names, values, strict=True))

    @property
    def periods_needed(self) -> int:
        """The shortest history that leaves a training window: warm-up, at least one period
        to train on, early stopping, backtest, and the horizon after the last origin."""
        return self.warmup + 1 + self.validation + self.test + self.horizon

    def check_history(self, first: dt.date, last: dt.date) -> None:
        """A history too short for the schedule: a message saying how much is needed."""
        cal = self.calendar
        have = cal.period(last) - cal.period(first) + 1
        need = self.periods_needed
        if have >= need:
            return
        unit = self.unit
        prefix = "DEMAND_WEEKLY_" if unit == "week" else "DEMAND_"
        suffix = "" if unit == "week" else "_DAYS"
        raise TrainingDataError(
            f"the history has {have} {unit}s ({first} to {last}); training at the "
            f"{'weekly' if unit == 'week' else 'daily'} "
            f"grain needs at least {need}: warm-up {self.warmup} + 1 to train on + early "
            f"stopping {self.validation} + backtest {self.test} + horizon {self.horizon}, "
            f"i.e. data from {cal.start(cal.period(last) - need + 1)} to {last}. Add history, "
            f"or shorten {prefix}WARMUP{suffix} / {prefix}VALIDATION{suffix} / "
            f"{prefix}TEST{suffix} / {prefix}HORIZON"
        )


def feature_service(settings: Settings, built: Lineage, has_plans: bool) -> str:
    """The service a model of this data set is trained with: the settings' when set,
    else the one the data implies (weekly; daily aggregated or planned; daily order lines)."""
    if "feature_service" in settings.model_fields_set:
        return settings.feature_service
    if built.grain is Grain.week:
        return SERVICE_WEEKLY
    if built.sales_table is SalesTable.sales or has_plans:
        return SERVICE_V2
    return SERVICE_V1
