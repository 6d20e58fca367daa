"""Promotion gates: pure functions from numbers to a verdict, with the numbers in the verdict.

Nothing here touches MLflow, Feast or a model: the lifecycle gathers the inputs
(backtest metrics of the run, the contract's problems, both versions' forecasts of the
same rows, made now) and asks these functions. That keeps the rules readable in one
place and testable as a table.

The production gate decides on evidence, not on one window's WAPE: the challenger's
and the champion's errors on the same rows are compared by a block bootstrap over the
series (``training.metrics.paired_difference``), and the challenger passes when the
upper end of the interval of its loss minus the champion's is at most
``DEMAND_GATE_MARGIN``. Each such comparison is a :func:`paired_check`; another loss
(wQL for quantile models) is another paired check under the same rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lifecycle gathers it; a gate only reads its numbers
    from monitoring.shadow import LiveEvidence
    from training.metrics import PairedDifference

import numpy as np
import pandas as pd

from demand.settings import Settings


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
    # a paired check's interval and rule (PairedDifference.to_dict() and the margin), so
    # the audit trail keeps the evidence, not only the sentence; {} for other checks
    evidence: dict = field(default_factory=dict)


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
        """One line: which checks failed and why, or that all passed and on what evidence
        (a passed paired check's interval is part of the reason a move records)."""
        if self.passed:
            shown = [f"{c.name}: {c.detail}" for c in self.checks if c.evidence]
            return "; ".join([f"all {len(self.checks)} {self.target} checks passed", *shown])
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target.value, "checks": [asdict(c) for c in self.checks]},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> GateResult:
        """Read a recorded result (moves recorded before paired checks have no evidence)."""
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


@dataclass(frozen=True, eq=False)
class Rescore:
    """Both versions' forecasts of the same rows (the challenger's backtest rows, those the
    champion never saw), made now by their backtest models; one value per row."""

    champion_version: str | None  # None: there is no production version yet
    rows: int
    window: str  # "YYYY-MM-DD..YYYY-MM-DD", origins of the backtest (and which targets)
    problem: str = ""  # why the rows could not be re-scored, if they could not
    actual: np.ndarray | None = None  # units sold
    challenger: np.ndarray | None = None  # the challenger's forecast
    champion: np.ndarray | None = None  # production's forecast (None without a champion)
    series: np.ndarray | None = None  # each row's series (store, product): the bootstrap's block
    # each row's pinball loss (training.metrics.pinball) under each version's quantiles;
    # None: a version without quantile forecasts, or levels that differ (``unjudged``)
    challenger_pinball: np.ndarray | None = None
    champion_pinball: np.ndarray | None = None
    unjudged: str = ""

    @property
    def challenger_wape(self) -> float:
        if self.actual is None or self.challenger is None:
            return math.nan
        total = float(np.abs(self.actual).sum())
        return float(np.abs(self.actual - self.challenger).sum() / total) if total else math.nan


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


def intervals_calibrated(
    intervals: Intervals, tolerance: float | None = COVERAGE_TOLERANCE
) -> list[Check]:
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
    tolerance_shown = COVERAGE_TOLERANCE if tolerance is None else tolerance
    covered = _finite(intervals.coverage) and gap <= tolerance_shown + 1e-12
    worst = ""
    if intervals.coverage_by_horizon:
        h, value = max(intervals.coverage_by_horizon.items(), key=lambda i: abs(i[1] - nominal))
        worst = f"; furthest horizon h{h} {value:.3f}"
    beats = _finite(intervals.wql, intervals.baseline_wql) and (
        intervals.wql < intervals.baseline_wql
    )
    coverage = (
        f"central {nominal:.0%} interval covered {intervals.coverage:.3f} of the backtest "
        f"{'within' if covered else 'outside'} ±{tolerance_shown:.2f} of {nominal:.2f}" + worst
    )
    wql = Check(
        INTERVAL_WQL,
        beats,
        f"mean wQL {intervals.wql:.4f} {'<' if beats else 'is not below'} the baseline "
        f"interval's {intervals.baseline_wql:.4f}",
    )
    if tolerance is None:  # coverage reported, not gated (DEMAND_GATE_COVERAGE_TOLERANCE)
        return [replace(wql, detail=f"{wql.detail}; {coverage} (not gated)")]
    return [Check(INTERVAL_COVERAGE, covered, coverage), wql]


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


NO_WORSE = "no worse than production"


def paired_check(
    name: str,
    champion_loss,
    challenger_loss,
    scale,
    groups,
    settings: Settings,
    *,
    metric: str = "WAPE",
    about: str = "",
) -> Check:
    """The challenger is no worse than the champion by more than ``settings.gate_margin``.

    ``champion_loss``/``challenger_loss`` are each row's loss (|error| for WAPE, the
    pinball loss for wQL), ``scale`` each row's denominator (|actual|), ``groups`` its
    block (the series). Passes when the upper end of the ``gate_level`` interval of
    (challenger − champion) is at most the margin: one window's noise (WAPE moves
    ±0.05 from week to week on the tiny retailer) no longer decides, and a challenger
    is refused only where the evidence cannot exclude that it is worse by more than the
    margin. ``about`` (the champion, the rows) ends the detail.
    """
    # here, not at the top: training.metrics loads scipy and scikit-learn, and every
    # `demand models …` command imports this module
    from training.metrics import paired_difference

    found = paired_difference(
        champion_loss,
        challenger_loss,
        scale,
        groups,
        metric=metric.lower(),
        level=settings.gate_level,
        draws=settings.gate_draws,
    )
    return judged(name, found, settings.gate_margin, metric=metric, about=about)


def judged(
    name: str, found: PairedDifference, margin: float, *, metric: str = "WAPE", about: str = ""
) -> Check:
    """The paired rule on a measured difference: passes when the interval's upper end of
    (challenger − champion) is at most ``margin``. The backtest's check and the live one
    (shadow against production) both decide here."""
    evidence = {**found.to_dict(), "margin": margin}
    suffix = f" {about}" if about else ""
    if not _finite(found.difference, found.low, found.high):
        return Check(
            name,
            False,
            f"no {metric} difference to compare (challenger {found.challenger:.4f}, "
            f"production {found.champion:.4f}: nothing sold, or a forecast missing){suffix}",
            evidence,
        )
    passed = found.high <= margin
    detail = (
        f"{metric} {found.challenger:.4f} against {found.champion:.4f}: difference "
        f"{found.difference:+.4f}, {found.level:.0%} interval [{found.low:+.4f}, "
        f"{found.high:+.4f}], upper end {'≤' if passed else '>'} margin {margin:g} "
        f"({found.draws:,} resamples of {found.groups:,} series){suffix}"
    )
    return Check(name, passed, detail, evidence)


def no_worse_than_champion(rescore: Rescore, settings: Settings) -> Check:
    """The paired WAPE check of the challenger against production on the same rows."""
    if rescore.problem:
        return Check(NO_WORSE, False, rescore.problem)
    if rescore.champion is None:
        challenger = rescore.challenger_wape
        return Check(
            NO_WORSE,
            _finite(challenger),
            f"no production version yet; WAPE {challenger:.4f} "
            f"on {rescore.rows:,} backtest rows ({rescore.window})",
        )
    actual = np.asarray(rescore.actual, dtype=float)
    return paired_check(
        NO_WORSE,
        np.abs(actual - rescore.champion),
        np.abs(actual - rescore.challenger),
        actual,
        pd.Series(rescore.series),
        settings,
        about=f"(production v{rescore.champion_version}) on the same {rescore.rows:,} "
        f"backtest rows ({rescore.window})",
    )


def staging_gate(
    backtest: Backtest,
    contract_problems: list[str],
    coverage_tolerance: float | None = COVERAGE_TOLERANCE,
) -> GateResult:
    """To staging: beats the best baseline on its own backtest; its feature contract is
    complete; its central interval is calibrated and beats the baseline interval."""
    intervals = (
        ()
        if backtest.intervals is None
        else intervals_calibrated(backtest.intervals, coverage_tolerance)
    )
    return GateResult(
        Stage.staging,
        (*beats_baselines(backtest), contract_complete(contract_problems), *intervals),
    )


def production_gate(
    backtest: Backtest, contract_problems: list[str], rescore: Rescore, settings: Settings
) -> GateResult:
    """To production: the staging checks, and no worse than production on the same rows now
    (the paired comparison under ``settings``' margin, level and draws)."""
    return GateResult(
        Stage.production,
        (
            *staging_gate(backtest, contract_problems, settings.gate_coverage_tolerance).checks,
            no_worse_than_champion(rescore, settings),
            *intervals_against_champion(rescore, settings),
        ),
    )


def intervals_against_champion(rescore: Rescore, settings: Settings) -> tuple[Check, ...]:
    """The paired wQL check of the two versions' quantiles on the same rows; nothing without
    a champion or rows, and "cannot judge" where either version has no quantiles."""
    if rescore.problem or rescore.champion_version is None or rescore.actual is None:
        return ()
    if rescore.challenger_pinball is None or rescore.champion_pinball is None:
        if not rescore.unjudged:  # the rescore gathered no quantiles at all
            return ()
        return (intervals_no_worse_than_champion(None, settings.gate_margin, rescore.unjudged),)
    actual = np.asarray(rescore.actual, dtype=float)
    return (
        paired_check(
            INTERVAL_WQL_CHAMPION,
            rescore.champion_pinball,
            rescore.challenger_pinball,
            actual,
            pd.Series(rescore.series),
            settings,
            metric="wQL",
            about=f"(production v{rescore.champion_version}) on the same {rescore.rows:,} "
            f"backtest rows ({rescore.window})",
        ),
    )


NO_WORSE_LIVE = "no worse than production, live"


def no_worse_than_champion_live(live: LiveEvidence, settings: Settings) -> Check:
    """On the same live targets (shadow against production forecasts, with the actuals),
    the backtest's paired rule (``judged``): each series one block, DEMAND_GATE_MARGIN."""
    if live.paired is None or not live.sufficient:
        return Check(NO_WORSE_LIVE, False, f"not enough: {live.describe()}")
    return judged(NO_WORSE_LIVE, live.paired, settings.gate_margin, about=f"({live.describe()})")
