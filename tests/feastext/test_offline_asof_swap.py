"""A training set never mixes two files: the ASOF store reads a view's parquet twice (the
join finds file row numbers, a second read takes the values at them), and a feature
build may swap the file in between. The swap here happens at that very seam, between
the store's two reads."""

from __future__ import annotations

import os
from datetime import timedelta

import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.types import Float64

from demand.console import UserError
from demand.featurestore import ASOF_OFFLINE_STORE
from feastext import offline_asof

T0 = pd.Timestamp("2026-01-01", tz="UTC")
PRODUCTS = [f"p{i:02d}" for i in range(40)]


def _rows(offset: float, reverse: bool) -> pd.DataFrame:
    """One row a product; another build's file: other values, rows in another order."""
    frame = pd.DataFrame(
        {
            "product_id": PRODUCTS,
            "event_timestamp": [T0] * len(PRODUCTS),
            "units": [offset + i for i in range(len(PRODUCTS))],
        }
    )
    return frame.iloc[::-1].reset_index(drop=True) if reverse else frame


@pytest.fixture
def swapped(tmp_path):
    """A store over ``product.parquet`` (the old build), and the new build's file beside it."""
    live = tmp_path / "product.parquet"
    _rows(0.0, reverse=False).to_parquet(live)
    new = tmp_path / "new.parquet"
    _rows(1000.0, reverse=True).to_parquet(new)
    product = Entity(name="product", join_keys=["product_id"])
    view = FeatureView(
        name="product_stats",
        entities=[product],
        ttl=timedelta(days=30),
        schema=[Field(name="units", dtype=Float64)],
        source=FileSource(path=str(live), timestamp_field="event_timestamp"),
    )
    config = RepoConfig(
        project="asof_swap",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        offline_store={"type": ASOF_OFFLINE_STORE},
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        entity_key_serialization_version=3,
    )
    config.repo_path = tmp_path
    store = FeatureStore(config=config)
    store.apply([product, view])
    return store, live, new


def _retrieve(store) -> pd.Series:
    entities = pd.DataFrame(
        {"product_id": PRODUCTS, "event_timestamp": [T0 + pd.Timedelta(days=1)] * len(PRODUCTS)}
    )
    frame = store.get_historical_features(
        entity_df=entities, features=["product_stats:units"]
    ).to_df()
    return frame.set_index("product_id")["units"]


def _swap_between_reads(monkeypatch, live, new, times: int) -> list[int]:
    """Replace ``live`` by a copy of ``new`` (a build's rename) after the first read,
    ``times`` times; returns the list of swaps done."""
    second_read = offline_asof._values_at
    done: list[int] = []

    def swap_then_read(*args, **kwargs):
        if len(done) < times:
            # a fresh file each time (as a build writes one), renamed over the live one
            staged = live.with_name(f"staged-{len(done)}.parquet")
            staged.write_bytes(new.read_bytes() if len(done) % 2 == 0 else live.read_bytes())
            os.replace(staged, live)
            done.append(1)
        return second_read(*args, **kwargs)

    monkeypatch.setattr(offline_asof, "_values_at", swap_then_read)
    return done


def test_a_swap_between_the_two_reads_gives_one_files_values(swapped, monkeypatch):
    store, live, new = swapped
    done = _swap_between_reads(monkeypatch, live, new, times=1)
    got = _retrieve(store)
    assert done == [1]
    # the new file's value for every product, none taken from another product's row
    expected = pd.Series({p: 1000.0 + i for i, p in enumerate(PRODUCTS)}, name="units")
    pd.testing.assert_series_equal(got.sort_index(), expected, check_names=False)


def test_a_file_replaced_at_every_read_is_a_clear_error(swapped, monkeypatch):
    store, live, new = swapped
    _swap_between_reads(monkeypatch, live, new, times=100)
    with pytest.raises(UserError, match="replaced while a training set read it"):
        _retrieve(store)
