"""Each of the model's target statistics reads one categorical feature (DEMAND_CTR_COMPLEXITY).

CatBoost's CPU default combines up to four, and the combinations' statistics grew the fit's
memory with its trees (its own 1.21 GiB against 0.62 at 400k weekly rows, docs/benchmarks.md).
The second test is the first's planted bug: it shows the check sees a combination where
there is one.
"""

import json

import numpy as np
import pandas as pd

from demand.settings import Settings
from training import model as demand_model


def _pairs_drive_demand(n: int = 3000) -> tuple[pd.DataFrame, pd.Series]:
    """Sales set by the store × product pair, not by either alone: a combination's use."""
    rng = np.random.default_rng(5)
    stores = rng.integers(0, 6, n)
    products = rng.integers(0, 8, n)
    x = pd.DataFrame(
        {
            "store_id": [f"S{s}" for s in stores],
            "product_id": [f"P{p}" for p in products],
            "price": rng.uniform(1, 5, n),
        }
    )
    hot = (stores + products) % 3 == 0
    return x, pd.Series(rng.poisson(np.where(hot, 8.0, 1.0)).astype(float))


def _widest_statistic(complexity: int, tmp_path) -> int:
    """The most categorical features any target statistic of the fitted model combines."""
    x, y = _pairs_drive_demand()
    settings = Settings(ctr_complexity=complexity, iterations=60)
    model = demand_model.refit(
        x, y, ["store_id", "product_id"], demand_model.params(settings, "CPU"), 60, verbose=0
    )
    path = tmp_path / f"model-{complexity}.json"
    model.save_model(str(path), format="json")
    statistics = json.loads(path.read_text())["features_info"]["ctrs"]
    return max(len(s["elements"]) for s in statistics)


def test_the_default_model_reads_one_categorical_feature_per_statistic(tmp_path):
    assert Settings().ctr_complexity == 1
    assert _widest_statistic(Settings().ctr_complexity, tmp_path) == 1


def test_catboosts_own_default_would_combine_the_pair(tmp_path):
    assert _widest_statistic(4, tmp_path) == 2
