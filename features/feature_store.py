"""Register the feature repo with Feast and load the online store from the offline tables."""

from __future__ import annotations

import contextlib
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from demand.featurestore import open_store
from demand.settings import Settings
from features.build import FEATURE_TABLES


def apply(settings: Settings):
    """``feast apply`` in-process: register the repo's definitions; the store and what changed."""
    from feast.repo_operations import apply_total_with_repo_instance, parse_repo

    _require_feature_tables(settings)
    store = open_store(settings)
    repo = Path(settings.feature_repo)
    # Feast resolves the repo's own imports (``from entities import store``) by path
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    _forget_repo_modules(repo)
    with contextlib.chdir(repo):  # Feast names the repo's modules relative to the cwd
        contents = parse_repo(repo)
    if not contents.projects:  # as `feast apply` does: the project named in the yaml
        from feast.project import Project

        contents.projects.append(Project(name=store.project))
    # Feast prints its whole diff, protobuf dumps included; keep the one-line summaries
    diff = io.StringIO()
    with contextlib.redirect_stdout(diff):
        apply_total_with_repo_instance(
            store, store.project, store.registry, contents, skip_source_validation=False
        )
    changes = [
        line
        for line in diff.getvalue().splitlines()
        if line.split(" ", 1)[0] in {"Created", "Updated", "Deleted"}
    ]
    return store, changes


def _forget_repo_modules(repo: Path) -> None:
    """Drop the repo's modules from Python's import cache before Feast imports them.

    The data sources read DEMAND_DATA_DIR when imported; a cached module would keep
    the first data directory of the process, and a second apply (another data dir,
    another profile) would register the first one's paths.
    """
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(repo.resolve()):
            del sys.modules[name]


def _require_feature_tables(settings: Settings) -> None:
    missing = [t for t in FEATURE_TABLES if not (settings.feature_dir / f"{t}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"feature tables missing in {settings.feature_dir}: {', '.join(missing)}; "
            "run `demand build-features` first"
        )


def latest_feature_time(settings: Settings) -> datetime:
    """The newest event timestamp over all feature tables."""
    latest = max(
        pq.read_table(settings.feature_dir / f"{t}.parquet", columns=["event_timestamp"])
        .column("event_timestamp")
        .to_pandas()
        .max()
        for t in FEATURE_TABLES
    )
    return latest.to_pydatetime()


def materialize(settings: Settings, incremental: bool = False, end: datetime | None = None):
    """Load the online store with each key's latest row up to ``end`` (default: newest data).

    Full: every row since the start of time. Incremental: only rows newer than
    what each view last materialized (Feast keeps that interval in its registry).
    """
    _require_feature_tables(settings)
    store = open_store(settings)
    # +1 s: Feast's interval is end-exclusive for the newest rows
    end = end or latest_feature_time(settings) + timedelta(seconds=1)
    if incremental:
        store.materialize_incremental(end_date=end)
    else:
        store.materialize(start_date=datetime(1970, 1, 2, tzinfo=UTC), end_date=end)
    return store
