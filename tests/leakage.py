"""The point-in-time check shared by the feature-store and training tests."""

import pandas as pd

# every feature view's "became known at" field (see feature_repo/feature_views.py)
KNOWN_AT = [
    "sales_known_at",
    "replenishment_known_at",
    "lifespan_known_at",
    "weather_known_at",
    "forecast_issued_at",
]


def assert_no_leakage(frame: pd.DataFrame, known_at: list[str] = KNOWN_AT) -> None:
    """Every feature row a training row used existed at the row's origin."""
    origin = pd.to_datetime(frame["event_timestamp"], utc=True)
    for column in known_at:
        known = pd.to_datetime(frame[column], utc=True)
        late = known.notna() & (known > origin)
        assert not late.any(), f"{column} newer than the origin in {late.sum()} rows"
