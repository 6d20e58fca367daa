"""Reference profiles: what a version's features and predictions looked like when it was trained.

Each version logs one (``monitoring/reference_profile.json`` in its MLflow run), and the
nightly monitoring compares the night's feature vectors and forecasts with it. Per column:
the null rate, and either quantile bins (numeric: the reference's deciles, so each bin
holds a tenth of it) or the frequencies of the most common values (categorical). Per
feed (feature view): how old its newest row was against the sales feed's newest, and how
often it gets new rows, so a feed that stopped is seen the first night it misses.

Feast 0.67's ``feast monitor`` computes per-feature histograms too, but over each batch's
own min and max (bins that differ between the two sides cannot be compared bin by bin),
with a baseline per feature view rather than per model version, and no drift score;
hence the platform's own, a few kilobytes of JSON.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from demand.monitor_summary import finite

ARTIFACT = "monitoring/reference_profile.json"
FORMAT = 1
BINS = 10
TOP_VALUES = 20
OTHER = "__other__"
PREDICTION = "prediction"
# the share of the reference left out at each end of its range
RANGE = 0.005
# the smallest share a bin is taken to have: PSI's logarithm of an empty bin is infinite
EPSILON = 1e-4


def column_profile(values, categorical: bool) -> dict:
    """The profile of one column: its kind, null rate, rows and bins (or value shares)."""
    series = pd.Series(values)
    rows = len(series)
    if categorical:
        present = series.dropna().astype(str)
        counts = present.value_counts()
        top = counts.head(TOP_VALUES)
        shares = {str(k): float(v) / len(present) for k, v in top.items()} if len(present) else {}
        if len(present):
            shares[OTHER] = float(counts.iloc[TOP_VALUES:].sum()) / len(present)
        return {
            "kind": "categorical",
            "rows": rows,
            "null_rate": _null_rate(series),
            "shares": shares,
        }
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    present = numbers[~np.isnan(numbers)]
    edges = (
        np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
        if len(present)
        else []
    )
    low, high = np.quantile(present, [RANGE, 1 - RANGE]).tolist() if len(present) else (0.0, 0.0)
    return {
        "kind": "numeric",
        "rows": rows,
        "null_rate": float(np.isnan(numbers).mean()) if rows else 0.0,
        "edges": edges,
        "shares": _bin_shares(present, edges) if len(present) else [],
        # the reference's range, bar a tail each side: a feed in another unit leaves it
        "low": low,
        "high": high,
        "distinct": int(min(len(np.unique(present)), 1000)),
    }


def _null_rate(series: pd.Series) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def _bin_shares(present: np.ndarray, edges: list[float]) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return (counts / counts.sum()).tolist()


def shares_like(reference: dict, values) -> tuple[list[float], float, int]:
    """A new sample's shares in the reference's bins (or values), its null rate and its
    non-null count: the same cuts on both sides, so PSI compares like with like."""
    series = pd.Series(values)
    if reference["kind"] == "categorical":
        present = series.dropna().astype(str)
        known = [k for k in reference["shares"] if k != OTHER]
        counts = present.value_counts()
        if not len(present):
            return [0.0] * len(reference["shares"]), _null_rate(series), 0
        shares = [float(counts.get(k, 0)) / len(present) for k in known]
        other = 1.0 - sum(shares)
        return [*shares, max(other, 0.0)], _null_rate(series), len(present)
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    present = numbers[~np.isnan(numbers)]
    null_rate = float(np.isnan(numbers).mean()) if len(numbers) else 0.0
    if not len(present):
        return [0.0] * (len(reference["edges"]) + 1), null_rate, 0
    return _bin_shares(present, reference["edges"]), null_rate, len(present)


def outside_share(reference: dict, values) -> float:
    """The share of a sample's non-null values outside the reference's range (numeric)."""
    if reference["kind"] != "numeric" or "low" not in reference:
        return 0.0
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    present = numbers[~np.isnan(numbers)]
    if not len(present):
        return 0.0
    return float(((present < reference["low"]) | (present > reference["high"])).mean())


def comparable(reference: dict, values) -> bool:
    """Whether PSI means something for this sample: it holds as many distinct values as
    the reference has bins (or values, for a discrete feature). A
    night's weather is a few regions' values of one day: a point mass per region, whose
    PSI against any spread of days is large whatever the feed does."""
    if reference["kind"] != "numeric":
        return True
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return numbers.nunique() >= min(BINS, reference.get("distinct", BINS))


def reference_shares(reference: dict) -> list[float]:
    if reference["kind"] == "categorical":
        known = [k for k in reference["shares"] if k != OTHER]
        return [reference["shares"][k] for k in known] + [reference["shares"].get(OTHER, 0.0)]
    return list(reference["shares"])


def psi(expected: Iterable[float], actual: Iterable[float]) -> float:
    """Population stability index: Σ (actual − expected) · ln(actual / expected) over bins."""
    e = np.clip(np.asarray(list(expected), dtype=float), EPSILON, None)
    a = np.clip(np.asarray(list(actual), dtype=float), EPSILON, None)
    if not len(e) or len(e) != len(a):
        return float("nan")
    return float(np.sum((a - e) * np.log(a / e)))


def feed_ages(tables: Mapping[str, Path], sales_table: str) -> dict[str, dict[str, float]]:
    """Per feed (view → its parquet table): days from its newest row to the newest row of
    the sales table (``sales_table``, a file stem: the table giving the origin), and the
    median days between its last distinct row times (its cadence; NaN: written once)."""
    import duckdb

    newest: dict[str, list] = {}
    with duckdb.connect() as con:
        for view, path in tables.items():
            if not Path(path).exists():
                continue
            rows = con.execute(
                "SELECT DISTINCT event_timestamp FROM read_parquet(?) "
                "WHERE event_timestamp IS NOT NULL ORDER BY 1 DESC LIMIT 12",
                [str(path)],
            ).fetchall()
            newest[view] = [pd.Timestamp(r[0]) for r in rows]
    sales = [v for v, p in tables.items() if Path(p).stem == sales_table and newest.get(v)]
    if not sales:
        return {}
    anchor = newest[sales[0]][0]
    feeds = {}
    for view, stamps in newest.items():
        if not stamps:
            continue
        gaps = [(a - b) / pd.Timedelta(days=1) for a, b in itertools.pairwise(stamps)]
        feeds[view] = {
            "age_days": (anchor - stamps[0]) / pd.Timedelta(days=1),
            "cadence_days": float(np.median(gaps)) if gaps else math.nan,
        }
    return feeds


def reference_profile(
    features: pd.DataFrame,
    categorical: Iterable[str],
    predictions,
    feeds: dict[str, dict[str, float]] | None = None,
) -> dict:
    """The whole profile a version logs: every feature column, the predictions, the feeds."""
    categorical = set(categorical)
    return {
        "format": FORMAT,
        "rows": len(features),
        "features": {
            name: column_profile(features[name], name in categorical) for name in features.columns
        },
        PREDICTION: column_profile(np.asarray(predictions, dtype=float), categorical=False),
        "feeds": feeds or {},
    }


def request_only(store, views: Iterable[str]) -> list[str]:
    """Features computed from the request alone (the calendar of the target day): a pure
    function of the night's date, which differs from the reference's by construction, and
    no feed that could drift."""
    names = []
    for name in views:
        try:
            view = store.get_on_demand_feature_view(name)
        except Exception:  # a batch view: Feast raises its own not-found error
            continue
        if not view.source_feature_view_projections:
            names += [f.name for f in view.features]
    return names


def feature_tables(store, views: Iterable[str]) -> dict[str, Path]:
    """The offline table (parquet) behind each batch feature view of ``views``."""
    tables = {}
    for name in views:
        try:
            view = store.get_feature_view(name)
        except Exception:  # an on-demand view has no table of its own
            continue
        path = getattr(view.batch_source, "path", None)
        if path:
            tables[name] = Path(path)
    return tables


def log_reference(store, contract, sales_table: str, features: pd.DataFrame, predictions) -> None:
    """Log the version's reference profile to the active MLflow run: the backtest rows'
    features (as the offline join gave them, nulls kept) and the backtest predictions."""
    import mlflow

    feeds = feed_ages(feature_tables(store, contract.feature_views), sales_table)
    calendar = request_only(store, contract.feature_views)
    profile = reference_profile(
        features.drop(columns=[c for c in calendar if c in features]),
        contract.categorical,
        predictions,
        feeds,
    )
    profile["left_out"] = sorted(c for c in calendar if c in features)
    mlflow.log_dict(finite(profile), ARTIFACT)  # a feed written once has no cadence: NaN
