"""demand.memory measures a step's own peak, not the process's since it started."""

from __future__ import annotations

import sys

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
