"""The categories the synthetic retailer sells, and how each reacts to weather and time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Category:
    """How a category sells. Weather coefficients act on log-demand."""

    name: str
    base: float  # units per store and day at an average store, before effects
    price: float
    lifespan: float | None = None  # days until a customer re-buys; None: not re-bought
    rain: float = 0.0
    heat: float = 0.0
    sun: float = 0.0
    cold: float = 0.0
    partner: str | None = None  # category pulled into the same basket
    partner_share: float = 0.0


CATEGORIES: tuple[Category, ...] = (
    Category("umbrella", base=0.5, price=18.0, rain=0.9),
    Category("raincoat", base=0.25, price=60.0, rain=0.6, partner="umbrella", partner_share=0.3),
    Category("sunglasses", base=0.4, price=35.0, sun=0.9, heat=0.3),
    Category(
        "sunscreen",
        base=0.6,
        price=12.0,
        lifespan=45,
        sun=0.7,
        heat=0.4,
        partner="sunglasses",
        partner_share=0.15,
    ),
    Category("ice_cream", base=2.5, price=4.5, heat=0.6, sun=0.3),
    Category("soup", base=1.8, price=3.0, cold=0.45, rain=0.15),
    Category("printer_ink", base=0.8, price=30.0, lifespan=60),
    Category("coffee_beans", base=2.0, price=11.0, lifespan=21, cold=0.1),
    Category("razor_blades", base=1.0, price=15.0, lifespan=35),
    Category("pet_food", base=1.5, price=25.0, lifespan=30),
    Category("running_shoes", base=0.25, price=110.0, lifespan=240, sun=0.2),
    Category("headphones", base=0.3, price=80.0),
)


def weather_coefficients(categories: list[Category]) -> dict[str, np.ndarray]:
    """Per product (one entry per product's category): rain, heat, sun, cold."""
    return {
        k: np.array([getattr(c, k) for c in categories]) for k in ("rain", "heat", "sun", "cold")
    }
