"""An import killed at any step of its swap leaves the raw directory whole (the old
import's tables or the new one's), and whichever command opens it next, `demand
generate` included, sees that state: the imported data is never orphaned and then
deleted by a later import."""

from __future__ import annotations

import hashlib

import pytest

from demand.console import UserError
from demand.settings import get_settings
from features import pipeline
from rawdata.importer import run_import
from tests.demand.test_swap import Crash, crash_at
from tests.rawdata.importing.files import NOW, base, write

pytestmark = pytest.mark.usefixtures("clean_demand_env")

LATER = {
    "sales.csv": [
        "store_id,product_id,date,units,price,promo",
        "S1,P1,2024-01-07,40,9.9,true",  # replaces a row of the first import
        "S1,P1,2024-01-08,3,9.9,false",  # new
    ]
}


def _tables(raw_dir) -> dict[str, str]:
    """A digest of the raw tables and the description (the history has timestamps)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(raw_dir.glob("*"))
        if p.is_file()
    }


def _import(folder, raw_dir):
    return run_import(folder, raw_dir, now=NOW, progress=lambda _: None)


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """The raw tables after the first import, and after the second."""
    root = tmp_path_factory.mktemp("reference")
    raw_dir = root / "raw"
    _import(write(root / "one", base()), raw_dir)
    old = _tables(raw_dir)
    _import(write(root / "two", LATER), raw_dir)
    return root, old, _tables(raw_dir)


def _steps(monkeypatch, tmp_path, states) -> int:
    root, _, _ = states
    raw_dir = tmp_path / "count" / "raw"
    _import(root / "one", raw_dir)
    seen = crash_at(monkeypatch, 10_000)
    _import(root / "two", raw_dir)
    monkeypatch.undo()
    return len(seen)


def test_an_import_killed_at_every_step_leaves_old_or_new_and_generate_keeps_it(
    tmp_path, monkeypatch, states
):
    root, old, new = states
    total = _steps(monkeypatch, tmp_path, states)
    assert total >= 4
    for step in range(total):
        settings = get_settings(data_dir=tmp_path / f"crash-{step}", scale="tiny", seed=7)
        raw_dir = settings.data_dir / "raw"
        _import(root / "one", raw_dir)
        crash_at(monkeypatch, step)
        with pytest.raises(Crash):
            _import(root / "two", raw_dir)
        monkeypatch.undo()
        # the next command: generate refuses to write over the imported data
        with pytest.raises(UserError, match="imported data"):
            pipeline.generate(settings, progress=lambda _: None)
        assert _tables(settings.raw_dir) in (old, new), step
        # and the next import finishes the job on whatever state it finds
        _import(root / "two", settings.raw_dir)
        assert _tables(settings.raw_dir) == new, step


def test_an_older_versions_half_done_swap_is_not_orphaned_by_generate(tmp_path, states):
    """The swap before links: raw renamed to raw.previous, the new raw not yet in place.
    `demand generate` then wrote a generated retailer into a fresh raw, and the next
    import deleted raw.previous: the imported data was gone."""
    root, old, _ = states
    settings = get_settings(data_dir=tmp_path / "data", scale="tiny", seed=7)
    raw_dir = settings.data_dir / "raw"
    _import(root / "one", raw_dir)
    raw_dir.rename(raw_dir.with_name("raw.previous"))  # the crash between the two renames
    with pytest.raises(UserError, match="imported data"):
        pipeline.generate(settings, progress=lambda _: None)
    assert _tables(raw_dir) == old
    assert not raw_dir.with_name("raw.previous").exists()
