"""Directories replaced whole: the raw tables and the feature tables.

``DATA_DIR/raw`` and ``DATA_DIR/features`` are symbolic links to a generation directory
beside them (``raw.g-<id>``). A writer fills a new directory aside, renames it to a new
generation and flips the link with one ``rename(2)`` of a new link over the old one: a
reader opening the directory at any instant, or after a crash at any point, sees one
whole generation, old or new. The old generation is deleted after the flip.

A directory written before links were used (or by an older version, whose swap was two
renames through ``<name>.previous``) is turned into a link on its first swap: renamed to
``<name>.previous``, then linked there. A crash between those two leaves no ``<name>``;
:func:`recover`, called wherever the directory is opened (``Settings.raw_dir`` and
``Settings.feature_dir``), renames ``<name>.previous`` back. That is the only state a
reader ever repairs; leftovers of an interrupted writer (a generation never linked, a
half-deleted old one) are unreferenced and removed by the next writer (:func:`swap_in`),
never by a reader, which could be racing a writer that is still filling them.

Writers of one directory take turns: :func:`replacing`, :func:`swap_in` and :func:`remove`
hold an exclusive ``flock`` on ``.<name>.lock`` beside it. Without it, two writers at once
(a nightly build and a manual one, two imports) deleted each other's generation between
its rename and its flip, as "left behind by a crash", and the link named a deleted
directory; and two builds sharing ``<name>.next`` deleted each other's half-written
tables, so :func:`replacing` holds the lock from the moment ``<name>.next`` is started
until it is linked. The lock is the kernel's: a writer that dies releases it, so a crash
never leaves it held.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

GENERATION = ".g-"  # raw.g-<id>: one generation of raw
LINK = ".link"  # raw.link: the new link, before it is renamed over raw
PREVIOUS = ".previous"  # raw.previous: a real directory being turned into a link
LOCK = ".lock"  # .raw.lock: held by the one writer swapping raw
NEXT = ".next"  # raw.next: the new directory, being written by the writer holding the lock


def _rename(source: Path, target: Path) -> None:
    """Every rename of a swap (the crash tests raise here, at each in turn)."""
    os.replace(source, target)


def _symlink(name: str, at: Path) -> None:
    """Every link a swap creates (the crash tests raise here too)."""
    os.symlink(name, at, target_is_directory=True)


def _remove(path: Path) -> None:
    """Every deletion of a swap (a crash mid-way leaves an unlinked directory, never a
    linked one half deleted)."""
    shutil.rmtree(path, ignore_errors=True)


def recover(live: Path) -> Path:
    """``live`` as one whole generation after an interrupted swap; returns ``live``.

    Cheap when nothing was interrupted (one ``lstat``): it runs on every opening.
    """
    if os.path.lexists(live):
        return live
    previous = live.with_name(live.name + PREVIOUS)
    if previous.is_dir():
        with contextlib.suppress(FileNotFoundError):  # another process recovered it first
            _rename(previous, live)
    return live


@contextlib.contextmanager
def writing(live: Path, waiting: Callable[[str], None] | None = None):
    """Hold ``live``'s writer lock (blocking until another writer is done).

    ``waiting`` hears once that another writer holds it, before this one blocks.
    """
    path = live.with_name(f".{live.name}{LOCK}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:  # released on close, or when the process dies
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                waiting(f"another process is writing {live}; waiting until it is done")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def replacing(live: Path, waiting: Callable[[str], None] | None = None) -> Iterator[Path]:
    """A new, empty ``<name>.next`` to fill; swapped in for ``live`` whole when the block
    ends without an error, and deleted either way.

    The writer lock is held throughout: a second writer of ``live`` (a nightly build and
    a manual one, two imports) waits, and ``waiting`` hears so. A block that leaves the
    directory absent (nothing changed) swaps nothing.
    """
    with writing(live, waiting):
        aside = live.with_name(live.name + NEXT)
        _remove(aside)  # a crashed writer's: nobody else writes it while the lock is held
        aside.mkdir(parents=True)
        try:
            yield aside
            if aside.exists():
                _swap_in(aside, live)
        finally:
            _remove(aside)


def swap_in(built: Path, live: Path) -> None:
    """Replace the directory ``live`` by ``built`` (a sibling) whole, in one atomic rename.

    Then the old generation and any a crashed swap left behind are removed. One writer at
    a time (:func:`writing`): "left behind" is then never another writer's generation.
    """
    with writing(live):
        _swap_in(built, live)


def _swap_in(built: Path, live: Path) -> None:
    recover(live)
    for _ in range(3):  # a reader may put a half-converted directory back meanwhile
        if _as_link(live):
            break
    else:
        raise OSError(f"{live} could not be turned into a link (another process keeps it)")
    old = _target(live)
    generation = live.with_name(f"{live.name}{GENERATION}{uuid.uuid4().hex[:12]}")
    _rename(built, generation)
    link = live.with_name(live.name + LINK)
    if os.path.lexists(link):
        link.unlink()
    _symlink(generation.name, link)
    _rename(link, live)  # the flip: before it the old generation, after it the new one
    for stale in _unlinked(live):
        _remove(stale)
    if old is not None and old != generation and old.exists():
        _remove(old)


def remove(live: Path) -> None:
    """Delete ``live`` and what it links to (``demand generate --replace-imported``)."""
    with writing(live):
        _remove_live(live)


def _remove_live(live: Path) -> None:
    recover(live)
    target = _target(live)
    if live.is_symlink():
        live.unlink()
    elif live.exists():
        shutil.rmtree(live)
    if target is not None:
        shutil.rmtree(target, ignore_errors=True)


def _as_link(live: Path) -> bool:
    """Make ``live`` a link (a real directory is moved beside it first); False when another
    process put the directory back between the two steps."""
    if live.is_symlink() or not live.exists():
        return True
    previous = live.with_name(live.name + PREVIOUS)
    _remove(previous)  # an older version's finished swap left it
    _rename(live, previous)
    try:
        _symlink(previous.name, live)
    except FileExistsError:
        return False
    return True


def _target(live: Path) -> Path | None:
    """The generation ``live`` links to (None: no link)."""
    if not live.is_symlink():
        return None
    return live.with_name(os.readlink(live))


def _unlinked(live: Path) -> list[Path]:
    """Generations, and directories on their way to becoming links, that ``live`` no
    longer names: what interrupted swaps left behind."""
    current = _target(live)
    found = [p for p in live.parent.glob(f"{live.name}{GENERATION}*") if p != current]
    previous = live.with_name(live.name + PREVIOUS)
    if previous.exists() and previous != current:
        found.append(previous)
    return found
