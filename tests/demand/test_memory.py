"""demand.memory measures a step's own peak, not the process's since it started."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from demand import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def test_the_peak_of_a_step_is_its_own():
    memory.reset_peak()
    before = memory.peak_gib()
    block = bytearray(300 * 2**20)  # 300 MiB, touched: zero-filled pages are resident
    block[::4096] = b"x" * len(block[::4096])
    during = memory.peak_gib()
    del block
    memory.reset_peak()
    after = memory.peak_gib()
    assert during - before >= 0.25
    assert after < during - 0.2  # the reset forgot the earlier step's peak


def test_release_hands_freed_memory_back():
    import numpy as np

    def resident() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
        raise AssertionError("no VmRSS")

    # many small objects below a live one: freed, glibc keeps their pages until trimmed
    blocks = [np.ones(2_000) for _ in range(40_000)]  # ~0.6 GiB in 16 kB arrays
    pin = np.ones(2_000)
    held = resident()
    del blocks
    gc.collect()
    assert resident() > held - 0.1  # collected, still held by the process
    memory.release()
    assert resident() < held - 0.3
    del pin
