"""The peak memory of a step of this process, for reports that say what a step costs.

Linux keeps the process's peak resident set (``VmHWM``) and lets the process reset it
(``5`` into ``/proc/self/clear_refs``), so each step's own peak is measured, not the
largest since the process started. Elsewhere both functions do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> None:
    """Start measuring a new peak from the current resident set."""
    with contextlib.suppress(OSError):  # not Linux, or /proc read-only: peaks since start
        _CLEAR_REFS.write_text("5")


def peak_gib() -> float | None:
    """The peak resident set since the last :func:`reset_peak` (or the start), GiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def release() -> None:
    """Hand memory the process no longer uses back to the system, between big steps.

    Python and glibc keep freed heap for reuse: after the M5 training set was built and
    dropped, the process still held 2.9 GiB, of which ``malloc_trim`` returned 1.7 GiB
    (measured here); the next step's peak starts that much lower. Elsewhere than glibc
    only the collection runs.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.util.find_library("c")
        if libc:
            ctypes.CDLL(libc).malloc_trim(0)
