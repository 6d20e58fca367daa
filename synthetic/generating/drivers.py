"""What moves a store's demand on a day, shared by the order-line and the daily-sales generator.

Weather acts on log-demand through each category's coefficients; the calendar
(weekday, a mild yearly wave, public holidays and the days before them) and
December gifts multiply it. Arrays are per (store, day) or per day, small enough
to hold whole even at the M5 scale (50 stores × 1,220 days).
"""

from __future__ import annotations

from dataclasses import dataclass

import holidays
import numpy as np
import pandas as pd

HOLIDAY_COUNTRY = "US"
WEEKDAY_EFFECT = np.array([0.90, 0.85, 0.90, 1.00, 1.15, 1.30, 1.00])  # Mon..Sun


def holiday_dates(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    years = range(start.year, end.year + 2)
    return pd.DatetimeIndex(sorted(holidays.country_holidays(HOLIDAY_COUNTRY, years=years)))


@dataclass(frozen=True)
class Drivers:
    """Weather per (store, day), scaled to about 0..2, and the calendar per day."""

    rain: np.ndarray
    heat: np.ndarray
    sun: np.ndarray
    cold: np.ndarray
    calendar: np.ndarray
    december: np.ndarray  # True in December (gifts sell)

    def log_weather(self, coef: dict[str, np.ndarray], store: int, days: slice) -> np.ndarray:
        """(product, day) weather effect on log-demand at one store."""
        return (
            coef["rain"][:, None] * self.rain[store, None, days]
            + coef["heat"][:, None] * self.heat[store, None, days]
            + coef["sun"][:, None] * (self.sun[store, None, days] - 1)
            + coef["cold"][:, None] * self.cold[store, None, days]
        )


def drivers(stores: pd.DataFrame, weather: pd.DataFrame, days: pd.DatetimeIndex) -> Drivers:
    n_s, n_d = len(stores), len(days)
    wx = weather.set_index(["region_id", "date"]).sort_index()
    pick = pd.MultiIndex.from_product([stores["region_id"].to_numpy(), days])

    def measure(name: str) -> np.ndarray:
        return wx[name].reindex(pick).to_numpy().reshape(n_s, n_d)

    temp = measure("temperature_c")
    holiday_set = holiday_dates(days[0], days[-1])
    is_holiday = days.isin(holiday_set)
    pre_holiday = np.zeros(n_d, dtype=bool)
    for lag in (1, 2, 3):
        pre_holiday |= days.isin(holiday_set - pd.Timedelta(days=lag))
    calendar = (
        WEEKDAY_EFFECT[days.dayofweek]
        * (1 + 0.1 * np.sin(2 * np.pi * days.dayofyear.to_numpy() / 365.25))
        * np.where(is_holiday, 1.5, np.where(pre_holiday, 1.2, 1.0))
    )
    return Drivers(
        rain=np.clip(measure("precipitation_mm") / 5, 0, 3),
        heat=np.clip(temp - 18, 0, None) / 6,
        sun=measure("sunshine_hours") / 6,
        cold=np.clip(12 - temp, 0, None) / 6,
        calendar=calendar,
        december=np.asarray(days.month == 12),
    )


def promotions(shape: tuple[int, ...], n_d: int, rng: np.random.Generator) -> np.ndarray:
    """Promotion days per series (``shape``) and day: runs of 3 to 7 days."""
    starts = rng.random((*shape, n_d)) < PROMO_START_RATE
    length = rng.integers(3, 8, (*shape, n_d))
    promo = np.zeros((*shape, n_d), dtype=bool)
    for offset in range(7):
        active = starts & (length > offset)
        promo[..., offset:] |= active[..., : n_d - offset]
    return promo


PROMO_START_RATE = 1 / 45  # promotions start on about one day in 45
PROMO_DISCOUNT = 0.2
PROMO_LIFT = 1.8  # walk-in demand while on promotion
