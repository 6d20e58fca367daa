"""Promotion gates: pure functions from numbers to a verdict, with the numbers in the verdict.

Nothing here touches MLflow, Feast or a model: the lifecycle gathers the inputs
(backtest metrics of the run, the contract's problems, WAPEs re-scored now) and
asks these functions. That keeps the rules readable in one place and testable
as a table.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    """Where a model version is in its lifecycle."""

    candidate = "candidate"
    staging = "staging"
    production = "production"
    archived = "archived"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str  # the numbers behind the verdict, for people


@dataclass(frozen=True)
class GateResult:
    target: Stage
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def explain(self) -> str:
        """One line: which checks failed and why (or that all passed)."""
        if self.passed:
            return f"all {len(self.checks)} {self.target} checks passed"
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target.value, "checks": [asdict(c) for c in self.checks]},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> GateResult:
        data = json.loads(text)
        return cls(Stage(data["target"]), tuple(Check(**c) for c in data["checks"]))


# the baselines the gates read from a run that does not list its own (the ``baselines``
# parameter): versions trained before the baselines were named by their window, whose
# ``moving_average_28`` was a 4-week mean at the weekly grain
LEGACY_BASELINES = ("seasonal_naive", "moving_average_28")


@dataclass(frozen=True)
class Intervals:
    """The run's quantile backtest, as training logged it (training/quantiles.py): the
    central interval's nominal and observed coverage, the mean wQL and the baseline
    interval's. ``levels`` is empty for a version without quantile forecasts."""

    levels: tuple[float, ...] = ()
    coverage: float = math.nan
    wql: float = math.nan
    baseline_wql: float = math.nan
    coverage_by_horizon: dict[int, float] = field(default_factory=dict)

    @property
    def nominal(self) -> float:
        return max(self.levels) - min(self.levels) if len(self.levels) >= 2 else math.nan


@dataclass(frozen=True)
class Backtest:
    """The run's own backtest, as training logged it: the model's WAPE and each
    baseline's, by the name it was logged under (``moving_average_4w``), and its quantile
    forecasts' (None: not read, as before quantiles; the staging gate then does not ask)."""

    wape: float
    baselines: dict[str, float] = field(default_factory=dict)
    intervals: Intervals | None = None

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        """The baseline with the lowest WAPE (None when none has one)."""
        finite = [(n, w) for n, w in self.baselines.items() if _finite(w)]
        return min(finite, key=lambda item: item[1], default=None)


@dataclass(frozen=True)
class Rescore:
    """Challenger and champion WAPE on the challenger's backtest rows, computed now."""

    challenger_wape: float
    champion_wape: float | None  # None: there is no production version yet
    champion_version: str | None
    rows: int
    window: str  # "YYYY-MM-DD..YYYY-MM-DD", origins of the backtest
    problem: str = ""  # why the rows could not be re-scored, if they could not


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


BEATS_BASELINES = "beats the best baseline"


def beats_baselines(backtest: Backtest) -> list[Check]:
    """One check: the model's WAPE is below the best baseline's (so below every one)."""
    every = ", ".join(f"{n} {w:.4f}" for n, w in backtest.baselines.items())
    # a missing or NaN metric is a failed check, never a silent pass
    missing = [n for n, w in backtest.baselines.items() if not _finite(w)]
    best = backtest.best_baseline
    if best is None or missing:
        return [
            Check(
                BEATS_BASELINES,
                False,
                f"WAPE {backtest.wape:.4f} is not below the best baseline: "
                + (f"no WAPE for {', '.join(missing)} (of {every})" if missing else "")
                + ("" if backtest.baselines else "the run logged no baseline's WAPE"),
            )
        ]
    name, wape = best
    passed = _finite(backtest.wape) and backtest.wape < wape
    return [
        Check(
            BEATS_BASELINES,
            passed,
            f"WAPE {backtest.wape:.4f} {'<' if passed else 'is not below'} {name} {wape:.4f}, "
            f"the best of {every}",
        )
    ]


INTERVAL_COVERAGE = "interval coverage near nominal"
INTERVAL_WQL = "wQL beats the baseline interval"
INTERVAL_WQL_CHAMPION = "wQL no worse than production"
# how far the central interval's backtest coverage may be from nominal (0.05: ±5 points)
COVERAGE_TOLERANCE = 0.05


def intervals_calibrated(intervals: Intervals) -> list[Check]:
    """Two checks: the central interval's backtest coverage is within COVERAGE_TOLERANCE of
    nominal, and the mean wQL is below the baseline interval's. A version without quantile
    forecasts passes both, saying the gate cannot judge its intervals (point forecasts are
    judged by the WAPE checks alone)."""
    if len(intervals.levels) < 2:
        what = "no quantile forecasts" if not intervals.levels else "a single quantile level"
        detail = f"cannot judge intervals: the version has {what}"
        return [Check(INTERVAL_COVERAGE, True, detail), Check(INTERVAL_WQL, True, detail)]
    nominal = intervals.nominal
    gap = abs(intervals.coverage - nominal)
    covered = _finite(intervals.coverage) and gap <= COVERAGE_TOLERANCE + 1e-12
    worst = ""
    if intervals.coverage_by_horizon:
        h, value = max(intervals.coverage_by_horizon.items(), key=lambda i: abs(i[1] - nominal))
        worst = f"; furthest horizon h{h} {value:.3f}"
    beats = _finite(intervals.wql, intervals.baseline_wql) and (
        intervals.wql < intervals.baseline_wql
    )
    return [
        Check(
            INTERVAL_COVERAGE,
            covered,
            f"central {nominal:.0%} interval covered {intervals.coverage:.3f} of the backtest "
            f"{'within' if covered else 'outside'} ±{COVERAGE_TOLERANCE:.2f} of {nominal:.2f}"
            + worst,
        ),
        Check(
            INTERVAL_WQL,
            beats,
            f"mean wQL {intervals.wql:.4f} {'<' if beats else 'is not below'} the baseline "
            f"interval's {intervals.baseline_wql:.4f}",
        ),
    ]


def intervals_no_worse_than_champion(paired, margin: float, unjudged: str = "") -> Check:
    """The production gate's wQL check, under the paired rule it uses for WAPE: ``paired``
    (a training.metrics.PairedDifference of per-row pinball losses, training.metrics.pinball,
    challenger minus champion on the same rows) passes when the upper end of its interval
    is at most ``margin``. None: the gate cannot judge intervals (``unjudged`` says why:
    a version without quantile forecasts, different levels) and says so, passing."""
    if paired is None:
        return Check(INTERVAL_WQL_CHAMPION, True, f"cannot judge intervals: {unjudged}")
    passed = _finite(paired.high) and paired.high <= margin
    return Check(
        INTERVAL_WQL_CHAMPION,
        passed,
        f"mean wQL {paired.challenger:.4f} vs production {paired.champion:.4f}: difference "
        f"{paired.difference:+.4f}, {paired.level:.0%} interval [{paired.low:+.4f}, "
        f"{paired.high:+.4f}] over {paired.groups:,} blocks, upper end "
        f"{'≤' if passed else '>'} margin {margin:g}",
    )


def contract_complete(problems: list[str]) -> Check:
    if problems:
        return Check("feature contract", False, "incomplete: " + "; ".join(problems))
    return Check("feature contract", True, "complete")


def no_worse_than_champion(rescore: Rescore, tolerance: float) -> Check:
    if rescore.problem:
        return Check("no worse than production", False, rescore.problem)
    if rescore.champion_wape is None:
        return Check(
            "no worse than production",
            _finite(rescore.challenger_wape),
            f"no production version yet; WAPE {rescore.challenger_wape:.4f} "
            f"on {rescore.rows:,} backtest rows ({rescore.window})",
        )
    limit = rescore.champion_wape * (1 + tolerance)
    passed = _finite(rescore.challenger_wape, limit) and rescore.challenger_wape <= limit
    return Check(
        "no worse than production",
        passed,
        f"WAPE {rescore.challenger_wape:.4f} {'≤' if passed else '>'} {limit:.4f} "
        f"(production v{rescore.champion_version} {rescore.champion_wape:.4f} × "
        f"(1 + tolerance {tolerance:g})) on the same {rescore.rows:,} backtest rows "
        f"({rescore.window})",
    )


def staging_gate(backtest: Backtest, contract_problems: list[str]) -> GateResult:
    """To staging: beats the best baseline on its own backtest; its feature contract is
    complete; its central interval is calibrated and beats the baseline interval."""
    intervals = () if backtest.intervals is None else intervals_calibrated(backtest.intervals)
    return GateResult(
        Stage.staging,
        (*beats_baselines(backtest), contract_complete(contract_problems), *intervals),
    )


def production_gate(
    backtest: Backtest, contract_problems: list[str], rescore: Rescore, tolerance: float
) -> GateResult:
    """To production: the staging checks, and no worse than production on the same rows now."""
    return GateResult(
        Stage.production,
        (
            *beats_baselines(backtest),
            contract_complete(contract_problems),
            no_worse_than_champion(rescore, tolerance),
        ),
    )
