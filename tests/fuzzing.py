"""Property-based tests two ways: a fixed set in `make test`, fresh seeds under `make fuzz`.

A test asks for the ``fuzzer`` fixture and hands it a body that runs its hypothesis
tests through ``Round.apply``::

    def test_x(fuzzer):
        def body(round):
            round.apply(given(x=st.integers())(check), examples=100)()
        fuzzer.run("x", body)

- ``make test``: one round, derandomized, ``examples`` each: the same cases every run,
  in seconds, whatever the machine's load (no deadline).
- ``make fuzz`` (``FUZZ_SECONDS`` set; it runs ``pytest -m fuzz``, the tests that use the
  fixture): rounds of ``examples × FUZZ_SCALE`` examples, each round seeded afresh,
  until this test's share of ``FUZZ_SECONDS`` is spent (the time left, divided among the
  fuzzed tests not yet run by their ``fuzz_weight`` marks; fixtures' setup not counted).
  Every round prints its seed, and a failure prints the command that replays it:
  ``FUZZ_SEED`` runs one round with that seed (``make fuzz SEED=…``).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, seed, settings

SECONDS = float(os.environ.get("FUZZ_SECONDS", "0") or 0)
SEED = os.environ.get("FUZZ_SEED", "")
FUZZING = SECONDS > 0 or bool(SEED)
SCALE = float(os.environ.get("FUZZ_SCALE", "3"))  # examples per fuzz round, × a test's fixed set


@dataclass(frozen=True)
class Round:
    seed: int | None  # None: derandomized (make test)
    scale: float = 1.0

    def apply(self, test, examples: int, **options):
        """``test`` (a @given function) with this round's settings and seed.

        Make ``test`` in the body, afresh each round: hypothesis takes settings once.
        """
        test = settings(
            max_examples=max(1, round(examples * self.scale)),
            derandomize=self.seed is None,
            database=None,  # nothing written into the work tree; a failure prints its seed
            deadline=None,  # no test depends on the machine's load
            suppress_health_check=list(HealthCheck),
            print_blob=True,
            **options,
        )(test)
        return test if self.seed is None else seed(self.seed)(test)


def _say(text: str) -> None:
    # past pytest's capture (of the file descriptors too): a fuzz run is watched
    if _config is None:
        sys.__stderr__.write(text + "\n")
        return
    capture = _config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        _config.pluginmanager.get_plugin("terminalreporter").write_line(text)


_config = None


class Budget:
    """FUZZ_SECONDS of fuzzing, shared among the fuzzed tests by weight (fixtures not counted)."""

    def __init__(self) -> None:
        self.seconds = SECONDS
        self.weights = 0.0  # of the fuzzed tests not yet run

    def share(self, weight: float) -> float:
        share = self.seconds * weight / max(weight, self.weights)
        self.weights -= weight
        return share


class Fuzzer:
    def __init__(self, budget: Budget, weight: float) -> None:
        self.budget = budget
        self.weight = weight

    def run(self, name: str, body: Callable[[Round], None]) -> None:
        if not FUZZING:
            body(Round(None))
            return
        began = time.monotonic()
        stop = began + self.budget.share(self.weight)
        fresh = random.SystemRandom()
        next_seed = int(SEED) if SEED else fresh.randrange(2**32)
        rounds = 0
        try:
            while True:
                _say(f"fuzz {name}: round {rounds + 1}, seed {next_seed}")
                try:
                    body(Round(next_seed, SCALE))
                except BaseException:
                    _say(
                        f"fuzz {name}: FAILED with seed {next_seed}; replay: make fuzz "
                        f"SEED={next_seed} FUZZ_SECONDS=0 FUZZ_SCALE={SCALE:g}"
                    )
                    raise
                rounds += 1
                if SEED or time.monotonic() >= stop:  # a replay is one round
                    break
                next_seed = fresh.randrange(2**32)
        finally:
            self.budget.seconds -= time.monotonic() - began
        _say(f"fuzz {name}: {rounds} rounds passed in {time.monotonic() - began:.0f} s")


def _weight(item) -> float:
    marker = item.get_closest_marker("fuzz_weight")
    return float(marker.args[0]) if marker else 1.0


_budget = Budget()


def pytest_configure(config) -> None:
    global _config
    _config = config
    config.addinivalue_line(
        "markers", "fuzz_weight(n): this test's share of FUZZ_SECONDS, against 1 for the others"
    )
    config.addinivalue_line("markers", "fuzz: uses the fuzzer (added at collection)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items) -> None:
    for item in items:  # before -m selects: `make fuzz` runs -m fuzz
        if "fuzzer" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fuzz)


def pytest_collection_finish(session) -> None:
    fuzzed = [item for item in session.items if item.get_closest_marker("fuzz")]
    _budget.weights = sum(_weight(item) for item in fuzzed)


@pytest.fixture
def fuzzer(request) -> Fuzzer:
    return Fuzzer(_budget, _weight(request.node))
