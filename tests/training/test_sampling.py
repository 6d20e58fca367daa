"""Training on sampled origins: a capped training set keeps whole (series, origin) pairs,
the same ones for the same seed and fraction whatever the data has gained since.

On a hand-made history (no Feast): 6 stores × 5 products selling from staggered days,
so that the pairs selling by an origin grow over time as in a real chain.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from demand.settings import get_settings
from training.dataset import Sampling, origins_and_labels, sampled_origins_and_labels

NOW = datetime(2024, 9, 1, tzinfo=UTC)
KEYS = ["store_id", "product_id", "origin", "horizon"]


def _history(stores: int = 6, products: int = 5, last: str = "2024-08-31") -> pd.DataFrame:
    rng = np.random.default_rng(3)
    parts = []
    for s in range(stores):
        for p in range(products):
            first = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 90)))
            days = pd.date_range(first, last)
            days = days[rng.random(len(days)) < 0.6]  # days without a sale have no row
            units = rng.poisson(3, len(days)).astype(float)
            parts.append(
                pd.DataFrame(
                    {"store_id": f"S{s}", "product_id": f"P{p}", "date": days, "units": units}
                )
            )
    return pd.concat(parts, ignore_index=True)


HISTORY = _history()


def _settings(**values):
    return get_settings(origin_every_days=3, **values)


def test_under_the_cap_every_row_is_kept():
    everything = origins_and_labels(HISTORY, _settings(), now=NOW)
    rows, sampling = sampled_origins_and_labels(
        HISTORY, _settings(train_max_rows=len(everything)), now=NOW
    )
    assert sampling.fraction == 1.0 and sampling.candidate_rows == len(everything)
    pd.testing.assert_frame_equal(rows, everything)


def test_labels_are_the_units_of_the_target_day_or_zero():
    rows = origins_and_labels(HISTORY, _settings(), now=NOW)
    sold = HISTORY.set_index(["store_id", "product_id", "date"])["units"]
    expected = sold.reindex(pd.MultiIndex.from_frame(rows[["store_id", "product_id", "target"]]))
    assert np.array_equal(rows["label"].to_numpy(), expected.fillna(0.0).to_numpy())
    assert (rows["label"] == 0).any() and (rows["label"] > 0).any()


def test_over_the_cap_whole_pairs_of_the_full_set_are_kept():
    everything = origins_and_labels(HISTORY, _settings(), now=NOW)
    cap = len(everything) // 4
    rows, sampling = sampled_origins_and_labels(HISTORY, _settings(train_max_rows=cap), now=NOW)
    assert sampling.fraction == pytest.approx(cap / len(everything))
    assert 0.8 * cap < len(rows) < 1.2 * cap
    # a subset of the rows there could be, labels included
    merged = rows.merge(everything, on=KEYS, how="left", suffixes=("", "_all"), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["label"] == merged["label_all"]).all()
    # every horizon of a kept (series, origin) pair, as in the full set
    pair = ["store_id", "product_id", "origin"]
    kept = rows.groupby(pair).size()
    assert kept.equals(everything.groupby(pair).size().reindex(kept.index))
    order = ["origin", "store_id", "product_id", "horizon"]
    assert rows.equals(rows.sort_values(order).reset_index(drop=True))


def test_every_window_is_sampled_alike():
    """Early stopping and the backtest are uniform samples too, not left to chance."""
    everything = origins_and_labels(HISTORY, _settings(), now=NOW)
    rows, sampling = sampled_origins_and_labels(
        HISTORY, _settings(train_max_rows=len(everything) // 3), now=NOW
    )
    cutoff = everything["target"].max() - pd.Timedelta(days=55)
    for late in (False, True):
        part = (everything["origin"] >= cutoff) == late
        kept = (rows["origin"] >= cutoff) == late
        assert kept.sum() / part.sum() == pytest.approx(sampling.fraction, rel=0.25)


def test_the_same_seed_keeps_the_same_rows_and_another_seed_others():
    settings = _settings(train_max_rows=2_000)
    first, _ = sampled_origins_and_labels(HISTORY, settings, now=NOW)
    again, _ = sampled_origins_and_labels(HISTORY, settings, now=NOW)
    other, _ = sampled_origins_and_labels(
        HISTORY, _settings(train_max_rows=2_000, train_sample_seed=8), now=NOW
    )
    assert first.equals(again)
    assert not first[KEYS].equals(other[KEYS])


def test_a_rebuild_with_the_logged_fraction_keeps_the_same_rows_after_data_grew():
    """What the production gate relies on: a version's backtest rows, rebuilt a month and
    new series later with the fraction the run logged, are the rows it was scored on."""
    rows, sampling = sampled_origins_and_labels(HISTORY, _settings(train_max_rows=2_000), now=NOW)
    assert sampling.fraction < 0.5
    september = _history(last="2024-09-30")
    grown = pd.concat(
        [
            HISTORY,
            september[september["date"] >= "2024-09-01"],
            _history(stores=2).assign(store_id=lambda f: "N" + f["store_id"]),  # new stores
        ],
        ignore_index=True,
    )
    rebuilt, again = sampled_origins_and_labels(
        grown,
        _settings(train_sample_fraction=sampling.fraction),
        now=datetime(2024, 10, 1, tzinfo=UTC),
    )
    assert again == Sampling(sampling.fraction, sampling.seed, again.candidate_rows)
    window = rebuilt[
        (rebuilt["target"] <= rows["target"].max()) & rebuilt["store_id"].str.startswith("S")
    ].reset_index(drop=True)
    pd.testing.assert_frame_equal(window[KEYS], rows[KEYS])
    # the cap alone would have sampled the grown data at another fraction
    _, by_cap = sampled_origins_and_labels(
        grown, _settings(train_max_rows=2_000), now=datetime(2024, 10, 1, tzinfo=UTC)
    )
    assert by_cap.fraction < sampling.fraction
