"""Opening the Feast store of the current settings.

Shared by the feature pipeline (apply, materialize), training and serving, so
all of them see the same registry, offline and online stores. (Online lookups
by entity keys live in :mod:`serving.lookup`, the one lookup of the code base.)
"""

from __future__ import annotations

import os
import warnings

from demand.console import quiet_library_warnings
from demand.settings import Settings


def feast_environ(settings: Settings) -> dict[str, str]:
    """The DEMAND_* variables feature_store*.yaml and the data sources read.

    Exported (by :func:`open_store`, or into a `feast` child's environment) with the
    resolved values, so Feast sees the same places as the rest of the platform.
    """
    return {
        "DEMAND_DATA_DIR": str(settings.data_dir),
        "DEMAND_FEAST_PROJECT": settings.feast_project,
        "DEMAND_REDIS_URL": settings.redis_url,
        "DEMAND_FEAST_REGISTRY_URL": settings.feast_registry_url,
    }


def open_store(settings: Settings):
    """A FeatureStore over ``settings.feature_repo`` with its data under ``settings.data_dir``."""
    os.environ.update(feast_environ(settings))
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    from feast import FeatureStore  # heavy import, only when a store is needed

    # ibis (under Feast's DuckDB store) warns about its own deprecated calls on every read,
    # and Feast calls its on-demand views experimental each time they are used
    quiet_library_warnings()
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    return FeatureStore(
        repo_path=str(settings.feature_repo), fs_yaml_file=settings.feature_store_yaml
    )
