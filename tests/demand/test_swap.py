"""A directory swap is whole at every instant: a crash at any of its steps (each rename,
link and deletion, in turn) leaves the directory, once recovered, all old or all new,
and the next swap leaves nothing of the crashed one behind."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from demand import swap


class Crash(Exception):
    """The process dies here."""


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def contents(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


OLD = {"a.parquet": "old a", "b.parquet": "old b", "imports/0001/summary.json": "old"}
NEW = {"a.parquet": "new a", "c.parquet": "new c", "imports/0002/summary.json": "new"}


def crash_at(monkeypatch, step: int) -> list[str]:
    """Raise at the ``step``-th rename, link or deletion of a swap (before it happens);
    returns the steps seen."""
    seen: list[str] = []
    for name in ("_rename", "_symlink", "_remove"):
        real = getattr(swap, name)

        def counted(*args, _real=real, _name=name):
            if len(seen) == step:
                raise Crash(f"{_name}{args}")
            seen.append(_name)
            return _real(*args)

        monkeypatch.setattr(swap, name, counted)
    return seen


def steps_of_a_swap(tmp_path: Path, linked: bool, monkeypatch) -> int:
    """How many steps a swap from this start takes (run once without a crash)."""
    live = _start(tmp_path / "count", linked)
    seen = crash_at(monkeypatch, 10_000)
    swap.swap_in(write(live.with_name("raw.next"), NEW), live)
    monkeypatch.undo()
    assert contents(live) == NEW
    return len(seen)


def _start(root: Path, linked: bool) -> Path:
    """``root/raw`` holding OLD: a plain directory (as written before links), or a link."""
    live = root / "raw"
    if linked:
        swap.swap_in(write(root / "raw.next", OLD), live)
        assert live.is_symlink()
    else:
        write(live, OLD)
    return live


@pytest.mark.parametrize("linked", [False, True], ids=["plain directory", "link"])
def test_a_crash_at_every_step_leaves_old_or_new_whole(tmp_path, monkeypatch, linked):
    total = steps_of_a_swap(tmp_path, linked, monkeypatch)
    assert total >= 4  # the move aside, the generation rename, the link, the flip
    outcomes = []
    for step in range(total + 1):
        root = tmp_path / f"crash-{step}"
        live = _start(root, linked)
        crash_at(monkeypatch, step)
        built = write(root / "raw.next", NEW)
        if step < total:
            with pytest.raises(Crash):
                swap.swap_in(built, live)
        else:
            swap.swap_in(built, live)
        monkeypatch.undo()
        # the next command opens the directory
        seen = contents(swap.recover(live))
        assert seen in (OLD, NEW), (step, seen)
        outcomes.append("new" if seen == NEW else "old")
        # and the next writer (which, as every writer, empties its aside folder first)
        # cleans up whatever the crash left
        shutil.rmtree(root / "raw.next", ignore_errors=True)
        swap.swap_in(write(root / "raw.next", {"d.parquet": "again"}), live)
        assert contents(live) == {"d.parquet": "again"}
        left = sorted(p.name for p in root.iterdir() if p.name not in ("raw", ".raw.lock"))
        assert left == [os.readlink(live)], (step, left)
    # every crash before the flip keeps the old state, every one after it the new
    assert outcomes == sorted(outcomes, key=["old", "new"].index), outcomes
    assert outcomes[0] == "old" and outcomes[-1] == "new"


def test_an_older_versions_interrupted_swap_is_put_back(tmp_path):
    """The two-rename swap before links: raw moved to raw.previous, the new one never
    renamed in. Opening the directory puts the previous one back."""
    write(tmp_path / "raw.previous", OLD)
    assert contents(swap.recover(tmp_path / "raw")) == OLD
    assert not (tmp_path / "raw.previous").exists()


def test_remove_deletes_the_link_and_its_generation(tmp_path):
    live = tmp_path / "raw"
    swap.swap_in(write(tmp_path / "raw.next", OLD), live)
    swap.remove(live)
    # the writers' lock stays: deleting it could let two writers hold two different files
    assert [p.name for p in tmp_path.iterdir()] == [".raw.lock"]


WRITER = """
import os, sys, time
from pathlib import Path
from demand import swap

live, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real = swap._symlink

def slow_symlink(*args):  # a slow disk: the other writer gets to run between the steps
    time.sleep(0.002)
    return real(*args)

swap._symlink = slow_symlink
for n in range(rounds):
    built = live.with_name(f"{live.name}.{name}.next")
    built.mkdir()
    for part in range(3):
        (built / f"{part}.parquet").write_text(f"{name} {n}")
    swap.swap_in(built, live)
    # the link names a generation that is there (it is deleted only after the next flip;
    # looked at twice: that flip's deletion may end between reading the link and its target)
    if not live.exists() and not (time.sleep(0.01) or live.exists()):
        sys.exit(f"{name} round {n}: {live} links to a deleted generation")
"""


def test_two_concurrent_writers_never_delete_each_others_generation(tmp_path):
    """Two processes swapping the same directory at once: every swap completes, the link
    never names a deleted generation, and the directory ends whole (one writer's last
    round) with one generation left."""
    import subprocess
    import sys

    live = tmp_path / "raw"
    swap.swap_in(write(tmp_path / "first", OLD), live)
    rounds = 60
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(live), name, str(rounds)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    errors = [w.communicate(timeout=300)[1] for w in writers]

    assert [w.returncode for w in writers] == [0, 0], errors
    final = contents(live)
    assert final in (
        {f"{p}.parquet": f"{name} {rounds - 1}" for p in range(3)} for name in ("a", "b")
    )
    assert len(list(tmp_path.glob("raw.g-*"))) == 1


def test_a_second_writer_waits_and_neither_loses_the_others_tables(tmp_path):
    """Two builds of one directory at once: the second waits (and says so) until the first
    has linked its tables, then starts from them; none of the first's files is lost."""
    live = tmp_path / "features"
    started, finish = threading.Event(), threading.Event()
    heard: list[str] = []
    seen: dict[str, dict[str, str]] = {}
    errors: list[BaseException] = []

    def first():
        try:
            with swap.replacing(live) as aside:
                (aside / "a.parquet").write_text("first a")
                started.set()
                assert finish.wait(30)
                (aside / "b.parquet").write_text("first b")
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    def second():
        try:
            with swap.replacing(live, heard.append) as aside:
                seen["live"] = contents(live)
                (aside / "a.parquet").write_text("second a")
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=first), threading.Thread(target=second)]
    writers[0].start()
    assert started.wait(30)
    writers[1].start()
    for _ in range(300):  # the second says it waits before it blocks
        if heard:
            break
        time.sleep(0.01)
    assert heard == [f"another process is writing {live}; waiting until it is done"]
    assert not live.exists()  # nothing linked while the first is still writing
    finish.set()
    for writer in writers:
        writer.join(30)
    assert not errors
    assert seen["live"] == {"a.parquet": "first a", "b.parquet": "first b"}
    assert contents(live) == {"a.parquet": "second a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".features.lock",
        "features",
        os.readlink(live),
    ]


def test_a_block_that_deletes_its_directory_swaps_nothing(tmp_path):
    live = tmp_path / "raw"
    swap.swap_in(write(tmp_path / "first", OLD), live)
    with swap.replacing(live) as aside:
        (aside / "a.parquet").write_text("unchanged")
        shutil.rmtree(aside)  # the import found nothing new
    assert contents(live) == OLD


def test_a_failed_block_leaves_the_directory_as_it_was(tmp_path):
    live = tmp_path / "raw"
    swap.swap_in(write(tmp_path / "first", OLD), live)
    with pytest.raises(Crash), swap.replacing(live) as aside:
        (aside / "a.parquet").write_text("half")
        raise Crash("the build failed")
    assert contents(live) == OLD
    assert not live.with_name("raw.next").exists()
