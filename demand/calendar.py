"""What a raw data set is: its grain (day or week), where weeks start, and where it came from.

Every transform counts time in integer *periods* of the grain. At the daily grain
a period is a day (days since 1970-01-01). At the weekly grain a period is a week
that starts on the retailer's first weekday: period ``p`` starts on day
``7 * p + offset``, where ``offset`` is the first day on or after 1970-01-01
(a Thursday) that falls on that weekday. Period numbers are therefore stable
across imports and engines, and a period's first day is its name (``date`` in
the raw tables is always the first day of the period).

``dataset.json`` in the raw directory records this description; a raw directory
without one holds the generator's order lines at the daily grain (what every
earlier version wrote).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

DESCRIPTION_FILE = "dataset.json"
EPOCH = dt.date(1970, 1, 1)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Grain(StrEnum):
    day = "day"
    week = "week"


class Source(StrEnum):
    generated = "generated"
    imported = "imported"


class SalesTable(StrEnum):
    orders = "orders"  # order lines with customer ids: co-purchase and lifespan features
    sales = "sales"  # aggregated units per store, product and period


@dataclass(frozen=True)
class Calendar:
    """Periods of a grain: numbering, first days, and the nearest valid dates."""

    grain: Grain = Grain.day
    week_start: str = "monday"  # meaningful at the weekly grain only

    def __post_init__(self) -> None:
        if self.week_start not in WEEKDAYS:
            raise ValueError(f"week_start {self.week_start!r}: expected one of {WEEKDAYS}")

    @property
    def days(self) -> int:
        """Days in one period."""
        return 1 if self.grain is Grain.day else 7

    @property
    def offset(self) -> int:
        """Day number (since 1970-01-01) of the first day of period 0."""
        if self.grain is Grain.day:
            return 0
        return (WEEKDAYS.index(self.week_start) - EPOCH.weekday()) % 7

    def period(self, day: dt.date) -> int:
        """The period that contains ``day``."""
        return ((day - EPOCH).days - self.offset) // self.days

    def start(self, period: int) -> dt.date:
        """The first day of ``period``."""
        return EPOCH + dt.timedelta(days=period * self.days + self.offset)

    def starts_period(self, day: dt.date) -> bool:
        # arithmetic on day numbers: the start of 0001-01-01's week may precede year 1
        return ((day - EPOCH).days - self.offset) % self.days == 0

    def nearest_starts(self, day: dt.date) -> tuple[dt.date | None, dt.date | None]:
        """The first days of the period containing ``day`` and of the next one.

        None for one that lies outside the calendar (before 0001-01-01, after 9999-12-31).
        """
        period = self.period(day)
        return self._start_or_none(period), self._start_or_none(period + 1)

    def _start_or_none(self, period: int) -> dt.date | None:
        try:
            return self.start(period)
        except OverflowError:  # Python's dates end at years 1 and 9999
            return None

    def start_sql(self, period: str) -> str:
        """SQL turning a period number into the day number of its first day."""
        return f"({period}) * {self.days} + {self.offset}"

    def period_sql(self, day_number: str) -> str:
        """SQL turning an integer day number (days since 1970-01-01) into a period number.

        Floor division written with plain arithmetic so that it runs on any engine.
        """
        if self.grain is Grain.day:
            return day_number
        shifted = f"({day_number} - {self.offset})"
        return f"CAST(FLOOR({shifted} / 7.0) AS INTEGER)"


@dataclass(frozen=True)
class RawDescription:
    """``dataset.json``: how to read the raw tables next to it."""

    source: Source = Source.generated
    grain: Grain = Grain.day
    week_start: str = "monday"
    sales_table: SalesTable = SalesTable.orders
    # optional tables present (weather_forecast, promotions) and weather measures given
    optional_tables: tuple[str, ...] = ("weather_forecast",)
    weather_measures: tuple[str, ...] = ("temperature_c", "precipitation_mm", "sunshine_hours")
    extra: dict[str, object] = field(default_factory=dict)  # e.g. the generator's scale and seed

    @property
    def calendar(self) -> Calendar:
        return Calendar(self.grain, self.week_start)

    def write(self, raw_dir: Path) -> None:
        raw_dir.mkdir(parents=True, exist_ok=True)
        tmp = raw_dir / f"{DESCRIPTION_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")
        tmp.replace(raw_dir / DESCRIPTION_FILE)

    @classmethod
    def read(cls, raw_dir: Path) -> RawDescription:
        """The description in ``raw_dir``; the generator's daily order lines when there is none."""
        path = raw_dir / DESCRIPTION_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            source=Source(data.get("source", "generated")),
            grain=Grain(data.get("grain", "day")),
            week_start=data.get("week_start", "monday"),
            sales_table=SalesTable(data.get("sales_table", "orders")),
            optional_tables=tuple(data.get("optional_tables", ("weather_forecast",))),
            weather_measures=tuple(
                data.get(
                    "weather_measures", ("temperature_c", "precipitation_mm", "sunshine_hours")
                )
            ),
            extra=dict(data.get("extra", {})),
        )


# A weekly export with a few mistyped dates (a year typed 2093) is still weekly: the rows
# off the week's first day are quarantined as such, rather than the file refused as mixed.
WEEKLY_SHARE = 0.99


@dataclass(frozen=True)
class DateEvidence:
    """The weekdays a file's dates fall on: what a grain and a week start must agree with.

    Gathered from every readable date before any row is judged, so that the grain never
    depends on which rows a check (a date window, an unknown store) would quarantine.
    """

    file: str
    rows: int  # rows with a readable date
    weekdays: dict[int, tuple[int, int]]  # weekday (0 = Monday) → (rows, distinct dates)
    first: dt.date | None = None
    last: dt.date | None = None

    @property
    def days(self) -> int:
        """Distinct dates (a date has one weekday, so the weekdays' counts add up)."""
        return sum(days for _, days in self.weekdays.values())

    @property
    def top(self) -> int:
        """The weekday with the most rows (the earliest weekday on a tie)."""
        return min(self.weekdays, key=lambda d: (-self.weekdays[d][0], d))

    @property
    def top_day(self) -> str:
        return WEEKDAYS[self.top]

    @property
    def share(self) -> float:
        return self.weekdays[self.top][0] / self.rows

    @property
    def kind(self) -> str:
        """none | single (one date) | weekly (one weekday) | mixed (mostly one) | daily."""
        if not self.rows:
            return "none"
        if self.days == 1:
            return "single"
        if len(self.weekdays) == 1 or self.share >= WEEKLY_SHARE:
            return "weekly"
        return "mixed" if self.share >= 0.5 else "daily"

    def __str__(self) -> str:
        if not self.rows:
            return f"no readable date in {self.file}"
        span = f" from {self.first} to {self.last}" if self.first != self.last else ""
        head = f"{self.rows:,} dates in {self.file}{span}"
        if self.days == 1:
            return f"{head}, all on one day ({self.first}, a {self.top_day.title()})"
        if len(self.weekdays) == 1:
            return f"{head}, all {self.top_day.title()}s"
        if self.share >= WEEKLY_SHARE:
            off = self.rows - self.weekdays[self.top][0]
            return f"{head}, all {self.top_day.title()}s but {off:,} on other weekdays"
        return (
            f"{head}, on {len(self.weekdays)} weekdays, {self.share:.0%} of them "
            f"{self.top_day.title()}s"
        )
