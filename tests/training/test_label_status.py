"""No training label from a period a pair was inactive in or that ran out of stock.

On a hand-made history with the sales table's ``active`` and ``censored`` columns (no
Feast): the rows whose target is such a period are left out, counted in the sampling's
params (the training report), and every other row keeps its label.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from demand.settings import get_settings
from training.dataset import origins_and_labels, sampled_origins_and_labels

NOW = datetime(2024, 9, 1, tzinfo=UTC)


def _history() -> pd.DataFrame:
    days = pd.date_range("2024-01-01", "2024-08-31")
    parts = []
    for store, product in (("S1", "P1"), ("S1", "P2")):
        parts.append(
            pd.DataFrame(
                {
                    "store_id": store,
                    "product_id": product,
                    "date": days,
                    "units": 2.0,
                    "active": 1.0,
                    "censored": 0.0,
                }
            )
        )
    history = pd.concat(parts, ignore_index=True)
    stopped = (history["product_id"] == "P1") & (history["date"] >= "2024-07-01")
    history.loc[stopped, ["units", "active"]] = 0.0
    ran_out = (history["product_id"] == "P2") & (history["date"] == "2024-06-15")
    history.loc[ran_out, "censored"] = 1.0
    return history


def test_inactive_and_censored_targets_give_no_label():
    settings = get_settings(origin_every_days=3)
    history = _history()
    rows, sampling = sampled_origins_and_labels(
        history, settings.model_copy(update={"train_sample_fraction": 1.0}), now=NOW
    )
    p1 = rows[rows["product_id"] == "P1"]
    assert p1["target"].max() < pd.Timestamp("2024-07-01")
    assert (rows["label"] == 2.0).all()  # only real sales are labels here
    assert not ((rows["product_id"] == "P2") & (rows["target"] == "2024-06-15")).any()
    assert sampling.inactive_labels > 0 and sampling.censored_labels > 0
    assert sampling.params()["censored_labels"] == sampling.censored_labels

    # without the status columns (tables built before them) every target is a label
    plain = origins_and_labels(history.drop(columns=["active", "censored"]), settings, now=NOW)
    assert len(plain) == len(rows) + sampling.inactive_labels + sampling.censored_labels
