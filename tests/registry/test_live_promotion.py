"""The production gate on live evidence: the staging version's shadow forecasts against
production's on the same closed targets, once there are enough nights of them."""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring import shadow
from nightly.cycle import evidence_used
from registry import lifecycle
from registry.gates import NO_WORSE_LIVE, Stage
from serving import batch
from tests.registry.helpers import BAD, GOOD, fresh

NIGHTS = 3


def _publish(settings, sold, version, error, shadowed) -> None:
    """Forecasts of ``version`` for each closed target: the actual plus ``error``."""
    frame = pd.DataFrame(
        {
            "model_name": settings.model_name,
            "model_version": version,
            "store_id": sold["store_id"],
            "product_id": sold["product_id"],
            "origin_date": (sold["target_date"] - pd.Timedelta(days=1)).dt.date,
            "target_date": sold["target_date"].dt.date,
            "horizon": 1,
            "units": sold["actual"] + error,
        },
        columns=batch.COLUMNS,
    )
    batch.publish(settings, frame, lambda _: None, shadow=shadowed)


@pytest.fixture
def live(base, gated, tmp_path):
    """A registry with BAD in production (forced) and GOOD in staging, over a data dir of
    its own (the feature tables are the session's)."""
    settings, _ = fresh(base, f"live_{tmp_path.name[-12:]}")
    data = tmp_path / "data"
    data.mkdir()
    for shared in ("features", "feast"):  # the backtest path reads both
        (data / shared).symlink_to((base.data_dir / shared).resolve(), target_is_directory=True)
    settings = settings.model_copy(update={"data_dir": data, "shadow_nights": NIGHTS})
    for to in (Stage.staging, Stage.production):
        lifecycle.promote(settings, BAD, to, force=True, reason="the test's champion")
    lifecycle.promote(settings, GOOD, Stage.staging)
    sold = shadow.actuals(settings)
    days = sorted(sold["target_date"].unique())[-NIGHTS:]
    sold = sold[sold["target_date"].isin(days)].head(NIGHTS * 40)
    return settings, sold


@pytest.mark.slow
def test_a_better_shadow_is_promoted_on_live_evidence(live):
    settings, sold = live
    _publish(settings, sold, BAD, 5.0, shadowed=False)
    _publish(settings, sold, GOOD, 0.5, shadowed=True)
    outcome = lifecycle.promote(settings, GOOD, Stage.production)
    check = outcome.gates.checks[-1]
    assert check.name == NO_WORSE_LIVE and check.passed, check.detail
    assert f"{NIGHTS} of {NIGHTS} nights" in check.detail
    assert evidence_used(outcome.gates).startswith("live (shadow against production)")


@pytest.mark.slow
def test_a_worse_shadow_is_refused_on_live_evidence(live):
    settings, sold = live
    _publish(settings, sold, BAD, 0.5, shadowed=False)
    _publish(settings, sold, GOOD, 5.0, shadowed=True)
    with pytest.raises(lifecycle.GateRefused) as refused:
        lifecycle.promote(settings, GOOD, Stage.production)
    [failed] = refused.value.result.failures
    assert failed.name == NO_WORSE_LIVE and "upper end > margin" in failed.detail


@pytest.mark.slow
def test_too_few_nights_leave_it_to_the_backtest(live):
    settings, sold = live
    first = sorted(sold["target_date"].unique())[0]
    sold = sold[sold["target_date"] == first]
    _publish(settings, sold, BAD, 5.0, shadowed=False)
    _publish(settings, sold, GOOD, 0.5, shadowed=True)
    outcome = lifecycle.promote(settings, GOOD, Stage.production)
    names = [c.name for c in outcome.gates.checks]
    assert NO_WORSE_LIVE not in names and "no worse than production" in names
    assert evidence_used(outcome.gates).startswith("backtest: ")
