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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lifecycle gathers it; a gate only reads its numbers
    from monitoring.shadow import LiveEvidence


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
class Backtest:
    """The run's own backtest, as training logged it: the model's WAPE and each
    baseline's, by the name it was logged under (``moving_average_4w``)."""

    wape: float
    baselines: dict[str, float] = field(default_factory=dict)

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
    complete."""
    return GateResult(
        Stage.staging, (*beats_baselines(backtest), contract_complete(contract_problems))
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


NO_WORSE_LIVE = "no worse than production, live"


def no_worse_than_champion_live(live: LiveEvidence, tolerance: float) -> Check:
    """On the same live targets (shadow against production forecasts, with the actuals):
    refused when the challenger is worse by more than ``tolerance`` (relative to the
    champion's WAPE) with the interval's confidence, i.e. when the whole interval of
    challenger − champion WAPE lies above the allowance. The rule of the bootstrap's
    interval, ``training.metrics.paired_difference``, with each series one block."""
    paired = live.paired
    if paired is None or not live.sufficient:
        return Check(NO_WORSE_LIVE, False, f"not enough: {live.describe()}")
    allowance = paired.champion * tolerance
    passed = _finite(paired.low, allowance) and paired.low <= allowance
    return Check(
        NO_WORSE_LIVE,
        passed,
        f"WAPE {paired.challenger:.4f} against production's {paired.champion:.4f}: difference "
        f"{paired.difference:+.4f}, {paired.level:.0%} interval [{paired.low:+.4f}, "
        f"{paired.high:+.4f}] over {paired.groups:,} series "
        f"{'reaches' if passed else 'lies above'} the allowance {allowance:+.4f} (tolerance "
        f"{tolerance:g}); {live.describe()}",
    )
